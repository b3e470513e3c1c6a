//! File transfer (`room.sendFile`): one dedicated, ordered and reliable data channel
//! per transfer, labelled [`LABEL_PREFIX`] + the transfer id, so a transfer has its own
//! SCTP stream and send buffer and chat on the default channel is not queued behind it.
//!
//! On the transfer's channel (text messages are JSON objects with a `t` field):
//! 1. sender → `{t:"offer", name, size, mime, key}` when the channel opens (`key`: see
//!    resuming, below);
//! 2. receiver → `{t:"accept"}` or `{t:"reject"}` (the app decides during the room's
//!    `file` event; if it does neither synchronously, the transfer is accepted);
//! 3. sender → the file as binary chunks of `min(maxMessageSize, 64 KiB)`, handed to the
//!    browser only while the channel buffers less than [`HIGH_WATER`] and resumed by
//!    `bufferedamountlow` (never polled); receiver → `{t:"ack", bytes}` every
//!    [`ACK_EVERY`] bytes and at the end (the sender's `bytes` and `progress`);
//! 4. sender → `{t:"end", digest}`; the receiver compares it with its own and answers
//!    `{t:"verified"}` or `{t:"mismatch"}` (both sides then fail with `integrity-failed`);
//! 5. either side may send `{t:"cancel"}` at any time, and sends `{t:"failed", message}`
//!    when its side fails (a file it cannot read, say), so the other fails at once.
//!
//! The digest: the file is cut at every [`READ_WINDOW`] into pieces; each side hashes
//! each piece with SHA-256 as soon as it has it (the sender when it reads it, the
//! receiver when its last byte arrives), and the digest is the hex SHA-256 of the
//! pieces' digests in order — a hash list, as strong as SHA-256 of the file and
//! computed incrementally. The hashing is the browser's (`crypto.subtle`, native code;
//! Chromium runs it on the calling thread: on the test machine ~1.6 ms per MiB on an
//! idle page, 4–5 ms during a transfer, when both peers share its two cores):
//! hashing in wasm cost a quarter of the throughput on a 2-core machine
//! (docs/benchmarks.md). `crypto.subtle` exists only in secure contexts (https,
//! localhost), so file transfer needs one; elsewhere `sendFile` throws `unsupported`
//! and an offer is refused with a room `error`.
//!
//! The channel is an SCTP stream of the peer connection, so it lives through an ICE
//! restart (the association carries on over the new path) and the transfer continues
//! where it was.
//!
//! Resuming on a new connection. When the channel of an active transfer closes before
//! the end (the connection was lost and replaced, or the peer's relay session expired
//! and it came back under a new peer id), both sides keep the transfer for
//! [`RESUME_WINDOW_MS`]; a peer that *left* (`peer-left` "left") fails it at once.
//! The sender offers to resume to every peer connected at that moment and to every
//! peer that connects meanwhile (it cannot tell which is the receiver under a new id),
//! on a new channel with the same label:
//! 1. sender → `{t:"resume", proof}`, `proof` = [`proof`]`(key, "sender", their id)`;
//!    `key` is a random secret (`crypto.getRandomValues`) the sender put in its first
//!    `offer`;
//! 2. the receiver (if it holds transfer `id` and the proof matches its own id) →
//!    `{t:"resumed", bytes, proof}` with [`proof`]`(key, "receiver", sender's id)`;
//!    anyone else closes the channel. Neither proof can be replayed to a third peer,
//!    so a peer that hears a `resume` learns neither the key nor the file; and a
//!    channel it opens with a transfer's label is refused (one transfer per id).
//!    A receiver that already finished (its `verified` lost with the connection) stays
//!    in the room's list for the window and answers `{t:"verified", proof}`.
//! 3. the sender goes back to the piece that holds byte `bytes`, re-reads and re-hashes
//!    it, and sends on from `bytes`: nothing the receiver has is sent twice.
//!
//! The transfer's `from`/`to` become the peer's new id. With no resume in the window,
//! the transfer fails with `transfer-failed`.
//!
//! Ownership: the room's list owns each live [`Transfer`]; the transfer owns its channel
//! and the channel's listener ([`Link`], dropped — and the channel closed — when the
//! transfer ends). The sending task and the listener hold `Weak`s.

