#!/usr/bin/env bash
# npm-deps.sh DIR — installs DIR's npm dependencies from its package-lock.json when
# they are missing or the lock changed since the last install (a stamp in
# node_modules). Idempotent and quick when nothing changed.
set -euo pipefail
dir=$1
stamp="$dir/node_modules/.meshwire-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$dir/package-lock.json" "$stamp"; then
  echo "npm-deps: installing $dir's dependencies (npm ci)" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$dir/package-lock.json" "$stamp"
fi
