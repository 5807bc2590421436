#!/usr/bin/env bash
# NLU evaluation suite on the public datasets in ../shared/datasets (the
# figures of docs/benchmarks.md, sections NLU and Entities).
#
#   scripts/eval.sh BIN [MODEL_DIR] [OUT]      (called by `make eval`)
#
# For each benchmark it trains a model from the training split only (the
# trainer holds out its own validation slice; test data is never read while
# training), evaluates it on the test split with `tandem eval --json`, and
# writes the JSON reports and logs to OUT (default /tmp/tandem-eval):
#   clinc150    train,val,oos_train,oos_val -> test,oos_test (int8 and fp32
#               exports, plus the two peers: scikit-learn TF-IDF LR and fastText)
#   snips       train -> validate (intent accuracy, slot F1)
#   nlupp       folds 0-9 -> folds 10-19 (slot F1, per slot)
# MODEL_DIR (the default demo models) is evaluated on the demo data for a
# smoke check. Set EVAL_PEERS=0 to skip the peers, EVAL_ONLY=clinc150 (or
# snips, nlupp) to run one benchmark.
set -euo pipefail
bin=${1:?usage: eval.sh BIN [MODEL_DIR] [OUT]}
model_dir=${2:-}
out=${3:-/tmp/tandem-eval}
root=$(cd "$(dirname "$0")/.." && pwd)
ds=$(bash "$root/scripts/datasets-dir.sh")
ds=${ds:-$root/../shared/datasets}
only=${EVAL_ONLY:-}
seed=${EVAL_SEED:-1}
mkdir -p "$out"
[[ -d "$ds" ]] || { echo "eval: $ds not found (the public datasets are needed)" >&2; exit 1; }
# The summary reads every report in OUT: clear the previous run's, so that
# a partial run (EVAL_ONLY, EVAL_PEERS=0) never shows old figures as new.
rm -f "$out"/clinc150.json "$out"/clinc150-fp32.json "$out"/snips.json "$out"/nlupp.json \
  "$out"/peer-sklearn.json "$out"/peer-fasttext.json "$out"/*.seconds "$out"/default-*.json

timed() { # name cmd...: run, log stderr, record wall seconds
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" 2> "$out/$name.log"
  echo "$(echo "$(date +%s.%N) - $t0" | bc)" > "$out/$name.seconds"
}

want() { [[ -z "$only" || "$only" == "$1" ]]; }

if want clinc150; then
  c="clinc150:$ds/clinc150/data_full.json"
  echo "eval: CLINC150 (train,val,oos_train,oos_val -> test,oos_test)" >&2
  timed clinc150-train "$bin" train --data "$c#train,val,oos_train,oos_val" --out "$out/clinc150" \
    --fp32-out "$out/clinc150-fp32" --seed "$seed" > "$out/clinc150-train.txt"
  "$bin" eval --model "$out/clinc150" --data "$c#test,oos_test" --json > "$out/clinc150.json"
  "$bin" eval --model "$out/clinc150-fp32" --data "$c#test,oos_test" --json > "$out/clinc150-fp32.json"
  du -sb "$out/clinc150" "$out/clinc150-fp32" > "$out/clinc150-sizes.txt"
  if [[ "${EVAL_PEERS:-1}" != 0 ]]; then
    command -v fasttext >/dev/null && /usr/bin/python3 -c 'import sklearn' 2>/dev/null \
      || { echo "eval: installing the peers (apt-get install -y fasttext python3-sklearn)" >&2; apt-get install -y fasttext python3-sklearn >&2; }
    /usr/bin/python3 "$root/scripts/peers/sklearn_lr.py" "$ds/clinc150/data_full.json" "$out/peer-sklearn.json" | tee "$out/peer-sklearn.txt" >&2
    bash "$root/scripts/peers/fasttext_clinc.sh" "$ds/clinc150/data_full.json" "$out/peer-fasttext.json" | tee "$out/peer-fasttext.txt" >&2
  fi
fi
if want snips; then
  echo "eval: SNIPS (train -> validate)" >&2
  timed snips-train "$bin" train --data "snips:$ds/snips#train" --out "$out/snips" --seed "$seed" > "$out/snips-train.txt"
  "$bin" eval --model "$out/snips" --data "snips:$ds/snips#validate" --json > "$out/snips.json"
fi
if want nlupp; then
  echo "eval: NLU++ banking (folds 0-9 -> 10-19)" >&2
  timed nlupp-train "$bin" train --data "nlupp:$ds/nlupp-banking#0-9" --out "$out/nlupp" --seed "$seed" > "$out/nlupp-train.txt"
  "$bin" eval --model "$out/nlupp" --data "nlupp:$ds/nlupp-banking#10-19" --json > "$out/nlupp.json"
fi
if [[ -n "$model_dir" && -z "$only" ]]; then
  for f in "$root"/models/data/*.yml; do
    "$bin" eval --model "$model_dir" --data "tandem:$f" --json > "$out/default-$(basename "$f" .yml).json"
  done
fi

/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def load(n):
    p = os.path.join(out, n)
    return json.load(open(p)) if os.path.exists(p) else None
def secs(n):
    p = os.path.join(out, n + ".seconds")
    return float(open(p).read()) if os.path.exists(p) else float("nan")
for name in ["clinc150", "clinc150-fp32", "snips", "nlupp"]:
    r = load(name + ".json")
    if not r:
        continue
    i = r["intent"]
    line = "%-14s intent acc %.4f in-scope %.4f oos recall %.3f oos precision %.3f macro F1 %.4f threshold %.2f" % (
        name, i["accuracy"], i["in_scope_accuracy"], i["oos_recall"], i["oos_precision"], i["macro_f1"], i["threshold"])
    if r.get("intent_no_threshold"):
        n = r["intent_no_threshold"]
        line += " (no threshold: acc %.4f in-scope %.4f oos recall %.3f)" % (n["accuracy"], n["in_scope_accuracy"], n["oos_recall"])
    if r.get("entity"):
        line += " | slot micro F1 %.4f" % r["entity"]["micro_f1"]
    t = secs(name + "-train")
    if t == t:
        line += " | train %.0fs" % t
    print(line)
ours = load("clinc150.json")
for name in ["peer-sklearn", "peer-fasttext"]:
    r = load(name + ".json")
    if r:
        b, n = r["best_in_scope"], r["no_threshold"]
        line = "%-14s no threshold %.4f / %.3f; best in-scope %.4f at t=%.2f (recall %.3f); train %.0fs" % (
            name, n["in_scope_accuracy"], n["oos_recall"], b["in_scope_accuracy"], b["threshold"], b["oos_recall"], r["train_seconds"])
        if ours:
            acc = ours["intent"]["in_scope_accuracy"]
            pts = [p for p in r["curve"] if p["in_scope_accuracy"] >= acc]
            rec = max((p["oos_recall"] for p in pts), default=None)
            line += "; at our in-scope %.4f: %s" % (acc, "unreachable" if rec is None else "recall %.3f" % rec)
            line += " -> ours %s" % ("better" if acc > b["in_scope_accuracy"] and (rec is None or ours["intent"]["oos_recall"] > rec) else "NOT better")
        print(line)
PY
