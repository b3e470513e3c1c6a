// What the browser end-to-end tests stand on: free ports, child processes that are
// always stopped, headless Chromium (Debian's, driven by playwright-core) with fake
// camera/microphone/screen, and page helpers that wait on conditions, never on time.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { once } from "node:events";
import { chromium } from "playwright-core";

export const ROOT = new URL("../../", import.meta.url).pathname;

export async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

const children = new Set();
process.on("exit", () => children.forEach((c) => c.kill("SIGKILL")));

/** Starts `cmd`, resolves once `url` answers HTTP (any status). Logs go to stderr on failure. */
export async function start(name, cmd, args, { cwd = ROOT, env = {}, url, timeoutMs = 60_000 } = {}) {
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.add(child);
  let log = "";
  const keep = (d) => (log = (log + d).slice(-8000));
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  child.on("exit", () => children.delete(child));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}) before serving ${url}:\n${log}`);
    try {
      await fetch(url);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`${name} did not serve ${url} within ${timeoutMs} ms:\n${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    log: () => log,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await once(child, "exit");
      clearTimeout(killer);
    },
  };
}

/** The relay (debug build from `cargo build`), optionally serving a static folder. */
export async function startRelay(staticDir) {
  const port = await freePort();
  const args = ["--bind", "127.0.0.1", "--port", String(port)];
  if (staticDir) args.push("--static", staticDir);
  const relay = await start("relay", `${ROOT}target/debug/meshwire-relay`, args, {
    env: { RUST_LOG: "warn" },
    url: `http://127.0.0.1:${port}/health`,
  });
  return { ...relay, port, ws: `ws://127.0.0.1:${port}`, http: `http://127.0.0.1:${port}` };
}

export const CHROMIUM_ARGS = [
  "--use-fake-ui-for-media-stream",
  "--use-fake-device-for-media-stream",
  "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
  "--no-sandbox",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: CHROMIUM_ARGS,
  });
}

/** A page in its own browser context (its own cookies, storage and devices). */
export async function newPeerPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    // A missing favicon is the only error a page may show.
    if (m.type() === "error" && !m.location().url.endsWith("/favicon.ico")) errors.push(`${m.text()} (${m.location().url})`);
  });
  return { context, page, errors };
}

/** Fills the join form and waits for our own tile (the room admitted us). Returns our id. */
export async function join(page, room, name) {
  const form = page.locator("form[data-testid=join]");
  await form.locator("input[name=room]").fill(room);
  await form.locator("input[name=name]").fill(name);
  await form.locator("button[type=submit], input[type=submit]").first().click();
  const local = page.locator("[data-local=true][data-peer-id]");
  await local.waitFor({ timeout: 20_000 });
  return local.getAttribute("data-peer-id");
}

/**
 * Waits until the video in `peerId`'s tile plays: decoded frames (videoWidth > 0) and
 * currentTime advancing. Returns its frame size.
 */
export async function videoPlaying(page, peerId, timeout = 20_000) {
  const sel = `[data-peer-id="${peerId}"] video`;
  await page.waitForFunction(
    (s) => {
      const v = document.querySelector(s);
      return v && v.videoWidth > 0;
    },
    sel,
    { timeout },
  );
  const t0 = await page.$eval(sel, (v) => v.currentTime);
  await page.waitForFunction(([s, t]) => document.querySelector(s)?.currentTime > t + 0.2, [sel, t0], { timeout });
  return page.$eval(sel, (v) => ({ width: v.videoWidth, height: v.videoHeight }));
}
