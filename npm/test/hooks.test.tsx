import { act, render, renderHook, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { FakeRoom, fakeStream, peer } from "./fakeRoom.js";

// The wasm module is replaced by FakeRoom here; index.ts (lazy init, Room.join) is real.
const wasm = vi.hoisted(() => ({ init: vi.fn(), join: vi.fn() }));
vi.mock("../src/wasm/meshwire.js", () => ({ default: wasm.init, Room: { join: wasm.join } }));

import {
  MeshwireProvider,
  useChat,
  useLocalMedia,
  usePeers,
  useRemoteTracks,
  useRoom,
  useRoomContext,
  useScreenShare,
  useWebRTC,
  CHAT_CHANNEL,
} from "../src/react/index.js";
import type { Room } from "../src/index.js";

let rooms: FakeRoom[];
beforeEach(() => {
  rooms = [];
  wasm.init.mockReset().mockResolvedValue({});
  wasm.join.mockReset().mockImplementation(async (_url: string, name: string) => {
    const r = new FakeRoom();
    r.roomId = name;
    rooms.push(r);
    return r;
  });
});

const asRoom = (r: FakeRoom) => r as unknown as Room;
const tick = () => new Promise((r) => setTimeout(r, 5));

describe("useRoom", () => {
  it("joins once under StrictMode and leaves once on unmount", async () => {
    // (RTL's own option: a <StrictMode> wrapper does not double-run effects here.)
    const { result, unmount } = renderHook(() => useRoom("ws://relay", "standup", { name: "Ada" }), {
      reactStrictMode: true,
    });
    await waitFor(() => expect(result.current.state).toBe("connected"));
    expect(wasm.join).toHaveBeenCalledTimes(1);
    expect(wasm.join).toHaveBeenCalledWith("ws://relay", "standup", { name: "Ada" });
    expect(result.current.localPeerId).toBe("me");
    unmount();
    await tick();
    expect(rooms[0]!.left).toBe(1);
  });

  it("does not rejoin when options are an equal new object, rejoins when they change", async () => {
    const { result, rerender } = renderHook(({ name }) => useRoom("ws://relay", "a", { name }), {
      initialProps: { name: "Ada" },
    });
    await waitFor(() => expect(result.current.state).toBe("connected"));
    rerender({ name: "Ada" });
    await tick();
    expect(wasm.join).toHaveBeenCalledTimes(1);
    rerender({ name: "Grace" });
    await waitFor(() => expect(wasm.join).toHaveBeenCalledTimes(2));
    await tick();
    expect(rooms[0]!.left).toBe(1);
    expect(rooms[1]!.left).toBe(0);
  });

  it("waits while the room name is empty", async () => {
    const { result } = renderHook(() => useRoom("ws://relay", ""));
    await tick();
    expect(result.current.state).toBe("idle");
    expect(wasm.join).not.toHaveBeenCalled();
  });

  it("reports a failed join with its code", async () => {
    wasm.join.mockRejectedValueOnce(Object.assign(new Error("the room is full"), { code: "room-full" }));
    const { result } = renderHook(() => useRoom("ws://relay", "full"));
    await waitFor(() => expect(result.current.state).toBe("error"));
    expect(result.current.error?.code).toBe("room-full");
    expect(result.current.room).toBeNull();
  });

  it("follows the signaling state and the room's error events", async () => {
    const { result } = renderHook(() => useRoom("ws://relay", "a"));
    await waitFor(() => expect(result.current.state).toBe("connected"));
    act(() => rooms[0]!.emit("signaling", "reconnecting"));
    expect(result.current.state).toBe("reconnecting");
    act(() => rooms[0]!.emit("signaling", "resumed"));
    expect(result.current.state).toBe("connected");
    act(() => rooms[0]!.emit("error", { code: "rate-limited", message: "slow down" }));
    expect(result.current.error?.code).toBe("rate-limited");
  });

  it("unsubscribes every handler when it leaves", async () => {
    const { result, unmount } = renderHook(() => useRoom("ws://relay", "a"));
    await waitFor(() => expect(result.current.state).toBe("connected"));
    expect(rooms[0]!.listenerCount()).toBeGreaterThan(0);
    unmount();
    expect(rooms[0]!.listenerCount()).toBe(0);
  });
});

describe("MeshwireProvider", () => {
  it("gives its room to the hooks below it", async () => {
    function Names() {
      const { state } = useRoomContext();
      const peers = usePeers();
      return <p>{state}:{peers.map((p) => p.name).join(",")}</p>;
    }
    const view = render(
      <MeshwireProvider url="ws://relay" room="x">
        <Names />
      </MeshwireProvider>,
    );
    await waitFor(() => expect(view.container.textContent).toBe("connected:"));
    act(() => {
      rooms[0]!.peers = [peer("p1", "Grace")];
      rooms[0]!.emit("peer-joined", { peer: peer("p1", "Grace") });
    });
    expect(view.container.textContent).toBe("connected:Grace");
  });

  it("useRoomContext outside a provider says what is missing", () => {
    expect(() => renderHook(() => useRoomContext())).toThrow(/MeshwireProvider/);
  });
});

describe("usePeers / useRemoteTracks", () => {
  it("sees tracks that arrived before it mounted, and removals", () => {
    const r = new FakeRoom();
    const stream = fakeStream(["video"]);
    r.tracks = [{ peerId: "p1", stream, track: stream.getTracks()[0]!, source: "camera", muted: false }];
    const { result } = renderHook(() => useRemoteTracks("p1", asRoom(r)));
    expect(result.current).toHaveLength(1);
    act(() => {
      const gone = r.tracks[0]!;
      r.tracks = [];
      r.emit("track-removed", gone);
    });
    expect(result.current).toHaveLength(0);
  });

  it("drops a peer on peer-left", () => {
    const r = new FakeRoom();
    r.peers = [peer("p1"), peer("p2")];
    const { result } = renderHook(() => usePeers(asRoom(r)));
    expect(result.current.map((p) => p.id)).toEqual(["p1", "p2"]);
    act(() => {
      r.peers = [peer("p2")];
      r.emit("peer-left", { peerId: "p1", reason: "left" });
    });
    expect(result.current.map((p) => p.id)).toEqual(["p2"]);
  });
});

describe("useLocalMedia", () => {
  it("toggles are { enabled, pending, toggle } and agree across hooks", async () => {
    const r = new FakeRoom();
    r.localStream = fakeStream(["audio", "video"]);
    const a = renderHook(() => useLocalMedia(asRoom(r)));
    const b = renderHook(() => useLocalMedia(asRoom(r)));
    expect(a.result.current.microphone.enabled).toBe(true);
    await act(() => a.result.current.microphone.toggle());
    expect(r.calls).toContainEqual(["setMicrophoneEnabled", false]);
    expect(a.result.current.microphone.enabled).toBe(false);
    expect(b.result.current.microphone.enabled).toBe(false);

    let release!: () => void;
    r.media = () => new Promise((ok) => (release = () => ok(fakeStream([]))));
    let done!: Promise<void>;
    act(() => {
      done = a.result.current.camera.toggle();
    });
    expect(a.result.current.camera.pending).toBe(true);
    await act(async () => {
      release();
      await done;
    });
    expect(a.result.current.camera).toMatchObject({ pending: false, enabled: false });
  });

  it("a denied device is an error with its code, and clearError clears it", async () => {
    const r = new FakeRoom();
    r.media = () => Promise.reject(Object.assign(new Error("camera denied"), { code: "media-failed" }));
    const { result } = renderHook(() => useLocalMedia(asRoom(r)));
    await act(() => result.current.enable());
    expect(result.current.error?.code).toBe("media-failed");
    expect(result.current.camera.pending).toBe(false);
    act(() => result.current.clearError());
    expect(result.current.error).toBeNull();
  });
});

describe("useScreenShare", () => {
  it("turns off when the share ends from the browser", async () => {
    const r = new FakeRoom();
    const { result } = renderHook(() => useScreenShare({ room: asRoom(r) }));
    await act(() => result.current.toggle());
    expect(result.current.enabled).toBe(true);
    expect(result.current.stream).not.toBeNull();
    // The browser's "Stop sharing": the SDK reverts and emits track-removed.
    act(() => {
      const mine = r.tracks[0]!;
      r.tracks = [];
      r.emit("track-removed", mine);
    });
    expect(result.current.enabled).toBe(false);
  });
});

describe("useChat", () => {
  it("sends JSON on its channel and shows valid messages only", () => {
    const r = new FakeRoom();
    r.peers = [peer("p1", "Grace")];
    const { result } = renderHook(() => useChat(asRoom(r)));
    expect(r.calls).toContainEqual(["createChannel", CHAT_CHANNEL, {}]);
    act(() => result.current.send("hello"));
    const sent = r.calls.find((c) => c[0] === "send")!;
    expect(JSON.parse(sent[1] as string).text).toBe("hello");
    expect(sent[2]).toEqual({ channel: CHAT_CHANNEL });
    act(() => {
      r.emit("message", { from: "p1", channel: CHAT_CHANNEL, data: JSON.stringify({ text: "hi", at: 1 }) });
      r.emit("message", { from: "p1", channel: CHAT_CHANNEL, data: "{not json" });
      r.emit("message", { from: "p1", channel: CHAT_CHANNEL, data: JSON.stringify({ text: 42 }) });
      r.emit("message", { from: "p1", channel: "other", data: JSON.stringify({ text: "elsewhere" }) });
    });
    expect(result.current.messages.map((m) => [m.text, m.local, m.name])).toEqual([
      ["hello", true, undefined],
      ["hi", false, "Grace"],
    ]);
  });

  it("refuses oversized text with message-too-large", () => {
    const r = new FakeRoom();
    const { result } = renderHook(() => useChat(asRoom(r)));
    expect(() => result.current.send("x".repeat(20000))).toThrow(expect.objectContaining({ code: "message-too-large" }));
  });
});

describe("useWebRTC", () => {
  it("joins with media, groups each peer's streams", async () => {
    const { result } = renderHook(() => useWebRTC({ url: "ws://relay", room: "call", name: "Ada" }));
    await waitFor(() => expect(result.current.state).toBe("connected"));
    expect(wasm.join).toHaveBeenCalledWith("ws://relay", "call", { audio: true, video: true, name: "Ada" });
    const r = rooms[0]!;
    const cam = fakeStream(["audio", "video"]);
    const screen = fakeStream(["video"]);
    act(() => {
      r.peers = [peer("p1")];
      r.tracks = [
        { peerId: "p1", stream: cam, track: cam.getTracks()[0]!, source: "microphone", muted: false },
        { peerId: "p1", stream: cam, track: cam.getTracks()[1]!, source: "camera", muted: false },
        { peerId: "p1", stream: screen, track: screen.getTracks()[0]!, source: "screen", muted: false },
      ];
      r.emit("peer-joined", { peer: peer("p1") });
      r.emit("track", r.tracks[2]!);
    });
    expect(result.current.peers[0]!.stream).toBe(cam);
    expect(result.current.peers[0]!.screenStream).toBe(screen);
  });
});
