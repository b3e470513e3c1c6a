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
import { ROOT, join, launchBrowser, launchFirefox, newPeerPage, startProxy, startRelay, startTurn, videoPlaying } from "./harness.mjs";

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
    ff.on("console", (m) => m.type() === "error" && ffErrors.push(m.text()));
    for (const page of [ch, ff]) {
      await page.goto(`${relay.http}/`);
      await page.waitForFunction(() => window.ready === true);
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
    // Emptied whatever they hold, so that one test's errors fail that test only.
    const errors = { chromium: chErrors.splice(0), firefox: ffErrors.splice(0) };
    assert.deepEqual(errors, { chromium: [], firefox: [] }, "page errors");
  });

  // Firefox reports every relay WebSocket that is reset, and every one a proxy refused,
  // as a page error of its own. A test that drops Firefox's relay connection expects
  // at least one, and takes them out of the page errors `afterEach` checks.
  const RELAY_DROPPED = /^Error: (The connection to ws:\/\/127\.0\.0\.1:\d+\/ws was interrupted while the page was loading|Firefox can’t establish a connection to the server at ws:\/\/127\.0\.0\.1:\d+\/ws)\.$/;
  function takeRelayDropErrors() {
    assert.ok(ffErrors.some((e) => RELAY_DROPPED.test(e)), `Firefox saw its relay connection drop: ${JSON.stringify(ffErrors)}`);
    ffErrors.splice(0, ffErrors.length, ...ffErrors.filter((e) => !RELAY_DROPPED.test(e)));
  }

  // Waits until `fn(arg)` is true in `page`, either browser's (their drivers take the
  // argument and the options in opposite orders).
  const waitFor = (page, fn, arg, timeout = 20_000) => (page === ch ? page.waitForFunction(fn, arg, { timeout }) : page.waitForFunction(fn, { timeout }, arg));

  // Both join a new room (join options `chromium` and `firefox`; through the relay URL
  // `chUrl`/`ffUrl`, by default the one that serves the page) and wait until each sees
  // the other connected. The newcomer makes the first offer: Chromium joins first
  // unless `firefoxFirst`, so Firefox offers.
  async function pair({ chromium: chOpts = {}, firefox: ffOpts = {}, chUrl, ffUrl, firefoxFirst = false } = {}) {
    const room = `interop-${process.pid}-${++n}`;
    const joinCh = () => call(ch, "join", room, { name: "chromium", ...chOpts }, chUrl);
    const joinFf = () => call(ff, "join", room, { name: "firefox", ...ffOpts }, ffUrl);
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
    const { chId, ffId } = await pair({ firefoxFirst });
    // The newcomer offered: its connection's first step was its own offer.
    const [offerer, answerer] = firefoxFirst ? [ch, ff] : [ff, ch];
    assert.equal(await offerer.evaluate(() => window.peer.signaling()[0]), "have-local-offer");
    assert.equal(await answerer.evaluate(() => window.peer.signaling()[0]), "have-remote-offer");
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
    // Both reach the relay through a proxy that holds every byte 300 ms, so each makes
    // its offer before the other's arrives: a real glare. With Chromium the polite side
    // (its id sorts higher), it cannot take Firefox's offer (a Chromium bug, see
    // peer.rs) and the SDK starts over on a new connection; the call must come up
    // either way. The room is joined again until Chromium is the polite one.
    const slow = [await startProxy(relay.port), await startProxy(relay.port)];
    try {
      let chId, ffId;
      for (let i = 0; i < 20 && !(chId > ffId); i++) {
        if (chId) { await call(ch, "leave"); await call(ff, "leave"); }
        ({ chId, ffId } = await pair({ chUrl: `ws://127.0.0.1:${slow[0].port}`, ffUrl: `ws://127.0.0.1:${slow[1].port}` }));
      }
      assert.ok(chId > ffId, "Chromium is the polite side");
      for (const p of slow) await p.delay(300);
      const marks = [await ch.evaluate(() => window.signalingLog.length), await ff.evaluate(() => window.signalingLog.length)];
      await Promise.all([
        ch.evaluate(() => window.peer.room.enableMedia({ audio: true, video: true }).then(() => true)),
        ff.evaluate(() => window.peer.room.enableMedia({ audio: true, video: true }).then(() => true)),
      ]);
      const glare = await Promise.all([call(ch, "signalingSince", marks[0]), call(ff, "signalingSince", marks[1])]);
      assert.deepEqual(glare.map((steps) => steps[0]), ["have-local-offer", "have-local-offer"], `each offered before it had the other's: ${JSON.stringify(glare)}`);
      for (const p of slow) await p.delay(0);
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
      await call(ch, "leave");
      await call(ff, "leave");
    } finally {
      for (const p of slow) await p.stop();
    }
  });

  it("a screen share from Chromium reaches Firefox in place of the camera", async () => {
    const { chId } = await pair({ chromium: { video: true }, firefoxFirst: true });
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

  it("a file transfer goes on from where it was when Firefox comes back as a new session", async () => {
    // Firefox reaches a relay with a 2 s resume grace through the fault proxy, and is cut
    // off for longer: the relay forgets its session, Chromium drops its connection to
    // Firefox, and Firefox comes back on new connections. A transfer stalled in the middle
    // (its source cannot be read past GATE until the gate opens) must then go on from the
    // receiver's offset over the new connection, with Firefox as the sender and then as
    // the receiver.
    const shortGrace = await startRelay(undefined, ["--resume-grace", "2s"]);
    const proxy = await startProxy(shortGrace.port);
    try {
      const { chId, ffId } = await pair({ chUrl: shortGrace.ws, ffUrl: `ws://127.0.0.1:${proxy.port}`, firefox: { reconnect: { maxDelayMs: 500 } } });
      const SIZE = 6 * 1024 * 1024 + 777;
      const GATE = 2 * 1024 * 1024;
      for (const [seed, [sender, toId], [receiver, fromId]] of [[5, [ff, chId], [ch, ffId]], [6, [ch, ffId], [ff, chId]]]) {
        const leftBefore = (await ch.evaluate(() => window.peer.events("peer-left").length));
        const connectedBefore = (await ch.evaluate((id) => window.peer.events("peer-connected").filter((e) => e.peerId === id).length, ffId));
        const sending = call(sender, "sendFile", toId, SIZE, seed, GATE);
        const receiving = call(receiver, "receivedFile", fromId, seed);
        await waitFor(receiver, ([id, gate]) => window.peer.receivedBytes(id) === gate, [fromId, GATE]);
        await proxy.block();
        await proxy.cut();
        await waitFor(ch, (n) => window.peer.events("peer-left").length > n, leftBefore);
        assert.deepEqual(await ch.evaluate((n) => window.peer.events("peer-left").slice(n).map((e) => [e.peerId, e.reason]), leftBefore), [[ffId, "lost"]]);
        await proxy.unblock();
        await waitFor(ch, ([id, n]) => window.peer.events("peer-connected").filter((e) => e.peerId === id).length > n, [ffId, connectedBefore], 30_000);
        await call(ff, "connected", chId);
        await sender.evaluate(() => window.peer.openGate());
        const [sent, got] = await Promise.all([sending, receiving]);
        assert.deepEqual(sent, { outcome: "done", state: "done", lastProgress: SIZE, monotonic: true }, `seed ${seed}`);
        assert.deepEqual(got, { outcome: "done", name: `test-${seed}.bin`, mime: "application/x-test", size: SIZE, intact: true }, `seed ${seed}`);
        assert.equal(await ff.evaluate(() => window.peer.room.peerId), ffId, "Firefox keeps its id");
      }
      takeRelayDropErrors();
      await call(ff, "leave");
      await call(ch, "leave");
    } finally {
      await proxy.stop();
      await shortGrace.stop();
    }
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
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
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
      assert.deepEqual(errors, [], "page errors in the Firefox tab");
    } finally {
      await page.close();
    }
  });

  it("stats on both sides describe the connection between them", async () => {
    const { chId, ffId } = await pair({ chromium: { audio: true, video: true }, firefox: { audio: true, video: true }, firefoxFirst: true });
    await call(ff, "videoPlaying", chId);
    await call(ch, "videoPlaying", ffId);
    for (const [page, other] of [[ch, ffId], [ff, chId]]) {
      // Rates are deltas between reports: the first with media both ways in it.
      const s = await call(page, "statsFlowing", other);
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
    const { chId, ffId } = await pair({ chromium: relayOnly, firefox: relayOnly, chUrl: turn.relay.ws, ffUrl: turn.relay.ws });
    await call(ff, "videoPlaying", chId);
    await call(ch, "videoPlaying", ffId);
    for (const [page, other] of [[ch, ffId], [ff, chId]]) {
      assert.equal((await call(page, "stats", other)).candidateType, "relay");
    }
    const chBefore = (await ch.evaluate((id) => window.peer.states(id), ffId)).length;
    const ffUfrags = await call(ff, "ufrags");
    assert.equal(ffUfrags.length, 1);
    const ffConnections = await ff.evaluate(() => window.pcs.length);

    await turn.cut();
    // Chromium sees its TURN connections reset and its connection fail at once, and
    // restarts ICE; Firefox takes the restart (its connection state may stay
    // `connected` throughout): new ICE credentials on its side too, and the call back.
    const chLost = await call(ch, "waitState", ffId, ["disconnected", "failed"], chBefore);
    await call(ch, "waitState", ffId, ["connected"], chLost);
    await ff.waitForFunction((old) => window.peer.ufrags().length === 1 && window.peer.ufrags()[0] !== old, { timeout: 20_000 }, ffUfrags[0]);
    assert.equal(await ff.evaluate(() => window.pcs.length), ffConnections, "an ICE restart of the same connection, not a new one");
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

  it("Firefox's camera reopened by switchDevice keeps flowing to Chromium without a renegotiation", async () => {
    // Firefox has one fake camera, so the switch opens the same device again: a new
    // track from getUserMedia put in the sender's place (replaceTrack), the old one
    // stopped. Switching between two devices is the Chromium suite's (browser.rs).
    const { ffId } = await pair({ firefox: { audio: true, video: true } });
    await call(ch, "videoPlaying", ffId);
    const before = await ff.evaluate(async () => {
      const cams = (await window.peer.room.listDevices()).filter((d) => d.kind === "videoinput");
      const track = window.peer.room.localStream.getVideoTracks()[0];
      window.oldCamera = track;
      return { cams: cams.map((d) => d.deviceId), current: track.getSettings().deviceId, track: track.id };
    });
    assert.ok(before.cams.includes(before.current), `Firefox lists its camera: ${JSON.stringify(before)}`);
    const other = before.cams.find((id) => id !== before.current) ?? before.current;
    // Every offer or answer from here on goes through setLocalDescription.
    await ff.evaluate(() => {
      window.negotiations = 0;
      const orig = (window.originalSetLocal = RTCPeerConnection.prototype.setLocalDescription);
      RTCPeerConnection.prototype.setLocalDescription = function (...a) { window.negotiations++; return orig.apply(this, a); };
    });
    try {
      const after = await ff.evaluate(async (deviceId) => {
        await window.peer.room.switchDevice("videoinput", deviceId);
        const now = window.peer.room.localStream.getVideoTracks()[0];
        return { track: now.id, device: now.getSettings().deviceId, oldEnded: window.oldCamera.readyState === "ended" };
      }, other);
      assert.deepEqual({ device: after.device, oldEnded: after.oldEnded }, { device: other, oldEnded: true });
      assert.notEqual(after.track, before.track, "a new camera track");
      assert.ok((await call(ch, "videoPlaying", ffId)).width > 0, "Chromium still gets frames");
      assert.equal(await ff.evaluate(() => window.negotiations), 0, "no offer or answer for the switch");
    } finally {
      await ff.evaluate(() => { RTCPeerConnection.prototype.setLocalDescription = window.originalSetLocal; });
    }
  });

  it("Firefox's relay connection reset mid-call resumes its session and the call goes on", async () => {
    // Firefox reaches the relay through the fault proxy; cutting it resets Firefox's
    // WebSocket (no close frame), as a network change does. The SDK reconnects within
    // the relay's grace and resumes: same peer id, nobody told it left, and the next
    // renegotiation goes through the new connection.
    const proxy = await startProxy(relay.port);
    try {
      const { ffId } = await pair({ ffUrl: `ws://127.0.0.1:${proxy.port}` });
      await ff.evaluate(() => { window.signaling = []; window.peer.room.on("signaling", (s) => window.signaling.push(s)); });
      await proxy.cut();
      await ff.waitForFunction(() => window.signaling.includes("resumed"), { timeout: 30_000 });
      assert.deepEqual(await ff.evaluate(() => window.signaling), ["reconnecting", "resumed"]);
      assert.equal(await ff.evaluate(() => window.peer.room.peerId), ffId);
      await ff.evaluate(() => window.peer.room.enableMedia({ video: true }).then(() => true));
      assert.ok((await call(ch, "videoPlaying", ffId)).width > 0);
      assert.equal(await ch.evaluate(() => window.peer.events("peer-left").length), 0);
      takeRelayDropErrors();
      // Leaving before the proxy stops, which would drop the connection again.
      await call(ff, "leave");
      await call(ch, "leave");
    } finally {
      await proxy.stop();
    }
  });

  it("the demo: a call between a Firefox and a Chromium user, and Firefox's tab closed", async () => {
    // What `make demo` serves, used through its page as a person would: the join form,
    // the tiles' video, the chat; then the Firefox user closes the tab.
    const demo = await startRelay("examples/demo");
    const room = `interop-demo-${process.pid}`;
    const page = await firefox.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    try {
      await page.setViewport({ width: 1100, height: 760 });
      await page.goto(`${demo.http}/`);
      await page.locator("form[data-testid=join] input[name=room]").fill(room);
      await page.locator("form[data-testid=join] input[name=name]").fill("Firefox user");
      await page.locator("form[data-testid=join] button[type=submit], form[data-testid=join] input[type=submit]").click();
      const local = await page.waitForSelector("[data-local=true][data-peer-id]", { timeout: 20_000 });
      const ffId = await local.evaluate((el) => el.getAttribute("data-peer-id"));
      const c = await newPeerPage(chromium);
      try {
        await c.page.goto(`${demo.http}/`);
        const chId = await join(c.page, room, "Chromium user");
        assert.ok((await videoPlaying(c.page, ffId)).width > 0, "Chromium shows Firefox's camera");
        await page.waitForFunction((s) => { const v = document.querySelector(s); return v && v.videoWidth > 0 && v.currentTime > 0.2; }, { timeout: 20_000 }, `[data-peer-id="${chId}"] video`);
        await page.screenshot({ path: `${ROOT}tests/e2e/artifacts/interop-demo-firefox.png` });
        await page.locator("[data-testid=chat-input]").fill("hello from Firefox");
        await page.locator("[data-testid=chat-send]").click();
        await c.page.locator("[data-testid=chat-message]", { hasText: "hello from Firefox" }).waitFor({ timeout: 10_000 });
        await c.page.locator("[data-testid=chat-input]").fill("hello from Chromium");
        await c.page.locator("[data-testid=chat-send]").click();
        await page.waitForFunction(() => [...document.querySelectorAll("[data-testid=chat-message]")].some((m) => m.textContent.includes("hello from Chromium")), { timeout: 10_000 });
        assert.deepEqual(errors, [], "no page errors in Firefox");
        // Closing the tab: Chromium's tile for it goes within 2 s.
        const closed = Date.now();
        await page.close();
        await c.page.locator(`[data-peer-id="${ffId}"]`).waitFor({ state: "detached", timeout: 2000 });
        assert.ok(Date.now() - closed <= 2000);
        assert.deepEqual(c.errors, [], "no page errors in Chromium");
      } finally {
        await c.context.close();
      }
    } finally {
      if (!page.isClosed()) await page.close();
      await demo.stop();
    }
  });
});