use crate::cell::RefCell;
use crate::error::{Code, Error};
use crate::events::{self, Emitter};
use crate::js::{self, cat, Listener, Timer};
use crate::prelude::*;
use crate::room::Inner;
use alloc::rc::{Rc, Weak};
use core::cell::Cell;
use js_sys::{Array, Function, Promise, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::RtcDataChannel;

/// Labels of file channels start with this; the rest is the transfer id.
pub const LABEL_PREFIX: &str = "meshwire-file/";
/// The sender hands no more to the browser while this much is buffered on the
/// transfer's channel: small, so several transfers and chat share the connection
/// fairly, and far below Chrome's ~16 MiB limit.
pub const HIGH_WATER: u32 = 1024 * 1024;
/// `bufferedamountlow` fires when the buffer falls to this.
pub const LOW_WATER: u32 = 256 * 1024;
/// Largest chunk, even when the connection allows bigger messages: a big message
/// holds the association for longer, delaying chat.
pub const MAX_CHUNK: f64 = 64.0 * 1024.0;
/// The receiver acknowledges every this many bytes.
pub const ACK_EVERY: f64 = 1024.0 * 1024.0;
/// The sender reads the file this much at a time; it is also the size of the pieces the
/// digest hashes one by one.
const READ_WINDOW: f64 = 1024.0 * 1024.0;
/// How long a transfer whose connection was lost waits for the peer to come back:
/// longer than the relay's resume grace (10 s by default) plus the reconnect backoff.
pub const RESUME_WINDOW_MS: u32 = 60_000;
/// At most one receiver `progress` event per this many milliseconds (plus the last).
const PROGRESS_MS: f64 = 100.0;

/// The events a transfer emits.
pub const TRANSFER_EVENTS: [&str; 3] = ["progress", "done", "error"];

#[wasm_bindgen]
extern "C" {
    /// A `Blob` (or `File`): only what the transfer needs.
    #[wasm_bindgen(js_name = Blob)]
    pub type JsBlob;
    #[wasm_bindgen(constructor, js_class = Blob, catch)]
    fn new_blob(parts: &Array, options: &JsValue) -> Result<JsBlob, JsValue>;
    #[wasm_bindgen(method, js_class = Blob)]
    fn slice(this: &JsBlob, start: f64, end: f64) -> JsBlob;
    #[wasm_bindgen(method, js_class = Blob, js_name = arrayBuffer)]
    fn array_buffer(this: &JsBlob) -> Promise;
}

/// A transfer's state, as `transfer.state` spells it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Active,
    Done,
    Cancelled,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Done => "done",
            State::Cancelled => "cancelled",
            State::Failed => "failed",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, State::Done | State::Cancelled | State::Failed)
    }
}

/// What a transfer was told about the file (the receiver learns it from the offer).
#[derive(Clone, Default)]
pub struct Meta {
    pub name: String,
    pub size: f64,
    pub mime: String,
}

/// The transfer's channel and its listener; dropping it closes the channel.
struct Link {
    dc: RtcDataChannel,
    _listener: Listener,
}

impl Drop for Link {
    fn drop(&mut self) {
        // Buffered messages (a final `verified` or `cancel`) are still sent before the
        // stream is reset (<https://w3c.github.io/webrtc-pc/#data-transport-closing-procedure>).
        js::close(&self.dc, None);
    }
}

/// A channel offering to resume the transfer, not yet proven (see the module docs).
struct Probe {
    peer: String,
    link: Link,
}

/// One file transfer, either direction.
pub struct Transfer {
    pub id: String,
    /// Peer ids: ours and the other side's, by direction (the other side's changes if
    /// the transfer resumes with the peer under a new id).
    pub from: RefCell<String>,
    pub to: RefCell<String>,
    /// We send (else we receive).
    pub outgoing: bool,
    pub meta: RefCell<Meta>,
    state: Cell<State>,
    /// Bytes transferred: acknowledged by the receiver (sender), received (receiver).
    bytes: Cell<f64>,
    /// When the transfer became active (`Date.now()`), for `bytesPerSecond`.
    started_at: Cell<f64>,
    last_progress: Cell<f64>,
    /// `bytes` of the last `progress` event (-1 before the first).
    reported: Cell<f64>,
    /// The transfer's own `progress` / `done` / `error` handlers.
    pub emitter: Emitter,
    room: Weak<Inner>,
    link: RefCell<Option<Link>>,
    /// The secret both sides prove they know to resume (sent in the `offer`).
    key: RefCell<String>,
    /// Set while the connection is lost mid-transfer: fails the transfer when the
    /// resume window ends.
    interrupted: RefCell<Option<Timer>>,
    /// Channels offering to resume, until one proves itself.
    probes: RefCell<Vec<Probe>>,
    /// Receiver, once done: keeps the transfer in the room's list for
    /// [`RESUME_WINDOW_MS`], to answer a sender whose `verified` was lost.
    linger: RefCell<Option<Timer>>,
    /// Sender: bytes handed to the channel (a resume cannot start beyond them).
    sent: Cell<f64>,
    /// The SHA-256 of each piece so far, in order (`Promise<ArrayBuffer>`s).
    pieces: Array,
    /// Receiver: the piece being filled; once full it is hashed and moves to `parts`.
    piece: RefCell<Option<Uint8Array>>,
    /// Sender: which sending task is current (a resume starts a new one; the old one
    /// stops at its next step).
    run: Cell<u32>,
    /// The sender's file.
    file: Option<JsBlob>,
    /// Resolves the promise the sending task waits on (the buffer drained, or the
    /// transfer ended).
    wake: RefCell<Option<Function>>,
    /// Test hook (`sendFile`'s hidden `corruptAt`): flip the byte at this offset after
    /// hashing it, so the receiver's digest must differ.
    corrupt_at: Option<f64>,
    /// The receiver's full pieces (`Uint8Array`s) until the `Blob` is made of them: the
    /// chunks that arrived were copied into these, so only one copy of the file is held.
    parts: Array,
    /// The receiver's bytes at the last `ack`.
    acked: Cell<f64>,
    /// The received file (`transfer.blob`), once done.
    pub blob: RefCell<Option<JsValue>>,
    /// The room's `file` event was emitted (a receiver transfer is announced on offer).
    announced: Cell<bool>,
}

