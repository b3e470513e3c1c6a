// The video grid: one tile per person (ours first), each with exactly one <video>,
// a name label, a speaking ring, a quality badge and a stats overlay.
import { el, icon, colourFor, initials, formatBitrate } from "./ui.js";

/** Smallest tile before the grid scrolls instead of shrinking further (phones, 9 people). */
const MIN_TILE_W = 150;

export class Tiles {
  /** @param {HTMLElement} grid */
  constructor(grid) {
    this.grid = grid;
    /** peerId → tile state */
    this.tiles = new Map();
    /** Text for the stats overlay while this SDK build has no getStats (new tiles get it too). */
    this.resize = new ResizeObserver(() => this.layout());
    this.resize.observe(grid);
  }

  /** The tile for `peerId`, made on first use. The local one always comes first. */
  ensure(peerId, { name, local = false } = {}) {
    let t = this.tiles.get(peerId);
    if (t) {
      if (name) this.setName(peerId, name);
      return t;
    }
    const video = el("video", { autoplay: true, playsinline: true });
    // Our own tile must never play our microphone back to us.
    video.muted = local;
    const node = el("div", {
      class: "tile",
      dataset: { peerId, speaking: "false", source: "camera", video: "off", audio: "on", ...(local ? { local: "true" } : {}) },
      role: "group",
    },
      video,
      el("div", { class: "avatar", "aria-hidden": "true" }, el("span")),
      el("span", { class: "tag", text: "Screen" }),
      el("span", { class: "quality", "data-testid": "quality", dataset: { level: "connecting" }, text: local ? "local" : "connecting" }),
      el("dl", { class: "stats", "aria-label": "Connection stats" }),
      el("div", { class: "label" }, icon("i-mic-off"), el("span", { class: "name" })),
    );
    t = { peerId, local, node, video, tracks: new Map(), streamKey: "", videoMuted: false, audioMuted: false, name: "", hasFrames: false };
    // Until the first frame arrives (ICE still connecting) show the avatar, not a black box.
    const gotFrames = () => { if (!t.hasFrames && video.videoWidth > 0) { t.hasFrames = true; this.render(t); } };
    video.addEventListener("loadeddata", gotFrames);
    video.addEventListener("resize", gotFrames);
    this.tiles.set(peerId, t);
    this.setName(peerId, name || (local ? "You" : "Guest"));
    if (local) this.grid.prepend(node); else this.grid.append(node);
    this.layout();
    return t;
  }

  setName(peerId, name) {
    const t = this.tiles.get(peerId);
    if (!t) return;
    t.name = name;
    const shown = t.local ? `${name} (you)` : name;
    t.node.querySelector(".name").textContent = shown;
    t.node.setAttribute("aria-label", shown);
    const avatar = t.node.querySelector(".avatar span");
    avatar.textContent = initials(name);
    avatar.style.setProperty("--avatar", colourFor(peerId));
  }

