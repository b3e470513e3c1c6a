// The demo: plain JavaScript over the SDK's ES module (built by `make demo` into pkg/).
import init, { Room } from "./pkg/meshwire.js";

const $ = (id) => document.getElementById(id);
const relay = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;
let room = null;
let micOn = true, camOn = true, sharing = false;
const names = new Map();

function log(text, sys = false) {
  const line = document.createElement("div");
  if (sys) line.className = "sys";
  line.textContent = text;
  $("log").append(line);
  $("log").scrollTop = $("log").scrollHeight;
}

function tile(id, label) {
  let t = document.querySelector(`[data-peer="${id}"]`);
  if (!t) {
    t = document.createElement("div");
    t.className = "tile";
    t.dataset.peer = id;
    t.innerHTML = `<video autoplay playsinline></video><span class="label"></span>`;
    $("grid").append(t);
  }
  t.querySelector(".label").textContent = label;
  return t;
}

function setControls(joined) {
  for (const id of ["mic", "cam", "screen", "leave", "text", "sendBtn"]) $(id).disabled = !joined;
  $("joinBtn").disabled = joined;
}

$("join").addEventListener("submit", async (e) => {
  e.preventDefault();
  await init();
  const name = $("name").value || "guest";
  try {
    room = await Room.join(relay, $("room").value, { name, audio: true, video: true });
  } catch (err) {
    log(`could not join: ${err.message} (${err.code})`, true);
    return;
  }
  setControls(true);
  const me = tile(room.peerId, `${name} (you)`);
  me.querySelector("video").muted = true;
  me.querySelector("video").srcObject = room.localStream;
  for (const p of room.peers) { names.set(p.id, p.name || p.id.slice(0, 6)); tile(p.id, names.get(p.id)); }
  log(`joined ${room.roomId} as ${name}`, true);

  room.on("peer-joined", ({ peer }) => { names.set(peer.id, peer.name || peer.id.slice(0, 6)); tile(peer.id, names.get(peer.id)); log(`${names.get(peer.id)} joined`, true); });
  room.on("peer-left", ({ peerId }) => { document.querySelector(`[data-peer="${peerId}"]`)?.remove(); log(`${names.get(peerId) ?? peerId} left`, true); });
  room.on("track", ({ peerId, stream, track }) => {
    if (peerId === room.peerId || track.kind !== "video") return;
    tile(peerId, names.get(peerId) ?? peerId).querySelector("video").srcObject = stream;
  });
  room.on("track-removed", ({ peerId, source }) => {
    if (peerId === room.peerId && source === "screen") { sharing = false; $("screen").textContent = "Share screen"; }
  });
  room.on("mute", ({ peerId, source, muted }) => log(`${names.get(peerId)} ${muted ? "muted" : "unmuted"} their ${source}`, true));
  room.on("message", ({ from, data }) => log(`${names.get(from) ?? from}: ${data}`));
  room.on("signaling", (state) => {
    $("banner").style.display = state === "reconnecting" ? "block" : "none";
    $("banner").textContent = "Reconnecting to the relay… the call goes on.";
  });
  room.on("error", ({ code, message }) => log(`error ${code}: ${message}`, true));
});

$("mic").onclick = () => { micOn = !micOn; room.setMicrophoneEnabled(micOn); $("mic").textContent = micOn ? "Mute" : "Unmute"; $("mic").classList.toggle("off", !micOn); };
$("cam").onclick = async () => { camOn = !camOn; await room.setCameraEnabled(camOn); $("cam").textContent = camOn ? "Camera off" : "Camera on"; $("cam").classList.toggle("off", !camOn); };
$("screen").onclick = async () => {
  if (sharing) { await room.stopScreenShare(); return; }
  try { await room.startScreenShare(); sharing = true; $("screen").textContent = "Stop sharing"; } catch (err) { log(`screen share: ${err.message}`, true); }
};
$("leave").onclick = async () => { await room.leave(); room = null; $("grid").innerHTML = ""; setControls(false); log("left", true); };
$("say").addEventListener("submit", (e) => {
  e.preventDefault();
  const text = $("text").value.trim();
  if (!text || !room) return;
  room.send(text);
  log(`you: ${text}`);
  $("text").value = "";
});