impl Transfer {
    fn new(
        id: String,
        from: String,
        to: String,
        outgoing: bool,
        meta: Meta,
        room: &Rc<Inner>,
        file: Option<(JsBlob, Option<f64>)>,
    ) -> Rc<Transfer> {
        let (file, corrupt_at) = match file {
            Some((f, c)) => (Some(f), c),
            None => (None, None),
        };
        Rc::new(Transfer {
            id,
            from: RefCell::new(from),
            to: RefCell::new(to),
            outgoing,
            meta: RefCell::new(meta),
            state: Cell::new(State::Pending),
            bytes: Cell::new(0.0),
            started_at: Cell::new(js_sys::Date::now()),
            last_progress: Cell::new(0.0),
            reported: Cell::new(-1.0),
            emitter: Emitter::new(),
            room: Rc::downgrade(room),
            link: RefCell::default(),
            key: RefCell::new(if outgoing {
                events::random_hex(16)
            } else {
                String::new()
            }),
            interrupted: RefCell::default(),
            probes: RefCell::default(),
            linger: RefCell::default(),
            sent: Cell::new(0.0),
            pieces: Array::new(),
            piece: RefCell::default(),
            run: Cell::new(0),
            file,
            wake: RefCell::default(),
            corrupt_at,
            parts: Array::new(),
            acked: Cell::new(0.0),
            blob: RefCell::default(),
            announced: Cell::new(false),
        })
    }

    pub fn state(&self) -> State {
        self.state.get()
    }

    pub fn bytes(&self) -> f64 {
        self.bytes.get()
    }

    /// Listens to `dc` on behalf of this transfer: events go to [`Self::on_event`] while
    /// it is the transfer's channel, to [`Self::on_probe`] while it offers a resume.
    fn listen(self: &Rc<Self>, dc: RtcDataChannel) -> Link {
        js::set(&dc, "binaryType", &"arraybuffer".into());
        js::set(&dc, "bufferedAmountLowThreshold", &LOW_WATER.into());
        let weak = Rc::downgrade(self);
        let target = dc.clone();
        let listener = Listener::new(
            &dc,
            &["open", "message", "bufferedamountlow", "close"],
            move |e| {
                if let Some(t) = weak.upgrade() {
                    if t.dc().as_ref() == Some(&target) {
                        t.on_event(&e);
                    } else {
                        t.on_probe(&target, &e);
                    }
                }
            },
        );
        Link {
            dc,
            _listener: listener,
        }
    }

    /// Takes `dc` as the transfer's channel.
    fn attach(self: &Rc<Self>, dc: RtcDataChannel) {
        let link = self.listen(dc);
        *self.link.borrow_mut() = Some(link);
    }

    fn dc(&self) -> Option<RtcDataChannel> {
        self.link.borrow().as_ref().map(|l| l.dc.clone())
    }

    /// Sends a control message `{t: kind, ...fields}` on the transfer's channel.
    fn control(&self, kind: &str, fields: &[(&str, JsValue)]) {
        if let Some(dc) = self.dc() {
            self.control_on(&dc, kind, fields);
        }
    }

    fn control_on(&self, dc: &RtcDataChannel, kind: &str, fields: &[(&str, JsValue)]) {
        let msg = js::object(fields);
        js::set(&msg, "t", &JsValue::from_str(kind));
        if let Some(text) = js::stringify(&msg) {
            if let Err(e) = js::send(dc, &JsValue::from_str(&text)) {
                js::warn(&cat(&[
                    "file transfer ",
                    &self.id,
                    ": a control message was refused: ",
                    &crate::error::describe(&e),
                ]));
            }
        }
    }

    fn on_event(self: &Rc<Self>, e: &JsValue) {
        match js::event_type(e).as_str() {
            "open" => {
                if self.outgoing {
                    let meta = self.meta.borrow().clone();
                    self.control(
                        "offer",
                        &[
                            ("name", JsValue::from_str(&meta.name)),
                            ("size", JsValue::from_f64(meta.size)),
                            ("mime", JsValue::from_str(&meta.mime)),
                            ("key", JsValue::from_str(&self.key.borrow())),
                        ],
                    );
                }
            }
            "bufferedamountlow" => self.wake(),
            "close" => self.peer_gone(),
            _ => {
                let data = js::get(e, "data");
                if let Some(text) = data.as_string() {
                    self.on_control(&text);
                } else if !self.outgoing {
                    self.on_chunk(&data);
                }
            }
        }
    }

