#!/usr/bin/env bash
# Bundle size of the SDK (`make bench`): builds it as the demo ships it
# (scripts/build-sdk.sh: wasm-release profile, wasm-bindgen --target web, wasm-opt -Os)
# and writes raw and gzip -9 sizes of the wasm and its JS glue into docs/benchmarks.md
# (between the sdk-bundle markers).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(mktemp -d /tmp/meshwire-bundle.XXXXXX)
bash scripts/build-sdk.sh "$OUT" >/dev/null 2>&1 || bash scripts/build-sdk.sh "$OUT"
DOC=${BENCH_DOC-docs/benchmarks.md}

size() { stat -c %s "$1"; }
gz() { gzip -9 -c "$1" | wc -c; }
wasm="$OUT/meshwire_bg.wasm"
wasm_raw=$(size "$wasm"); wasm_gz=$(gz "$wasm")
# The glue is meshwire.js plus the snippet modules it imports (the event emitter), each
# a file the browser fetches and the server gzips on its own.
glue_raw=0; glue_gz=0
for js in "$OUT"/meshwire.js "$OUT"/snippets/*/*.js; do
  glue_raw=$((glue_raw + $(size "$js"))); glue_gz=$((glue_gz + $(gz "$js")))
done
total_gz=$((wasm_gz + glue_gz))
opt=$([ -x .tools/node_modules/.bin/wasm-opt ] && echo "wasm-opt -Os (npm binaryen)" || echo "no wasm-opt")
opt="$opt; $([ -x .tools/node_modules/.bin/terser ] && echo "glue minified with terser" || echo "glue not minified")"
kb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1000 }'; }

section=$(cat <<MD
<!-- sdk-bundle:start -->
## SDK bundle size (\`make bench\`, scripts/bundle-size.sh)

- Date: $(date -u +%Y-%m-%d); build: \`scripts/build-sdk.sh\` (profile \`wasm-release\`: opt-level z, fat LTO, panic=abort, talc allocator; wasm-bindgen --target web; $opt).
- What is in it: rooms, presence, reconnect/resume, the perfect-negotiation mesh, trickle ICE and ICE restart, data channels with backpressure, media (mute, camera off/on), screen share, file transfer (SHA-256 verified), stats and connection quality, device listing/switching, active speaker.

| file | raw | gzip -9 |
|---|---:|---:|
| meshwire_bg.wasm | $(kb "$wasm_raw") KB | $(kb "$wasm_gz") KB |
| meshwire.js + snippets/ (glue) | $(kb "$glue_raw") KB | $(kb "$glue_gz") KB |
| **total** | $(kb $((wasm_raw + glue_raw))) KB | **$(kb "$total_gz") KB** |

Target ≤ 35 KB gz for the complete SDK; PeerJS 1.5.5 is 22.7 KB gz, simple-peer 28.3 KB gz.
<!-- sdk-bundle:end -->
MD
)
printf '%s\n' "$section"
if [ -n "$DOC" ]; then
  python3 - "$DOC" "$section" <<'PY'
import sys, re
path, section = sys.argv[1], sys.argv[2]
try:
    text = open(path).read()
except FileNotFoundError:
    text = "# Benchmarks\n"
pattern = re.compile(r"<!-- sdk-bundle:start -->.*?<!-- sdk-bundle:end -->", re.S)
text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
open(path, "w").write(text)
PY
fi
rm -rf "$OUT"
