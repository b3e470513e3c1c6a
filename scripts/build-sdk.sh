#!/usr/bin/env bash
# Builds the SDK as an ES module (`--target web`) into OUT (default examples/demo/pkg; `make package` builds it into npm/src/wasm):
# meshwire.js (glue, and snippets/ it imports), meshwire_bg.wasm, meshwire.d.ts.
# wasm-opt -Os comes from npm's binaryen, the glue is minified with npm's terser (both
# installed once into .tools/; Debian's binaryen breaks externref tables, see
# ../shared/TOOLCHAIN.md). The typings (.d.ts) keep every doc comment.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-examples/demo/pkg}

# The bundle is built without the standard library (`--no-default-features`) and with
# the `bundle` feature: the talc allocator and a trapping panic handler, which a library
# must not force on Rust users of the crate (sdk-wasm/Cargo.toml).
build() {
  cargo build --locked --profile wasm-release -p meshwire --target wasm32-unknown-unknown \
    --no-default-features --features bundle "$@"
}
# core and alloc are rebuilt for the bundle (`-Zbuild-std`, from rustup's rust-src, which
# scripts/setup.sh adds) with opt-level z and panics compiled to a trap at the call site
# (`-Cpanic=immediate-abort`): the prebuilt ones are built for speed and keep core's
# panic formatting, which our trapping panic handler never prints. Panic locations and
# `Debug` output are dropped too (the SDK formats nothing with `{:?}`). 3.3 KB gz less
# (docs/benchmarks.md). These are nightly flags; RUSTC_BOOTSTRAP=1 lets the stable
# compiler take them, for this build only. Their own target directory, so the test builds
# of the same crate (other flags) do not rebuild each other. If this build fails (no
# rust-src, a compiler that changed the flags), the plain stable build ships instead,
# with a warning; `bundle-size.sh --check` then fails over its budget.
STD_TARGET=target/bundle-std
if RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zunstable-options -Cpanic=immediate-abort -Zlocation-detail=none -Zfmt-debug=none -Csymbol-mangling-version=legacy" \
  build -Zbuild-std=core,alloc --target-dir "$STD_TARGET"; then
  WASM=$STD_TARGET/wasm32-unknown-unknown/wasm-release/meshwire.wasm
else
  echo "build-sdk: warning: the build with core rebuilt for size failed (above; is rustup's rust-src" \
    "installed? scripts/setup.sh adds it); building with the prebuilt core instead (~3.3 KB gz bigger)" >&2
  build
  WASM=target/wasm32-unknown-unknown/wasm-release/meshwire.wasm
fi
mkdir -p "$OUT"
wasm-bindgen --target web --out-dir "$OUT" --out-name meshwire "$WASM"
# Float formatting (`core::num::flt2dec`, ~13 KB gz) comes in through any `{}`/`{:?}` of
# an f64, including the assertion inside `f64::clamp` with non-constant bounds; the SDK
# formats numbers with `js::num` instead. wasm-bindgen's output still has function names
# (wasm-opt strips them below).
if grep -q flt2dec "$OUT/meshwire_bg.wasm"; then
  echo "build-sdk: the SDK now formats floats (core::num::flt2dec is in the module, +13 KB gz):" \
    "find the new format!/to_string/clamp of an f64 (twiggy top on $OUT/meshwire_bg.wasm)" \
    "and use js::num or max/min instead" >&2
  exit 1
fi

BIN=.tools/node_modules/.bin
# Exact versions: a new terser or binaryen release must not change the shipped bundle
# behind our back.
TERSER=terser@5.51.2 BINARYEN=binaryen@132
installed() { node -p "require('./.tools/node_modules/$1/package.json').version" 2>/dev/null; }
if { [ ! -x $BIN/wasm-opt ] || [ ! -x $BIN/terser ] || [ "terser@$(installed terser)" != "$TERSER" ]; } &&
  command -v npm >/dev/null 2>&1; then
  mkdir -p .tools
  (cd .tools && npm install --silent --no-audit --no-fund --save-exact --prefix . "$BINARYEN" "$TERSER" >/dev/null 2>&1) ||
    echo "build-sdk: could not install binaryen/terser; the bundle stays unoptimised" >&2
fi
if [ -x $BIN/wasm-opt ]; then
  # The custom sections (producers, target_features) are metadata no browser reads.
  # -Os, not -Oz: binaryen's -Oz output is ~0.4 KB smaller raw but ~0.14 KB larger
  # gzipped, and the gzipped size is what ships (docs/benchmarks.md).
  $BIN/wasm-opt -Os --strip-producers --strip-target-features --enable-reference-types \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-multivalue "$OUT/meshwire_bg.wasm" -o "$OUT/meshwire_bg.wasm"