    fn on_control(self: &Rc<Self>, text: &str) {
        let Ok(msg) = js::parse(&JsValue::from_str(text)) else {
            return;
        };
        let kind = js::get_string(&msg, "t").unwrap_or_default();
        match (self.outgoing, kind.as_str()) {
            (_, "cancel") => self.end(
                State::Cancelled,
                Some(Error::new(
                    Code::TransferCancelled,
                    cat(&["file transfer ", &self.id, " was cancelled by the peer"]),
                )),
            ),
            (false, "offer") => self.on_offer(&msg),
            (true, "accept") if self.state.get() == State::Pending => {
                self.activate();
                crate::spawn(pump(Rc::downgrade(self), 0, 0.0, 0.0));
            }
            (true, "reject") => {
                let reason = js::get_string(&msg, "reason")
                    .map(|r| cat(&[": ", &r]))
                    .unwrap_or_default();
                let message = cat(&[
                    "peer ",
                    &self.to.borrow(),
                    " rejected file transfer ",
                    &self.id,
                    &reason,
                ]);
                self.end(
                    State::Cancelled,
                    Some(Error::new(Code::TransferRejected, message)),
                )
            }
            (_, "failed") => {
                let why = js::get_string(&msg, "message").unwrap_or_default();
                self.fail(Error::new(
                    Code::TransferFailed,
                    cat(&[
                        "file transfer ",
                        &self.id,
                        " failed on the other side: ",
                        &why,
                    ]),
                ))
            }
            (true, "ack") => {
                let bytes = js::get_f64(&msg, "bytes").unwrap_or(0.0);
                if bytes > self.bytes.get() {
                    self.bytes.set(bytes);
                    self.emit_progress();
                }
            }
            (true, "verified") => {
                self.end(State::Done, None);
            }
            (true, "mismatch") => self.fail(integrity_error(&self.id)),
            (false, "end") => self.on_end(js::get_string(&msg, "digest").unwrap_or_default()),
            // A resume offer for a transfer we do not hold: close it, say nothing.
            (false, "resume") if !self.announced.get() => self.release(),
            _ => {}
        }
    }

    /// A message or close on a channel offering to resume (see the module docs).
    fn on_probe(self: &Rc<Self>, dc: &RtcDataChannel, e: &JsValue) {
        let Some(peer) = self
            .probes
            .borrow()
            .iter()
            .find(|p| &p.link.dc == dc)
            .map(|p| p.peer.clone())
        else {
            return;
        };
        let kind = js::event_type(e);
        let key = self.key.borrow().clone();
        let weak = Rc::downgrade(self);
        let dc = dc.clone();
        if kind == "open" && self.outgoing {
            crate::spawn(async move {
                let proof = proof(&key, "sender", &peer).await;
                if let (Some(t), Some(proof)) = (weak.upgrade(), proof) {
                    if t.probes.borrow().iter().any(|p| p.link.dc == dc) {
                        t.control_on(&dc, "resume", &[("proof", JsValue::from_str(&proof))]);
                    }
                }
            });
            return;
        }
        let msg = if kind == "message" {
            js::get(e, "data")
                .as_string()
                .and_then(|text| js::parse(&JsValue::from_str(&text)).ok())
        } else {
            None
        };
        let t = msg
            .as_ref()
            .and_then(|m| js::get_string(m, "t"))
            .unwrap_or_default();
        let (wanted, role, ours) = if self.outgoing {
            (t == "resumed" || t == "verified", "receiver", "sender")
        } else {
            (t == "resume", "sender", "receiver")
        };
        if kind != "message" && kind != "close" {
            return;
        }
        // Anything but the expected message ends the offer; so does a key that is not
        // one of ours (an offer that came without one proves nothing).
        let (Some(msg), true, 32) = (msg, wanted, key.len()) else {
            drop(self.take_probe(&dc));
            return;
        };
        let me = self.me();
        crate::spawn(async move {
            let expected = proof(&key, role, &me).await;
            let reply = proof(&key, ours, &peer).await;
            let Some(transfer) = weak.upgrade() else {
                return;
            };
            let link = transfer.take_probe(&dc);
            let proven = expected.is_some() && js::get_string(&msg, "proof") == expected;
            let state = transfer.state.get();
            if let (Some(link), Some(reply), true) = (link, reply, proven) {
                match (transfer.outgoing, state, t.as_str()) {
                    (true, State::Active, "verified") => transfer.end(State::Done, None),
                    (_, State::Active, _) => transfer.resume_on(link, peer, &msg, &reply),
                    // The receiver finished (its `verified` was lost with the connection).
                    (false, State::Done, _) => {
                        transfer.control_on(
                            &link.dc,
                            "verified",
                            &[("proof", JsValue::from_str(&reply))],
                        );
                    }
                    _ => {}
                }
            }
        });
    }

    /// A proven resume offer: its channel becomes the transfer's (the old one, if still
    /// there, and the other offers go) and the transfer goes on.
    fn resume_on(self: &Rc<Self>, link: Link, peer: String, msg: &JsValue, reply: &str) {
        self.interrupted.borrow_mut().take();
        self.probes.borrow_mut().clear();
        *self.link.borrow_mut() = Some(link);
        if self.outgoing {
            *self.from.borrow_mut() = self.me();
            *self.to.borrow_mut() = peer;
            let bytes = js::get_f64(msg, "bytes").unwrap_or(0.0);
            self.resume_sending(bytes);
        } else {
            *self.from.borrow_mut() = peer;
            *self.to.borrow_mut() = self.me();
            let bytes = self.bytes.get();
            self.acked.set(bytes);
            self.control(
                "resumed",
                &[
                    ("bytes", JsValue::from_f64(bytes)),
                    ("proof", JsValue::from_str(reply)),
                ],
            );
        }
    }

    /// Takes the resume offer on `dc` out of the list.
    fn take_probe(&self, dc: &RtcDataChannel) -> Option<Link> {
        let mut probes = self.probes.borrow_mut();
        let i = probes.iter().position(|p| &p.link.dc == dc)?;
        Some(probes.remove(i).link)
    }

