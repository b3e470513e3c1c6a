import { act, render, renderHook, waitFor } from "@testing-library/react";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { FakeRoom, FakeTransfer, fakeStream, peer } from "./fakeRoom.js";

// The wasm module is replaced by FakeRoom here; index.ts (lazy init, Room.join) is real.
const wasm = vi.hoisted(() => ({ init: vi.fn(), join: vi.fn() }));
vi.mock("../src/wasm/meshwire.js", () => ({ default: wasm.init, Room: { join: wasm.join } }));

import {
  MeshwireProvider,
  useChat,
  useDataChannel,
  useFileTransfer,
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
import { chat } from "../src/react/chatStore.js";
import { transfers } from "../src/react/transferStore.js";

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

  it("a join refused for its token is tried again when the token changes", async () => {
    wasm.join.mockRejectedValueOnce(Object.assign(new Error("the token has expired"), { code: "unauthorized" }));
    const { result, rerender } = renderHook(({ token }) => useRoom("ws://relay", "a", { token }), {
      initialProps: { token: "expired" },
    });
    await waitFor(() => expect(result.current.state).toBe("error"));
    expect(result.current.error?.code).toBe("unauthorized");
    rerender({ token: "fresh" });
    await waitFor(() => expect(result.current.state).toBe("connected"));
    expect(wasm.join).toHaveBeenCalledTimes(2);
    const given = wasm.join.mock.calls[1]![2] as { token: () => string };
    expect(given.token()).toBe("fresh");
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
    // What stays for the room's life: its chat and transfer records (chatStore,
    // transferStore), which the SDK's leave releases with every other handler.
    const bare = new FakeRoom();
    chat(asRoom(bare));
    transfers(asRoom(bare));
    expect(rooms[0]!.listenerCount()).toBeGreaterThan(bare.listenerCount());
    unmount();
    expect(rooms[0]!.listenerCount()).toBe(bare.listenerCount());
    await tick();
    expect(rooms[0]!.left).toBe(1);
    expect(rooms[0]!.listenerCount()).toBe(0);
  });

  it("a refreshed token does not rejoin: the SDK asks for the latest on each reconnect", async () => {
    const { result, rerender } = renderHook(({ token }) => useRoom("ws://relay", "a", { name: "Ada", token }), {
      initialProps: { token: "t1" as string | (() => string) },
    });
    await waitFor(() => expect(result.current.state).toBe("connected"));
    const given = wasm.join.mock.calls[0]![2] as { name: string; token: () => string | Promise<string> };
    expect(given.name).toBe("Ada");
    expect(given.token()).toBe("t1");
    rerender({ token: "t2" });
    await tick();
    expect(wasm.join).toHaveBeenCalledTimes(1);
    expect(rooms[0]!.left).toBe(0);
    expect(given.token()).toBe("t2");
    // A function is called as it is in the latest render.
    rerender({ token: () => "t3" });
    await tick();
    expect(wasm.join).toHaveBeenCalledTimes(1);
    expect(given.token()).toBe("t3");
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

  it("opens the media its options ask for once joined; a refused camera leaves the room joined", async () => {
    wasm.join.mockImplementationOnce(async (_url: string, name: string, options: unknown) => {
      const r = new FakeRoom();
      r.roomId = name;
      r.calls.push(["join-options", options]);
      r.enableMedia = async (o?: { audio?: unknown; video?: unknown }) => {
        r.calls.push(["enableMedia", o]);
        if (o?.video) throw Object.assign(new Error("camera denied (NotAllowedError)"), { code: "media-failed" });
        r.localStream = fakeStream(["audio"]);
        return r.localStream;
      };
      rooms.push(r);
      return r;
    });
    function Status() {
      const { state } = useRoomContext();
      const media = useLocalMedia();
      return <p>{state}:{String(media.microphone.enabled)}:{String(media.camera.enabled)}:{media.error?.message ?? ""}</p>;
    }
    const view = render(
      <MeshwireProvider url="ws://relay" room="media" options={{ name: "Ada", audio: true, video: true }}>
        <Status />
      </MeshwireProvider>,
    );
    await waitFor(() => expect(view.container.textContent).toMatch(/^connected:true:false:the camera could not be opened/));
    expect(rooms[0]!.calls[0]).toEqual(["join-options", { name: "Ada" }]);
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

  it("keeps what arrived from the join on, before any chat panel mounted", async () => {
    const joined = renderHook(() => useRoom("ws://relay", "chat-later"));
    await waitFor(() => expect(joined.result.current.state).toBe("connected"));
    const r = rooms[0]!;
    r.peers = [peer("p1", "Grace")];
    act(() => r.emit("message", { from: "p1", channel: CHAT_CHANNEL, data: JSON.stringify({ text: "early", at: 1 }) }));
    // Listening opened no channel; the panel that can send does.
    expect(r.calls.some((c) => c[0] === "createChannel")).toBe(false);
    const panel = renderHook(() => useChat(asRoom(r)));
    expect(panel.result.current.messages.map((m) => [m.text, m.name])).toEqual([["early", "Grace"]]);
    expect(r.calls).toContainEqual(["createChannel", CHAT_CHANNEL, {}]);
  });

  it("files offered from the join on are listed by a transfer panel mounted later", async () => {
    const joined = renderHook(() => useRoom("ws://relay", "files-later"));
    await waitFor(() => expect(joined.result.current.state).toBe("connected"));
    const incoming = new FakeTransfer("in1", "notes.txt", 10, "p1", "me");
    act(() => rooms[0]!.emit("file", { transfer: incoming as never }));
    const panel = renderHook(() => useFileTransfer(asRoom(rooms[0]!)));
    expect(panel.result.current.transfers.map((t) => [t.id, t.direction])).toEqual([["in1", "receive"]]);
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
    expect(wasm.join).toHaveBeenCalledWith("ws://relay", "call", { name: "Ada" });
    const r = rooms[0]!;
    await waitFor(() => expect(result.current.isVideoEnabled).toBe(true));
    expect(r.calls.filter((c) => c[0] === "enableMedia")).toEqual([["enableMedia", { audio: true, video: true }]]);
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

  it("a camera that cannot be opened leaves the call up with the microphone, and says so", async () => {
    const denied = () => Promise.reject(Object.assign(new Error("camera/microphone unavailable (NotFoundError)"), { code: "media-failed" }));
    wasm.join.mockImplementationOnce(async () => {
      const r = new FakeRoom();
      // Both at once fail, and so does the camera alone; the microphone alone opens.
      r.enableMedia = async (options?: { audio?: unknown; video?: unknown }) => {
        r.calls.push(["enableMedia", options]);
        if (options?.video) return denied();
        r.localStream = fakeStream(["audio"]);
        return r.localStream;
      };
      rooms.push(r);
      return r;
    });
    const { result } = renderHook(() => useWebRTC({ url: "ws://relay", room: "no-camera" }));
    await waitFor(() => expect(result.current.isAudioEnabled).toBe(true));
    expect(result.current.state).toBe("connected");
    expect(result.current.isVideoEnabled).toBe(false);
    expect(result.current.error?.code).toBe("media-failed");
    expect(result.current.error?.message).toMatch(/the camera could not be opened .*NotFoundError.*microphone only/);
    expect(rooms[0]!.calls.filter((c) => c[0] === "enableMedia").map((c) => c[1])).toEqual([
      { audio: true, video: true },
      { audio: true },
      { video: true },
    ]);
  });

  it("joins without media at all when audio and video are off", async () => {
    const { result } = renderHook(() => useWebRTC({ url: "ws://relay", room: "listen", audio: false, video: false }));
    await waitFor(() => expect(result.current.state).toBe("connected"));
    await tick();
    expect(rooms[0]!.calls.some((c) => c[0] === "enableMedia")).toBe(false);
  });
});

describe("a room left outside the hooks", () => {
  it("empties peers and tracks and turns local media off", async () => {
    const r = new FakeRoom();
    r.peers = [peer("p1")];
    r.localStream = fakeStream(["audio", "video"]);
    const cam = fakeStream(["video"]);
    r.tracks = [{ peerId: "p1", stream: cam, track: cam.getTracks()[0]!, source: "camera", muted: false }];
    const peers = renderHook(() => usePeers(asRoom(r)));
    const tracks = renderHook(() => useRemoteTracks(undefined, asRoom(r)));
    const media = renderHook(() => useLocalMedia(asRoom(r)));
    expect(peers.result.current).toHaveLength(1);
    expect(tracks.result.current).toHaveLength(1);
    expect(media.result.current.camera.enabled).toBe(true);
    await act(() => r.leave());
    expect(peers.result.current).toEqual([]);
    expect(tracks.result.current).toEqual([]);
    expect(media.result.current).toMatchObject({ stream: null, camera: { enabled: false }, microphone: { enabled: false } });
  });

  it("a channel opened after the leave is a warning, not a crash", async () => {
    const r = new FakeRoom();
    await r.leave();
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const { result } = renderHook(() => useDataChannel("game", undefined, { room: asRoom(r) }));
    expect(warn).toHaveBeenCalledWith(expect.stringContaining('"game" could not be opened'), expect.objectContaining({ code: "not-joined" }));
    expect(typeof result.current.send).toBe("function");
    warn.mockRestore();
  });
});

describe("calls before a room exists", () => {
  it("toggles do nothing and say so, without a rejection for an onClick to leak", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const media = renderHook(() => useLocalMedia(null));
    const share = renderHook(() => useScreenShare({ room: null }));
    await expect(media.result.current.microphone.toggle()).resolves.toBeUndefined();
    await expect(media.result.current.camera.toggle()).resolves.toBeUndefined();
    await expect(media.result.current.enable()).resolves.toBeUndefined();
    await expect(share.result.current.toggle()).resolves.toBeUndefined();
    expect(warn).toHaveBeenCalledTimes(4);
    expect(warn.mock.calls[0]![0]).toMatch(/microphone.toggle before the room is joined does nothing \(not in a room yet/);
    warn.mockRestore();
  });
});