  remove(peerId) {
    const t = this.tiles.get(peerId);
    if (!t) return;
    t.video.srcObject = null;
    t.node.remove();
    this.tiles.delete(peerId);
    this.layout();
  }

  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
  }

  /** A track arrived or changed source (camera ↔ screen): keyed by track id, as replaceTrack keeps the id. */
  addTrack(peerId, { track, source, muted }) {
    const t = this.tiles.get(peerId);
    if (!t) return;
    if (!t.tracks.has(track.id)) track.addEventListener("ended", () => { t.tracks.delete(track.id); this.render(t); });
    t.tracks.set(track.id, { track, source: source ?? (track.kind === "audio" ? "microphone" : "camera") });
    if (typeof muted === "boolean" && source === "camera") t.videoMuted = muted;
    if (typeof muted === "boolean" && source === "microphone") t.audioMuted = muted;
    this.render(t);
  }

  removeTrack(peerId, { track }) {
    const t = this.tiles.get(peerId);
    if (!t) return;
    t.tracks.delete(track.id);
    this.render(t);
  }

  /**
   * Our tile mirrors the SDK's state: the microphone/camera stream (replaced by
   * enableMedia, reopened by setCameraEnabled) plus our screen share from room.tracks.
   */
  syncLocal(room) {
    const t = this.tiles.get(room.peerId);
    if (!t) return;
    t.tracks.clear();
    for (const track of room.localStream?.getTracks() ?? []) {
      if (track.readyState === "live") t.tracks.set(track.id, { track, source: track.kind === "audio" ? "microphone" : "camera" });
    }
    for (const info of room.tracks ?? []) {
      if (info.peerId === room.peerId && info.track.readyState === "live") t.tracks.set(info.track.id, { track: info.track, source: info.source });
    }
    const mic = room.localStream?.getAudioTracks()[0];
    t.audioMuted = !mic || !mic.enabled;
    t.videoMuted = false;
    this.render(t);
  }

  setMuted(peerId, source, muted) {
    const t = this.tiles.get(peerId);
    if (!t) return;
    if (source === "microphone" || source === "audio") t.audioMuted = muted;
    else if (source === "camera" || source === "video") t.videoMuted = muted;
    this.render(t);
  }

  /** Puts the right tracks into the tile's one <video>: the screen when shared, else the camera. */
  render(t) {
    const all = [...t.tracks.values()].filter((x) => x.track.readyState !== "ended");
    const videos = all.filter((x) => x.track.kind === "video");
    const shown = videos.find((x) => x.source === "screen") ?? videos[0];
    const audios = t.local ? [] : all.filter((x) => x.track.kind === "audio").map((x) => x.track);
    const tracks = [shown?.track, ...audios].filter(Boolean);
    const key = tracks.map((x) => x.id).join(",");
    // Only swap srcObject when the set changed: resetting it makes the video flash black.
    if (key !== t.streamKey) {
      t.streamKey = key;
      if (shown?.track.id !== t.shownId) t.hasFrames = false;
      t.shownId = shown?.track.id;
      t.video.srcObject = tracks.length ? new MediaStream(tracks) : null;
      t.video.play?.().catch(() => {});
    }
    t.node.dataset.source = shown?.source === "screen" ? "screen" : "camera";
    const cameraOff = !shown || !t.hasFrames || (shown.source !== "screen" && t.videoMuted);
    t.node.dataset.video = cameraOff ? "off" : "on";
    const hasAudio = t.local ? !t.audioMuted : audios.length > 0 && !t.audioMuted;
    t.node.dataset.audio = hasAudio ? "on" : "off";
  }

  setSpeaking(peerId, speaking) {
    const t = this.tiles.get(peerId);
    if (t) t.node.dataset.speaking = String(Boolean(speaking));
  }

  /** The badge's text is the quality itself (tests read it); data-level only colours it. */
  setQuality(peerId, quality) {
    const badge = this.tiles.get(peerId)?.node.querySelector("[data-testid=quality]");
    if (!badge || badge.textContent === quality) return;
    badge.textContent = quality;
    badge.dataset.level = quality;
  }

  setStats(peerId, s) {
    const dl = this.tiles.get(peerId)?.node.querySelector(".stats");
    if (!dl) return;
    const ms = (v) => (Number.isFinite(v) ? `${Math.round(v)} ms` : "–");
    // packetLoss is taken as a fraction (0..1), like the SDK's other ratios.
    const loss = Number.isFinite(s.packetLoss) ? `${(s.packetLoss * 100).toFixed(1)} %` : "–";
    const rows = [
      ["rtt", ms(s.rttMs)],
      ["in", formatBitrate(s.bitrateIn)],
      ["out", formatBitrate(s.bitrateOut)],
      ["loss", loss],
      ["jitter", ms(s.jitterMs)],
      ["path", s.candidateType ?? "–"],
    ];
    dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }

  /**
   * Picks the column count that makes tiles biggest for this many people in this space
   * (16:9 on wide screens, 4:3 on narrow ones), so 1–9 people always fill the stage.
   */
  layout() {
    const n = this.tiles.size;
    this.grid.dataset.count = String(n);
    if (!n) return;
    const cs = getComputedStyle(this.grid);
    const gap = parseFloat(cs.columnGap) || 0;
    const W = this.grid.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    const H = this.grid.clientHeight - parseFloat(cs.paddingTop) - parseFloat(cs.paddingBottom);
    if (W <= 0 || H <= 0) return;
    const aspect = W < 560 ? 4 / 3 : 16 / 9;
    let best = { cols: 1, w: 0, h: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const cellW = (W - gap * (cols - 1)) / cols;
      const cellH = (H - gap * (rows - 1)) / rows;
      const w = Math.min(cellW, cellH * aspect);
      if (w > best.w) best = { cols, w, h: w / aspect };
    }
    if (best.w < MIN_TILE_W) {
      // Too many for the screen: keep tiles legible and let the grid scroll.
      const cols = Math.max(1, Math.floor((W + gap) / (MIN_TILE_W + gap)));
      const w = (W - gap * (cols - 1)) / cols;
      best = { cols, w, h: w / aspect };
    }
    this.grid.style.setProperty("--cols", String(best.cols));
    // Centre a short last row (3 people → two above, one centred below): the grid has
    // two half-columns per tile, so a row can start half a tile in.
    const tiles = [...this.grid.children];
    const lastRow = n % best.cols;
    tiles.forEach((node, i) => {
      node.style.gridColumnStart = lastRow && i === n - lastRow ? String(best.cols - lastRow + 1) : "";
    });
    this.grid.style.setProperty("--tile-w", `${Math.floor(best.w)}px`);
    this.grid.style.setProperty("--tile-h", `${Math.floor(best.h)}px`);
  }
}
