#!/usr/bin/env bash
# example-deps.sh DIR — installs an example app's dependencies, meshwire from the
# freshly packed npm/meshwire-<version>.tgz, exactly as `npm ci` does for a user.
# The lock pins every registry package; its meshwire entry has no `integrity` on
# purpose: with one, npm reuses the tarball it cached under that hash instead of
# reading the new build. Skipped when neither the lock nor the tarball changed.
set -euo pipefail
dir=$1
cd "$(dirname "$0")/.."
tarball=$(ls npm/meshwire-*.tgz)
python3 - "$dir/package-lock.json" <<'PY'
import json, sys
path = sys.argv[1]
lock = json.load(open(path))
entry = lock["packages"].get("node_modules/meshwire", {})
if "integrity" in entry:
    del entry["integrity"]
    with open(path, "w") as f:
        json.dump(lock, f, indent=2)
        f.write("\n")
PY
want=$(cat "$dir/package-lock.json" "$tarball" | sha256sum | cut -d' ' -f1)
stamp="$dir/node_modules/.meshwire-stamp"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "example-deps: npm ci in $dir" >&2
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" >"$stamp"
fi
