'use client';
// The local side's media state (microphone, camera, screen share), kept once per room so
// every hook and component that shows it agrees. React reads it through
// useSyncExternalStore; the SDK remains the source of truth for the tracks themselves.
import { isMeshwireError, type MediaOptions, type MeshwireErrorObject, type Room, type ScreenShareOptions } from "../index.js";
import { perRoom, Store } from "./store.js";

export interface LocalMediaState {
  /** The microphone/camera stream (`room.localStream`). */
  stream: MediaStream | null;
  microphone: boolean;
  camera: boolean;
  /** Our screen share's stream while sharing. */
  screen: MediaStream | null;
  microphonePending: boolean;
  cameraPending: boolean;
  screenPending: boolean;
  /** The last media call's failure (`media-failed` when a device was denied, …). */
  error: MeshwireErrorObject | null;
}

export const NO_LOCAL_MEDIA: LocalMediaState = Object.freeze({
  stream: null,
  microphone: false,
  camera: false,
  screen: null,
  microphonePending: false,
  cameraPending: false,
  screenPending: false,
  error: null,
});

function asError(e: unknown): MeshwireErrorObject {
  if (isMeshwireError(e)) return e;
  return Object.assign(new Error(String(e)), { code: "media-failed" });
}

function live(stream: MediaStream | null, kind: "audio" | "video"): boolean {
  return !!stream?.getTracks().some((t) => t.kind === kind && t.readyState === "live" && t.enabled);
}

/** One room's local media state and the calls that change it. */
export class LocalMedia extends Store<LocalMediaState> {
  constructor(private readonly room: Room) {
    const stream = room.localStream ?? null;
    const screen = room.tracks.find((t) => t.peerId === room.peerId && t.source === "screen");
    super({
      ...NO_LOCAL_MEDIA,
      stream,
      microphone: live(stream, "audio"),
      camera: live(stream, "video"),
      screen: screen?.stream ?? null,
    });
    // Our own share also ends from the browser's "Stop sharing" button.
    room.on("track", (e) => {
      if (e.peerId === room.peerId && e.source === "screen") this.set({ screen: e.stream });
    });
    room.on("track-removed", (e) => {
      if (e.peerId === room.peerId && e.source === "screen") this.set({ screen: null });
    });
    // Leaving stops every local track, also a `room.leave()` made outside the hooks.
    room.on("signaling", (state) => {
      if (state === "closed") this.set({ stream: null, microphone: false, camera: false, screen: null });
    });
  }

  private set(patch: Partial<LocalMediaState>): void {
    this.publish({ ...this.snapshot, ...patch });
  }

  /** Runs one media call with its `pending` flag; a failure goes to `error`. */
  private async run(pending: "microphonePending" | "cameraPending" | "screenPending", call: () => Promise<Partial<LocalMediaState>>): Promise<void> {
    this.set({ [pending]: true, error: null });
    try {
      this.set({ ...(await call()), [pending]: false });
    } catch (e) {
      this.set({ [pending]: false, error: asError(e) });
    }
  }

  private started = false;

  /**
   * The media `useRoom`'s options ask for (`useWebRTC`, the provider), once per room
   * after joining: both kinds at once, and if that
   * fails, each on its own, so a desktop without a webcam or a refused camera still
   * has its microphone in the call (and the other way round). What failed goes to
   * `error`, naming the kind; the call goes on either way.
   */
  async start(audio: MediaOptions["audio"], video: MediaOptions["video"]): Promise<void> {
    if (this.started || (!audio && !video)) return;
    this.started = true;
    this.set({ microphonePending: !!audio, cameraPending: !!video, error: null });
    const open = async (options: MediaOptions) => {
      const stream = await this.room.enableMedia(options);
      this.set({ stream, microphone: live(stream, "audio"), camera: live(stream, "video") });
    };
    let error: MeshwireErrorObject | null = null;
    try {
      await open({ audio, video });
    } catch (both) {
      error = asError(both);
      if (audio && video) {
        const failed: string[] = [];
        for (const [what, options] of [["microphone", { audio }], ["camera", { video }]] as const) {
          try {
            await open(options);
          } catch (e) {
            failed.push(what);
            error = asError(e);
          }
        }
        if (failed.length === 1) {
          const working = failed[0] === "camera" ? "microphone" : "camera";
          error = Object.assign(new Error(`the ${failed[0]} could not be opened (${error?.message}); the call goes on with the ${working} only`), {
            code: error?.code ?? "media-failed",
          }) as MeshwireErrorObject;
        } else if (failed.length === 0) {
          error = null;
        } else {
          error = Object.assign(new Error(`the camera and the microphone could not be opened (${error?.message})`), {
            code: error?.code ?? "media-failed",
          }) as MeshwireErrorObject;
        }
      }
    }
    this.set({ microphonePending: false, cameraPending: false, error });
  }

  /** Starts the microphone and/or camera (`room.enableMedia`). */
  enable(options?: MediaOptions): Promise<void> {
    // Without options both open; with options, only the kinds they name.
    const video = options ? Boolean(options.video) : true;
    return this.run(video ? "cameraPending" : "microphonePending", async () => {
      const stream = await this.room.enableMedia(options);
      return { stream, microphone: live(stream, "audio"), camera: live(stream, "video") };
    });
  }

  setMicrophone(on: boolean): Promise<void> {
    return this.run("microphonePending", async () => {
      if (on && !this.room.localStream?.getAudioTracks().length) {
        // No microphone yet: open it (the camera, left out, stays as it is).
        const stream = await this.room.enableMedia({ audio: true });
        return { stream, microphone: live(stream, "audio"), camera: live(stream, "video") };
      }
      this.room.setMicrophoneEnabled(on);
      return { microphone: on };
    });
  }

  setCamera(on: boolean): Promise<void> {
    return this.run("cameraPending", async () => {
      await this.room.setCameraEnabled(on);
      const stream = this.room.localStream ?? null;
      return { stream, camera: live(stream, "video") };
    });
  }

  startScreenShare(options?: ScreenShareOptions): Promise<void> {
    return this.run("screenPending", async () => ({ screen: await this.room.startScreenShare(options) }));
  }

  stopScreenShare(): Promise<void> {
    return this.run("screenPending", async () => {
      await this.room.stopScreenShare();
      return { screen: null };
    });
  }

  /**
   * Reads the stream again from the room, after a call that changes it elsewhere
   * (`switchDevice`, which may start a microphone that was not there).
   */
  refresh(): void {
    const stream = this.room.localStream ?? null;
    this.set({ stream, microphone: live(stream, "audio"), camera: live(stream, "video") });
  }

  clearError(): void {
    this.set({ error: null });
  }
}

/** The room's `LocalMedia`, made on first use. */
export const localMedia = perRoom((room) => new LocalMedia(room));
