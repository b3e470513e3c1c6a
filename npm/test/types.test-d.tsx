// Type tests: `tsc --noEmit` (npm run typecheck, in `make test`) compiles this file.
// Each `@ts-expect-error` line is misuse the typings must refuse; if one compiles, tsc
// reports the directive as unused and the check fails.
import {
  Room,
  init,
  isMeshwireError,
  type ErrorCode,
  type PeerInfo,
  type SignalingConnectionState,
  type TrackInfo,
} from "../src/index.js";
import {
  useRoom,
  useWebRTC,
  useLocalMedia,
  useScreenShare,
  useDataChannel,
  useChat,
  useRemoteTracks,
  VideoTrack,
  type RoomState,
  type Toggle,
} from "../src/react/index.js";

declare const room: Room;
/** `true` only when A and B are the same type (not merely assignable either way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

export async function core(): Promise<void> {
  await init({ wasmUrl: "/static/meshwire_bg.wasm" });
  // @ts-expect-error: wasmUrl is a string or URL
  await init({ wasmUrl: 42 });
  const joined: Room = await Room.join("ws://x", "r", { name: "Ada", audio: true, reconnect: { maxAttempts: 3 } });
  // @ts-expect-error: unknown option
  await Room.join("ws://x", "r", { nmae: "typo" });
  // @ts-expect-error: the room name is required
  await Room.join("ws://x");

  // Each event's payload is typed.
  room.on("peer-left", ({ peerId, reason }) => {
    const r: "left" | "lost" = reason;
    peerId.toUpperCase();
    void r;
  });
  room.on("track", (t: TrackInfo) => t.stream.getTracks());
  // Error events carry the code union (which editors offer), not a bare string: the
  // exact-type check below fails for `string`.
  room.on("error", ({ code }) => {
    const exact: Equal<typeof code, ErrorCode> = true;
    void exact;
  });
  room.sendFile(new Blob([]), { to: "p" }).on("error", ({ code }) => {
    const exact: Equal<typeof code, ErrorCode> = true;
    void exact;
  });
  // The property's states are not the event's changes: `connecting` yes, `resumed` no.
  const state: SignalingConnectionState = room.signalingState;
  // @ts-expect-error: the property is never "resumed"
  if (room.signalingState === "resumed") void state;
  room.on("message", ({ data }) => (typeof data === "string" ? data.length : data.byteLength));
  room.on("signaling", (s) => {
    // @ts-expect-error: not a signaling state
    if (s === "open") return;
  });
  // @ts-expect-error: no such event
  room.on("peer-gone", () => undefined);
  // @ts-expect-error: peer-left has no `peer`
  room.on("peer-left", ({ peer }) => peer);
  const off: () => void = room.on("peer-joined", ({ peer }: { peer: PeerInfo }) => peer.name);
  off();

  room.send("hi");
  room.send(new Uint8Array(4), { to: "p1", channel: "game" });
  // @ts-expect-error: numbers are not sent as is
  room.send(42);
  room.createChannel("game", { ordered: false, maxRetransmits: 0 });
  // @ts-expect-error: ordered is a boolean
  room.createChannel("game", { ordered: "no" });
  await room.startScreenShare({ replaceCamera: false });
  const code: ErrorCode = "room-full";
  try {
    await joined.enableMedia();
  } catch (e) {
    if (isMeshwireError(e)) {
      const c: ErrorCode = e.code;
      void c;
    }
  }
  void code;
}

export function Hooks() {
  const { room: r, state, error, peers, localPeerId } = useRoom("ws://x", "r", { name: "Ada" });
  const s: RoomState = state;
  // @ts-expect-error: not a RoomState
  const bad: RoomState = "joined";
  const call = useWebRTC({ url: "ws://x", room: "r", video: false });
  // @ts-expect-error: url and room are required
  useWebRTC({ name: "Ada" });
  const toggle: Toggle = useLocalMedia().camera;
  const share: Toggle = useScreenShare();
  const { send } = useDataChannel("game", (data, from) => from.length + (typeof data === "string" ? 1 : 0));
  send("x", "peer");
  // @ts-expect-error: `to` is a peer id string
  send("x", 1);
  useChat().send("hi");
  useRemoteTracks("p1").map((t) => t.source);
  void [r, error, peers, localPeerId, s, bad, call.isScreenSharing, toggle, share];
  return <VideoTrack stream={call.localStream} local className="me" />;
}
