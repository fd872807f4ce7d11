#!/usr/bin/env bash
# Rebuilds the kernels' PTX from kernels-gpu/src with the pinned nightly (build.rs, NIGHTLY)
# and writes the shipped files: ptx/kernels.ptx.xz (every architecture's PTX, each
# after a "//@stagefit-arch ARCH" line, in one xz stream) and ptx/SOURCES (the
# fingerprint of the sources it was made from). With --check, writes nothing and fails if the
# shipped files differ from a fresh build (CI runs this).
# Usage: scripts/regenerate-ptx.sh [--check]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
STAGEFIT_KERNELS=source STAGEFIT_PTX_OUT="$out" cargo build --release --lib --quiet
for ptx in "$out"/*.ptx; do
  echo "//@stagefit-arch $(basename "$ptx" .ptx)"
  cat "$ptx"
done > "$out/kernels.all"
if [ "${1:-}" = "--check" ]; then
  status=0
  xz -dc ptx/kernels.ptx.xz | cmp -s - "$out/kernels.all" \
    || { echo "ptx/kernels.ptx.xz differs from the PTX built from kernels-gpu/src: run scripts/regenerate-ptx.sh" >&2; status=1; }
  cmp -s "$out/SOURCES" ptx/SOURCES \
    || { echo "ptx/SOURCES is stale: run scripts/regenerate-ptx.sh" >&2; status=1; }
  [ "$status" -eq 0 ] && echo "shipped PTX matches kernels-gpu/src ($(cat "$out/SOURCES"))"
  exit $status
fi
mkdir -p ptx
xz -9e -T1 -c "$out/kernels.all" > ptx/kernels.ptx.xz
cp "$out/SOURCES" ptx/SOURCES
ls -l ptx
