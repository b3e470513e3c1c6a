//! The room's event emitter, kept in JavaScript: handlers are JS functions in a
//! `Map<event, Set<handler>>`, and `on` returns an unsubscribe function made in JS, so
//! no Rust closure is created per subscription and nothing can leak. A handler that
//! throws is logged and does not stop the others.
//!
//! The same snippet module holds the active-speaker analysers of `speaking.rs`, the
//! `getStats` round and report reader of `stats.rs` and the `quality` change check (in
//! JavaScript they are a fraction of the wasm they took, and one module gzips better
//! than two).

use crate::prelude::*;
use wasm_bindgen::prelude::*;

/// Every event name a room emits (`RoomEvents` in the typings).
pub const EVENTS: [&str; 16] = [
    "peer-joined",
    "peer-left",
    "peer-connected",
    "peer-disconnected",
    "connection-state",
    "track",
    "track-removed",
    "mute",
    "message",
    "broadcast",
    "signaling",
    "error",
    "file",
    "quality",
    "speaking",
    "devices-changed",
];

#[wasm_bindgen(inline_js = r#"
export class Emitter {
  constructor() { this.handlers = new Map(); }
  on(event, handler) {
    let set = this.handlers.get(event);
    if (!set) { set = new Set(); this.handlers.set(event, set); }
    set.add(handler);
    return () => { set.delete(handler); };
  }
  off(event, handler) { const set = this.handlers.get(event); if (set) set.delete(handler); }
  has(event) { const set = this.handlers.get(event); return !!set && set.size > 0; }
  emit(event, payload) {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try { handler(payload); } catch (err) { console.warn(`meshwire: a '${event}' handler threw`, err); }
    }
  }
  clear() { this.handlers.clear(); }
}

// room.rs: an SDP's session id (`o=<user> <sess-id> …`), fixed for the life of the
// RTCPeerConnection that wrote it (JSEP, RFC 8829 §5.2.1); "" if there is none.
export function sdpSession(sdp) {
  const m = /^o=\S* (\S+)/m.exec(sdp);
  return m ? m[1] : "";
}

// peer.rs: adds the candidates written in an SDP (an offer sent again, whose trickled
// candidates may have been lost with the first); failures are expected (known ones).
export function addSdpCandidates(pc, sdp) {
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const sdpMid = (/^a=mid:(\S+)/m.exec(section) || [])[1];
    for (const m of section.matchAll(/^a=(candidate:[^\r\n]+)/gm)) {
      pc.addIceCandidate({ candidate: m[1], sdpMid }).catch(() => {});
    }
  }
}

// devices.rs: `previous` constraints (an object, or `true`/absent) with the device.
export function withDevice(previous, deviceId) {
  return { ...(typeof previous === "object" ? previous : {}), deviceId: { exact: deviceId } };
}

