// meshwire demo — a one-page video call over the npm package's core (no build step).
// app.js joins, wires the room's events to the UI modules and runs the controls;
// tiles.js draws the video grid, chat.js the chat, files.js file transfers, devices.js
// the device menu.
import { Room, init, isMeshwireError } from "./meshwire/index.js";
import { Tiles } from "./tiles.js";
import { Chat } from "./chat.js";
import { Files } from "./files.js";
import { Devices } from "./devices.js";
import { toast, toastError, describeError, copyText } from "./ui.js";

const $ = (sel) => document.querySelector(sel);
const RELAY = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
const ROOM_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;
const STATS_EVERY_MS = 2000;

const ui = {
  joinView: $("#join-view"),
  callView: $("#call-view"),
  form: $("form[data-testid=join]"),
  joinButton: $("#join-button"),
  joinError: $("#join-error"),
  roomLabel: $("#room-label"),
  peerCount: $("#peer-count"),
  banner: $("[data-testid=reconnecting]"),
  stage: $(".stage"),
  side: $("#side"),
  mic: $("[data-testid=toggle-mic]"),
  camera: $("[data-testid=toggle-camera]"),
  screen: $("[data-testid=screen-share]"),
  leave: $("[data-testid=leave]"),
  chatToggle: $("#toggle-chat"),
  unread: $("#unread"),
  statsToggle: $("#toggle-stats"),
  copyLink: $("#copy-link"),
  chatForm: $("#chat-form"),
  chatInput: $("[data-testid=chat-input]"),
  fileInput: $("[data-testid=file-input]"),
};

/** Everything that belongs to one joined room; replaced on every join. */
let call = null;

const tiles = new Tiles($("#grid"));
const chat = new Chat({ feed: $("#feed"), nameOf, onIncoming: () => bumpUnread() });
const files = new Files({ chat, nameOf });
const devices = new Devices({
  button: $("#settings-button"), panel: $("#settings"),
  camera: $("#camera-select"), mic: $("#mic-select"), note: $("#settings-note"),
});
devices.onSwitched = () => call && tiles.syncLocal(call.room);

function nameOf(peerId) {
  if (call && peerId === call.room.peerId) return call.name;
  const name = call?.names.get(peerId) ?? call?.room.peers.find((p) => p.id === peerId)?.name;
  return name || `Guest ${String(peerId).slice(0, 4)}`;
}

// ── Join ────────────────────────────────────────────────────────────────────────────

// The room comes from the link (?room=), so an invite opens straight onto the right form.
const params = new URLSearchParams(location.search);
ui.form.room.value = params.get("room") || "lobby";
ui.form.name.value = localStorage.getItem("meshwire.name") || "";
if (params.get("room")) ui.form.name.focus();
// Start loading the wasm while the person types; join would do it anyway.
init().catch(() => {});

ui.form.addEventListener("submit", async (e) => {
  e.preventDefault();
  const roomName = ui.form.room.value.trim();
  const name = ui.form.name.value.trim() || "Guest";
  ui.form.room.setAttribute("aria-invalid", String(!ROOM_PATTERN.test(roomName)));
  if (!ROOM_PATTERN.test(roomName)) {
    ui.form.room.focus();
    return showJoinError("Room names are 1–64 letters, digits or _ . : -", "invalid-room");
  }
  localStorage.setItem("meshwire.name", ui.form.name.value.trim());
  ui.joinButton.disabled = true;
  ui.joinButton.textContent = "Joining…";
  ui.joinError.hidden = true;
  try {
    const { room, mediaError } = await joinWithFallback(roomName, name, {
      audio: ui.form.audio.checked, video: ui.form.video.checked,
    });
    enterCall(room, name, mediaError);
  } catch (err) {
    showJoinError(joinHint(err), err?.code, err?.message);
  } finally {
    ui.joinButton.disabled = false;
    ui.joinButton.textContent = "Join room";
  }
});

/**
 * Joins with the media asked for; if the browser refuses a device (denied, missing,
 * in use) tries with less, so a blocked camera never keeps anyone out of the call.
 */
