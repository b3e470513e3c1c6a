// Two people in one call, for each way users meet meshwire: the demo `make demo` serves,
// the React + Vite example (`vite build` + `vite preview`) and the Next.js example
// (`next build` + `next start`, SSR on). Each peer is its own browser context; the
// relay is the real one. scripts/test-e2e.sh builds everything first.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import {
  ROOT,
  freePort,
  join,
  launchBrowser,
  newPeerPage,
  start,
  startRelay,
  videoPlaying,
} from "./harness.mjs";

const ARTIFACTS = `${ROOT}tests/e2e/artifacts`;
mkdirSync(ARTIFACTS, { recursive: true });

const apps = {
  demo: async (relay) => ({ url: `${relay.http}/`, stop: async () => {} }),
  "react-vite": async (relay) => {
    const port = await freePort();
    const dir = `${ROOT}examples/react-vite`;
    const server = await start("vite preview", `${dir}/node_modules/.bin/vite`, ["preview", "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
      cwd: dir,
      url: `http://127.0.0.1:${port}/`,
    });
    return { url: `http://127.0.0.1:${port}/?relay=${relay.ws}`, stop: server.stop };
  },
  nextjs: async (relay) => {
    const port = await freePort();
    const dir = `${ROOT}examples/nextjs`;
    const server = await start("next start", `${dir}/node_modules/.bin/next`, ["start", "-H", "127.0.0.1", "-p", String(port)], {
      cwd: dir,
      env: { NEXT_TELEMETRY_DISABLED: "1" },
      url: `http://127.0.0.1:${port}/`,
    });
    return { url: `http://127.0.0.1:${port}/?relay=${relay.ws}`, stop: server.stop };
  },
};

