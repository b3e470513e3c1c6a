#!/usr/bin/env bash
# Builds the SDK as an ES module (`--target web`) into OUT (default examples/demo/pkg):
# meshwire.js (glue, and snippets/ it imports), meshwire_bg.wasm, meshwire.d.ts.
# wasm-opt -Oz comes from npm's binaryen, the glue is minified with npm's terser (both
# installed once into .tools/; Debian's binaryen breaks externref tables, see
# ../shared/TOOLCHAIN.md). The typings (.d.ts) keep every doc comment.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-examples/demo/pkg}

cargo build --locked --profile wasm-release -p meshwire --target wasm32-unknown-unknown
mkdir -p "$OUT"
wasm-bindgen --target web --out-dir "$OUT" --out-name meshwire \
  target/wasm32-unknown-unknown/wasm-release/meshwire.wasm

BIN=.tools/node_modules/.bin
if { [ ! -x $BIN/wasm-opt ] || [ ! -x $BIN/terser ]; } && command -v npm >/dev/null 2>&1; then
  mkdir -p .tools
  (cd .tools && npm install --silent --no-audit --no-fund --prefix . binaryen@132 terser@5 >/dev/null 2>&1) ||
    echo "build-sdk: could not install binaryen/terser; the bundle stays unoptimised" >&2
fi
if [ -x $BIN/wasm-opt ]; then
  # The custom sections (producers, target_features) are metadata no browser reads.
  $BIN/wasm-opt -Oz --strip-producers --strip-target-features --enable-reference-types \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-multivalue "$OUT/meshwire_bg.wasm" -o "$OUT/meshwire_bg.wasm"
fi
if [ -x $BIN/terser ]; then
  # Minified like every JS SDK ships; exports (Room, init, initSync) keep their names.
  for js in "$OUT"/meshwire.js "$OUT"/snippets/*/*.js; do
    [ -f "$js" ] && $BIN/terser "$js" --module --compress --mangle -o "$js"
  done
fi
ls -l "$OUT" >&2