    /// Our own peer id (it changes if our relay session was replaced).
    fn me(&self) -> String {
        self.room.upgrade().map(|r| r.my_id()).unwrap_or_default()
    }

    /// Sender: the receiver has `bytes`; sends on from there (see the module docs).
    fn resume_sending(self: &Rc<Self>, bytes: f64) {
        let size = self.meta.borrow().size;
        let piece = whole(bytes / READ_WINDOW);
        // Only what was sent can have arrived; every piece before it was hashed.
        if !(0.0..=size).contains(&bytes)
            || bytes > self.sent.get()
            || piece > f64::from(self.pieces.length())
        {
            self.fail(Error::new(
                Code::TransferFailed,
                cat(&[
                    "file transfer ",
                    &self.id,
                    ": the peer resumed at an impossible offset",
                ]),
            ));
            return;
        }
        let start = piece * READ_WINDOW;
        self.bytes.set(bytes);
        let run = self.run.get() + 1;
        self.run.set(run);
        crate::spawn(pump(Rc::downgrade(self), run, start, bytes));
    }

    /// Listens to `dc`, a channel to or from `peer` offering a resume: the sender opens
    /// one to each peer that connects while the transfer waits; the receiver gets one.
    pub fn probe(self: &Rc<Self>, peer: &str, dc: RtcDataChannel) {
        let link = self.listen(dc);
        self.probes.borrow_mut().push(Probe {
            peer: peer.to_owned(),
            link,
        });
    }

    /// Waiting for the peer to come back (sender: it offers to everyone who connects).
    pub fn is_interrupted(&self) -> bool {
        self.interrupted.borrow().is_some()
    }

    fn activate(&self) {
        self.state.set(State::Active);
        self.started_at.set(js_sys::Date::now());
    }

    /// Receiver: the offer names the file; the room announces the transfer.
    fn on_offer(self: &Rc<Self>, msg: &JsValue) {
        if self.announced.replace(true) {
            return;
        }
        *self.meta.borrow_mut() = Meta {
            name: js::get_string(msg, "name").unwrap_or_default(),
            size: js::get_f64(msg, "size").unwrap_or(0.0).max(0.0),
            mime: js::get_string(msg, "mime").unwrap_or_default(),
        };
        *self.key.borrow_mut() = js::get_string(msg, "key").unwrap_or_default();
        let Some(room) = self.room.upgrade() else {
            return;
        };
        if !events::can_hash() {
            let why = no_hashing("receiving files");
            self.control("reject", &[("reason", JsValue::from_str(&why.message))]);
            self.state.set(State::Cancelled);
            self.release();
            room.emit("error", &why.to_event());
            return;
        }
        let payload = js::object(&[("transfer", crate::FileTransfer::wrap(self.clone()).into())]);
        room.emit("file", &payload);
        // Default: accept, unless a handler accepted or rejected (or cancelled).
        if self.state.get() == State::Pending {
            self.accept();
        }
    }

    /// Receiver: accepts a pending transfer.
    pub fn accept(&self) {
        if self.outgoing || self.state.get() != State::Pending {
            return;
        }
        self.activate();
        self.control("accept", &[]);
        if self.meta.borrow().size == 0.0 {
            // Nothing to wait for but the sender's `end`.
            self.acked.set(0.0);
        }
    }

    /// Receiver: refuses a pending transfer. Too late (the `file` event has returned and
    /// the SDK accepted it) or on the sending side, it only warns: `cancel()` stops it.
    pub fn reject(self: &Rc<Self>) {
        if self.outgoing {
            js::warn("meshwire: reject() is for the receiving side; the sender stops a transfer with cancel()");
            return;
        }
        match self.state.get() {
            State::Pending => {}
            State::Active => {
                js::warn("meshwire: reject() came after the file event, which accepted the transfer; call it during the event, or cancel() now");
                return;
            }
            _ => return, // Already rejected, cancelled or over: nothing to say.
        }
        self.control("reject", &[]);
        self.state.set(State::Cancelled);
        self.release();
    }

    /// Either side: stops the transfer and tells the other side.
    pub fn cancel(self: &Rc<Self>) {
        if self.state.get().is_final() {
            return;
        }
        self.control("cancel", &[]);
        self.end(
            State::Cancelled,
            Some(Error::new(
                Code::TransferCancelled,
                cat(&["file transfer ", &self.id, " was cancelled here"]),
            )),
        );
    }

    fn on_chunk(self: &Rc<Self>, data: &JsValue) {
        if self.state.get() != State::Active {
            return;
        }
        let bytes = Uint8Array::new(data);
        let len = f64::from(bytes.length());
        let total = self.bytes.get() + len;
        if total > self.meta.borrow().size {
            self.fail(Error::new(
                Code::TransferFailed,
                cat(&[
                    "file transfer ",
                    &self.id,
                    ": more bytes arrived than offered",
                ]),
            ));
            return;
        }
        self.take_in(&bytes);
        self.bytes.set(total);
        if total - self.acked.get() >= ACK_EVERY || total == self.meta.borrow().size {
            self.acked.set(total);
            self.control("ack", &[("bytes", JsValue::from_f64(total))]);
        }
        let now = js_sys::Date::now();
        if now - self.last_progress.get() >= PROGRESS_MS || total == self.meta.borrow().size {
            self.emit_progress();
        }
    }

