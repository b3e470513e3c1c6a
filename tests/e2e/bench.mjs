// `make bench` (package part): the npm package's size, and in the demo the time from
// page load to the first remote video frame. Prints the numbers and writes them into
// docs/benchmarks.md between the package-bench markers. Run by scripts/bench-package.sh
// after the package and the relay are built.
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { ROOT, join, launchBrowser, newPeerPage, startRelay } from "./harness.mjs";

const RUNS = Number(process.env.RUNS ?? 15);
const gz = (bytes) => gzipSync(bytes, { level: 9 }).length;
const kb = (n) => (n / 1000).toFixed(1);

/** One entry point bundled and minified as an app's bundler would (react external). */
async function bundled(entry, external) {
  const out = await build({
    entryPoints: [`${ROOT}npm/dist/${entry}`],
    bundle: true,
    minify: true,
    format: "esm",
    write: false,
    outdir: "/tmp/meshwire-bench-bundle",
    external,
    loader: { ".wasm": "file" },
    logLevel: "silent",
  });
  return Buffer.concat(out.outputFiles.filter((f) => f.path.endsWith(".js")).map((f) => Buffer.from(f.contents)));
}

const tarball = statSync(`${ROOT}npm/meshwire-0.1.0.tgz`).size;
const wasm = readFileSync(`${ROOT}npm/dist/wasm/meshwire_bg.wasm`);
const coreJs = await bundled("index.js", []);
// The React layer alone: the core is its own entry, and React is the app's.
const reactJs = await bundled("react/index.js", ["react", "react/*", "../index.js"]);
const size = {
  tarball,
  wasmGz: gz(wasm),
  coreJsGz: gz(coreJs),
  reactJsGz: gz(reactJs),
};
console.log("package", size);

// Time to first remote frame: Ada waits in the room; Grace's page loads, joins (the
// wasm is fetched and compiled on this first use), meshes with Ada and decodes her
// first video frame. Measured in Grace's page from navigation start.
const relay = await startRelay("examples/demo");
const browser = await launchBrowser();
const times = [];
try {
  const ada = await newPeerPage(browser);
  await ada.page.goto(`${relay.http}/`);
  const room = `bench-${Date.now()}`;
  await join(ada.page, room, "Ada");
  for (let i = 0; i < RUNS; i++) {
    const grace = await newPeerPage(browser);
    await grace.page.goto(`${relay.http}/?room=${room}`);
    await grace.page.locator("input[name=name]").fill("Grace");
    await grace.page.locator("form[data-testid=join] button[type=submit]").click();
    const ms = await grace.page.evaluate(
      () =>
        new Promise((resolve) => {
          const tick = () => {
            const v = document.querySelector("[data-peer-id]:not([data-local]) video");
            if (v && v.videoWidth > 0) return resolve(performance.now());
            requestAnimationFrame(tick);
          };
          tick();
        }),
    );
    times.push({ total: ms });
    await grace.context.close();
  }
} finally {
  await browser.close();
  await relay.stop();
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)];
const total = times.map((t) => t.total);
console.log("first remote frame ms", { median: median(total), p90: p90(total), runs: RUNS });

const section = `<!-- package-bench:start -->
## npm package (\`make bench\`, tests/e2e/bench.mjs)

Measured ${new Date().toISOString().slice(0, 10)} on this machine (2 cores), from \`npm/meshwire-0.1.0.tgz\` as \`make package\` builds it.

| what | size |
|---|---|
| tarball (\`npm pack\`) | ${kb(size.tarball)} KB |
| core entry \`meshwire\`, gzip -9: wasm + JS (bundled, minified by esbuild) | ${kb(size.wasmGz + size.coreJsGz)} KB (${kb(size.wasmGz)} wasm + ${kb(size.coreJsGz)} JS) |
| React entry \`meshwire/react\` alone, gzip -9 (bundled, minified; React and the core excluded) | ${kb(size.reactJsGz)} KB |

**Page load to first remote video frame, demo** (\`make demo\`'s page served by the relay,
fake camera, two headless Chromium contexts on loopback): a peer waits in the room; the
other's page loads, the join button is clicked at once, and the time runs from navigation
start to the first decoded frame of the waiting peer's video (wasm fetch and compile, relay
join, offer/answer, ICE, DTLS, first keyframe). ${RUNS} runs: **median ${Math.round(median(total))} ms**,
p90 ${Math.round(p90(total))} ms.
<!-- package-bench:end -->`;
const doc = `${ROOT}docs/benchmarks.md`;
const text = readFileSync(doc, "utf8");
const re = /<!-- package-bench:start -->[\s\S]*?<!-- package-bench:end -->/;
writeFileSync(doc, re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`);
console.log(`wrote ${doc}`);
