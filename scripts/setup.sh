#!/usr/bin/env bash
# Installs what `make test` needs and is missing. Idempotent: each step checks first,
# so a machine that has everything spends about a second here.
#   - rustfmt, clippy, rust-src (the bundle rebuilds core, scripts/build-sdk.sh) and the
#     wasm32 target (rustup);
#   - Chromium and ChromeDriver (Debian packages) for the SDK's browser tests,
#     coturn for the tests that go through TURN, and redis-server for the relay's
#     cluster tests (relay/tests/cluster.rs starts its own on a free port);
#   - Firefox ESR and PulseAudio (Debian packages) for the cross-browser tests
#     (tests/e2e/interop.test.mjs: Firefox needs an audio server to run WebAudio;
#     the test starts its own with a null sink);
#   - a check that Node.js is new enough for the npm package and example apps;
#   - wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock (its
#     test runner drives the browser; a different version refuses the module).
# See ../shared/TOOLCHAIN.md for why each is done this way.
# `--build` (what `make demo` runs): only what building the relay and the npm package
# needs (the Rust pieces, Node.js, wasm-bindgen-cli), not the test servers and browsers.
set -euo pipefail
BUILD_ONLY=$([ "${1:-}" = "--build" ] && echo 1 || true)
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed. Install Rust with rustup (https://rustup.rs), then re-run 'make test'." >&2
  exit 1
fi

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy rust-src; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      say "adding rustup component ${component}"
      rustup component add "${component}"
    fi
  done
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32-unknown-unknown target"
    rustup target add wasm32-unknown-unknown
  fi
fi

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: $* missing and no apt-get here; install them with your package manager" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  say "installing $* (apt)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# Debian packages: the browser and its driver for the SDK's tests, coturn (a real
# TURN server) for the tests that relay media through TURN and break it, and Redis for
# the cluster-mode tests.
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v firefox-esr >/dev/null 2>&1 || missing+=(firefox-esr)
command -v pulseaudio >/dev/null 2>&1 || missing+=(pulseaudio)
if [ ${#missing[@]} -gt 0 ] && [ -z "$BUILD_ONLY" ]; then
  apt_install "${missing[@]}"
fi

# Node.js (>= 20.19: Vite 8 and Next.js 16) builds the npm package and its example apps
# and runs their tests; npm installs their dependencies from each package-lock.json.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup: Node.js 20.19 or newer (with npm) is needed for the npm package and its tests; install it (https://nodejs.org) and re-run 'make test'." >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "setup: Node.js $(node --version) is too old: Vite 8 and Next.js 16 need 20.19 or newer." >&2
  exit 1
fi

# The wasm-bindgen CLI must match the crate version in Cargo.lock exactly.
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen-test-runner --version 2>/dev/null | awk '{print $2}' || true)
if [ -n "$want" ] && [ "$have" != "$want" ]; then
  say "installing wasm-bindgen-cli $want (a few minutes, once)"
  # Not --locked: the locked build wants a webpki-roots version the registry lacks.
  cargo install --quiet --force wasm-bindgen-cli --version "$want"
fi

say "toolchain ready ($(cargo --version); node $(node --version); wasm-bindgen $want; $(chromium --version 2>/dev/null | head -1); coturn $(turnserver --version 2>/dev/null | head -1); $(firefox-esr --version 2>/dev/null | head -1); $(redis-server --version 2>/dev/null | cut -d' ' -f1-3))"