for (const [name, serve] of Object.entries(apps)) {
  describe(name, () => {
    let relay, app, browser, a, b, idA, idB;
    const room = `e2e-${name}-${Date.now()}`;

    before(async () => {
      relay = await startRelay(name === "demo" ? "examples/demo" : undefined);
      app = await serve(relay);
      browser = await launchBrowser();
      a = await newPeerPage(browser);
      b = await newPeerPage(browser);
    });

    after(async () => {
      await browser?.close();
      await app?.stop();
      await relay?.stop();
    });

    it("renders on the server without errors, then both peers join one room", async () => {
      // The HTML the server sends already holds the join form (SSR for Next.js).
      const html = await (await fetch(app.url)).text();
      if (name === "nextjs") assert.match(html, /data-testid="join"/);
      await a.page.goto(app.url);
      await b.page.goto(app.url);
      idA = await join(a.page, room, "Ada");
      idB = await join(b.page, room, "Grace");
      assert.notEqual(idA, idB);
    });

    it("each sees the other's video playing", async () => {
      const bSeenByA = await videoPlaying(a.page, idB);
      const aSeenByB = await videoPlaying(b.page, idA);
      assert.ok(bSeenByA.width > 0 && aSeenByB.width > 0);
      await a.page.screenshot({ path: `${ARTIFACTS}/${name}-two-peers.png` });
    });

    it("a chat message round-trips", async () => {
      const text = `hello from Ada ${Math.random().toString(36).slice(2)}`;
      await a.page.locator("[data-testid=chat-input]").fill(text);
      await a.page.locator("[data-testid=chat-send]").click();
      await b.page.locator("[data-testid=chat-message]", { hasText: text }).waitFor({ timeout: 10_000 });
      const reply = `hi Ada ${Math.random().toString(36).slice(2)}`;
      await b.page.locator("[data-testid=chat-input]").fill(reply);
      await b.page.locator("[data-testid=chat-input]").press("Enter");
      await a.page.locator("[data-testid=chat-message]", { hasText: reply }).waitFor({ timeout: 10_000 });
    });

    // useWebRTC (the Vite app) on a machine without a camera: Chromium's getUserMedia is
    // made to find no video device, as on a desktop without a webcam.
    if (name === "react-vite") it("a user without a camera joins with the microphone, and is told why there is no video", async () => {
      const c = await newPeerPage(browser);
      try {
        await c.context.addInitScript(() => {
          const original = MediaDevices.prototype.getUserMedia;
          MediaDevices.prototype.getUserMedia = function (constraints) {
            if (constraints?.video) return Promise.reject(new DOMException("Requested device not found", "NotFoundError"));
            return original.call(this, constraints);
          };
        });
        await c.page.goto(app.url);
        const idC = await join(c.page, room, "Linus");
        await c.page.locator("[role=alert]", { hasText: "the camera could not be opened" }).waitFor({ timeout: 20_000 });
        assert.match(await c.page.locator("[role=alert]").textContent(), /NotFoundError.*microphone only/);
        assert.equal(await c.page.locator("[data-testid=toggle-mic]").getAttribute("aria-pressed"), "true");
        assert.equal(await c.page.locator("[data-testid=toggle-camera]").getAttribute("aria-pressed"), "false");
        // Ada hears Linus: his tile's stream carries a live audio track, and no video.
        await a.page.waitForFunction((id) => {
          const s = document.querySelector(`[data-peer-id="${id}"] video`)?.srcObject;
          return s && s.getAudioTracks().some((t) => t.readyState === "live") && s.getVideoTracks().length === 0;
        }, idC, { timeout: 20_000 });
        assert.deepEqual(c.errors, [], "no page errors on Linus's side");
      } finally {
        await c.context.close();
      }
    });

    it("screen share changes what the other side sees, and stopping restores the camera", async () => {
      const share = a.page.locator("[data-testid=screen-share]");
      await share.click();
      await a.page.waitForFunction(() => document.querySelector("[data-testid=screen-share]")?.getAttribute("aria-pressed") === "true");
      // The fake camera is 4:3, the fake screen the window's shape (about 16:9 here).
      // Waiting on the shape, not on a width change: the camera's own resolution may
      // still be ramping up.
      await b.page.waitForFunction(
        (s) => {
          const v = document.querySelector(s);
          return v && v.videoHeight > 0 && Math.abs(v.videoWidth / v.videoHeight - 4 / 3) > 0.2;
        },
        `[data-peer-id="${idA}"] video`,
        { timeout: 20_000 },
      );
      await b.page.screenshot({ path: `${ARTIFACTS}/${name}-screen-share.png` });
      await share.click();
      await a.page.waitForFunction(() => document.querySelector("[data-testid=screen-share]")?.getAttribute("aria-pressed") === "false");
      await b.page.waitForFunction(
        (s) => {
          const v = document.querySelector(s);
          return v && v.videoHeight > 0 && Math.abs(v.videoWidth / v.videoHeight - 4 / 3) < 0.05;
        },
        `[data-peer-id="${idA}"] video`,
        { timeout: 20_000 },
      );
    });

    it("a 5 MiB file arrives with progress reaching 100% and the same SHA-256", async () => {
      const bytes = randomBytes(5 * 1024 * 1024);
      const path = `${ARTIFACTS}/${name}-upload.bin`;
      writeFileSync(path, bytes);
      const want = createHash("sha256").update(bytes).digest("hex");
      // Every progress value B shows, to check it only goes up.
      await b.page.evaluate(() => {
        window.__progress = [];
        new MutationObserver(() => {
          const el = document.querySelector("[data-testid=transfer][data-direction=receive]");
          if (el) window.__progress.push(Number(el.getAttribute("data-progress")));
        }).observe(document.body, { subtree: true, attributes: true, childList: true });
      });
      await a.page.locator("input[type=file][data-testid=file-input]").setInputFiles(path);
      const received = b.page.locator("[data-testid=transfer][data-direction=receive]");
      await received.and(b.page.locator("[data-state=done]")).waitFor({ timeout: 60_000 });
      assert.equal(await received.getAttribute("data-progress"), "1");
      await a.page.locator("[data-testid=transfer][data-direction=send][data-state=done]").waitFor({ timeout: 10_000 });
      const link = b.page.locator("a[data-testid=download]");
      assert.equal(await link.getAttribute("download"), `${name}-upload.bin`);
      const got = await link.evaluate(async (el) => {
        const data = await (await fetch(el.href)).arrayBuffer();
        const hash = await crypto.subtle.digest("SHA-256", data);
        return { size: data.byteLength, hex: [...new Uint8Array(hash)].map((x) => x.toString(16).padStart(2, "0")).join("") };
      });
      assert.deepEqual(got, { size: bytes.length, hex: want });
      const progress = await b.page.evaluate(() => window.__progress);
      assert.ok(
        progress.some((x) => x > 0 && x < 1),
        `progress was shown while the file was on its way, not only at the end: ${progress}`,
      );
      for (let i = 1; i < progress.length; i++) assert.ok(progress[i] >= progress[i - 1], `progress went back: ${progress}`);
    });

    it("closing a page removes its tile on the other side within 2 s", async () => {
      await a.page.locator(`[data-peer-id="${idB}"]`).waitFor();
      assert.deepEqual(b.errors, [], "no page errors on Grace's side");
      const closed = Date.now();
      await b.context.close();
      await a.page.locator(`[data-peer-id="${idB}"]`).waitFor({ state: "detached", timeout: 2000 });
      const ms = Date.now() - closed;
      assert.ok(ms <= 2000, `tile gone after ${ms} ms`);
      assert.deepEqual(a.errors, [], "no page errors on Ada's side");
    });
  });
}