// speaking.rs: the analysers of a room (thresholds and why in the module doc there).
const dropMeter = (m) => {
  try { m.source.disconnect(); } catch {}
  if (m.sink) m.sink.srcObject = null;
};
export class Speaking {
  constructor() { this.ctx = null; this.meters = []; }
  tick(me, peers, tracks) {
    const changes = [];
    const say = (peerId, speaking) => changes.push({ peerId, speaking });
    this.meters = this.meters.filter((m) => {
      const keep = m.track.readyState !== "ended" && tracks.some((t, i) => peers[i] === m.peer && t === m.track);
      if (!keep) {
        if (m.speaking) say(m.peer, false);
        dropMeter(m);
      }
      return keep;
    });
    tracks.forEach((track, i) => {
      const peer = peers[i];
      if (!this.meters.some((m) => m.peer === peer && m.track === track) && track.readyState === "live") {
        const m = this.meter(peer, track, peer !== me);
        if (m) this.meters.push(m);
      }
    });
    for (const m of this.meters) {
      m.analyser.getFloatTimeDomainData(m.samples);
      let peak = 0;
      for (const s of m.samples) peak = Math.max(peak, Math.abs(s));
      if (peak > 0.05) {
        m.quiet = 0;
        if (!m.speaking) { m.speaking = true; say(m.peer, true); }
      } else if (m.speaking) {
        if (peak < 0.02) m.quiet++;
        if (m.quiet >= 10) { m.speaking = false; m.quiet = 0; say(m.peer, false); }
      }
    }
    return changes;
  }
  meter(peer, track, remote) {
    if (!this.ctx) {
      try {
        this.ctx = new AudioContext();
      } catch (e) {
        const what = e instanceof Error ? `${e.name}: ${e.message}` : typeof e === "string" ? e : "unknown error";
        console.warn(`meshwire: speaking detection needs WebAudio: ${what}`);
        return null;
      }
      this.ctx.resume().catch(() => {});
      // A context made before the page's first user gesture stays suspended (autoplay
      // policy): resume it from the user's next click, tap or key press, which is what
      // browsers let start audio.
      const ctx = this.ctx;
      const unlock = () => ctx.resume().catch(() => {});
      const listen = (on) => {
        const f = on ? globalThis.addEventListener : globalThis.removeEventListener;
        if (f) for (const type of ["pointerdown", "keydown", "touchend"]) f.call(globalThis, type, unlock, { capture: true, passive: true });
      };
      const unlisten = (this.unlisten = () => { ctx.onstatechange = null; listen(false); });
      ctx.onstatechange = () => ctx.state !== "suspended" && unlisten();
      if (ctx.state === "suspended") listen(true);
    }
    try {
      const stream = new MediaStream();
      stream.addTrack(track);
      const source = this.ctx.createMediaStreamSource(stream);
      const analyser = this.ctx.createAnalyser();
      analyser.fftSize = 2048;
      source.connect(analyser);
      let sink = null;
      if (remote) {
        try {
          sink = new Audio();
          sink.muted = true;
          sink.srcObject = stream;
          sink.play();
        } catch {}
      }
      return { peer, track, source, analyser, samples: new Float32Array(2048), speaking: false, quiet: 0, sink };
    } catch {
      return null;
    }
  }
  stop() {
    if (this.unlisten) this.unlisten();
    this.unlisten = null;
    this.meters.forEach(dropMeter);
    this.meters = [];
    if (this.ctx) {
      try { this.ctx.close(); } catch {}
      this.ctx = null;
    }
  }
  hasContext() { return !!this.ctx; }
}

// files.rs: SHA-256 by the browser (native code), hex-encoded where
// the Rust side compares it. `crypto.subtle` exists only in secure contexts.
const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
export const canHash = () => !!(globalThis.crypto && crypto.subtle);
export const sha256 = (data) => crypto.subtle.digest("SHA-256", data);
export const sha256Text = (text) => sha256(new TextEncoder().encode(text)).then(hex);
// The transfer digest: SHA-256 over the pieces' SHA-256s, in order.
export function pieceDigest(pieces) {
  return Promise.all(pieces).then((ds) => {
    const all = new Uint8Array(32 * ds.length);
    ds.forEach((d, i) => all.set(new Uint8Array(d), 32 * i));
    return sha256(all).then(hex);
  });
}
export const randomHex = (n) => hex(crypto.getRandomValues(new Uint8Array(n)));

