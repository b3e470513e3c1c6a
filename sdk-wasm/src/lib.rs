//! # meshwire — the WebRTC SDK, compiled to WebAssembly
//!
//! `Room.join(url, room)` connects to a meshwire relay and meshes with every other peer
//! of the room: media, screen share, data channels and file transfer, negotiated with
//! W3C perfect negotiation, surviving relay drops (reconnect + resume) and network
//! changes (ICE restart); stats, device switching and active-speaker events.
//! docs/sdk.md is the user's guide; docs/architecture.md maps the modules.
//!
//! ## Layout
//! - this file: the JavaScript face (`Room`) and its TypeScript typings — nothing else;
//! - [`room`]: the relay connection, presence, reconnect/resume, and every operation;
//! - [`peer`]: one `RTCPeerConnection` with perfect negotiation and trickle ICE;
//! - [`data`]: data channels with backpressure; [`media`]: local media and slots;
//! - [`files`]: `sendFile` (a channel per transfer, SHA-256 verified); [`stats`]:
//!   `getStats` and connection quality; [`speaking`]: active speaker; [`devices`]:
//!   device listing and the constraints of `switchDevice`;
//! - [`signaling`]: the relay socket; [`wire`]: relay frames and peer signals as
//!   JavaScript values; [`events`]: the emitter; [`error`]: error codes;
//! - [`js`]: small JavaScript helpers, listeners and timers, bindings web-sys lacks.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Without the standard library: with `std` off (the bundle, scripts/build-sdk.sh) no
// crate links it, and the panic handler below replaces std's, whose message
// formatting and hooks cost the bundle kilobytes. Tests and Rust users keep `std`.
#![no_std]

extern crate alloc;

/// What the standard prelude would bring.
mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::boxed::Box;
    pub use alloc::string::String;
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

mod cell;
mod data;
mod devices;
pub mod error;
mod events;
mod files;
mod js;
mod media;
mod peer;
mod room;
mod signaling;
mod speaking;
mod stats;
#[doc(hidden)]
pub mod wire;

/// Talc instead of Rust's default wasm allocator (dlmalloc): 7 KB less wasm, 2.8 KB
/// gzipped (docs/benchmarks.md, "Reading the bundle number"), and faster. Its
/// `disable-realloc-in-place` feature would save only another 0.1 KB gz. Behind the
/// `bundle` feature, which the bundle build turns on: a library must not choose the
/// allocator of every program that links it.
#[cfg(all(
    feature = "bundle",
    not(target_feature = "atomics"),
    target_family = "wasm"
))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// The bundle's panic handler (without `std` someone must provide one): traps, so the
/// JavaScript caller gets a `RuntimeError: unreachable`. The SDK does not panic by
/// design (every failure is a typed `MeshwireError`); what remains are bounds and
/// `RefCell` checks that would be bugs. scripts/build-sdk.sh also compiles panics to a
/// trap where they happen (`-Cpanic=immediate-abort`), so this runs only in a bundle
/// built without that (its fallback, or a Rust user's own `bundle` build).
#[cfg(all(feature = "bundle", not(feature = "std"), target_family = "wasm"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    core::arch::wasm32::unreachable()
}

use crate::prelude::*;
use alloc::rc::Rc;
use core::future::Future;
use core::pin::Pin;
pub use events::EVENTS;
#[doc(hidden)]
pub use files::proof as resume_proof;
use js_sys::Promise;
use room::{Inner, Options};
use wasm_bindgen::prelude::*;

