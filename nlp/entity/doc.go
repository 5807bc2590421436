// Package entity is Tandem's statistical entity tagger: a linear-chain CRF
// over BIO tags whose emission scores come from hashed per-token features,
// trained in pure Go from the entity spans of a data.Dataset, exported as
// an int8 ONNX model and served through ONNX Runtime.
//
// # Model
//
// Tokens are nlp/text tokens, further split where letters meet digits or a
// lower-case letter meets an upper-case one (Tokens); characters of
// unsegmented scripts (Chinese, Japanese, Thai, ...) are tokens of their
// own, so such text needs no segmenter. Each token gets hashed features
// (FeatureConfig): its word and the words of its neighbours at offsets
// -Window..+Window (a convolution over neighbours), word bigrams and a
// trigram, character shapes, prefixes and suffixes, character n-grams, the
// original casing, a bag of the sentence's words (intent context), and
// gazetteer features (the token is inside, begins, or is next to a known
// value of type X: values seen in training, cross-fold during training so
// the model learns how far to trust them, plus the dataset's lookup
// tables), and the types of the nlp/rules entities covering or touching
// the token (date, time, money, ...; never their time-dependent values).
// The emission score of tag k at a token is the sum over its
// features of a learned table row: scores = sum_f W[f, k]. Transitions
// between tags (plus start and end scores) complete a linear-chain CRF;
// decoding is Viterbi constrained to valid BIO sequences (no I-x after O,
// after B-y or I-y with y != x, or at the start). Entity confidence is the
// smallest forward-backward marginal of the span's tags.
//
// Training minimises the CRF negative log-likelihood with AdaGrad on
// mini-batches, L2 regularisation and parameter averaging. Gradients of the
// examples of a batch are computed in parallel and the table update is
// split by tag columns, with a fixed arithmetic order: training is
// deterministic for a seed whatever the number of workers.
//
// # Files (Save, Load)
//
//	entity.onnx       int8 emission model: inputs "ids" int64 [batch, tokens,
//	                  features] (vocabulary rows, 0 = padding) and "weights"
//	                  float [batch, tokens, features] (1, or 0 for padding);
//	                  output "scores" float [batch, tokens, tags]. The table
//	                  is quantised per row (symmetric int8, one float scale
//	                  per row) and dequantised after the Gather.
//	entity.fp32.onnx  the same with float weights (Config.ExportFP32)
//	entity.vocab      feature hashes in row order
//	entity.json       Manifest: tags, types, feature config, transitions,
//	                  start/end scores, gazetteer, value table, sha256 of
//	                  every file, training info
//
// # API (stable; used by `tandem train` and `tandem eval`)
//
//	m, err := entity.Train(ctx, ds, entity.Config{Seed: 1}, os.Stderr)
//	files, err := m.Save(dir)
//	tg, err := entity.Load(rt, dir)            // *Tagger, ONNX Runtime
//	ents, err := tg.TagBatch(ctx, texts)       // [][]tandem.Entity
//	met, err := entity.Evaluate(ctx, tg, examples)
//	// met.MicroF1, met.Precision, met.Recall, met.PerType["city"].F1
//
// Entities are tandem.Entity values with rune offsets (Start, End
// exclusive), Source "model", Value the canonical value (the dataset's
// synonyms, then the values annotated in training for the same surface
// text, else the text itself) and Confidence in [0, 1].
//
// Evaluate scores exact matches: a prediction is correct when its type,
// start and end equal those of a gold span (the CoNLL / Snips NLU slot
// metric). It accepts any Batcher: a *Tagger or a *Model (Go forward pass).
//
// # Concurrency
//
// A trained *Model and a *Tagger are safe for concurrent use. A Tagger
// holds a pool of ONNX Runtime sessions (Options.Sessions, one intra-op
// thread each); TagBatch sends up to Options.MaxBatch texts per ONNX
// Runtime call and runs the calls of a large batch concurrently. Close
// releases the sessions and must not race with other calls.
package entity
