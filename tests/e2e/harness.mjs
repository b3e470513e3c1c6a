// What the browser end-to-end tests stand on: free ports, child processes that are
// always stopped, headless Chromium (Debian's, driven by playwright-core) with fake
// camera/microphone/screen, and page helpers that wait on conditions, never on time.
import { spawn } from "node:child_process";
import { connect, createServer } from "node:net";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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
  child.on("error", (e) => keep(`${e.message}\n`)); // e.g. not installed: reported below
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

/** The relay (debug build from `cargo build`), optionally serving a static folder; `extra`: more flags. */
export async function startRelay(staticDir, extra = []) {
  const port = await freePort();
  const args = ["--bind", "127.0.0.1", "--port", String(port), ...extra];
  if (staticDir) args.push("--static", staticDir);
  const relay = await start("relay", `${ROOT}target/debug/meshwire-relay`, args, {
    env: { RUST_LOG: "warn" },
    url: `http://127.0.0.1:${port}/health`,
  });
  return { ...relay, port, ws: `ws://127.0.0.1:${port}`, http: `http://127.0.0.1:${port}` };
}

/** Resolves once something accepts TCP connections on `port` (a server that speaks no HTTP). */
async function tcpReady(name, port, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1", () => { socket.destroy(); resolve(true); });
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${name} did not listen on port ${port} within ${timeoutMs} ms (is it installed? scripts/setup.sh installs it)`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The fault proxy (`target/debug/fault-proxy`) in front of `upstreamPort`: `cut()`
 * resets every connection through it at once (RST, no close), as a network drop does;
 * `block()` keeps new ones from getting through, as an outage does.
 */
export async function startProxy(upstreamPort) {
  const [port, controlPort] = [await freePort(), await freePort()];
  const proxy = await start("fault-proxy", `${ROOT}target/debug/fault-proxy`, ["--listen", `127.0.0.1:${port}`, "--upstream", `127.0.0.1:${upstreamPort}`, "--control", `127.0.0.1:${controlPort}`], {
    url: `http://127.0.0.1:${controlPort}/health`,
  });
  const control = async (what) => {
    const r = await fetch(`http://127.0.0.1:${controlPort}/${what}`, { method: "POST" });
    if (!r.ok) throw new Error(`fault-proxy ${what}: ${r.status}`);
  };
  return {
    port,
    cut: () => control("cut"),
    /** Refuses new connections (each is reset as soon as it is accepted) until `unblock()`. */
    block: () => control("block"),
    unblock: () => control("unblock"),
    /** Holds every byte `ms` milliseconds each way from now on (0: none). */
    delay: (ms) => control(`delay/${ms}`),
    /** `{ connections, blocked, delayMs }`. */
    health: async () => (await fetch(`http://127.0.0.1:${controlPort}/health`)).json(),
    stop: proxy.stop,
  };
}

/**
 * A TURN path as users deploy one: coturn (TURN over TCP, REST credentials from a shared
 * secret) behind the fault proxy (`cut()` resets every TURN connection at once, so every
 * relayed candidate dies together), and a relay that hands out credentials for it.
 */
export async function startTurn() {
  const turnPort = await freePort();
  const secret = `meshwire-e2e-${process.pid}-${Date.now()}`;
  const turn = spawn("turnserver", ["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", `--listening-port=${turnPort}`,
    "--use-auth-secret", `--static-auth-secret=${secret}`, "--realm=meshwire.test", "--allow-loopback-peers", "--no-tls", "--no-dtls",
    "--min-port=49700", "--max-port=49900", "--no-cli", "--fingerprint", "--log-file=stdout", "--simple-log"], { stdio: "ignore" });
  children.add(turn);
  turn.on("exit", () => children.delete(turn));
  turn.on("error", () => {}); // not installed: tcpReady below says so
  await tcpReady("coturn", turnPort);
  const proxy = await startProxy(turnPort);
  const relay = await startRelay(undefined, ["--turn", `turn:127.0.0.1:${proxy.port}?transport=tcp`, "--turn-secret", secret]);
  return {
    relay,
    cut: proxy.cut,
    stop: async () => {
      await relay.stop();
      await proxy.stop();
      if (turn.exitCode === null && turn.signalCode === null) {
        turn.kill("SIGTERM");
        await once(turn, "exit");
      }
    },
  };
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

/**
 * A PulseAudio server with one null sink, for Firefox: with no audio output device a
 * Firefox AudioContext never starts (Chromium has a fake output of its own). Resolves
 * with the `PULSE_SERVER` address once it accepts connections.
 */
async function startPulse() {
  const dir = mkdtempSync(`${tmpdir()}/meshwire-pulse-`);
  const socket = `${dir}/native`;
  const child = spawn("pulseaudio", ["-n", "--daemonize=no", "--exit-idle-time=-1", "--disallow-exit", "--use-pid-file=no",
    "--load=module-null-sink sink_name=meshwire-null", `--load=module-native-protocol-unix socket=${socket}`], {
    env: { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(child);
  let log = "";
  child.on("error", (e) => (log += `${e.message}\n`));
  child.stderr.on("data", (d) => (log = (log + d).slice(-4000)));
  child.on("exit", () => children.delete(child));
  const deadline = Date.now() + 10_000;
  while (!existsSync(socket)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`pulseaudio did not start (is it installed? scripts/setup.sh installs it):\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { server: `unix:${socket}`, stop: () => { child.kill("SIGKILL"); rmSync(dir, { recursive: true, force: true }); } };
}

/**
 * Firefox (Debian's firefox-esr, driven by puppeteer-core over WebDriver BiDi: stock
 * Firefox, no patched build) with fake camera/microphone, no permission prompts,
 * loopback ICE candidates given as addresses (Chromium's tests use loopback too), and
 * its own PulseAudio null sink as the audio output.
 */
export async function launchFirefox() {
  const { default: puppeteer } = await import("puppeteer-core");
  const pulse = await startPulse();
  const launched = puppeteer.launch({
    browser: "firefox",
    executablePath: process.env.FIREFOX ?? "/usr/bin/firefox-esr",
    headless: true,
    env: { ...process.env, PULSE_SERVER: pulse.server },
    extraPrefsFirefox: {
      "media.navigator.streams.fake": true,
      "media.navigator.permission.disabled": true,
      "media.peerconnection.ice.loopback": true,
      "media.peerconnection.ice.obfuscate_host_addresses": false,
    },
  });
  const browser = await launched.catch((e) => {
    pulse.stop();
    throw e;
  });
  browser.on("disconnected", pulse.stop);
  return browser;
}