    fn on_end(self: &Rc<Self>, theirs: String) {
        if self.state.get() != State::Active {
            return;
        }
        if self.bytes.get() != self.meta.borrow().size {
            self.fail(Error::new(
                Code::TransferFailed,
                cat(&["file transfer ", &self.id, " ended early"]),
            ));
            return;
        }
        let pieces = self.pieces.clone();
        let weak = Rc::downgrade(self);
        crate::spawn(async move {
            let ours = digest(&pieces).await;
            let Some(t) = weak.upgrade() else { return };
            if t.state.get() != State::Active {
                return;
            }
            if ours.as_deref() != Some(theirs.as_str()) {
                t.control("mismatch", &[]);
                t.fail(integrity_error(&t.id));
                return;
            }
            t.control("verified", &[]);
            let options = js::object(&[("type", JsValue::from_str(&t.meta.borrow().mime))]);
            match JsBlob::new_blob(&t.parts, &options) {
                Ok(blob) => {
                    t.parts.set_length(0);
                    *t.blob.borrow_mut() = Some(blob.into());
                    t.end(State::Done, None);
                }
                Err(e) => t.fail(Error::js(Code::Internal, "new Blob", &e)),
            }
        });
    }

    /// Receiver: copies `bytes` (the next ones of the file) into the pieces being
    /// filled, and starts hashing each piece as it fills (the `Blob` is made of them).
    fn take_in(self: &Rc<Self>, bytes: &Uint8Array) {
        let size = self.meta.borrow().size;
        let (len, mut at, mut pos) = (bytes.length(), 0u32, self.bytes.get());
        while at < len {
            let start = whole(pos / READ_WINDOW) * READ_WINDOW;
            let piece_len = (size - start).min(READ_WINDOW) as u32;
            let fill = (pos - start) as u32;
            let piece = self
                .piece
                .borrow_mut()
                .get_or_insert_with(|| Uint8Array::new_with_length(piece_len))
                .clone();
            let take = (len - at).min(piece_len - fill);
            piece.set(&bytes.subarray(at, at + take), fill);
            at += take;
            pos += f64::from(take);
            if fill + take == piece_len {
                self.piece.borrow_mut().take();
                self.parts.push(&piece);
                self.hash_piece(&piece);
            }
        }
    }

    /// Starts hashing the next piece.
    fn hash_piece(self: &Rc<Self>, piece: &JsValue) {
        match events::sha256(piece) {
            Ok(digest) => {
                self.pieces.push(&digest);
            }
            Err(e) => self.fail(Error::js(Code::Unsupported, "crypto.subtle.digest", &e)),
        }
    }

    fn emit_progress(&self) {
        let now = js_sys::Date::now();
        self.last_progress.set(now);
        let bytes = self.bytes.get();
        self.reported.set(bytes);
        let secs = ((now - self.started_at.get()) / 1000.0).max(0.001);
        let total = self.meta.borrow().size;
        self.emitter.emit(
            "progress",
            &js::object(&[
                ("bytes", JsValue::from_f64(bytes)),
                ("total", JsValue::from_f64(total)),
                (
                    "bytesPerSecond",
                    JsValue::from_f64(whole(bytes / secs + 0.5)),
                ),
            ]),
        );
    }

    fn fail(self: &Rc<Self>, error: Error) {
        self.end(State::Failed, Some(error));
    }

    /// Ends the transfer in `state`: releases the channel, wakes the sending task,
    /// leaves the room's list, then reports (`done`, or `error` with `error`).
    fn end(self: &Rc<Self>, state: State, error: Option<Error>) {
        if self.state.get().is_final() {
            return;
        }
        if let (State::Failed, Some(e)) = (state, &error) {
            // So the other side fails now rather than waiting for a resume.
            self.control("failed", &[("message", JsValue::from_str(&e.message))]);
        }
        self.state.set(state);
        self.release();
        match error {
            Some(e) => self.emitter.emit("error", &e.to_event()),
            None => {
                // The last `progress` says `total` (an empty file has no other).
                if self.reported.get() != self.bytes.get() {
                    self.emit_progress();
                }
                let blob = self.blob.borrow().clone().unwrap_or(JsValue::UNDEFINED);
                self.emitter.emit("done", &js::object(&[("blob", blob)]));
            }
        }
    }

    /// Drops the channel (closing it), wakes the sender's task, leaves the room's list
    /// (a receiver that is done stays [`RESUME_WINDOW_MS`] longer, see `linger`).
    fn release(self: &Rc<Self>) {
        self.clear();
        let Some(room) = self.room.upgrade() else {
            return;
        };
        if self.outgoing || self.state.get() != State::Done {
            room.forget_transfer(self);
            return;
        }
        let weak = Rc::downgrade(self);
        let timer = Timer::new(RESUME_WINDOW_MS, move |_| {
            if let (Some(t), Some(room)) = (
                weak.upgrade(),
                weak.upgrade().and_then(|t| t.room.upgrade()),
            ) {
                room.forget_transfer(&t);
            }
        });
        *self.linger.borrow_mut() = Some(timer);
    }

