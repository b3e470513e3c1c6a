// @vitest-environment node
// Server rendering: in plain Node (no window, navigator or RTCPeerConnection), the
// package imports, and a page built from the hooks renders to HTML without throwing.
// The real wasm glue is imported here (nothing is mocked).
import { renderToString } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { init, Room } from "../src/index.js";
import {
  AudioTrack,
  MeshwireProvider,
  useChat,
  useLocalMedia,
  usePeers,
  useRemoteTracks,
  useRoomContext,
  useScreenShare,
  useSignalingState,
  useWebRTC,
  VideoTrack,
} from "../src/react/index.js";

function Call() {
  const call = useWebRTC({ url: "ws://relay", room: "ssr", name: "Ada" });
  return (
    <main data-state={call.state}>
      <VideoTrack stream={call.localStream} local />
      {call.peers.map((p) => (
        <VideoTrack key={p.id} stream={p.stream} />
      ))}
      <button aria-pressed={call.isAudioEnabled}>mic</button>
      <p>{call.messages.length} messages</p>
    </main>
  );
}

function Granular() {
  const { state } = useRoomContext();
  const peers = usePeers();
  const tracks = useRemoteTracks();
  const media = useLocalMedia();
  const screen = useScreenShare();
  const chat = useChat();
  const signaling = useSignalingState();
  return (
    <section>
      {state}/{signaling}/{peers.length}/{tracks.length}/{String(media.camera.enabled)}/{String(screen.enabled)}/
      {chat.messages.length}
      <AudioTrack stream={null} />
    </section>
  );
}

describe("server rendering", () => {
  it("has no browser globals here", () => {
    expect(typeof window).toBe("undefined");
    expect(typeof navigator === "undefined" || !("mediaDevices" in navigator)).toBe(true);
    expect(typeof RTCPeerConnection).toBe("undefined");
  });

  it("renders the all-in-one hook", () => {
    const html = renderToString(<Call />);
    expect(html).toContain('data-state="idle"');
    expect(html).toContain("<video");
    expect(html.replaceAll("<!-- -->", "")).toContain("0 messages");
  });

  it("renders the provider and granular hooks", () => {
    const html = renderToString(
      <MeshwireProvider url="ws://relay" room="ssr">
        <Granular />
      </MeshwireProvider>,
    );
    expect(html.replaceAll("<!-- -->", "")).toContain("idle/closed/0/0/false/false/");
  });

  it("init() at a client module's top level is inert on the server, not an unhandled rejection", async () => {
    // Not awaited, as a module-level call is: vitest fails the run on an unhandled rejection.
    void init({ wasmUrl: "https://cdn.example.com/meshwire_bg.wasm" });
    await new Promise((r) => setTimeout(r, 20));
  });

  it("joining on the server fails with a coded error that says what to do", async () => {
    await expect(Room.join("ws://relay", "ssr")).rejects.toMatchObject({ code: "unsupported" });
    await expect(init()).rejects.toThrow(/effect or an event handler/);
  });
});