/// A boxed future: async code shared by several callers is boxed once instead of being
/// inlined into each caller's state machine (docs/benchmarks.md).
type Task<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Runs a background task (perfect negotiation, a peer's signal queue, reverting a
/// screen share). Boxed here, so the executor's code exists once for all of them.
fn spawn(task: impl Future<Output = ()> + 'static) {
    let task: Task<'static, ()> = Box::pin(task);
    wasm_bindgen_futures::spawn_local(task);
}

/// The promise an async method returns. Like an `async fn` export, the work starts on
/// the next microtask; unlike one, `future_to_promise` is instantiated once for all.
fn promise(task: impl Future<Output = Result<JsValue, JsValue>> + 'static) -> Promise {
    let task: Task<'static, Result<JsValue, JsValue>> = Box::pin(task);
    wasm_bindgen_futures::future_to_promise(task)
}

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** Options of `Room.join`. */
export interface JoinOptions {
  /** Display name shown to the other peers. */
  name?: string;
  /** App data shown to the other peers (a JSON object, at most 2 KiB). */
  meta?: Record<string, unknown>;
  /** A JWT, when the relay requires one; or a function returning one (or a promise of
   * one), called before the join and before every reconnect, so that a reconnect after
   * the first token expired still gets in. If it throws, rejects or takes longer than
   * `joinTimeoutMs`, `join` fails with `unauthorized`; while reconnecting, the attempt
   * counts as failed. */
  token?: string | (() => string | Promise<string>);
  /** ICE servers tried before the relay's own (STUN/TURN). */
  iceServers?: RTCIceServer[];
  /** `"relay"` forces every connection through TURN. */
  iceTransportPolicy?: RTCIceTransportPolicy;
  /** Start the microphone on join (as for `enableMedia`). */
  audio?: boolean | MediaTrackConstraints;
  /** Start the camera on join (as for `enableMedia`). */
  video?: boolean | MediaTrackConstraints;
  /** Reconnect to the relay after a drop (default true), with exponential backoff. */
  reconnect?: boolean | { maxAttempts?: number; baseDelayMs?: number; maxDelayMs?: number };
  /** After an ICE failure, how long ICE restart may take before an error (default 20000). */
  iceRestartTimeoutMs?: number;
  /** How long the relay may take to admit this peer (default 15000): `join` then fails
   * with `signaling-failed`; while reconnecting, the attempt counts as failed. */
  joinTimeoutMs?: number;
}

/** A peer of the room. */
export interface PeerInfo {
  id: string;
  name?: string;
  meta?: Record<string, unknown>;
  /** From the peer's verified token (`sub`), when the relay requires tokens. */
  userId?: string;
  connectionState: RTCPeerConnectionState;
  audioMuted: boolean;
  videoMuted: boolean;
}

export type TrackSource = "camera" | "microphone" | "screen" | "screen-audio";

/** A track of the room: a remote peer's, or our own screen share (`peerId` = ours). */
export interface TrackInfo { peerId: string; track: MediaStreamTrack; stream: MediaStream; source: TrackSource; muted: boolean; }
/** What the `signaling` event reports: each change of the relay connection, `resumed` among them. */
export type SignalingState = "connected" | "reconnecting" | "resumed" | "closed";

/** An error: `code` is stable (docs/sdk.md lists them), `message` says what to do. */
export interface MeshwireError { code: string; message: string; }

/** Every event a room emits, with its payload. */
export interface RoomEvents {
  "peer-joined": { peer: PeerInfo };
  "peer-left": { peerId: string; reason: "left" | "lost" };
  "peer-connected": { peerId: string };
  "peer-disconnected": { peerId: string };
  "connection-state": { peerId: string; state: RTCPeerConnectionState };
  "track": TrackInfo;
  "track-removed": TrackInfo;
  "mute": { peerId: string; source: TrackSource; muted: boolean };
  "message": { from: string; channel: string; data: string | ArrayBuffer };
  "broadcast": { from: string; data: unknown };
  "signaling": SignalingState;
  "error": MeshwireError;
  /** A peer offers us a file: `accept()` or `reject()` it during this event, else it is accepted. */
  "file": { transfer: FileTransfer };
  /** A peer's connection quality changed (polled every 2 s while someone listens). */
  "quality": { peerId: string; quality: ConnectionQuality };
  /** A peer (or we: `peerId` is ours) started or stopped speaking. */
  "speaking": { peerId: string; speaking: boolean };
  /** A device was plugged in or out (`devicechange`). */
  "devices-changed": { devices: MediaDeviceInfo[] };
}

/** `excellent`: RTT < 150 ms, loss < 1 %, jitter < 20 ms; `good`: < 300 ms, < 3 %, < 50 ms;
 * `poor`: worse; `lost`: not connected. */
export type ConnectionQuality = "excellent" | "good" | "poor" | "lost";

/** One peer connection's stats (`room.getStats()`); rates and loss are over the time since the newest earlier call at least 1 s before (else the oldest). */
export interface PeerStats {
  peerId: string;
  /** Round-trip time of the selected candidate pair, ms. */
  rttMs: number;
  /** Bits per second received / sent over the connection (media and data). */
  bitrateIn: number;
  bitrateOut: number;
  /** Fraction 0..1 of inbound RTP packets lost (0 without media). */
  packetLoss: number;
  /** Highest inbound RTP jitter, ms (0 without media). */
  jitterMs: number;
  /** The selected path: `relay` if either end is a TURN relay; `null` before one is selected. */
  candidateType: "host" | "srflx" | "prflx" | "relay" | null;
  quality: ConnectionQuality;
}

export type FileTransferState = "pending" | "active" | "done" | "cancelled" | "failed";

/** Every event a `FileTransfer` emits, with its payload. */
export interface FileTransferEvents {
  /** Bytes so far: acknowledged by the receiver (sender side) or received (receiver side). */
  "progress": { bytes: number; total: number; bytesPerSecond: number };
  /** Verified (SHA-256) and complete; the receiver gets the file as `blob`. */
  "done": { blob?: Blob };
  /** `integrity-failed`, `transfer-cancelled`, `transfer-rejected` or `transfer-failed`. */
  "error": MeshwireError;
}

export interface SendFileOptions { to: string; name?: string; }

export interface SendOptions { to?: string; channel?: string; }
export interface ChannelOptions { ordered?: boolean; maxRetransmits?: number; maxPacketLifeTime?: number; }
export interface MediaOptions { audio?: boolean | MediaTrackConstraints; video?: boolean | MediaTrackConstraints; }
export interface ScreenShareOptions { replaceCamera?: boolean; audio?: boolean; }
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(typescript_type = "JoinOptions | undefined")]
    /// `JoinOptions` in the typings.
    pub type JsJoinOptions;
    #[wasm_bindgen(typescript_type = "PeerInfo[]")]
    /// `PeerInfo[]` in the typings.
    pub type JsPeers;
    #[wasm_bindgen(typescript_type = "keyof RoomEvents")]
    /// An event name.
    pub type JsEventName;
    #[wasm_bindgen(typescript_type = "(event: any) => void")]
    /// An event handler.
    pub type JsHandler;
    #[wasm_bindgen(typescript_type = "() => void")]
    /// The function `on` returns.
    pub type JsUnsubscribe;
    #[wasm_bindgen(typescript_type = "string | ArrayBuffer | Uint8Array")]
    /// What `send` takes.
    pub type JsData;
    #[wasm_bindgen(typescript_type = "SendOptions | undefined")]
    /// `SendOptions` in the typings.
    pub type JsSendOptions;
    #[wasm_bindgen(typescript_type = "ChannelOptions | undefined")]
    /// `ChannelOptions` in the typings.
    pub type JsChannelOptions;
    #[wasm_bindgen(typescript_type = "MediaOptions | undefined")]
    /// `MediaOptions` in the typings.
    pub type JsMediaOptions;
    #[wasm_bindgen(typescript_type = "SendFileOptions")]
    /// `SendFileOptions` in the typings.
    pub type JsSendFileOptions;
    #[wasm_bindgen(typescript_type = "Blob")]
    /// A `Blob` or `File`.
    pub type JsFile;
    #[wasm_bindgen(typescript_type = "keyof FileTransferEvents")]
    /// A file transfer's event name.
    pub type JsTransferEventName;
    #[wasm_bindgen(typescript_type = "FileTransferState")]
    /// A file transfer's state.
    pub type JsTransferState;
    #[wasm_bindgen(typescript_type = "\"audioinput\" | \"videoinput\"")]
    /// A device kind `switchDevice` takes.
    pub type JsDeviceKind;
    #[wasm_bindgen(typescript_type = "ScreenShareOptions | undefined")]
    /// `ScreenShareOptions` in the typings.
    pub type JsScreenShareOptions;
}

