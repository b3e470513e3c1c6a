#!/usr/bin/env bash
# Builds the SDK as an ES module (`--target web`) into OUT (default examples/demo/pkg):
# meshwire.js (glue, and snippets/ it imports), meshwire_bg.wasm, meshwire.d.ts.
# wasm-opt -Oz comes from npm's binaryen, the glue is minified with npm's terser (both
# installed once into .tools/; Debian's binaryen breaks externref tables, see
# ../shared/TOOLCHAIN.md). The typings (.d.ts) keep every doc comment.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-examples/demo/pkg}

# The talc allocator is a feature (a library must not force its allocator on Rust users
# of the crate); the bundle has it.
cargo build --locked --profile wasm-release -p meshwire --target wasm32-unknown-unknown \
  --features global-allocator
mkdir -p "$OUT"
wasm-bindgen --target web --out-dir "$OUT" --out-name meshwire \
  target/wasm32-unknown-unknown/wasm-release/meshwire.wasm

BIN=.tools/node_modules/.bin
if { [ ! -x $BIN/wasm-opt ] || [ ! -x $BIN/terser ]; } && command -v npm >/dev/null 2>&1; then
  mkdir -p .tools
  (cd .tools && npm install --silent --no-audit --no-fund --prefix . binaryen@132 terser@5 >/dev/null 2>&1) ||
    echo "build-sdk: could not install binaryen/terser; the bundle stays unoptimised" >&2
fi
if [ -x $BIN/wasm-opt ]; then
  # The custom sections (producers, target_features) are metadata no browser reads.
  $BIN/wasm-opt -Oz --strip-producers --strip-target-features --enable-reference-types \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-multivalue "$OUT/meshwire_bg.wasm" -o "$OUT/meshwire_bg.wasm"
fi
# Import names: wasm-bindgen names each import `__wbg_<name>_<16 hex digits>` and the
# module "./meshwire_bg.js"; both are spelled out in the wasm (once per import) and in
# the glue, and hex does not compress. Short names save ~3 KB gz. Only imports are
# renamed: export names are the InitOutput typings. Any surprise leaves both as they are.
python3 - "$OUT/meshwire_bg.wasm" "$OUT/meshwire.js" <<'PY'
import re, string, sys
wasm_path, glue_path = sys.argv[1], sys.argv[2]
wasm, glue = open(wasm_path, "rb").read(), open(glue_path).read()
MODULE = "./meshwire_bg.js"

def leb(b, i):
    n = shift = 0
    while True:
        byte = b[i]; i += 1
        n |= (byte & 0x7F) << shift; shift += 7
        if byte < 0x80:
            return n, i

def enc(n):
    out = bytearray()
    while True:
        byte = n & 0x7F; n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)

def name(b, i):
    n, i = leb(b, i)
    return b[i:i + n].decode(), i + n

def short(k):
    letters = string.ascii_letters
    s = ""
    while True:
        s = letters[k % 52] + s; k //= 52
        if not k:
            return s

def rename():
    i, out, renames = 8, bytearray(wasm[:8]), {}
    while i < len(wasm):
        sid = wasm[i]; size, body = leb(wasm, i + 1); end = body + size
        if sid != 2:
            out += wasm[i:end]; i = end; continue
        count, j = leb(wasm, body)
        section = bytearray(enc(count))
        for _ in range(count):
            module, j = name(wasm, j); field, j = name(wasm, j)
            kind = wasm[j]; k = j + 1
            if kind == 0: _, k = leb(wasm, k)                      # function: type index
            elif kind in (1, 2):                                   # table / memory: limits
                if kind == 1: k += 1                               # reference type
                flags = wasm[k]; _, k = leb(wasm, k + 1)
                if flags & 1: _, k = leb(wasm, k)
            elif kind == 3: k += 2                                 # global: type, mutability
            else: return None                                      # (tags etc.: not expected)
            if module == MODULE:
                renames[field] = renames.get(field) or short(len(renames))
                module, field = "a", renames[field]
            for part in (module, field):
                section += enc(len(part.encode())) + part.encode()
            section += wasm[j:k]; j = k
        out += bytes([2]) + enc(len(section)) + section; i = end
    return bytes(out), renames

result = rename()
start, stop = glue.find("const import0 = {"), glue.find('"./meshwire_bg.js": import0')
if result and 0 <= start < stop:
    new_wasm, renames = result
    head, block, tail = glue[:start], glue[start:stop], glue[stop:]
    ok = True
    for old, new in renames.items():
        block, n = re.subn(r"^(\s+)" + re.escape(old) + ":", r"\g<1>" + new + ":", block, flags=re.M)
        ok = ok and n == 1 and old not in head + block + tail
    if ok:
        open(wasm_path, "wb").write(new_wasm)
        open(glue_path, "w").write(head + block + tail.replace('"./meshwire_bg.js": import0', '"a": import0', 1))
        sys.exit(0)
print("build-sdk: import names left as they are", file=sys.stderr)
PY
if [ -x $BIN/terser ]; then
  # Minified like every JS SDK ships; exports (Room, init, initSync) keep their names.
  for js in "$OUT"/meshwire.js "$OUT"/snippets/*/*.js; do
    [ -f "$js" ] && $BIN/terser "$js" --module --compress --mangle -o "$js"
  done
fi
ls -l "$OUT" >&2
