// Chromium and Firefox in one room: the SDK's negotiation, media, data channels, file
// transfer and stats between two different WebRTC stacks (libwebrtc and Firefox's),
// as a call between users of the two browsers goes. Chromium is driven by
// playwright-core, Firefox by puppeteer-core (WebDriver BiDi); both load
// tests/e2e/www/interop.html, which imports the npm package's core entry, from a
// real relay. scripts/test-e2e.sh builds the package first.
import { after, afterEach, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as pathJoin } from "node:path";
import { ROOT, launchBrowser, launchFirefox, newPeerPage, startProxy, startRelay, startTurn } from "./harness.mjs";

// `window.peer[method](...args)` in the page. One argument, which playwright and
// puppeteer pass alike.
const call = (page, method, ...args) => page.evaluate(([m, a]) => window.peer[m](...a), [method, args]);

describe("Chromium and Firefox", () => {
  let site, relay, turn, chromium, firefox, ch, ff, chErrors, ffErrors;
  let n = 0;

  before(async () => {
    site = mkdtempSync(pathJoin(tmpdir(), "meshwire-interop-"));
    cpSync(`${ROOT}examples/demo/meshwire`, `${site}/meshwire`, { recursive: true });
    cpSync(`${ROOT}tests/e2e/www/interop.html`, `${site}/index.html`);
    relay = await startRelay(site);
    turn = await startTurn();
    chromium = await launchBrowser();
    const c = await newPeerPage(chromium);
    ch = c.page;
    chErrors = c.errors;
    firefox = await launchFirefox();
    ff = await firefox.newPage();
    ffErrors = [];
    ff.on("pageerror", (e) => ffErrors.push(String(e)));
    for (const page of [ch, ff]) {
      await page.goto(`${relay.http}/`);
      await page.waitForFunction(() => window.ready === true, { timeout: 20_000 });
    }
    // Two stacks, not one browser twice.
    assert.match(await ch.evaluate(() => navigator.userAgent), /Chrome\//);
    assert.match(await ff.evaluate(() => navigator.userAgent), /Firefox\//);
  });

  after(async () => {
    await chromium?.close();
    await firefox?.close();
    await relay?.stop();
    await turn?.stop();
    if (site) rmSync(site, { recursive: true, force: true });
  });

  afterEach(async () => {
    await call(ch, "leave");
    await call(ff, "leave");
    assert.deepEqual(chErrors, [], "Chromium page errors");
    assert.deepEqual(ffErrors, [], "Firefox page errors");
  });

  // Both join a new room (`opts` for each; through relay `url`, by default the one that
  // serves the page) and wait until each sees the other connected. The newcomer makes
  // the first offer: Chromium joins first unless `firefoxFirst`, so Firefox offers.
  async function pair(chOpts = {}, ffOpts = {}, url = undefined, firefoxFirst = false) {
    const room = `interop-${process.pid}-${++n}`;
    const joinCh = () => call(ch, "join", room, { name: "chromium", ...chOpts }, url);
    const joinFf = () => call(ff, "join", room, { name: "firefox", ...ffOpts }, url);
    let chId, ffId;
    if (firefoxFirst) {
      ffId = await joinFf();
      chId = await joinCh();
    } else {
      chId = await joinCh();
      ffId = await joinFf();
    }
    await call(ch, "connected", ffId);
    await call(ff, "connected", chId);
    return { chId, ffId };
  }

  for (const firefoxFirst of [false, true]) it(`connect and exchange messages and broadcasts both ways (${firefoxFirst ? "Chromium" : "Firefox"} offers)`, async () => {
    const { chId, ffId } = await pair({}, {}, undefined, firefoxFirst);
    await ch.evaluate(([to]) => { for (let i = 0; i < 50; i++) window.peer.room.send(`c${i}`, { to }); window.peer.room.send(new Uint8Array(70000), { to }); window.peer.room.broadcast({ from: "chromium" }); }, [ffId]);
    await ff.evaluate(([to]) => { for (let i = 0; i < 50; i++) window.peer.room.send(`f${i}`, { to }); window.peer.room.send(new Uint8Array(70000), { to }); window.peer.room.broadcast({ from: "firefox" }); }, [chId]);
    const expect = (p) => [...Array.from({ length: 50 }, (_, i) => `${p}${i}`), "bytes:70000"];
    assert.deepEqual(await call(ff, "waitMessages", chId, 51), expect("c"));
    assert.deepEqual(await call(ch, "waitMessages", ffId, 51), expect("f"));
    await ch.waitForFunction((id) => window.peer.broadcasts(id).length > 0, ffId);
    await ff.waitForFunction((id) => window.peer.broadcasts(id).length > 0, {}, chId);
    assert.deepEqual(await ch.evaluate((id) => window.peer.broadcasts(id), ffId), [{ from: "firefox" }]);
    assert.deepEqual(await ff.evaluate((id) => window.peer.broadcasts(id), chId), [{ from: "chromium" }]);
  });

  it("camera and microphone turned on by both at once mid-call flow both ways", async () => {
    const { chId, ffId } = await pair();
    // Both offer at the same moment: the glare perfect negotiation resolves, across the
    // two stacks.
    await Promise.all([
      ch.evaluate(() => window.peer.room.enableMedia({ audio: true, video: true }).then(() => true)),
      ff.evaluate(() => window.peer.room.enableMedia({ audio: true, video: true }).then(() => true)),
    ]);
    const atFirefox = await call(ff, "videoPlaying", chId);
    const atChromium = await call(ch, "videoPlaying", ffId);
    assert.ok(atFirefox.width > 0 && atChromium.width > 0, `frames: ${JSON.stringify({ atFirefox, atChromium })}`);
    assert.equal(await call(ff, "hasAudio", chId), true);
    assert.equal(await call(ch, "hasAudio", ffId), true);

    // The camera off and on again: the other side hears of both, and frames come back.
    await ff.evaluate(() => window.peer.room.setCameraEnabled(false));
    await ch.waitForFunction((id) => window.peer.events("mute").some((m) => m.peerId === id && m.source === "camera" && m.muted), ffId, { timeout: 20_000 });
    await ff.evaluate(() => window.peer.room.setCameraEnabled(true));
    await ch.waitForFunction((id) => window.peer.events("mute").some((m) => m.peerId === id && m.source === "camera" && !m.muted), ffId, { timeout: 20_000 });
    assert.ok((await call(ch, "videoPlaying", ffId)).width > 0);
  });

  it("a screen share from Chromium reaches Firefox in place of the camera", async () => {
    const { chId } = await pair({ video: true }, {}, undefined, true);
    await call(ff, "videoPlaying", chId);
    await ch.evaluate(() => window.peer.room.startScreenShare({ replaceCamera: true }).then(() => true));
    const shared = await call(ff, "videoPlaying", chId, "screen");
    assert.ok(shared.width > 0);
  });

  it("files go each way whole and verified", async () => {
    const { chId, ffId } = await pair();
    const SIZE = 8 * 1024 * 1024 + 12345;
    const [sent, got] = await Promise.all([call(ch, "sendFile", ffId, SIZE, 1), call(ff, "receivedFile", chId, 1)]);
    assert.deepEqual(sent, { outcome: "done", state: "done", lastProgress: SIZE, monotonic: true });
    assert.deepEqual(got, { outcome: "done", name: "test-1.bin", mime: "application/x-test", size: SIZE, intact: true });
    const [back, gotBack] = await Promise.all([call(ff, "sendFile", chId, SIZE, 2), call(ch, "receivedFile", ffId, 2)]);
    assert.deepEqual(back, { outcome: "done", state: "done", lastProgress: SIZE, monotonic: true });
    assert.deepEqual(gotBack, { outcome: "done", name: "test-2.bin", mime: "application/x-test", size: SIZE, intact: true });
  });

  it("an app channel without retransmits carries messages both ways", async () => {
    const { chId, ffId } = await pair();
    // Chromium opens it; its first message waits in the SDK's queue until the channel is open.
    await ch.evaluate(([to]) => {
      window.peer.room.createChannel("game", { ordered: false, maxRetransmits: 0 });
      window.peer.room.send("from chromium", { to, channel: "game" });
    }, [ffId]);
    assert.deepEqual(await call(ff, "waitMessages", chId, 1, "game"), ["from chromium"]);
    await ff.evaluate(([to]) => window.peer.room.send("from firefox", { to, channel: "game" }), [chId]);
    assert.deepEqual(await call(ch, "waitMessages", ffId, 1, "game"), ["from firefox"]);
  });

  it("a room joined on page load detects speakers once the user clicks", async () => {
    // Firefox blocks WebAudio until the page's first user gesture. A page that joins
    // on load, before any, gets the SDK's AudioContext suspended; the user's first
    // click must start it; Chromium's fake microphone (beeps) then shows as speaking,
    // and once Chromium mutes it (silence), as not. Nothing here calls into the Firefox page before
    // the click (the driver's calls count as gestures): it is followed by its log.
    const room = `interop-${process.pid}-${++n}`;
    const page = await firefox.newPage();
    const lines = [];
    const seen = (re) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Firefox page never logged ${re}; it logged: ${JSON.stringify(lines)}`)), 20_000);
      const check = () => { const l = lines.find((x) => re.test(x)); if (l) { clearTimeout(timer); resolve(l); return true; } return false; };
      if (!check()) page.on("console", () => check());
    });
    page.on("console", (m) => m.text().startsWith("meshwire-test ") && lines.push(m.text().slice(14)));
    try {
      await page.goto(`${relay.http}/?join=${room}`);
      const ffId = (await seen(/^joined /)).split(" ")[1];
      const chId = await call(ch, "join", room, { name: "chromium", audio: true });
      await call(ch, "connected", ffId);
      assert.equal(await seen(/^audio-context /), "audio-context suspended");
      await page.click("#gesture");
      await seen(/^audio-context running$/);
      await seen(new RegExp(`^speaking ${chId} true$`));
      await ch.evaluate(() => window.peer.room.setMicrophoneEnabled(false));
      await seen(new RegExp(`^speaking ${chId} false$`));
    } finally {
      await page.close();
    }
  });

  it("stats on both sides describe the connection between them", async () => {
    const { chId, ffId } = await pair({ audio: true, video: true }, { audio: true, video: true }, undefined, true);
    await call(ff, "videoPlaying", chId);
    await call(ch, "videoPlaying", ffId);
    for (const [page, other] of [[ch, ffId], [ff, chId]]) {
      await call(page, "stats", other);
      // Rates are deltas between two reports.
      await new Promise((r) => setTimeout(r, 1500));
      const s = await call(page, "stats", other);
      assert.equal(s.candidateType, "host", JSON.stringify(s));
      assert.ok(s.rttMs >= 0 && s.rttMs < 1000, `rtt ${JSON.stringify(s)}`);
      assert.ok(s.bitrateIn > 10_000 && s.bitrateOut > 10_000, `bitrates ${JSON.stringify(s)}`);
      assert.ok(s.packetLoss >= 0 && s.packetLoss < 0.5 && s.jitterMs >= 0, JSON.stringify(s));
      assert.ok(["excellent", "good"].includes(s.quality), JSON.stringify(s));
    }
  });

  it("through TURN only, a call whose paths all die is restarted and recovers", async () => {
    // Relayed candidates only, from the relay's TURN credentials: cutting every TURN
    // connection kills every path, and only an ICE restart (new allocations) brings the
    // call back, with the same data channel and media.
    const relayOnly = { iceTransportPolicy: "relay", video: true };
    const { chId, ffId } = await pair(relayOnly, relayOnly, turn.relay.ws);
    await call(ff, "videoPlaying", chId);
    await call(ch, "videoPlaying", ffId);
    for (const [page, other] of [[ch, ffId], [ff, chId]]) {
      assert.equal((await call(page, "stats", other)).candidateType, "relay");
    }
    const chBefore = (await ch.evaluate((id) => window.peer.states(id), ffId)).length;
    const ffUfrags = await call(ff, "ufrags");
    assert.equal(ffUfrags.length, 1);

    await turn.cut();
    // Chromium sees its TURN connections reset and its connection fail at once, and
    // restarts ICE; Firefox takes the restart (its connection state may stay
    // `connected` throughout): new ICE credentials on its side too, and the call back.
    const chLost = await call(ch, "waitState", ffId, ["disconnected", "failed"], chBefore);
    await call(ch, "waitState", ffId, ["connected"], chLost);
    await ff.waitForFunction((old) => window.peer.ufrags().length === 1 && window.peer.ufrags()[0] !== old, { timeout: 20_000 }, ffUfrags[0]);
    for (const [page, other] of [[ch, ffId], [ff, chId]]) {
      assert.equal((await call(page, "stats", other)).candidateType, "relay");
    }
    await ch.evaluate((to) => window.peer.room.send("after the restart", { to }), ffId);
    await ff.evaluate((to) => window.peer.room.send("after the restart", { to }), chId);
    assert.deepEqual(await call(ff, "waitMessages", chId, 1), ["after the restart"]);
    assert.deepEqual(await call(ch, "waitMessages", ffId, 1), ["after the restart"]);
    assert.ok((await call(ff, "videoPlaying", chId)).width > 0);
    assert.ok((await call(ch, "videoPlaying", ffId)).width > 0);
  });

  it("Firefox's camera switched to another device keeps flowing to Chromium without a renegotiation", async () => {
    const { ffId } = await pair({}, { audio: true, video: true });
    await call(ch, "videoPlaying", ffId);
    const before = await ff.evaluate(async () => {
      const cams = (await window.peer.room.listDevices()).filter((d) => d.kind === "videoinput");
      // Every offer or answer from now on goes through setLocalDescription.
      window.negotiations = 0;
      const orig = (window.originalSetLocal = RTCPeerConnection.prototype.setLocalDescription);
      RTCPeerConnection.prototype.setLocalDescription = function (...a) { window.negotiations++; return orig.apply(this, a); };
      const old = window.peer.room.localStream.getVideoTracks()[0];
      window.oldCamera = old;
      return { cams: cams.map((d) => d.deviceId), track: old.id };
    });
    assert.ok(before.cams.length >= 1, "Firefox lists its fake camera");
    const after = await ff.evaluate(async (deviceId) => {
      await window.peer.room.switchDevice("videoinput", deviceId);
      const now = window.peer.room.localStream.getVideoTracks()[0];
      return { track: now.id, oldEnded: window.oldCamera.readyState === "ended" };
    }, before.cams.at(-1));
    assert.notEqual(after.track, before.track, "a new camera track");
    assert.equal(after.oldEnded, true, "the old camera stopped");
    assert.ok((await call(ch, "videoPlaying", ffId)).width > 0, "Chromium still gets frames");
    assert.equal(await ff.evaluate(() => window.negotiations), 0, "no offer or answer for the switch");
    await ff.evaluate(() => { RTCPeerConnection.prototype.setLocalDescription = window.originalSetLocal; });
  });

  it("Firefox's relay connection reset mid-call resumes its session and the call goes on", async () => {
    // Firefox reaches the relay through the fault proxy; cutting it resets Firefox's
    // WebSocket (no close frame), as a network change does. The SDK reconnects within
    // the relay's grace and resumes: same peer id, nobody told it left, and the next
    // renegotiation goes through the new connection.
    const proxy = await startProxy(relay.port);
    try {
      const { ffId } = await pair({}, {}, `ws://127.0.0.1:${proxy.port}`);
      await ff.evaluate(() => { window.signaling = []; window.peer.room.on("signaling", (s) => window.signaling.push(s)); });
      await proxy.cut();
      await ff.waitForFunction(() => window.signaling.includes("resumed"), { timeout: 30_000 });
      assert.deepEqual(await ff.evaluate(() => window.signaling), ["reconnecting", "resumed"]);
      assert.equal(await ff.evaluate(() => window.peer.room.peerId), ffId);
      await ff.evaluate(() => window.peer.room.enableMedia({ video: true }).then(() => true));
      assert.ok((await call(ch, "videoPlaying", ffId)).width > 0);
      assert.equal(await ch.evaluate(() => window.peer.events("peer-left").length), 0);
      // Firefox reports every WebSocket that dies this way as a page error of its own.
      const dropped = /^Error: The connection to ws:\/\/127\.0\.0\.1:\d+\/ws was interrupted while the page was loading\.$/;
      assert.ok(ffErrors.some((e) => dropped.test(e)), `Firefox saw its relay connection drop: ${JSON.stringify(ffErrors)}`);
      ffErrors.splice(0, ffErrors.length, ...ffErrors.filter((e) => !dropped.test(e)));
    } finally {
      await proxy.stop();
    }
  });
});