/// A joined room. Create one with `Room.join`.
#[wasm_bindgen]
pub struct Room {
    inner: Rc<Inner>,
}

impl Room {
    /// `Room.join` for Rust callers (the browser tests): the same join, as a future.
    pub async fn join(url: String, room: String, options: JsJoinOptions) -> Result<Room, JsValue> {
        let options = Options::parse(&options);
        let inner = Inner::join(url, room, options).await?;
        Ok(Room { inner })
    }

    /// Whether the room has an `AudioContext` now (tests: none until audio exists).
    #[doc(hidden)]
    pub fn has_audio_context(&self) -> bool {
        self.inner.has_audio_context()
    }

    /// This peer's relay-assigned id (kept across reconnects).
    pub fn peer_id(&self) -> String {
        self.inner.my_id()
    }

    /// The room's name.
    pub fn room_id(&self) -> String {
        self.inner.room_id.clone()
    }

    /// The relay connection's state: `connecting`, `connected`, `reconnecting`, `closed`.
    pub fn signaling_state(&self) -> String {
        self.inner.signaling_state().to_owned()
    }
}

#[wasm_bindgen]
impl Room {
    /// Connects to the relay at `url` (`ws(s)://host[:port]`, `/ws` is added) and
    /// joins `room`. Resolves once the relay has admitted this peer.
    #[wasm_bindgen(js_name = join, unchecked_return_type = "Promise<Room>")]
    pub fn join_js(
        url: js_sys::JsString,
        room: js_sys::JsString,
        options: JsJoinOptions,
    ) -> Promise {
        // Strings as JS values (here and below): the glue then copies nothing in, and a
        // value of another type reads as "" and is refused like an empty one.
        let (url, room) = (string_arg(&url), string_arg(&room));
        promise(async move { Ok(Room::join(url, room, options).await?.into()) })
    }

