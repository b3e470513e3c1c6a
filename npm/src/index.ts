// meshwire — the core entry point (`import { Room } from "meshwire"`).
//
// The WebAssembly SDK (sdk-wasm/, built into ./wasm/) does the work; this file only
// loads it on first use and gives `Room` precise typings. Importing it touches no
// browser API, so it is safe in Node and during server rendering: the module is fetched
// and instantiated when `Room.join` (or `init`) is first called, in the browser.
import initWasm, { Room as WasmRoom, type FileTransfer as WasmFileTransfer } from "./wasm/meshwire.js";
import type {
  ChannelOptions,
  FileTransferEvents as WasmFileTransferEvents,
  JoinOptions,
  MediaOptions,
  RoomEvents as WasmRoomEvents,
  ScreenShareOptions,
  SendFileOptions,
  SendOptions,
} from "./wasm/meshwire.js";

export type {
  ConnectionQuality,
  FileTransferState,
  PeerStats,
  SendFileOptions,
  ChannelOptions,
  JoinOptions,
  MediaOptions,
  PeerInfo,
  ScreenShareOptions,
  SendOptions,
  SignalingState,
  TrackInfo,
  TrackSource,
} from "./wasm/meshwire.js";

/** An `error` event's payload: `code` is one of docs/sdk.md's, `message` says what to do. */
export interface MeshwireError {
  code: ErrorCode;
  message: string;
}

/** Every event a room emits, with its payload (`file` carries the typed `FileTransfer`). */
export type RoomEvents = Omit<WasmRoomEvents, "file" | "error"> & {
  file: { transfer: FileTransfer };
  error: MeshwireError;
};

/** Every event a `FileTransfer` emits, with its payload. */
export type FileTransferEvents = Omit<WasmFileTransferEvents, "error"> & {
  /** `integrity-failed`, `transfer-cancelled`, `transfer-rejected` or `transfer-failed`. */
  error: MeshwireError;
};

/**
 * `room.signalingState`: the relay connection now. (`SignalingState` is what the
 * `signaling` event reports: the changes, `resumed` among them.)
 */
export type SignalingConnectionState = "connecting" | "connected" | "reconnecting" | "closed";

/** Every event name a room emits. */
export type RoomEventName = keyof RoomEvents;

/** A handler for event `K`. */
export type RoomEventHandler<K extends RoomEventName> = (event: RoomEvents[K]) => void;

/** One file transfer, either side (docs/sdk.md, "File transfer"). */
export interface FileTransfer extends Omit<WasmFileTransfer, "on" | "off" | "free"> {
  /** Subscribes to `progress`, `done` or `error`; returns the unsubscribe function. */
  on<K extends keyof FileTransferEvents>(event: K, handler: (event: FileTransferEvents[K]) => void): () => void;
  off<K extends keyof FileTransferEvents>(event: K, handler: (event: FileTransferEvents[K]) => void): void;
}

/**
 * A joined room (docs/sdk.md). The SDK's own class with `on`/`off` typed per event:
 * `room.on("peer-left", ({ peerId, reason }) => …)`.
 */
export interface Room
  extends Omit<
    WasmRoom,
    | "on"
    | "off"
    | "free"
    | "send"
    | "createChannel"
    | "enableMedia"
    | "startScreenShare"
    | "sendFile"
    | "signalingState"
  > {
  /** The relay connection: `connecting`, `connected`, `reconnecting` or `closed`. */
  readonly signalingState: SignalingConnectionState;
  /** Subscribes `handler` to `event`; returns a function that unsubscribes it. */
  on<K extends RoomEventName>(event: K, handler: RoomEventHandler<K>): () => void;
  /** Unsubscribes `handler` from `event`. */
  off<K extends RoomEventName>(event: K, handler: RoomEventHandler<K>): void;
  /** Sends over a data channel, to everyone or to `options.to` (docs/sdk.md). */
  send(data: string | ArrayBuffer | Uint8Array, options?: SendOptions): void;
  /** Opens a data channel `label` to every current and future peer. */
  createChannel(label: string, options?: ChannelOptions): void;
  /** Starts the microphone and/or camera (default both). */
  enableMedia(options?: MediaOptions): Promise<MediaStream>;
  /** Sends `file` to one peer (`to`), verified by SHA-256 on arrival. */
  sendFile(file: Blob, options: SendFileOptions): FileTransfer;
  /** Shares a screen, in place of the camera unless `replaceCamera: false`. */
  startScreenShare(options?: ScreenShareOptions): Promise<MediaStream>;
}

