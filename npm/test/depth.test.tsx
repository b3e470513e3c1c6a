import { act, renderHook, waitFor } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { FakeRoom, FakeTransfer, fakeStream, peer } from "./fakeRoom.js";
import { useConnectionQuality, useFileTransfer, useLocalMedia, useMediaDevices, useSpeaking } from "../src/react/index.js";
import type { Room } from "../src/index.js";

class FilesRoom extends FakeRoom {
  sent: FakeTransfer[] = [];
  switched: [string, string][] = [];
  sendFile(file: Blob, { to, name }: { to: string; name?: string }) {
    const t = new FakeTransfer(`t${this.sent.length}`, name ?? "blob", file.size, this.peerId, to);
    this.sent.push(t);
    return t;
  }
  async switchDevice(kind: string, id: string) {
    if (id === "gone") throw Object.assign(new Error("no such device"), { code: "media-failed" });
    this.switched.push([kind, id]);
  }
}
const asRoom = (r: FakeRoom) => r as unknown as Room;

describe("useFileTransfer", () => {
  it("lists sent and received transfers with live progress and the received blob", () => {
    const r = new FilesRoom();
    r.peers = [peer("p1"), peer("p2")];
    const { result } = renderHook(() => useFileTransfer(asRoom(r)));
    act(() => void result.current.sendFileToAll(new Blob(["12345678"]), "a.txt"));
    expect(r.sent.map((t) => t.to)).toEqual(["p1", "p2"]);
    expect(result.current.transfers.map((t) => [t.direction, t.to, t.state])).toEqual([
      ["send", "p1", "pending"],
      ["send", "p2", "pending"],
    ]);
    act(() => r.sent[0]!.progress(4, 2000));
    expect(result.current.transfers[0]).toMatchObject({ progress: 0.5, bytesPerSecond: 2000, state: "active" });

    const incoming = new FakeTransfer("in1", "b.bin", 10, "p2", "me");
    act(() => r.emit("file", { transfer: incoming as never }));
    const blob = new Blob(["0123456789"]);
    act(() => {
      incoming.bytes = 10;
      incoming.state = "done";
      incoming.blob = blob;
      incoming.emit("done", { blob });
    });
    const got = result.current.transfers.find((t) => t.id === "in1")!;
    expect(got).toMatchObject({ direction: "receive", progress: 1, state: "done", from: "p2" });
    expect(got.blob).toBe(blob);
    act(() => result.current.clearFinished());
    expect(result.current.transfers.map((t) => t.id)).toEqual(["t0", "t1"]);
  });

  it("a failed transfer carries its code", () => {
    const r = new FilesRoom();
    const { result } = renderHook(() => useFileTransfer(asRoom(r)));
    const t = new FakeTransfer("x", "c.bin", 4, "p1", "me");
    act(() => r.emit("file", { transfer: t as never }));
    act(() => {
      t.state = "failed";
      t.emit("error", { code: "integrity-failed", message: "the file arrived damaged" });
    });
    expect(result.current.transfers[0]!.error?.code).toBe("integrity-failed");
  });
});

describe("useSpeaking / useConnectionQuality", () => {
  it("follow their peer's events only", () => {
    const r = new FakeRoom();
    const speaking = renderHook(() => useSpeaking("p1", asRoom(r)));
    const quality = renderHook(() => useConnectionQuality("p1", asRoom(r)));
    expect(speaking.result.current).toBe(false);
    expect(quality.result.current).toBeNull();
    act(() => {
      r.emit("speaking", { peerId: "p2", speaking: true });
      r.emit("quality", { peerId: "p2", quality: "poor" });
    });
    expect(speaking.result.current).toBe(false);
    expect(quality.result.current).toBeNull();
    act(() => {
      r.emit("speaking", { peerId: "p1", speaking: true });
      r.emit("quality", { peerId: "p1", quality: "good" });
    });
    expect(speaking.result.current).toBe(true);
    expect(quality.result.current).toBe("good");
    act(() => r.emit("speaking", { peerId: "p1", speaking: false }));
    expect(speaking.result.current).toBe(false);
  });
});

