#!/usr/bin/env bash
# Installs the servers `make bench` compares the relay with, when asked to:
#   peerjs-server (npm `peer`, into bench/anchors/node_modules) — seconds;
#   matchbox_server (`cargo install matchbox_server`) — several minutes of compiling.
# Idempotent. `make bench` runs without them (it notes the skipped targets).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x anchors/node_modules/.bin/peerjs ]; then
  (cd anchors && npm install --no-audit --no-fund)
fi
if ! command -v matchbox_server >/dev/null 2>&1; then
  cargo install --locked matchbox_server
fi
