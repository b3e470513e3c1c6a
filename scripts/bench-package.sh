#!/usr/bin/env bash
# The npm package's benchmark (`make bench`): tarball and per-entry gzipped sizes, and
# page load to first remote video frame in the demo (tests/e2e/bench.mjs writes
# docs/benchmarks.md). RUNS=N sets the number of timed joins (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-npm.sh
bash scripts/demo-package.sh
bash scripts/npm-deps.sh tests/e2e
cargo build --locked -q -p meshwire-relay
node tests/e2e/bench.mjs