    /// This peer's relay-assigned id (kept across reconnects).
    #[wasm_bindgen(getter, js_name = peerId)]
    pub fn peer_id_js(&self) -> js_sys::JsString {
        self.peer_id().as_str().into()
    }

    /// The room's name.
    #[wasm_bindgen(getter, js_name = roomId)]
    pub fn room_id_js(&self) -> js_sys::JsString {
        self.inner.room_id.as_str().into()
    }

    /// The other peers, as they are now.
    #[wasm_bindgen(getter)]
    pub fn peers(&self) -> JsPeers {
        self.inner.peer_views().unchecked_into()
    }

    /// Every current track: the other peers' (as `track` announced them, with their
    /// latest `source` and `muted`), then our own screen share.
    #[wasm_bindgen(getter, unchecked_return_type = "TrackInfo[]")]
    pub fn tracks(&self) -> js_sys::Array {
        self.inner.track_views()
    }

    /// The microphone/camera stream once `enableMedia` (or `audio`/`video` on join)
    /// succeeded.
    #[wasm_bindgen(getter, js_name = localStream)]
    pub fn local_stream(&self) -> Option<web_sys::MediaStream> {
        self.inner.local.borrow().stream.clone()
    }

    /// The relay connection's state: `connecting`, `connected`, `reconnecting`, `closed`.
    #[wasm_bindgen(getter, js_name = signalingState)]
    pub fn signaling_state_js(&self) -> js_sys::JsString {
        self.inner.signaling_state().into()
    }