    /// Drops the channel, the offers, the timers and any bytes held, and wakes the
    /// sending task. (A failed or cancelled receive drops what it had: the
    /// `FileTransfer` object may live on in the app.)
    fn clear(&self) {
        drop(self.link.borrow_mut().take());
        self.interrupted.borrow_mut().take();
        self.probes.borrow_mut().clear();
        self.parts.set_length(0);
        self.pieces.set_length(0);
        self.piece.borrow_mut().take();
        self.wake();
    }

    /// The connection to the peer is gone (its channel closed, or the peer connection
    /// was closed): an active transfer waits [`RESUME_WINDOW_MS`] for the peer to come
    /// back; one not yet accepted fails.
    pub fn peer_gone(self: &Rc<Self>) {
        match self.state.get() {
            State::Pending => self.fail(Error::new(
                Code::TransferFailed,
                cat(&[
                    "file transfer ",
                    &self.id,
                    " stopped before it was accepted: the connection to the peer is gone",
                ]),
            )),
            State::Active if !self.is_interrupted() => {
                drop(self.link.borrow_mut().take());
                // The sending task stops at its next step.
                self.run.set(self.run.get() + 1);
                self.wake();
                let weak = Rc::downgrade(self);
                let timer = Timer::new(RESUME_WINDOW_MS, move |_| {
                    if let Some(t) = weak.upgrade() {
                        t.fail(Error::new(
                            Code::TransferFailed,
                            cat(&[
                                "file transfer ",
                                &t.id,
                                " stopped: the connection to the peer was lost and it did \
                                 not come back within 60 s; send the file again",
                            ]),
                        ));
                    }
                });
                *self.interrupted.borrow_mut() = Some(timer);
                // A peer already connected again (or whose connection survived while
                // this channel did not) hears the offer now; others when they connect.
                if let (true, Some(room)) = (self.outgoing, self.room.upgrade()) {
                    room.offer_resumes_now(self);
                }
            }
            _ => {}
        }
    }

    /// The peer left for good (`peer-left` "left"): the transfer fails now.
    pub fn peer_left(self: &Rc<Self>) {
        if !self.state.get().is_final() {
            self.fail(Error::new(
                Code::TransferFailed,
                cat(&[
                    "file transfer ",
                    &self.id,
                    " stopped: the peer left the room",
                ]),
            ));
        }
    }

    /// Whether `peer` is the other side.
    pub fn is_with(&self, peer: &str) -> bool {
        if self.outgoing {
            *self.to.borrow() == peer
        } else {
            *self.from.borrow() == peer
        }
    }

    /// Ends without events or messages (the room was left: handlers are gone).
    pub fn abandon(&self) {
        if !self.state.get().is_final() {
            self.state.set(State::Cancelled);
        }
        self.clear();
        self.linger.borrow_mut().take();
    }

    fn wake(&self) {
        if let Some(resolve) = self.wake.borrow_mut().take() {
            let _ = resolve.call0(&JsValue::UNDEFINED);
        }
    }

    /// A promise that resolves on the next [`Self::wake`].
    fn wait(&self) -> Promise {
        let mut resolve = None;
        let promise = Promise::new(&mut |r, _| resolve = Some(r));
        *self.wake.borrow_mut() = resolve;
        promise
    }

    /// `RTCSctpTransport.maxMessageSize` of the connection, capped at [`MAX_CHUNK`].
    fn chunk_size(&self) -> f64 {
        let max = self
            .room
            .upgrade()
            .and_then(|room| room.sctp_max_message_size(&self.to.borrow()))
            .unwrap_or(MAX_CHUNK);
        if max.is_finite() && max >= 1024.0 {
            max.min(MAX_CHUNK)
        } else {
            MAX_CHUNK
        }
    }
}

/// `x` rounded down, for the non-negative sizes and rates here (`f64::floor` is std's).
fn whole(x: f64) -> f64 {
    x as u64 as f64
}

fn integrity_error(id: &str) -> Error {
    Error::new(
        Code::IntegrityFailed,
        cat(&[
            "file transfer ",
            id,
            ": the SHA-256 of the received bytes differs from the sender's; the file \
             was not delivered, send it again",
        ]),
    )
}

/// What a side sends to prove it holds transfer `key` when resuming: bound to its
/// role and to the id of the peer it speaks to, so it cannot be replayed elsewhere.
pub async fn proof(key: &str, role: &str, peer: &str) -> Option<String> {
    let text = cat(&[key, ":", role, ":", peer]);
    let digest = events::sha256_text(&text).ok()?;
    JsFuture::from(digest).await.ok()?.as_string()
}

/// The transfer's digest (module docs) over `pieces`, the SHA-256s of its pieces.
async fn digest(pieces: &Array) -> Option<String> {
    JsFuture::from(events::piece_digest(pieces).ok()?)
        .await
        .ok()?
        .as_string()
}

/// The error for a browser without `crypto.subtle` (not a secure context).
pub fn no_hashing(what: &str) -> Error {
    Error::new(
        Code::Unsupported,
        cat(&[
            what,
            " needs a secure context (an https:// page, or localhost): the SHA-256 check \
             of every file uses the browser's crypto.subtle, which other pages do not have",
        ]),
    )
}

