#!/usr/bin/env bash
# Train the default demo models reproducibly (fixed seed) into DIR.
#
#   scripts/models.sh BIN DIR        (called by `make models`)
#
# Inputs: the Bitext customer-support CSV from ../shared/datasets (when
# present) and the project-written data in models/data/*.yml. The work is
# skipped when DIR holds a model trained from the same inputs by the same
# trainer sources (a stamp with their SHA-256 is kept in DIR/.inputs.sha256).
set -euo pipefail
bin=${1:?usage: models.sh BIN DIR}
dir=${2:?usage: models.sh BIN DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
bitext="$root/../shared/datasets/bitext-customer-support/bitext_customer_support_20k.csv"
seed=${TANDEM_MODELS_SEED:-20240601}

specs=()
inputs=()
if [[ -f "$bitext" ]]; then
  specs+=(--data "bitext:$bitext")
  inputs+=("$bitext")
else
  echo "models: $bitext not found (../shared/datasets is absent); training on models/data only" >&2
fi
for f in "$root"/models/data/*.yml; do
  specs+=(--data "tandem:$f")
  inputs+=("$f")
done

# The stamp covers the data, this script, the seed and the trainer's sources.
stamp=$( {
  echo "seed=$seed"
  sha256sum "${inputs[@]}" "$0"
  (cd "$root" && find nlp models/onnx models -maxdepth 3 -name '*.go' ! -name '*_test.go' -print0 | sort -z | xargs -0 sha256sum)
} | sha256sum | cut -d' ' -f1)
if [[ -f "$dir/manifest.json" && -f "$dir/.inputs.sha256" && "$(cat "$dir/.inputs.sha256")" == "$stamp" ]]; then
  echo "models: $dir is up to date"
  exit 0
fi

echo "models: training the default models into $dir (seed $seed)" >&2
start=$(date +%s)
"$bin" train "${specs[@]}" --out "$dir" --seed "$seed" --name tandem-default \
  --members 2 --hidden 128 --epochs 5 --no-refit --quiet
echo "$stamp" > "$dir/.inputs.sha256"
echo "models: done in $(( $(date +%s) - start ))s" >&2
