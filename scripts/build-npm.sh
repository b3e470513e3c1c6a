#!/usr/bin/env bash
# Builds the npm package `meshwire` (npm/) and packs it: npm/meshwire-<version>.tgz.
#   1. the SDK's wasm and glue (scripts/build-sdk.sh) into npm/src/wasm/;
#   2. the TypeScript layer (core + React) with tsc into npm/dist/, the wasm beside it;
#   3. `npm pack`: the tarball a user installs (`files` in package.json limits it).
# Set SKIP_SDK=1 to reuse npm/src/wasm from an earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SKIP_SDK:-}" != 1 ] || [ ! -f npm/src/wasm/meshwire_bg.wasm ]; then
  bash scripts/build-sdk.sh npm/src/wasm
fi
# wasm-bindgen declares `[Symbol.dispose]`, which needs TypeScript's esnext lib: an
# app type-checking our typings with an ES2022 lib (and skipLibCheck off) would fail.
# `free()` stays.
sed -i '/\[Symbol.dispose\]/d' npm/src/wasm/meshwire.d.ts

bash scripts/npm-deps.sh npm
cd npm
rm -rf dist
node_modules/.bin/tsc -p tsconfig.build.json
mkdir -p dist/wasm
cp -r src/wasm/meshwire.js src/wasm/meshwire.d.ts src/wasm/meshwire_bg.wasm src/wasm/snippets dist/wasm/
rm -f meshwire-*.tgz
npm pack --silent >/dev/null
ls -l meshwire-*.tgz >&2
