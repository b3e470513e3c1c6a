// Reproduces the Chromium behaviour that sdk-wasm/src/data.rs works around: a burst sent
// on a data channel the *remote* side created, just after it opened, can leave
// `bufferedAmount` stuck at the burst's size (no `bufferedamountlow`) until the next
// `send`. Plain RTCPeerConnection in one page, no SDK. Not part of `make test`: it is
// load-dependent (seen in ~1 of 10 rounds with both cores busy, rarely when idle).
//
//   node tests/chromium/stuck-buffered-amount.mjs [rounds] [adopted|own] [pause-ms]
//   (with load: `for i in 1 2; do timeout 300 sh -c 'while :; do :; done' & done`)
//
// Prints the stuck rounds: the count when stuck, and after one more `send`.
import { createRequire } from "node:module";
import http from "node:http";

const require = createRequire(new URL("../../.tools/", import.meta.url));
const { chromium } = require("playwright-core");
const [rounds = 30, mode = "adopted", pause = 0] = process.argv.slice(2);

const page = `<!doctype html><script>
async function round(mode, pause) {
  const a = new RTCPeerConnection(), b = new RTCPeerConnection();
  a.onicecandidate = (e) => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = (e) => e.candidate && a.addIceCandidate(e.candidate);
  const created = b.createDataChannel("bulk");
  const adopted = new Promise((r) => (a.ondatachannel = (e) => r(e.channel)));
  await b.setLocalDescription(); await a.setRemoteDescription(b.localDescription);
  await a.setLocalDescription(); await b.setRemoteDescription(a.localDescription);
  const theirs = await adopted;
  for (const c of [theirs, created])
    if (c.readyState !== "open") await new Promise((r) => c.addEventListener("open", r, { once: true }));
  const [tx, rx] = mode === "own" ? [created, theirs] : [theirs, created];
  if (pause > 0) await new Promise((r) => setTimeout(r, pause));
  let arrived = 0;
  rx.onmessage = () => arrived++;
  tx.bufferedAmountLowThreshold = 1 << 20;
  const queue = Array.from({ length: 640 }, () => new Uint8Array(65536));
  const drain = () => { while (tx.bufferedAmount < 4 << 20 && queue.length) tx.send(queue.shift()); };
  tx.addEventListener("bufferedamountlow", drain);
  drain();
  const start = performance.now();
  let stuck = null;
  while (arrived < 640 && performance.now() - start < 20000) {
    const [count, got] = [tx.bufferedAmount, arrived];
    await new Promise((r) => setTimeout(r, 3000));
    if (!stuck && arrived === got && tx.bufferedAmount === count && queue.length) {
      stuck = { arrived, bufferedAmount: count };
      tx.send(new Uint8Array(16));
      await new Promise((r) => setTimeout(r, 500));
      stuck.afterOneSend = tx.bufferedAmount;
    }
  }
  a.close(); b.close();
  return stuck;
}
</script>`;

const server = http.createServer((_, res) => res.end(page)).listen(0, "127.0.0.1");
await new Promise((r) => server.on("listening", r));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--allow-loopback-in-peer-connection"],
});
const tab = await browser.newPage();
await tab.goto(`http://127.0.0.1:${server.address().port}/`);
const stuck = [];
for (let i = 0; i < +rounds; i++) {
  const s = await tab.evaluate(([m, p]) => round(m, p), [mode, +pause]);
  if (s) stuck.push({ round: i, ...s });
}
console.log(JSON.stringify({ browser: browser.version(), rounds: +rounds, mode, pause: +pause, stuck }));
await browser.close();
server.close();
