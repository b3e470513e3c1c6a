#!/usr/bin/env bash
# Puts the built package (npm/dist: core, React layer, wasm) into examples/demo/meshwire,
# where the demo page imports it from (`./meshwire/index.js`). Run scripts/build-npm.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf examples/demo/meshwire
cp -r npm/dist examples/demo/meshwire