async function joinWithFallback(roomName, name, wanted) {
  const attempts = [wanted];
  if (wanted.audio && wanted.video) attempts.push({ audio: true, video: false }, { audio: false, video: true });
  if (wanted.audio || wanted.video) attempts.push({ audio: false, video: false });
  let mediaError = null;
  for (const media of attempts) {
    try {
      const room = await Room.join(RELAY, roomName, { name, ...media });
      return { room, mediaError };
    } catch (err) {
      if (!isMeshwireError(err) || err.code !== "media-failed") throw err;
      mediaError ??= err;
    }
  }
  throw mediaError; // not reached: the last attempt asks for no media
}

function joinHint(err) {
  switch (err?.code) {
    case "signaling-failed": return `Could not reach the relay at ${RELAY}. Is it running?`;
    case "room-full": return "That room is full. Try another room name.";
    case "unauthorized": return "The relay refused this join (it needs a token).";
    case "invalid-room": return "That room name is not valid: use 1–64 letters, digits or _ . : -";
    case "unsupported": return "This browser cannot make WebRTC calls here (it needs https or localhost).";
    case "rate-limited": return "Too many attempts — wait a moment and try again.";
    default: return "Could not join.";
  }
}

function showJoinError(hint, code, message) {
  ui.joinError.replaceChildren(hint);
  if (message && message !== hint) ui.joinError.append(document.createElement("br"), message);
  if (code) {
    const c = document.createElement("code");
    c.textContent = ` (${code})`;
    ui.joinError.append(c);
  }
  ui.joinError.hidden = false;
}

// ── In the call ─────────────────────────────────────────────────────────────────────

function enterCall(room, name, mediaError) {
  window.meshwireRoom = room; // the e2e tests read it
  call = { room, name, names: new Map(), offs: [], statsTimer: null, sharing: false, busy: false, unread: 0 };
  history.replaceState(null, "", `${location.pathname}?room=${encodeURIComponent(room.roomId)}`);
  document.title = `${room.roomId} — meshwire`;

  ui.joinView.hidden = true;
  ui.callView.hidden = false;
  ui.roomLabel.textContent = room.roomId;
  setChatOpen(!matchMedia("(max-width: 760px)").matches);

  tiles.ensure(room.peerId, { name, local: true });
  tiles.syncLocal(room);
  for (const p of room.peers) addPeer(p);
  // Tracks that arrived before our handlers (room.tracks lists the current ones).
  for (const info of room.tracks ?? []) onTrack(info);

  chat.attach(room);
  files.attach(room);
  devices.attach(room);
  wireEvents(room);
  startStats(room);
  reflectControls();
  updateCount();
  chat.notice(`You joined ${room.roomId}. Share the invite link to bring people in.`);

  if (mediaError) {
    const got = localTrack("audio") ? "your microphone only" : localTrack("video") ? "your camera only" : "no camera or microphone";
    toast(`You joined with ${got}: ${mediaError.message}. You can still see and hear the others and chat; the buttons below try the devices again.`,
      { kind: "warn", code: mediaError.code, timeout: 12000 });
  }
}

function wireEvents(room) {
  const on = (event, handler) => call.offs.push(room.on(event, handler));
  on("peer-joined", ({ peer }) => { addPeer(peer); chat.notice(`${nameOf(peer.id)} joined`); updateCount(); });
  on("peer-left", ({ peerId, reason }) => {
    chat.notice(`${nameOf(peerId)} ${reason === "lost" ? "lost their connection" : "left"}`);
    tiles.remove(peerId);
    call.names.delete(peerId);
    updateCount();
  });
  on("peer-connected", () => updateCount());
  on("track", onTrack);
  on("track-removed", (info) => {
    if (info.peerId === room.peerId) {
      // Our screen share ended (also when stopped from the browser's own bar).
      if (info.source === "screen") call.sharing = false;
      tiles.syncLocal(room);
      reflectControls();
      return;
    }
    tiles.removeTrack(info.peerId, info);
  });
  on("mute", ({ peerId, source, muted }) => tiles.setMuted(peerId, source, muted));
  on("signaling", (state) => {
    ui.banner.hidden = state !== "reconnecting";
    if (state === "resumed") toast("Reconnected to the relay.", { timeout: 3000 });
    if (state === "closed" && call) {
      chat.notice("The relay connection closed — reconnecting gave up. Leave and join again.", "error");
      toast("Disconnected from the relay. Leave and join again to continue.", { kind: "error", code: "signaling-failed" });
    }
  });
  on("error", ({ code, message }) => toast(message, { kind: "error", code }));

  // The SDK runs its audio analysers and quality polls only while these are listened to.
  on("speaking", ({ peerId, speaking }) => tiles.setSpeaking(peerId, speaking));
  on("quality", ({ peerId, quality }) => tiles.setQuality(peerId, quality));
}