    /// Subscribes `handler` to `event`; returns a function that unsubscribes it.
    pub fn on(&self, event: JsEventName, handler: JsHandler) -> Result<JsUnsubscribe, JsValue> {
        let (event, handler) = event_args(event, handler)?;
        let unsubscribe = self.inner.emitter.on(&event, &handler);
        self.inner.subscribed(&event);
        Ok(unsubscribe.unchecked_into())
    }

    /// Unsubscribes `handler` from `event`.
    pub fn off(&self, event: JsEventName, handler: JsHandler) -> Result<(), JsValue> {
        let (event, handler) = event_args(event, handler)?;
        self.inner.emitter.off(&event, &handler);
        Ok(())
    }

    /// Sends over a data channel (the default one unless `channel`), to one peer (`to`)
    /// or to all. Waits in a queue while the channel is busy or not yet open.
    pub fn send(&self, data: JsData, options: JsSendOptions) -> Result<(), JsValue> {
        let options: JsValue = options.into();
        let to = js::get_string(&options, "to");
        let channel = js::get_string(&options, "channel");
        Ok(self.inner.send(&data.into(), to, channel)?)
    }

    /// Sends JSON to every other peer through the relay (works before P2P is up). Kept
    /// under the relay's rate limit: a burst waits and goes out in order. Throws
    /// `rate-limited` when 256 messages already wait; for a high rate use `send`.
    pub fn broadcast(&self, data: JsValue) -> Result<(), JsValue> {
        Ok(self.inner.broadcast(&data)?)
    }

    /// Sends a file (a `Blob` or `File`) to one peer over a channel of its own, in chunks
    /// paced by the channel's buffer, verified by SHA-256 on arrival. The peer sees a
    /// `file` event with its side of the transfer.
    #[wasm_bindgen(js_name = sendFile)]
    pub fn send_file(
        &self,
        file: JsFile,
        options: JsSendFileOptions,
    ) -> Result<FileTransfer, JsValue> {
        let options: JsValue = options.into();
        let to = js::get_string(&options, "to");
        let name = js::get_string(&options, "name");
        // Test hook, not in the typings: flip the byte at this offset after hashing.
        let corrupt_at = js::get_f64(&options, "corruptAt");
        let t = self.inner.send_file(&file.into(), to, name, corrupt_at)?;
        Ok(FileTransfer { inner: t })
    }

    /// Opens a data channel `label` to every current and future peer.
    #[wasm_bindgen(js_name = createChannel)]
    pub fn create_channel(
        &self,
        label: js_sys::JsString,
        options: JsChannelOptions,
    ) -> Result<(), JsValue> {
        let options = room::channel_options(&options.into())?;
        Ok(self.inner.create_channel(string_arg(&label), options)?)
    }

    /// Opens the microphone and/or camera (both without options) and sends them to
    /// every current and future peer. A kind set to `false` is stopped; a kind left out
    /// stays as it is; a muted microphone stays muted.
    #[wasm_bindgen(js_name = enableMedia, unchecked_return_type = "Promise<MediaStream>")]
    pub fn enable_media(&self, constraints: JsMediaOptions) -> Promise {
        let inner = self.inner.clone();
        promise(async move { Ok(inner.enable_media(&constraints.into()).await?.into()) })
    }

    /// Mutes (`false`) or unmutes the microphone; the others get a `mute` event.
    #[wasm_bindgen(js_name = setMicrophoneEnabled)]
    pub fn set_microphone_enabled(&self, on: bool) {
        self.inner.set_microphone_enabled(on);
    }