// stats.rs (module doc there): `getStats()` of each connection in turn, each report
// read against the counters earlier calls left in the peer's holder (in the Map
// `prev.holders`, which keeps only the peers whose report came). Returns those holders,
// each with its `sample` (a `PeerStats`, its `quality` set by the Rust side) and
// `connected`.
export async function collectStats(pcs, ids, prev) {
  const out = [], holders = prev.holders || new Map(), kept = new Map();
  for (let i = 0; i < pcs.length; i++) {
    let report;
    try {
      report = await pcs[i].getStats();
    } catch {
      continue;
    }
    const holder = holders.get(ids[i]) || {};
    holder.sample = readStats(report, holder, ids[i]);
    holder.connected = pcs[i].connectionState === "connected" && holder.pair;
    kept.set(ids[i], holder);
    out.push(holder);
  }
  prev.holders = kept;
  return out;
}
// room.rs, `quality` polling: the `{ peerId, quality }` of each sample whose quality
// differs from the peer's in `before` (the previous poll's samples, if any).
export function qualityChanges(before, samples) {
  const was = new Map((before || []).map((s) => [s.peerId, s.quality]));
  return samples.filter((s) => was.get(s.peerId) !== s.quality).map(({ peerId, quality }) => ({ peerId, quality }));
}
const RATE_WINDOW_MS = 1000;
function readStats(report, holder, peerId) {
  const all = [];
  for (const [, s] of report) all.push(s);
  const byId = (id) => all.find((s) => s.id === id);
  const n = (v) => (typeof v === "number" ? v : 0);
  const str = (v) => (typeof v === "string" ? v : "");
  let pair, transport;
  for (const t of all) if (t.type === "transport" && (pair = byId(t.selectedCandidatePairId))) { transport = t; break; }
  // Firefox has no transport stats; it marks its pair `selected`.
  if (!pair) pair = all.find((s) => s.type === "candidate-pair" && s.selected === true)
    || all.find((s) => s.type === "candidate-pair" && s.nominated === true && s.state === "succeeded");
  const now = { at: 0, sent: 0, received: 0, lost: 0, got: 0 };
  // Bytes: the transport's, else those of every candidate pair. Not the selected
  // pair's: the two ends may each send on a pair of their own (Chromium with Firefox
  // does), and what the other side sends on its pair would count as nothing received.
  const bytesFrom = transport && typeof transport.bytesReceived === "number" ? [transport] : all.filter((s) => s.type === "candidate-pair");
  for (const s of bytesFrom) {
    now.sent += n(s.bytesSent);
    now.received += n(s.bytesReceived);
  }
  let jitter = 0, rtt = 0, type = "";
  for (const s of all) {
    if (s.type !== "inbound-rtp") continue;
    now.lost += Math.max(n(s.packetsLost), 0);
    now.got += n(s.packetsReceived);
    jitter = Math.max(jitter, n(s.jitter));
  }
  if (pair) {
    rtt = n(pair.currentRoundTripTime) * 1000;
    now.at = n(pair.timestamp);
    const end = (key) => str((byId(pair[key]) || {}).candidateType);
    const local = end("localCandidateId");
    type = local === "relay" || end("remoteCandidateId") === "relay" ? "relay" : local;
  }
  let bitrateIn = 0, bitrateOut = 0, packetLoss = 0;
  // Rates over at least RATE_WINDOW_MS: against the newest earlier sample that old
  // (else the oldest), so two calls close together (an app's and the quality poll's)
  // do not report a rate over a few milliseconds.
  const kept = (holder.counters || []).filter((c) => c.at < now.at);
  let base = 0;
  while (base + 1 < kept.length && now.at - kept[base + 1].at >= RATE_WINDOW_MS) base++;
  const prev = kept[base];
  holder.counters = [...kept.slice(base), now];
  if (prev) {
    const secs = (now.at - prev.at) / 1000;
    if (secs > 0) {
      bitrateIn = Math.round((Math.max(now.received - prev.received, 0) * 8) / secs);
      bitrateOut = Math.round((Math.max(now.sent - prev.sent, 0) * 8) / secs);
    }
    const lost = Math.max(now.lost - prev.lost, 0), got = Math.max(now.got - prev.got, 0);
    if (lost + got > 0) packetLoss = lost / (lost + got);
  }
  holder.pair = !!pair;
  return { peerId, rttMs: rtt, bitrateIn, bitrateOut, packetLoss, jitterMs: jitter * 1000,
    candidateType: type || null, quality: "lost" };
}
"#)]
extern "C" {
    /// Handlers by event name.
    pub type Emitter;

    #[wasm_bindgen(constructor)]
    pub fn new() -> Emitter;

    /// Adds `handler` (once, like `addEventListener`); returns its unsubscribe function.
    #[wasm_bindgen(method)]
    pub fn on(this: &Emitter, event: &str, handler: &js_sys::Function) -> js_sys::Function;

    /// Removes `handler` from `event`.
    #[wasm_bindgen(method)]
    pub fn off(this: &Emitter, event: &str, handler: &js_sys::Function);

    /// Whether anyone listens to `event`.
    #[wasm_bindgen(method)]
    pub fn has(this: &Emitter, event: &str) -> bool;

    /// Calls every handler of `event` with `payload`.
    #[wasm_bindgen(method)]
    pub fn emit(this: &Emitter, event: &str, payload: &JsValue);

    /// Drops every handler.
    #[wasm_bindgen(method)]
    pub fn clear(this: &Emitter);

    /// `devices::with_device`.
    #[wasm_bindgen(js_name = withDevice)]
    pub fn with_device(previous: &JsValue, device_id: &str) -> JsValue;

    /// The analysers of a room (`speaking.rs`).
    pub type Speaking;

    #[wasm_bindgen(constructor)]
    pub fn new() -> Speaking;

    /// Measures `tracks` (audio tracks; `peers[i]` is the peer of `tracks[i]`, our
    /// microphone under our own id `me`); returns the changes as `speaking` payloads.
    #[wasm_bindgen(method)]
    pub fn tick(
        this: &Speaking,
        me: &str,
        peers: &js_sys::Array,
        tracks: &js_sys::Array,
    ) -> js_sys::Array;

    /// Drops every analyser and closes the context.
    #[wasm_bindgen(method)]
    pub fn stop(this: &Speaking);

    /// Whether an `AudioContext` exists.
    #[wasm_bindgen(method, js_name = hasContext)]
    pub fn has_context(this: &Speaking) -> bool;

    /// `getStats()` of each of `pcs` (the connections to the peers `ids`) in turn, read
    /// against the counters of earlier calls (kept in `prev`, the room's object);
    /// resolves to one holder per report that came, with its `sample` (quality still
    /// `lost`) and `connected` (`stats::finish`).
    #[wasm_bindgen(js_name = collectStats)]
    pub fn collect_stats(
        pcs: &js_sys::Array,
        ids: &js_sys::Array,
        prev: &js_sys::Object,
    ) -> js_sys::Promise;

    /// `quality` payloads for the `samples` whose quality differs from `before`'s (the
    /// previous samples, or `undefined`).
    #[wasm_bindgen(js_name = qualityChanges)]
    pub fn quality_changes(before: &JsValue, samples: &js_sys::Array) -> js_sys::Array;

    /// Whether the browser can hash (`crypto.subtle`: secure contexts only).
    #[wasm_bindgen(js_name = canHash)]
    pub fn can_hash() -> bool;

    /// `crypto.subtle.digest("SHA-256", data)`: a promise of the `ArrayBuffer`.
    #[wasm_bindgen(catch)]
    pub fn sha256(data: &JsValue) -> Result<js_sys::Promise, JsValue>;

    /// The hex SHA-256 of `text` (UTF-8), as a promise.
    #[wasm_bindgen(catch, js_name = sha256Text)]
    pub fn sha256_text(text: &str) -> Result<js_sys::Promise, JsValue>;

    /// The hex SHA-256 over the digests `pieces` resolve to, in order (`files.rs`).
    #[wasm_bindgen(catch, js_name = pieceDigest)]
    pub fn piece_digest(pieces: &js_sys::Array) -> Result<js_sys::Promise, JsValue>;

    /// `n` random bytes (`crypto.getRandomValues`) as hex.
    #[wasm_bindgen(js_name = randomHex)]
    pub fn random_hex(n: u32) -> String;

    /// The session id in an SDP's `o=` line, which names the connection that wrote it
    /// ("" if none).
    #[wasm_bindgen(js_name = sdpSession)]
    pub fn sdp_session(sdp: &JsValue) -> String;

    /// Adds the `a=candidate` lines of `sdp` to `pc` (failures ignored).
    #[wasm_bindgen(js_name = addSdpCandidates)]
    pub fn add_sdp_candidates(pc: &web_sys::RtcPeerConnection, sdp: &JsValue);
}