/** The stable error codes of docs/sdk.md ("Error codes"); relay codes may be added. */
export type ErrorCode =
  | "invalid-argument"
  | "not-joined"
  | "unknown-peer"
  | "channel-not-open"
  | "message-too-large"
  | "media-failed"
  | "signaling-failed"
  | "peer-connection-failed"
  | "unsupported"
  | "invalid-room"
  | "room-full"
  | "unauthorized"
  | "rate-limited"
  | "too-large"
  | "integrity-failed"
  | "transfer-cancelled"
  | "transfer-rejected"
  | "transfer-failed"
  | (string & {});

/** What every meshwire call throws: an `Error` with a stable `code`. */
export interface MeshwireErrorObject extends Error {
  code: ErrorCode;
}

/** True for errors thrown by meshwire (they carry a `code`). */
export function isMeshwireError(error: unknown): error is MeshwireErrorObject {
  return error instanceof Error && typeof (error as { code?: unknown }).code === "string";
}

/** Options of `init`. */
export interface InitOptions {
  /**
   * Where `meshwire_bg.wasm` is served from, when not next to the module (a CDN, a
   * custom public path). By default the bundler finds it: the SDK refers to it with
   * `new URL("meshwire_bg.wasm", import.meta.url)`, which Vite, webpack, Next.js and
   * esbuild all follow.
   */
  wasmUrl?: string | URL;
  /** An already compiled module (or its bytes), e.g. from your own loader. */
  module?: WebAssembly.Module | BufferSource;
}

let loading: Promise<void> | undefined;
/** Whether the load under way is from a place `init` was given. */
let loadingFromOption = false;

function error(code: ErrorCode, message: string): MeshwireErrorObject {
  return Object.assign(new Error(message), { code });
}

function load(source: InitOptions["module"] | string | URL | undefined): Promise<void> {
  const attempt: Promise<void> = initWasm(source === undefined ? undefined : { module_or_path: source }).then(
    () => undefined,
    (cause: unknown) => {
      if (loading === attempt) loading = undefined;
      throw Object.assign(
        error(
          "unsupported",
          `meshwire could not load its WebAssembly module (${String(cause)}); check that meshwire_bg.wasm is served, or pass init({ wasmUrl })`,
        ),
        { cause },
      );
    },
  );
  return attempt;
}

/**
 * Loads the WebAssembly module. Optional: `Room.join` calls it. Call it yourself to
 * load early, or to say where the wasm file is. Later calls return the first load's
 * promise (a failed load may be retried). If a `Room.join` already began loading from
 * the default place (a child component's effect runs before its parent's), a `wasmUrl`
 * or `module` given here is used should that load fail. On the server it does nothing
 * and its promise rejects with `unsupported` (marked handled, so calling it at a client
 * module's top level is safe under server rendering).
 */
export function init(options: InitOptions = {}): Promise<void> {
  if (typeof window === "undefined" || typeof WebAssembly === "undefined") {
    const refused = Promise.reject(
      error(
        "unsupported",
        "meshwire runs in the browser: call Room.join/init from an effect or an event handler, not during server rendering",
      ),
    );
    refused.catch(() => undefined);
    return refused;
  }
  const source = options.module ?? options.wasmUrl;
  if (!loading) {
    loading = load(source);
    loadingFromOption = source !== undefined;
  } else if (source !== undefined && !loadingFromOption) {
    const fallback: Promise<void> = loading.catch(() => load(source));
    fallback.catch(() => {
      if (loading === fallback) loading = undefined;
    });
    loading = fallback;
    loadingFromOption = true;
  }
  return loading;
}

/**
 * `init()`, and if the load it waited for failed but `init({ wasmUrl })` meanwhile said
 * where else to look, that load too.
 */
async function loaded(): Promise<void> {
  for (;;) {
    const current = init();
    try {
      return await current;
    } catch (e) {
      if (loading === undefined || loading === current) throw e;
    }
  }
}

/** Joins rooms: `const room = await Room.join(url, "standup", { name: "Ada" })`. */
export const Room = {
  /**
   * Connects to the relay at `url` (`ws(s)://host[:port]`) and joins `room`; loads the
   * WebAssembly module first if needed. Rejects with a coded error (docs/sdk.md).
   */
  async join(url: string, room: string, options?: JoinOptions): Promise<Room> {
    await loaded();
    return (await WasmRoom.join(url, room, options)) as unknown as Room;
  },
};