fi
# Import names: wasm-bindgen names each import `__wbg_<name>_<16 hex digits>` and the
# module "./meshwire_bg.js"; both are spelled out in the wasm (once per import) and in
# the glue, and hex does not compress. Short names save ~3 KB gz. Only imports are
# renamed: export names are the InitOutput typings. Both files are written to temporary
# names and renamed into place only once both are complete, so any surprise or failure
# (or no python3) leaves both as they are: a bigger bundle, never a mismatched one. The
# Node check below loads what ships either way.
rename_imports() {
python3 - "$OUT/meshwire_bg.wasm" "$OUT/meshwire.js" <<'PY'
import os, re, string, sys
wasm_path, glue_path = sys.argv[1], sys.argv[2]
wasm, glue = open(wasm_path, "rb").read(), open(glue_path).read()
MODULE = "./meshwire_bg.js"

class Surprise(Exception):
    pass

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
    if wasm[:8] != b"\0asm\1\0\0\0":
        raise Surprise("not a version-1 wasm module")
    i, out, renames = 8, bytearray(wasm[:8]), {}
    while i < len(wasm):
        sid = wasm[i]; size, body = leb(wasm, i + 1); end = body + size
        if end > len(wasm):
            raise Surprise("section %d runs past the end of the module" % sid)
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
            else: raise Surprise("import kind %d" % kind)          # (tags etc.: not expected)
            if module == MODULE:
                renames[field] = renames.get(field) or short(len(renames))
                module, field = "a", renames[field]
            for part in (module, field):
                section += enc(len(part.encode())) + part.encode()
            section += wasm[j:k]; j = k
        # Every byte of the section must have been read as an import: anything left
        # over (or overrun) means the parse above went wrong.
        if j != end:
            raise Surprise("import section parsed to byte %d of %d" % (j - body, size))
        out += bytes([2]) + enc(len(section)) + section; i = end
    return bytes(out), renames

def renamed_glue(renames):
    start, stop = glue.find("const import0 = {"), glue.find('"./meshwire_bg.js": import0')
    if not 0 <= start < stop:
        raise Surprise("no import object in the glue")
    head, block, tail = glue[:start], glue[start:stop], glue[stop:]
    for old, new in renames.items():
        block, n = re.subn(r"^(\s+)" + re.escape(old) + ":", r"\g<1>" + new + ":", block, flags=re.M)
        if n != 1 or old in head + block + tail:
            raise Surprise("import %s is not exactly once in the glue's import object" % old)
    return head + block + tail.replace('"./meshwire_bg.js": import0', '"a": import0', 1)

temps = [wasm_path + ".renamed", glue_path + ".renamed"]
try:
    new_wasm, renames = rename()
    new_glue = renamed_glue(renames)
    with open(temps[0], "wb") as f:
        f.write(new_wasm)
    with open(temps[1], "w") as f:
        f.write(new_glue)
    os.replace(temps[0], wasm_path)
    os.replace(temps[1], glue_path)
except (Surprise, IndexError, UnicodeDecodeError) as e:
    print("build-sdk: import names left as they are: %s" % e, file=sys.stderr)
finally:
    for t in temps:
        if os.path.exists(t):
            os.remove(t)
PY
}
if ! command -v python3 >/dev/null 2>&1; then
  echo "build-sdk: warning: no python3, import names left as they are (bundle ~3 KB gz bigger)" >&2
elif ! rename_imports; then
  echo "build-sdk: warning: renaming the imports failed, names left as they are (bundle ~3 KB gz bigger)" >&2
fi
if [ -x $BIN/terser ]; then
  # Minified like every JS SDK ships; exports (Room, init, initSync) keep their names.
  for js in "$OUT"/meshwire.js "$OUT"/snippets/*/*.js; do
    [ -f "$js" ] && $BIN/terser "$js" --module --compress --mangle -o "$js"
  done
fi
# What ships must load: instantiate the wasm with the built glue (initSync checks
# every import the wasm names against the glue's import object) and find `Room`. A
# rename, minifier or toolchain mismatch fails the build here, not in a user's page.
if command -v node >/dev/null 2>&1; then
  node --input-type=module - "$OUT/meshwire.js" "$OUT/meshwire_bg.wasm" <<'JS' ||
import fs from "node:fs";
import { pathToFileURL } from "node:url";
const [, , glue, wasm] = process.argv;
try {
  const pkg = await import(pathToFileURL(glue).href);
  pkg.initSync({ module: fs.readFileSync(wasm) });
  if (typeof pkg.Room !== "function" || typeof pkg.Room.join !== "function") {
    throw new Error("the built package exports no Room.join");
  }
} catch (e) {
  // The message only: Node would print the whole minified line of the glue.
  console.error(`build-sdk: ${e}`);
  process.exit(1);
}
JS
  { echo "build-sdk: the built package in $OUT does not load (above); not shipping it" >&2; exit 1; }
else
  echo "build-sdk: warning: no node, the built package was not loaded to check it" >&2
fi
ls -l "$OUT" >&2
