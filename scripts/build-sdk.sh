#!/usr/bin/env bash
# Builds the SDK as an ES module (`--target web`) into OUT (default examples/demo/pkg):
# meshwire.js (glue), meshwire_bg.wasm, meshwire.d.ts. wasm-opt -Oz comes from npm's
# binaryen (installed once into .tools/; Debian's binaryen breaks externref tables, see
# ../shared/TOOLCHAIN.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-examples/demo/pkg}

cargo build --locked --profile wasm-release -p meshwire --target wasm32-unknown-unknown
mkdir -p "$OUT"
wasm-bindgen --target web --out-dir "$OUT" --out-name meshwire \
  target/wasm32-unknown-unknown/wasm-release/meshwire.wasm

if [ ! -x .tools/node_modules/.bin/wasm-opt ] && command -v npm >/dev/null 2>&1; then
  mkdir -p .tools
  (cd .tools && npm install --silent --no-audit --no-fund --prefix . binaryen@132 >/dev/null 2>&1) ||
    echo "build-sdk: could not install binaryen; the wasm stays unoptimised" >&2
fi
if [ -x .tools/node_modules/.bin/wasm-opt ]; then
  .tools/node_modules/.bin/wasm-opt -Oz --enable-reference-types --enable-bulk-memory \
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
    "$OUT/meshwire_bg.wasm" -o "$OUT/meshwire_bg.wasm"
fi
ls -l "$OUT" >&2