function addPeer(peer) {
  if (peer.name) call.names.set(peer.id, peer.name);
  tiles.ensure(peer.id, { name: nameOf(peer.id) });
  if (peer.audioMuted) tiles.setMuted(peer.id, "microphone", true);
  if (peer.videoMuted) tiles.setMuted(peer.id, "camera", true);
}

function onTrack(info) {
  const room = call.room;
  if (info.peerId === room.peerId) {
    if (info.source === "screen") call.sharing = true;
    tiles.syncLocal(room);
    reflectControls();
    return;
  }
  tiles.ensure(info.peerId, { name: nameOf(info.peerId) });
  tiles.addTrack(info.peerId, info);
}

/** Stats for the overlay, and the quality badges' first value. */
function startStats(room) {
  const poll = async () => {
    try {
      for (const s of await room.getStats()) {
        tiles.setStats(s.peerId, s);
        if (s.quality) tiles.setQuality(s.peerId, s.quality);
      }
    } catch (err) {
      // A failed poll is not worth a toast every 2 s; the next one usually works.
      console.warn("getStats failed", err);
    }
  };
  poll();
  call.statsTimer = setInterval(poll, STATS_EVERY_MS);
}

function localTrack(kind) {
  return call?.room.localStream?.getTracks().find((t) => t.kind === kind && t.readyState === "live") ?? null;
}

/** The buttons show the SDK's real state (pressed = on), never what we hoped it did. */
function reflectControls() {
  if (!call) return;
  const mic = localTrack("audio");
  const cam = localTrack("video");
  const set = (btn, on, label) => { btn.setAttribute("aria-pressed", String(on)); btn.title = label; };
  set(ui.mic, Boolean(mic?.enabled), mic?.enabled ? "Mute microphone (M)" : mic ? "Unmute microphone (M)" : "Turn microphone on (M)");
  set(ui.camera, Boolean(cam), cam ? "Turn camera off (V)" : "Turn camera on (V)");
  set(ui.screen, call.sharing, call.sharing ? "Stop sharing" : "Share your screen");
  ui.screen.setAttribute("aria-label", call.sharing ? "Stop sharing screen" : "Share screen");
  ui.leave.setAttribute("aria-pressed", "false");
}

function updateCount() {
  if (!call) return;
  const n = call.room.peers.length + 1;
  ui.peerCount.textContent = n === 1 ? "Just you so far" : `${n} people in the call`;
}

/** Runs one control action at a time: a double click must not start two getUserMedia. */
async function action(button, fn) {
  if (!call || call.busy) return;
  call.busy = true;
  button.disabled = true;
  try {
    await fn(call.room);
  } finally {
    button.disabled = false;
    if (call) {
      call.busy = false;
      tiles.syncLocal(call.room);
      reflectControls();
    }
  }
}

const toggleMic = () => action(ui.mic, async (room) => {
  const mic = localTrack("audio");
  if (mic) return room.setMicrophoneEnabled(!mic.enabled);
  // Joined without a microphone (denied or unchecked): ask again; the camera, left out,
  // stays as it is.
  try {
    await room.enableMedia({ audio: true });
  } catch (err) {
    toastError("Microphone unavailable", err);
  }
});

const toggleCamera = () => action(ui.camera, async (room) => {
  const on = !localTrack("video");
  try {
    await room.setCameraEnabled(on);
  } catch (err) {
    toastError(on ? "Camera unavailable" : "Could not turn the camera off", err);
  }
});

ui.mic.addEventListener("click", toggleMic);
ui.camera.addEventListener("click", toggleCamera);

