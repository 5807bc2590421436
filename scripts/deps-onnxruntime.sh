#!/usr/bin/env bash
# Installs the ONNX Runtime shared library into .deps/onnxruntime (git-ignored).
# The library comes from the npm registry's onnxruntime-node package, whose
# version must match the C API of the github.com/yalue/onnxruntime_go release
# pinned in go.mod (v1.27.0 -> ONNX Runtime 1.24.1). Idempotent: when the
# library for this version is present it does nothing.
set -euo pipefail
ORT_VERSION="${ORT_VERSION:-1.24.1}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.deps/onnxruntime"
lib="$dest/libonnxruntime.so.1"
stamp="$dest/VERSION"
if [[ -f "$lib" && -f "$stamp" && "$(cat "$stamp")" == "$ORT_VERSION" ]]; then
  exit 0
fi
case "$(uname -m)" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) echo "deps-onnxruntime: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
command -v npm >/dev/null || { echo "deps-onnxruntime: npm is required (apt-get install npm)" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "deps: fetching onnxruntime-node@$ORT_VERSION from the npm registry"
(cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
tar -xzf "$tmp"/onnxruntime-node-*.tgz -C "$tmp" "package/bin/napi-v6/linux/$arch/libonnxruntime.so.1"
mkdir -p "$dest"
install -m 0644 "$tmp/package/bin/napi-v6/linux/$arch/libonnxruntime.so.1" "$lib.tmp"
mv "$lib.tmp" "$lib"
echo "$ORT_VERSION" > "$stamp"
echo "deps: ONNX Runtime $ORT_VERSION installed at $lib"
