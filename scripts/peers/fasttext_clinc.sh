#!/usr/bin/env bash
# Peer: Debian's fasttext 0.9.2 on CLINC150 (train,val,oos_train,oos_val ->
# test,oos_test), 50 epochs, word bigrams, char 3-5-grams, dim 100, with the
# prediction speed of `fasttext predict-prob` on the same test file.
# usage: scripts/peers/fasttext_clinc.sh DATA_FULL_JSON OUT_JSON
set -euo pipefail
data=$1 out=$2
here=$(cd "$(dirname "$0")" && pwd)
command -v fasttext >/dev/null || { echo "fasttext not installed (apt-get install -y fasttext)" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$data" "$tmp" <<'PY'
import sys, json
sys.path.insert(0, "")
data, tmp = sys.argv[1], sys.argv[2]
d = json.load(open(data, encoding="utf-8"))
def rows(splits):
    for s in splits:
        for t, y in d[s]:
            yield ("oos" if s.startswith("oos_") else y), " ".join(t.split())
with open(tmp + "/train.txt", "w") as f:
    for y, t in rows(["train", "val", "oos_train", "oos_val"]):
        f.write("__label__%s %s\n" % (y, t))
with open(tmp + "/test.txt", "w") as f, open(tmp + "/labels.txt", "w") as g:
    for y, t in rows(["test", "oos_test"]):
        f.write(t + "\n"); g.write(y + "\n")
PY
start=$(date +%s.%N)
fasttext supervised -input "$tmp/train.txt" -output "$tmp/model" -epoch 50 -wordNgrams 2 -minn 3 -maxn 5 -dim 100 -thread 2 -verbose 0
train_s=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
fasttext predict-prob "$tmp/model.bin" "$tmp/test.txt" 1 > "$tmp/pred.txt"
pred_s=$(echo "$(date +%s.%N) - $start" | bc)
model_bytes=$(stat -c %s "$tmp/model.bin")
/usr/bin/python3 - "$tmp" "$out" "$train_s" "$pred_s" "$model_bytes" <<PY
import sys
sys.path.insert(0, "$here")
import common
tmp, out, train_s, pred_s, size = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
labels = [l.strip() for l in open(tmp + "/labels.txt")]
preds, confs = [], []
for line in open(tmp + "/pred.txt"):
    parts = line.split()
    preds.append(parts[0].replace("__label__", "") if parts else "oos")
    confs.append(float(parts[1]) if len(parts) > 1 else 0.0)
pts = common.curve(labels, preds, confs)
s = common.summary("fasttext-0.9.2", pts, dict(train_seconds=train_s, predict_seconds=pred_s,
    test_examples=len(labels), messages_per_second=len(labels) / pred_s, model_bytes=size,
    note="predict_seconds includes loading the model file"))
common.dump(s, out)
print("fastText: no threshold %.4f in-scope / %.3f oos recall; best %.4f at t=%.2f; train %.0fs, predict %.0f msg/s (incl. model load)"
      % (s["no_threshold"]["in_scope_accuracy"], s["no_threshold"]["oos_recall"],
         s["best_in_scope"]["in_scope_accuracy"], s["best_in_scope"]["threshold"], train_s, len(labels) / pred_s))
PY
