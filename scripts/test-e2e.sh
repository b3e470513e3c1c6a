#!/usr/bin/env bash
# The package as users meet it, end to end: packs npm/ (scripts/build-npm.sh), installs
# the tarball into examples/react-vite and examples/nextjs with `npm ci` (as a user
# would, no source alias), builds both (`vite build`, `next build`), copies the
# package into the demo, then runs tests/e2e/*.test.mjs (node's test runner): two
# browser contexts per app in Debian's headless Chromium, against a real relay; and
# Chromium with Firefox ESR in one room (interop.test.mjs), directly and through coturn.
# Pass node --test arguments through, e.g. --test-name-pattern=nextjs.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${SKIP_PACK:-}" != 1 ] || ! ls npm/meshwire-*.tgz >/dev/null 2>&1; then bash scripts/build-npm.sh; fi
bash scripts/demo-package.sh
for app in react-vite nextjs; do
  bash scripts/example-deps.sh "examples/$app"
done
echo "test-e2e: vite build" >&2
(cd examples/react-vite && node_modules/.bin/vite build --logLevel error)
echo "test-e2e: next build" >&2
(cd examples/nextjs && NEXT_TELEMETRY_DISABLED=1 node_modules/.bin/next build >/dev/null)
bash scripts/npm-deps.sh tests/e2e
# The relay, and the fault proxy the cross-browser test cuts TURN with.
cargo build --locked -q -p meshwire-relay -p meshwire-e2e
node --test --test-concurrency=1 "$@" tests/e2e/