describe("useSpeaking mounted mid-sentence", () => {
  it("shows who already speaks, listens only while mounted, and forgets a left room", async () => {
    const r = new FakeRoom();
    const first = renderHook(() => useSpeaking("p1", asRoom(r)));
    act(() => r.emit("speaking", { peerId: "p1", speaking: true }));
    expect(first.result.current).toBe(true);
    // A tile mounted while p1 talks: p1 sent no new event, the tile knows anyway.
    const later = renderHook(() => useSpeaking("p1", asRoom(r)));
    expect(later.result.current).toBe(true);
    const me = renderHook(() => useSpeaking("me", asRoom(r)));
    expect(me.result.current).toBe(false);
    act(() => r.emit("speaking", { peerId: "p1", speaking: false }));
    expect([first.result.current, later.result.current]).toEqual([false, false]);

    // One SDK listener however many hooks, and none once they are gone (the SDK stops
    // its analysers when nobody listens).
    expect(r.handlerCount("speaking")).toBe(1);
    first.unmount(); later.unmount(); me.unmount();
    expect(r.handlerCount("speaking")).toBe(0);

    const again = renderHook(() => useSpeaking("p2", asRoom(r)));
    act(() => r.emit("speaking", { peerId: "p2", speaking: true }));
    expect(again.result.current).toBe(true);
    await act(() => r.leave());
    expect(again.result.current).toBe(false);
  });
});

describe("useConnectionQuality mounted mid-call", () => {
  it("starts from the room's stats, and events take over", async () => {
    const r = new FakeRoom();
    r.stats = [{ peerId: "p1", rttMs: 20, bitrateIn: 1e6, bitrateOut: 1e6, packetLoss: 0, jitterMs: 1, candidateType: "host", quality: "excellent" }];
    const quality = renderHook(() => useConnectionQuality("p1", asRoom(r)));
    await waitFor(() => expect(quality.result.current).toBe("excellent"));
    act(() => r.emit("quality", { peerId: "p1", quality: "poor" }));
    expect(quality.result.current).toBe("poor");
    // No stats for a peer not (yet) connected: still unknown.
    const other = renderHook(() => useConnectionQuality("p9", asRoom(r)));
    await act(async () => undefined);
    expect(other.result.current).toBeNull();
  });
});

describe("useMediaDevices with useLocalMedia", () => {
  it("a switch that starts the microphone shows in the shared local media state", async () => {
    const r = new FilesRoom();
    r.switchDevice = async (kind: string, id: string) => {
      r.switched.push([kind, id]);
      r.localStream = fakeStream(["audio"]);
    };
    const devices = renderHook(() => useMediaDevices({ room: asRoom(r) }));
    const media = renderHook(() => useLocalMedia(asRoom(r)));
    expect(media.result.current.microphone.enabled).toBe(false);
    await act(() => devices.result.current.switchDevice("audioinput", "mic2"));
    expect(media.result.current.microphone.enabled).toBe(true);
    expect(media.result.current.stream).toBe(r.localStream);
  });
});

describe("useMediaDevices", () => {
  it("switches through the room and reports a failure", async () => {
    const r = new FilesRoom();
    const { result } = renderHook(() => useMediaDevices({ kind: "videoinput", room: asRoom(r) }));
    await act(() => result.current.switchDevice("videoinput", "cam2"));
    expect(r.switched).toEqual([["videoinput", "cam2"]]);
    // A failure goes to `error`; the call itself resolves (an onClick needs no catch).
    await act(() => result.current.switchDevice("videoinput", "gone"));
    expect(result.current.error?.code).toBe("media-failed");
    act(() =>
      r.emit("devices-changed", {
        devices: [
          { kind: "videoinput", deviceId: "c", label: "Cam", groupId: "", toJSON: () => ({}) },
          { kind: "audioinput", deviceId: "m", label: "Mic", groupId: "", toJSON: () => ({}) },
        ],
      }),
    );
    expect(result.current.devices.map((d) => d.deviceId)).toEqual(["c"]);
  });
});