ui.screen.addEventListener("click", () => action(ui.screen, async (room) => {
  try {
    if (call.sharing) {
      await room.stopScreenShare();
      call.sharing = false;
    } else {
      await room.startScreenShare();
      call.sharing = true;
    }
  } catch (err) {
    // Cancelling the browser's picker is a media-failed too; say it gently.
    if (err?.code === "media-failed") toast(`Screen sharing did not start: ${err.message}`, { kind: "warn", code: err.code });
    else toastError("Screen sharing failed", err);
  }
}));

ui.leave.addEventListener("click", () => leaveCall());

async function leaveCall() {
  if (!call) return;
  const { room, offs, statsTimer } = call;
  call = null;
  clearInterval(statsTimer);
  offs.forEach((off) => off());
  chat.detach();
  files.detach();
  devices.detach();
  try {
    await room.leave();
  } catch (err) {
    console.warn("leave", describeError(err));
  }
  tiles.clear();
  chat.clear();
  ui.banner.hidden = true;
  ui.callView.hidden = true;
  ui.joinView.hidden = false;
  document.title = "meshwire — video call";
  delete window.meshwireRoom;
  ui.joinButton.focus();
}

// Tell the others at once rather than after the relay notices the socket is gone.
addEventListener("pagehide", () => { call?.room.leave().catch(() => {}); });

// ── Chat panel, files, invite, stats ───────────────────────────────────────────────

ui.chatForm.addEventListener("submit", (e) => {
  e.preventDefault();
  if (chat.send(ui.chatInput.value)) ui.chatInput.value = "";
  ui.chatInput.focus();
});

ui.fileInput.addEventListener("change", () => {
  for (const file of ui.fileInput.files) files.sendToAll(file);
  ui.fileInput.value = ""; // so choosing the same file again fires change again
});

// Dropping files on the chat panel sends them like the clip button does.
ui.side.addEventListener("dragover", (e) => {
  if (!call || !e.dataTransfer?.types.includes("Files")) return;
  e.preventDefault();
  ui.side.classList.add("dropping");
});
ui.side.addEventListener("dragleave", (e) => { if (!ui.side.contains(e.relatedTarget)) ui.side.classList.remove("dropping"); });
ui.side.addEventListener("drop", (e) => {
  ui.side.classList.remove("dropping");
  if (!call || !e.dataTransfer?.files.length) return;
  e.preventDefault();
  for (const file of e.dataTransfer.files) files.sendToAll(file);
});

function setChatOpen(open) {
  ui.side.hidden = !open;
  ui.stage.classList.toggle("no-side", !open);
  ui.chatToggle.setAttribute("aria-pressed", String(open));
  if (open && call) { call.unread = 0; ui.unread.hidden = true; }
  tiles.layout();
}
ui.chatToggle.addEventListener("click", () => setChatOpen(ui.side.hidden));
$("#close-side").addEventListener("click", () => setChatOpen(false));

function bumpUnread() {
  if (!call || !ui.side.hidden) return;
  call.unread++;
  ui.unread.textContent = call.unread > 9 ? "9+" : String(call.unread);
  ui.unread.hidden = false;
}

ui.copyLink.addEventListener("click", async () => {
  const link = `${location.origin}${location.pathname}?room=${encodeURIComponent(call?.room.roomId ?? ui.form.room.value)}`;
  const label = ui.copyLink.querySelector("span");
  if (await copyText(link)) {
    label.textContent = "Link copied";
    ui.copyLink.classList.add("copied");
  } else {
    toast(`Copy this link: ${link}`, { timeout: 15000 });
  }
  setTimeout(() => { label.textContent = "Copy invite link"; ui.copyLink.classList.remove("copied"); }, 2000);
});

ui.statsToggle.addEventListener("click", () => {
  const on = ui.statsToggle.getAttribute("aria-pressed") !== "true";
  ui.statsToggle.setAttribute("aria-pressed", String(on));
  ui.stage.classList.toggle("show-stats", on);
});

// M / V toggle microphone and camera, except while typing.
addEventListener("keydown", (e) => {
  if (!call || e.ctrlKey || e.metaKey || e.altKey || e.target.closest?.("input, textarea, select")) return;
  if (e.key === "m" || e.key === "M") toggleMic();
  if (e.key === "v" || e.key === "V") toggleCamera();
});