/// The sender's task: reads the file a window at a time from `start` (a window
/// boundary), hashes it, and sends it from `send_from` in chunks while the channel's
/// buffer allows, waiting for `bufferedamountlow` otherwise. Holds only a `Weak` across
/// awaits; ends when the transfer is no longer active or a newer task (`run`) took over.
async fn pump(weak: Weak<Transfer>, run: u32, start: f64, send_from: f64) {
    let current = |t: &Transfer| t.state.get() == State::Active && t.run.get() == run;
    let mut offset = start;
    // The next window's read, started before the current window is sent, so the channel
    // does not drain while the file is read.
    let mut ahead: Option<Promise> = None;
    loop {
        let (read, end, chunk) = {
            let Some(t) = weak.upgrade() else { return };
            let Some(file) = &t.file else { return };
            if !current(&t) {
                return;
            }
            let size = t.meta.borrow().size;
            if offset >= size {
                let pieces = t.pieces.clone();
                drop(t);
                let digest = digest(&pieces).await;
                let Some(t) = weak.upgrade() else { return };
                if current(&t) {
                    let digest = digest.unwrap_or_default();
                    t.control("end", &[("digest", JsValue::from_str(&digest))]);
                }
                return;
            }
            let end = (offset + READ_WINDOW).min(size);
            let read = ahead
                .take()
                .unwrap_or_else(|| file.slice(offset, end).array_buffer());
            (read, end, t.chunk_size())
        };
        let read = JsFuture::from(read).await;
        let Some(t) = weak.upgrade() else { return };
        if !current(&t) {
            return;
        }
        let size = t.meta.borrow().size;
        if let (Some(file), true) = (&t.file, end < size) {
            ahead = Some(
                file.slice(end, (end + READ_WINDOW).min(size))
                    .array_buffer(),
            );
        }
        let buffer = match read {
            Ok(b) => Uint8Array::new(&b),
            Err(e) => {
                t.fail(Error::js(
                    Code::TransferFailed,
                    "reading the file failed",
                    &e,
                ));
                return;
            }
        };
        // A resume starts again at a piece boundary: what was hashed from here on goes.
        t.pieces.set_length((offset / READ_WINDOW) as u32);
        t.hash_piece(&buffer);
        drop(t);
        let len = f64::from(buffer.length());
        // Not `clamp`: its NaN assertion formats floats, which costs the bundle ~13 KB gz
        // (scripts/build-sdk.sh refuses a module with float formatting in it).
        let mut pos = (send_from - offset).max(0.0).min(len);
        while pos < len {
            let wait = {
                let Some(t) = weak.upgrade() else { return };
                if !current(&t) {
                    return;
                }
                let Some(dc) = t.dc() else { return };
                if js::get_f64(&dc, "bufferedAmount").unwrap_or(0.0) > f64::from(HIGH_WATER) {
                    Some(t.wait())
                } else {
                    let stop = (pos + chunk).min(len);
                    let mut piece = buffer.subarray(pos as u32, stop as u32);
                    if let Some(at) = t
                        .corrupt_at
                        .filter(|at| (offset + pos..offset + stop).contains(at))
                    {
                        // Test hook only: a copy with one byte flipped.
                        piece = piece.slice(0, piece.length());
                        let i = (at - offset - pos) as u32;
                        piece.set_index(i, piece.get_index(i) ^ 0xff);
                    }
                    if let Err(e) = js::send(&dc, &piece) {
                        t.fail(Error::js(
                            Code::TransferFailed,
                            "the channel refused a chunk",
                            &e,
                        ));
                        return;
                    }
                    pos = stop;
                    t.sent.set(t.sent.get().max(offset + stop));
                    None
                }
            };
            if let Some(wait) = wait {
                let _ = JsFuture::from(wait).await;
            }
        }
        offset = end;
    }
}

/// Starts sending `file` to peer `to` over `dc` (a new channel labelled with `id`).
pub fn outgoing(
    room: &Rc<Inner>,
    id: String,
    to: String,
    dc: RtcDataChannel,
    file: JsBlob,
    meta: Meta,
    corrupt_at: Option<f64>,
) -> Rc<Transfer> {
    let t = Transfer::new(
        id,
        room.my_id(),
        to,
        true,
        meta,
        room,
        Some((file, corrupt_at)),
    );
    t.attach(dc);
    t
}

/// A channel the remote side opened for transfer `id` to us (its offer follows).
pub fn incoming(room: &Rc<Inner>, from: String, id: String, dc: RtcDataChannel) -> Rc<Transfer> {
    let t = Transfer::new(id, from, room.my_id(), false, Meta::default(), room, None);
    t.attach(dc);
    // A channel adopted from `datachannel` may already be open with the offer queued;
    // the listener is attached synchronously, before any message is dispatched.
    t
}

/// A random transfer id (16 hex digits).
pub fn new_id() -> String {
    events::random_hex(8)
}

/// Whether `label` is a file transfer's channel.
pub fn is_file_label(label: &str) -> bool {
    label.starts_with(LABEL_PREFIX)
}

/// The transfer id in a file channel's label.
pub fn label_id(dc: &RtcDataChannel) -> String {
    let label = js::get_string(dc, "label").unwrap_or_default();
    label
        .strip_prefix(LABEL_PREFIX)
        .unwrap_or_default()
        .to_owned()
}
