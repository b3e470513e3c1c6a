// A stand-in for the wasm `Room` in hook unit tests: it records calls and lets a test
// fire events. Below the hooks only — the end-to-end tests run the real SDK in Chromium.
import type { PeerInfo, PeerStats, RoomEvents, TrackInfo } from "../src/index.js";

type Handler = (event: unknown) => void;

export class FakeRoom {
  peerId = "me";
  roomId = "r";
  peers: PeerInfo[] = [];
  tracks: TrackInfo[] = [];
  localStream: MediaStream | undefined = undefined;
  signalingState = "connected";
  calls: [string, ...unknown[]][] = [];
  left = 0;
  private handlers = new Map<string, Set<Handler>>();
  /** What the next media call does (resolve with a stream, or reject). */
  media: () => Promise<MediaStream> = () => Promise.resolve(fakeStream(["audio", "video"]));
  /** What `getStats` resolves with. */
  stats: PeerStats[] = [];

  on(event: string, handler: Handler): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => this.off(event, handler);
  }
  off(event: string, handler: Handler): void {
    this.handlers.get(event)?.delete(handler);
  }
  emit<K extends keyof RoomEvents>(event: K, payload: RoomEvents[K]): void {
    for (const h of [...(this.handlers.get(event) ?? [])]) h(payload);
  }
  handlerCount(event: string): number {
    return this.handlers.get(event)?.size ?? 0;
  }
  listenerCount(): number {
    let n = 0;
    for (const s of this.handlers.values()) n += s.size;
    return n;
  }
  send(...args: unknown[]): void {
    this.calls.push(["send", ...args]);
  }
  broadcast(...args: unknown[]): void {
    this.calls.push(["broadcast", ...args]);
  }
  createChannel(...args: unknown[]): void {
    if (this.signalingState === "closed") throw Object.assign(new Error("not in a room"), { code: "not-joined" });
    this.calls.push(["createChannel", ...args]);
  }
  async getStats(): Promise<PeerStats[]> {
    return this.stats;
  }
  async enableMedia(...args: unknown[]): Promise<MediaStream> {
    this.calls.push(["enableMedia", ...args]);
    this.localStream = await this.media();
    return this.localStream;
  }
  setMicrophoneEnabled(on: boolean): void {
    this.calls.push(["setMicrophoneEnabled", on]);
    this.localStream?.getAudioTracks().forEach((t) => (t.enabled = on));
  }
  async setCameraEnabled(on: boolean): Promise<void> {
    this.calls.push(["setCameraEnabled", on]);
    await this.media();
    const s = this.localStream as unknown as FakeStream | undefined;
    if (s) s.list = s.list.filter((t) => t.kind !== "video").concat(on ? [fakeTrack("video")] : []);
  }
  async startScreenShare(...args: unknown[]): Promise<MediaStream> {
    this.calls.push(["startScreenShare", ...args]);
    const stream = await this.media();
    this.tracks = [...this.tracks, { peerId: this.peerId, stream, track: stream.getTracks()[0]!, source: "screen", muted: false }];
    this.emit("track", this.tracks[this.tracks.length - 1]!);
    return stream;
  }
  async stopScreenShare(): Promise<void> {
    this.calls.push(["stopScreenShare"]);
    const mine = this.tracks.find((t) => t.peerId === this.peerId);
    this.tracks = this.tracks.filter((t) => t !== mine);
    if (mine) this.emit("track-removed", mine);
  }
  /** As the SDK's: everything released, `signaling` "closed", then no handler left. */
  async leave(): Promise<void> {
    this.left++;
    if (this.signalingState === "closed") return;
    this.signalingState = "closed";
    this.peers = [];
    this.tracks = [];
    this.localStream = undefined;
    this.emit("signaling", "closed");
    this.handlers.clear();
  }
}

export function fakeTrack(kind: "audio" | "video"): MediaStreamTrack {
  return { kind, enabled: true, readyState: "live", id: Math.random().toString(36) } as unknown as MediaStreamTrack;
}

interface FakeStream {
  list: MediaStreamTrack[];
}

export function fakeStream(kinds: ("audio" | "video")[]): MediaStream {
  const s = {
    list: kinds.map(fakeTrack),
    getTracks() {
      return s.list;
    },
    getAudioTracks() {
      return s.list.filter((t) => t.kind === "audio");
    },
    getVideoTracks() {
      return s.list.filter((t) => t.kind === "video");
    },
  };
  return s as unknown as MediaStream;
}

export function peer(id: string, name = id): PeerInfo {
  return { id, name, connectionState: "new", audioMuted: false, videoMuted: false };
}

/** A stand-in for the SDK's `FileTransfer`: a test drives its events. */
export class FakeTransfer {
  state = "pending";
  bytes = 0;
  blob: Blob | undefined = undefined;
  cancelled = 0;
  private handlers = new Map<string, Set<Handler>>();
  constructor(
    public id: string,
    public name: string,
    public size: number,
    public from: string,
    public to: string,
    public mime = "application/octet-stream",
  ) {}
  on(event: string, handler: Handler): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
  }
  off(event: string, handler: Handler): void {
    this.handlers.get(event)?.delete(handler);
  }
  emit(event: string, payload: unknown): void {
    for (const h of [...(this.handlers.get(event) ?? [])]) h(payload);
  }
  progress(bytes: number, bytesPerSecond = 1000): void {
    this.state = "active";
    this.bytes = bytes;
    this.emit("progress", { bytes, total: this.size, bytesPerSecond });
  }
  cancel(): void {
    this.cancelled++;
  }
  accept(): void {}
  reject(): void {}
}
