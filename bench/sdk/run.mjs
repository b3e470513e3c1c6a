// Browser benchmark of the SDK against the raw-JS baseline (bench/sdk/run.sh starts the
// relay serving www/). Two separate headless Chromium instances, one per peer.
// Prints one JSON object with the results.
import { createRequire } from "node:module";
// playwright-core lives in the repository's .tools/ (bench/sdk/run.sh installs it).
const require = createRequire(new URL("../../.tools/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const [origin, runsArg, sizeArg, cyclesArg, peerPort] = process.argv.slice(2);
const RUNS = Number(runsArg || 40);
const SIZE = Number(sizeArg || 64 * 1048576);
const CYCLES = Number(cyclesArg || 10);
// Rounds of transfers (one of each kind a round; three times the six orders); the
// verdict compares the SDK with the baseline round by round (run.sh).
const TRANSFERS = 18;
const ORDERS = [[0, 1, 2], [1, 2, 0], [2, 0, 1], [0, 2, 1], [2, 1, 0], [1, 0, 2]];
const ARGS = [
  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
  "--js-flags=--expose-gc", "--enable-precise-memory-info", "--no-sandbox",
];

async function open(path) {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ARGS });
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(origin + path);
  await page.waitForFunction(() => window.ready === true);
  return { browser, page };
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const room = (tag, i) => `bench-${tag}-${process.pid}-${i}`;

// One join → open run (run number `i`) on the pair of pages a, b.
async function joinToOpen(a, b, api, i) {
  const r = room(api, i);
  await a.page.evaluate(([api, r]) => window[api].join(r), [api, r]);
  const ms = await b.page.evaluate(([api, r]) => window[api].joinToOpen(r), [api, r]);
  await b.page.evaluate((api) => window[api].leave(), api);
  await a.page.evaluate((api) => window[api].leave(), api);
  return ms;
}

// One SIZE-byte transfer from a to b; MB/s. `hash`: the baseline checks SHA-256 as the SDK does.
async function transfer(a, b, api, i, hash = false) {
  const r = room(api + (hash ? "-hash" : "") + "-file", i);
  await a.page.evaluate(([api, r]) => window[api].join(r), [api, r]);
  if (api === "sdk") {
    await b.page.evaluate((r) => sdk.join(r), r);
    await b.page.evaluate(() => sdk.connected());
    await a.page.evaluate(() => sdk.connected());
    const to = await a.page.evaluate(() => sdk.firstPeer());
    const start = await a.page.evaluate(([size, to]) => sdk.send(size, to), [SIZE, to]);
    await b.page.waitForFunction(() => sdk.doneAt() > 0, null, { timeout: 300000, polling: 50 });
    const doneAt = await b.page.evaluate(() => sdk.doneAt());
    await b.page.evaluate(() => { sdk.clearInbox(); return sdk.leave(); });
    await a.page.evaluate(() => sdk.leave());
    return SIZE / 1e6 / ((doneAt - start) / 1000);
  }
  const st = await b.page.evaluate((r) => base.join(r).then(() => 0), r);
  await b.page.waitForFunction(() => window.st && window.st.dc && window.st.dc.readyState === "open", null, { timeout: 30000 });
  await a.page.waitForFunction(() => window.st && window.st.dc && window.st.dc.readyState === "open", null, { timeout: 30000 });
  // b offered (the newcomer), so a's channel arrived by ondatachannel; a sends.
  await b.page.evaluate(([size, hash]) => base.expect(size, hash), [SIZE, hash]);
  const start = await a.page.evaluate(([size, hash]) => base.send(size, hash), [SIZE, hash]);
  await b.page.waitForFunction(() => base.doneAt() !== 0, null, { timeout: 300000, polling: 50 });
  const doneAt = await b.page.evaluate(() => base.doneAt());
  if (doneAt < 0) throw new Error("the baseline's SHA-256 check failed");
  await b.page.evaluate(() => base.leave());
  await a.page.evaluate(() => base.leave());
  void st;
  return SIZE / 1e6 / ((doneAt - start) / 1000);
}

// The engine keeps its own structures on the same heap as the page's objects: V8's
// compiled code, feedback, hidden classes and internal lists ("system / …", e.g.
// optimized code's dependency lists), which grow while it tiers functions up, bounded
// by the code that runs and not by the peers that came and went; and the backing
// stores of Blink's containers, which are reallocated (so new) whenever a table grows
// or shrinks, on either page, while what they hold are nodes of their own. Closures'
// contexts stay counted: they are where a leaked closure's captures live.
const engine = (type, name) =>
  type === "code" ||
  type === "object shape" ||
  (name.startsWith("system / ") && !name.startsWith("system / Context")) ||
  (type === "native" && /^blink::Heap\w*Backing/.test(name));

// A heap snapshot through `cdp`. A leak is an object made after the first snapshot and
// still alive at the last: `since` is the first snapshot's node ids. `cdp` must stay
// attached (HeapProfiler enabled) from the first snapshot to the last: while it is, V8
// follows the objects its collector moves, so an id keeps meaning one object. It can
// still miss one: a new object at the address of one that died since the first
// snapshot inherits that one's id. So `kinds` also sums the bytes of each kind of
// object (constructor or function name; strings by type), and `grown` (memory below)
// adds up what each kind gained from the first snapshot to the last.
async function heapSnapshot(cdp, since) {
  const chunks = [];
  const take = (e) => chunks.push(e.chunk);
  cdp.on("HeapProfiler.addHeapSnapshotChunk", take);
  await cdp.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
  cdp.off("HeapProfiler.addHeapSnapshotChunk", take);
  const s = JSON.parse(chunks.join(""));
  const fields = s.snapshot.meta.node_fields, types = s.snapshot.meta.node_types[0];
  const [ti, ni, si, ii, n] = ["type", "name", "self_size", "id"].map((f) => fields.indexOf(f)).concat(fields.length);
  const out = { ids: new Set(), engine: 0, survivors: 0, survivorKinds: {}, kinds: new Map(), live: { RTCPeerConnection: 0, RTCDataChannel: 0, WebSocket: 0 } };
  for (let i = 0; i < s.nodes.length; i += n) {
    const type = types[s.nodes[i + ti]], name = s.strings[s.nodes[i + ni]], size = s.nodes[i + si];
    out.ids.add(s.nodes[i + ii]);
    // The browser's own objects behind live connections, channels and sockets (their JS
    // wrappers, prototypes and constructors are "object"/"closure" nodes of the same name).
    if (type === "native" && name in out.live) out.live[name]++;
    if (engine(type, name)) {
      out.engine += size;
      continue;
    }
    const kind = `${type} ${type.endsWith("string") ? "" : name.slice(0, 60)}`.trim();
    out.kinds.set(kind, (out.kinds.get(kind) || 0) + size);
    if (since && !since.has(s.nodes[i + ii])) {
      out.survivors += size;
      out.survivorKinds[kind] = (out.survivorKinds[kind] || 0) + size;
    }
  }
  return out;
}

async function memory(a, b, api) {
  const rows = [];
  // Every cycle's numbers are read after a full collection (DevTools'), as the
  // snapshots' are.
  const cdp = await b.page.context().newCDPSession(b.page);
  await cdp.send("HeapProfiler.enable");
  let first;
  for (let i = 0; i < CYCLES; i++) {
    const r = room(api + "-mem", i);
    await a.page.evaluate(([api, r]) => window[api].join(r), [api, r]);
    await b.page.evaluate(([api, r]) => window[api].joinToOpen(r), [api, r]);
    await b.page.evaluate((api) => window[api].leave(), api);
    await a.page.evaluate((api) => window[api].leave(), api);
    await cdp.send("HeapProfiler.collectGarbage");
    // The first and last cycles' snapshots come before their numbers are read, so those
    // too are read after the snapshot's own full collection, not before it.
    let snapshot;
    if (i === 0 || i === CYCLES - 1) {
      const snap = await heapSnapshot(cdp, first && first.ids);
      if (i === 0) first = snap;
      const { ids, kinds, ...rest } = snap;
      rest.survivorKinds = Object.entries(rest.survivorKinds).sort((x, y) => y[1] - x[1]).slice(0, 4);
      if (i > 0) {
        const gains = [...kinds].map(([k, v]) => [k, v - (first.kinds.get(k) || 0)]).filter(([, d]) => d > 0);
        rest.grown = gains.reduce((sum, [, d]) => sum + d, 0);
        rest.grownKinds = gains.sort((x, y) => y[1] - x[1]).slice(0, 4);
      }
      snapshot = rest;
    }
    const row = await b.page.evaluate((api) => window[api].memory(), api);
    if (snapshot) row.snapshot = snapshot;
    rows.push(row);
  }
  await cdp.detach();
  return rows;
}

const out = { runs: RUNS, size: SIZE, cycles: CYCLES };
{
  // Both pairs of pages stay open and the runs alternate (baseline, SDK, baseline, ...),
  // so a change in the machine's load (2 shared cores) hits both sides alike instead of
  // whichever ran second.
  const base = [await open("/baseline.html"), await open("/baseline.html")];
  const sdk = [await open("/sdk.html"), await open("/sdk.html")];
  out.baselineJoin = []; out.sdkJoin = [];
  // Which goes first swaps every round, so neither side always runs right after the other.
  for (let i = 0; i < RUNS; i++) {
    const round = [
      async () => out.baselineJoin.push(await joinToOpen(...base, "base", i)),
      async () => out.sdkJoin.push(await joinToOpen(...sdk, "sdk", i)),
    ];
    for (const run of i % 2 ? round.reverse() : round) await run();
  }
  out.baselineMBps = []; out.sdkMBps = []; out.hashedBaselineMBps = [];
  for (let i = 0; i < TRANSFERS; i++) {
    const round = [
      async () => out.baselineMBps.push(await transfer(...base, "base", i)),
      async () => out.sdkMBps.push(await transfer(...sdk, "sdk", i)),
      async () => out.hashedBaselineMBps.push(await transfer(...base, "base", i, true)),
    ];
    // The six orders in turn: each kind takes each place, and follows each other kind,
    // equally often over each 6 rounds.
    for (const k of ORDERS[i % ORDERS.length]) await round[k]();
  }
  out.baselineMemory = await memory(...base, "base");
  out.memory = await memory(...sdk, "sdk");
  for (const p of [...base, ...sdk]) await p.browser.close();
}
if (peerPort) {
  // PeerJS reference: the same transfer, 3 runs (the median is reported), each on a fresh pair of peers.
  const a = await open(`/peerjs.html?peerPort=${peerPort}`), b = await open(`/peerjs.html?peerPort=${peerPort}`);
  out.peerjsMBps = [];
  for (let i = 0; i < 3; i++) {
    const ida = `pa${process.pid}x${i}`, idb = `pb${process.pid}x${i}`;
    await a.page.evaluate((id) => pj.open(id), ida);
    await b.page.evaluate((id) => pj.open(id), idb);
    await b.page.evaluate((size) => pj.expect(size), SIZE);
    await a.page.evaluate((other) => pj.connect(other), idb);
    const start = await a.page.evaluate((size) => pj.send(size), SIZE);
    await b.page.waitForFunction(() => pj.doneAt() > 0, null, { timeout: 300000, polling: 50 });
    const doneAt = await b.page.evaluate(() => pj.doneAt());
    out.peerjsMBps.push(SIZE / 1e6 / ((doneAt - start) / 1000));
    await a.page.evaluate(() => pj.close());
    await b.page.evaluate(() => pj.close());
  }
  await a.browser.close(); await b.browser.close();
}
out.baselineJoinMedian = median(out.baselineJoin);
out.sdkJoinMedian = median(out.sdkJoin);
out.baselineMBpsMedian = median(out.baselineMBps);
out.sdkMBpsMedian = median(out.sdkMBps);
out.hashedBaselineMBpsMedian = median(out.hashedBaselineMBps);
console.log(JSON.stringify(out));
