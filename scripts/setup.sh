#!/usr/bin/env bash
# Installs what `make test` needs and is missing. Idempotent: each step checks first,
# so a machine that has everything spends well under a second here.
set -euo pipefail

say() { printf 'setup: %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed. Install Rust with rustup (https://rustup.rs), then re-run 'make test'." >&2
  exit 1
fi

# rustfmt and clippy are rustup components; a minimal toolchain may lack them.
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      say "adding rustup component ${component}"
      rustup component add "${component}"
    fi
  done
fi

say "toolchain ready ($(cargo --version))"
