#!/usr/bin/env bash
# Print the directory of the public datasets (../shared/datasets, see its
# README), or nothing when it cannot be found. Looked up, in order:
#   $TANDEM_DATASETS; ../shared/datasets beside this checkout; and, for a
#   clone of a local checkout (git clone /work/main /tmp/x), beside the
#   checkout it was cloned from.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cands=()
[[ -n "${TANDEM_DATASETS:-}" ]] && cands+=("$TANDEM_DATASETS")
cands+=("$root/../shared/datasets")
origin=$(git -C "$root" config --get remote.origin.url 2>/dev/null || true)
if [[ -n "$origin" && -d "$origin" ]]; then
  cands+=("$origin/../shared/datasets")
fi
for d in "${cands[@]}"; do
  if [[ -d "$d" ]]; then
    (cd "$d" && pwd)
    exit 0
  fi
done