    /// Turns the camera off (releasing the device) or on again, without renegotiation.
    #[wasm_bindgen(js_name = setCameraEnabled, unchecked_return_type = "Promise<void>")]
    pub fn set_camera_enabled(&self, on: bool) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.set_camera_enabled(on).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Shares a screen: in place of the camera by default (no renegotiation), or as an
    /// extra track with `replaceCamera: false`. Reverts by itself when the user stops
    /// sharing from the browser.
    #[wasm_bindgen(
        js_name = startScreenShare,
        unchecked_return_type = "Promise<MediaStream>"
    )]
    pub fn start_screen_share(&self, options: JsScreenShareOptions) -> Promise {
        let options: JsValue = options.into();
        let replace = js::get_bool(&options, "replaceCamera").unwrap_or(true);
        let audio = js::get_bool(&options, "audio").unwrap_or(false);
        let inner = self.inner.clone();
        promise(async move { Ok(inner.start_screen_share(replace, audio).await?.into()) })
    }

    /// Stops the screen share and restores the camera.
    #[wasm_bindgen(js_name = stopScreenShare, unchecked_return_type = "Promise<void>")]
    pub fn stop_screen_share(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.stop_screen_share().await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Stats of every peer connection (`PeerStats`); rates and loss are over the time
    /// since the newest earlier call at least 1 s before (else the oldest; 0 on the first).
    #[wasm_bindgen(js_name = getStats, unchecked_return_type = "Promise<PeerStats[]>")]
    pub fn get_stats(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move { Ok(inner.get_stats().await?.into()) })
    }

    /// The media devices (`enumerateDevices`).
    #[wasm_bindgen(
        js_name = listDevices,
        unchecked_return_type = "Promise<MediaDeviceInfo[]>"
    )]
    pub fn list_devices(&self) -> Promise {
        promise(async move { Ok(devices::list().await?.into()) })
    }

    /// Uses another microphone (`audioinput`) or camera (`videoinput`): the new track
    /// replaces the old one on every connection, without renegotiation.
    #[wasm_bindgen(js_name = switchDevice, unchecked_return_type = "Promise<void>")]
    pub fn switch_device(
        &self,
        kind: JsDeviceKind,
        #[wasm_bindgen(js_name = "deviceId")] device_id: js_sys::JsString,
    ) -> Promise {
        let inner = self.inner.clone();
        let device_id = string_arg(&device_id);
        let kind: JsValue = kind.into();
        let kind = kind.as_string().unwrap_or_default();
        promise(async move {
            inner.switch_device(&kind, &device_id).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Leaves the room: the others see `peer-left` at once; every connection, track
    /// and handler is released.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn leave(&self) -> Promise {
        let inner = self.inner.clone();
        promise(async move {
            inner.leave();
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// One file transfer, on the sending or the receiving side (`sendFile`, or the room's
/// `file` event).
#[wasm_bindgen]
pub struct FileTransfer {
    inner: Rc<files::Transfer>,
}

impl FileTransfer {
    /// The JavaScript object for `transfer`.
    fn wrap(inner: Rc<files::Transfer>) -> FileTransfer {
        FileTransfer { inner }
    }

    /// The transfer's id (the same on both sides).
    pub fn id(&self) -> String {
        self.inner.id.clone()
    }

    /// The file's name.
    pub fn name(&self) -> String {
        self.inner.meta.borrow().name.clone()
    }

    /// The file's MIME type (`""` if unknown).
    pub fn mime(&self) -> String {
        self.inner.meta.borrow().mime.clone()
    }

    /// The sender's peer id.
    pub fn from(&self) -> String {
        self.inner.from.borrow().clone()
    }

    /// The receiver's peer id.
    pub fn to(&self) -> String {
        self.inner.to.borrow().clone()
    }
}

#[wasm_bindgen]
impl FileTransfer {
    /// The transfer's id (the same on both sides).
    #[wasm_bindgen(getter, js_name = id)]
    pub fn id_js(&self) -> js_sys::JsString {
        self.inner.id.as_str().into()
    }

    /// The file's name.
    #[wasm_bindgen(getter, js_name = name)]
    pub fn name_js(&self) -> js_sys::JsString {
        self.inner.meta.borrow().name.as_str().into()
    }

    /// The file's size in bytes.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.inner.meta.borrow().size
    }

    /// The file's MIME type (`""` if unknown).
    #[wasm_bindgen(getter, js_name = mime)]
    pub fn mime_js(&self) -> js_sys::JsString {
        self.inner.meta.borrow().mime.as_str().into()
    }

    /// The sender's peer id.
    #[wasm_bindgen(getter, js_name = from)]
    pub fn from_js(&self) -> js_sys::JsString {
        self.inner.from.borrow().as_str().into()
    }

    /// The receiver's peer id.
    #[wasm_bindgen(getter, js_name = to)]
    pub fn to_js(&self) -> js_sys::JsString {
        self.inner.to.borrow().as_str().into()
    }

    /// `pending`, `active`, `done`, `cancelled` or `failed`.
    #[wasm_bindgen(getter)]
    pub fn state(&self) -> JsTransferState {
        JsValue::from_str(self.inner.state().as_str()).unchecked_into()
    }

    /// Bytes transferred so far (acknowledged by the receiver, on the sending side).
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> f64 {
        self.inner.bytes()
    }

    /// The received file, once `done` (receiving side only).
    #[wasm_bindgen(getter, unchecked_return_type = "Blob | undefined")]
    pub fn blob(&self) -> JsValue {
        self.inner
            .blob
            .borrow()
            .clone()
            .unwrap_or(JsValue::UNDEFINED)
    }

    /// Subscribes `handler` to `event`; returns a function that unsubscribes it.
    pub fn on(
        &self,
        event: JsTransferEventName,
        handler: JsHandler,
    ) -> Result<JsUnsubscribe, JsValue> {
        let (event, handler) = handler_args(event.into(), handler, &files::TRANSFER_EVENTS)?;
        Ok(self.inner.emitter.on(&event, &handler).unchecked_into())
    }

    /// Unsubscribes `handler` from `event`.
    pub fn off(&self, event: JsTransferEventName, handler: JsHandler) -> Result<(), JsValue> {
        let (event, handler) = handler_args(event.into(), handler, &files::TRANSFER_EVENTS)?;
        self.inner.emitter.off(&event, &handler);
        Ok(())
    }

    /// Receiving side, during the room's `file` event: take the file.
    pub fn accept(&self) {
        self.inner.accept();
    }

    /// Receiving side, during the room's `file` event: refuse the file (the sender gets
    /// `error` `transfer-rejected`).
    pub fn reject(&self) {
        self.inner.reject();
    }

    /// Either side: stops the transfer; both sides get `error` `transfer-cancelled`.
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

fn event_args(
    event: JsEventName,
    handler: JsHandler,
) -> Result<(String, js_sys::Function), JsValue> {
    handler_args(event.into(), handler, &events::EVENTS)
}

/// A string argument, or "" for a value of another type (typed `string`, but nothing
/// stops JavaScript passing anything).
fn string_arg(s: &js_sys::JsString) -> String {
    s.as_string().unwrap_or_default()
}

fn handler_args(
    event: JsValue,
    handler: JsHandler,
    known: &[&str],
) -> Result<(String, js_sys::Function), JsValue> {
    let name = event
        .as_string()
        .filter(|e| known.contains(&e.as_str()))
        .ok_or_else(|| {
            JsValue::from(error::Error::new(
                error::Code::InvalidArgument,
                js::cat(&[
                    "unknown event ",
                    &js::stringify(&event).unwrap_or_else(|| String::from("of that type")),
                    "; see the typings (RoomEvents, FileTransferEvents) for the names",
                ]),
            ))
        })?;
    let handler: JsValue = handler.into();
    let handler = handler.dyn_into::<js_sys::Function>().map_err(|_| {
        JsValue::from(error::Error::new(
            error::Code::InvalidArgument,
            "the handler must be a function",
        ))
    })?;
    Ok((name, handler))
}
