#!/usr/bin/env bash
# Side-by-side prediction speed on the same file: Tandem's ONNX Runtime
# models (go test -bench, intent + entity tagger when the model has one) and
# Debian's fastText (`fasttext predict`), on the CLINC150 test texts.
#
#   scripts/peers/speed.sh DATA_FULL_JSON MODEL_DIR [OUT_DIR]
#
# MODEL_DIR is a model directory written by `tandem train` (e.g. the CLINC150
# model of scripts/eval.sh). fastText is trained here with the settings of
# fasttext_clinc.sh. Single-message latency runs with -cpu 1, batched
# throughput with -cpu 2.
set -euo pipefail
data=$1 model=$(cd "$2" && pwd) out=${3:-/tmp/tandem-speed}
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v fasttext >/dev/null || { echo "fasttext not installed (apt-get install -y fasttext)" >&2; exit 1; }
mkdir -p "$out"
/usr/bin/python3 - "$data" "$out" <<'PY'
import sys, json
d = json.load(open(sys.argv[1], encoding="utf-8"))
out = sys.argv[2]
with open(out + "/train.txt", "w") as f:
    for s in ["train", "val", "oos_train", "oos_val"]:
        for t, y in d[s]:
            f.write("__label__%s %s\n" % ("oos" if s.startswith("oos_") else y, " ".join(t.split())))
with open(out + "/test.txt", "w") as f:
    for s in ["test", "oos_test"]:
        for t, _ in d[s]:
            f.write(" ".join(t.split()) + "\n")
PY
n=$(wc -l < "$out/test.txt")
fasttext supervised -input "$out/train.txt" -output "$out/ft" -epoch 50 -wordNgrams 2 -minn 3 -maxn 5 -dim 100 -thread 2 -verbose 0
: > "$out/empty.txt"
t0=$(date +%s.%N); fasttext predict "$out/ft.bin" "$out/empty.txt" > /dev/null; load=$(echo "$(date +%s.%N) - $t0" | bc)
t0=$(date +%s.%N); fasttext predict "$out/ft.bin" "$out/test.txt" > /dev/null; all=$(echo "$(date +%s.%N) - $t0" | bc)
ft=$(echo "scale=0; $n / ($all - $load)" | bc)
echo "fasttext predict: $n texts in ${all}s incl. ${load}s model load -> $ft msg/s (one process, single thread)" | tee "$out/fasttext.txt"
cd "$root"
TANDEM_MODEL_DIR="$model" TANDEM_BENCH_TEXTS="$out/test.txt" go test -run '^$' -bench 'NLUSingle' -cpu 1 -benchtime 3s ./nlp/ | tee "$out/tandem-single.txt"
TANDEM_MODEL_DIR="$model" TANDEM_BENCH_TEXTS="$out/test.txt" go test -run '^$' -bench 'NLUBatch' -cpu 2 -benchtime 3s ./nlp/ | tee "$out/tandem-batch.txt"
