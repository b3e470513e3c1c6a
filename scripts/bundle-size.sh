#!/usr/bin/env bash
# Bundle size of the SDK (`make bench`): builds it as the demo ships it
# (scripts/build-sdk.sh: wasm-release profile, wasm-bindgen --target web, wasm-opt -Os)
# and writes raw and gzip -9 sizes of the wasm and its JS glue into docs/benchmarks.md
# (between the sdk-bundle markers).
#
# `bundle-size.sh --check DIR` (in `make test`, on the package's npm/src/wasm): measures
# an existing build and fails if wasm + glue gz exceeds BUDGET_KB, so an accidental
# regression (a dependency, or float formatting: +13 KB once) is caught in review. Raise
# the budget deliberately, with the reason, when a feature needs the bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
# 66 → 68 on 2026-12-01 (night): token functions, the relay liveness check and the
# end of a replaced connection's tracks cost 2.5 KB (docs/benchmarks.md).
# 68 → 70 on 2026-12-02: offers sent again when unanswered (+0.4 KB) and keeping under
# the relay's rate limit (+0.9 KB) left no headroom.
# 70 → 71 on 2026-12-02 (later): what calls between Chromium and Firefox needed (+0.6 KB):
# a new connection when a colliding offer cannot be applied, stats bytes from every
# candidate pair, speaking detection started by the user's first click.
# 71 → 68 on 2026-12-02 (evening): core and alloc rebuilt for size with panics as traps (-3.3 KB);
# a build that falls back to the prebuilt core (build-sdk.sh warns) lands over it.
BUDGET_KB=68
if [ "${1:-}" = "--check" ]; then
  DIR=${2:?usage: bundle-size.sh --check DIR}
  total=0
  for f in "$DIR"/meshwire_bg.wasm "$DIR"/meshwire.js "$DIR"/snippets/*/*.js; do
    total=$((total + $(gzip -9 -c "$f" | wc -c)))
  done
  kb=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1000 }')
  if [ "$total" -gt $((BUDGET_KB * 1000)) ]; then
    echo "bundle-size: $DIR is $kb KB gz, over the $BUDGET_KB KB budget (scripts/bundle-size.sh):" \
      "if build-sdk.sh warned that it fell back to the prebuilt core, add rustup's rust-src (bash scripts/setup.sh);" \
      "else find what grew (twiggy diff of the wasm-bindgen output before and after) or raise the budget with a reason" >&2
    exit 1
  fi
  echo "bundle-size: $kb KB gz (budget $BUDGET_KB KB)"
  exit 0
fi
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

- Date: $(date -u +%Y-%m-%d); build: \`scripts/build-sdk.sh\` (profile \`wasm-release\`: opt-level z, fat LTO, core and alloc rebuilt with opt-level z and panics as traps, talc allocator; wasm-bindgen --target web; $opt).
- What is in it: rooms, presence, reconnect/resume, the perfect-negotiation mesh, trickle ICE and ICE restart, data channels with backpressure, media (mute, camera off/on), screen share, file transfer (SHA-256 verified), stats and connection quality, device listing/switching, active speaker.

| file | raw | gzip -9 |
|---|---:|---:|
| meshwire_bg.wasm | $(kb "$wasm_raw") KB | $(kb "$wasm_gz") KB |
| meshwire.js + snippets/ (glue) | $(kb "$glue_raw") KB | $(kb "$glue_gz") KB |
| **total** | $(kb $((wasm_raw + glue_raw))) KB | **$(kb "$total_gz") KB** |

The target: \`make test\` fails above the budget of $BUDGET_KB KB gz (\`bundle-size.sh --check\`). Issue 6 asked for ≤ 35 KB; why that is not the target for this SDK is under "The target" below. For scale: PeerJS 1.5.5 is 22.7 KB gz, simple-peer 28.3 KB gz (one connection each, plain JavaScript), livekit-client 154 KB gz.
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
