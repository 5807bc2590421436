package nlp

import (
	"errors"
	"fmt"

	"github.com/tandem-chat/tandem/models"
	"github.com/tandem-chat/tandem/nlp/entity"
)

// ErrNoEntityModel is returned (wrapped) by LoadEntityTagger when the model
// directory holds no entity tagger (its training data had no entity
// annotations).
var ErrNoEntityModel = errors.New("nlp: the model directory has no entity tagger")

// LoadEntityTagger loads the entity tagger of the model directory dir
// written by TrainDir (`tandem train`), verifying the directory's manifest
// checksums. The *entity.Tagger has TagBatch(ctx, texts) ([][]tandem.Entity,
// error) (pipeline.EntityModel), is safe for concurrent use and must be
// closed. When dir has no tagger it returns an error wrapping
// ErrNoEntityModel.
func LoadEntityTagger(rt *models.Runtime, dir string) (*entity.Tagger, error) {
	return LoadEntityTaggerWith(rt, dir, entity.Options{})
}

// LoadEntityTaggerWith is LoadEntityTagger with options (pool size, batch
// size). The precision follows the manifest (an fp32 directory serves the
// fp32 graph).
func LoadEntityTaggerWith(rt *models.Runtime, dir string, opt entity.Options) (*entity.Tagger, error) {
	man, err := models.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	me, ok := man.Models[RoleEntity]
	if !ok {
		return nil, fmt.Errorf("%w (%s)", ErrNoEntityModel, dir)
	}
	if me.Kind != EntityKind {
		return nil, fmt.Errorf("nlp: %s: entity model kind %q, this build serves %q", dir, me.Kind, EntityKind)
	}
	opt.FP32 = me.File == entity.FileONNXFP32
	t, err := entity.LoadWith(rt, dir, opt)
	if err != nil {
		return nil, fmt.Errorf("nlp: %s: %w", dir, err)
	}
	return t, nil
}
