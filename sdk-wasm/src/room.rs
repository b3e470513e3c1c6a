//! The room: the relay connection (join, presence, reconnect with resume), the mesh of
//! peers, and the operations `Room` exposes. `lib.rs` is only the JavaScript face.
//!
//! Re-entrancy: user event handlers may call back into the room, so no `RefCell`
//! borrow is ever held while an event is emitted or a promise awaited.

use crate::cell::RefCell;
use crate::data::{self, ChannelOptions, Payload};
use crate::error::{Code, Error, Result};
use crate::events::Emitter;
use crate::files::{self, JsBlob, Transfer};
use crate::js::{self, cat, num, quote, Listener, Timer};
use crate::media::{self, Local, Screen, Slot};
use crate::peer::{Peer, Shared, DEFAULT_CHANNEL};
use crate::prelude::*;
use crate::signaling::{Socket, SocketEvent};
use crate::speaking::{self, Speaking};
use crate::wire::{self, Frame};
use crate::{devices, stats};
use alloc::rc::Rc;
use core::cell::Cell;
use js_sys::{Array, Function};
use meshwire_protocol::peer::{SdpKind, Source};
use meshwire_protocol::{close_code, ErrorCode};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{MediaStream, RtcConfiguration};

/// Most frames kept waiting for the relay (while its connection is down, or over its
/// rate limit); broadcasts are refused earlier, so that a flood of them always leaves
/// room for the signals that keep the peer connections working.
const OUTBOX_MAX: usize = 512;
const OUTBOX_BROADCASTS_MAX: usize = 256;

/// After a resume, how long an offer still unanswered waits before it is sent again
/// (`peer::Shared::await_answer`).
const RESUMED_ANSWER_WAIT_MS: u32 = 1_000;

/// `JoinOptions`, parsed once.
pub struct Options {
    pub name: Option<String>,
    pub meta: JsValue,
    /// A JWT, or a function returning one (or a promise of one), called before every
    /// join so that reconnects carry a token that has not expired.
    pub token: JsValue,
    /// `iceServers` given by the app: used before the relay's.
    pub ice_servers: JsValue,
    pub ice_transport_policy: Option<String>,
    /// Media to start on join (`audio`, `video` as for `enableMedia`).
    pub audio: JsValue,
    pub video: JsValue,
    /// Reconnect to the relay after a drop (default true).
    pub reconnect: bool,
    /// Give up reconnecting after this many failed attempts in a row.
    pub max_reconnect_attempts: u32,
    /// First reconnect delay; doubles per attempt up to `reconnect_max_delay_ms`.
    pub reconnect_base_delay_ms: u32,
    pub reconnect_max_delay_ms: u32,
    /// After an ICE failure and restart, report `peer-connection-failed` if the peer is
    /// not connected again within this time.
    pub ice_restart_timeout_ms: u32,
    /// How long a relay socket may go without a usable `welcome` (a server that
    /// accepts but never answers, or answers with something else): `Room.join` fails
    /// after it; a reconnect counts it as a failed attempt.
    pub join_timeout_ms: u32,
}

impl Options {
    pub fn parse(o: &JsValue) -> Options {
        let reconnect = js::get(o, "reconnect");
        let num = |v: &JsValue, key, default: u32| {
            js::get_f64(v, key).map_or(default, |n| n.clamp(0.0, f64::from(u32::MAX)) as u32)
        };
        Options {
            name: js::get_string(o, "name"),
            meta: js::get(o, "meta"),
            token: js::get(o, "token"),
            ice_servers: js::get(o, "iceServers"),
            ice_transport_policy: js::get_string(o, "iceTransportPolicy"),
            audio: js::get(o, "audio"),
            video: js::get(o, "video"),
            reconnect: reconnect.as_bool().unwrap_or(true),
            max_reconnect_attempts: num(&reconnect, "maxAttempts", 30),
            reconnect_base_delay_ms: num(&reconnect, "baseDelayMs", 250),
            reconnect_max_delay_ms: num(&reconnect, "maxDelayMs", 10_000),
            ice_restart_timeout_ms: num(o, "iceRestartTimeoutMs", 20_000),
            join_timeout_ms: num(o, "joinTimeoutMs", 15_000),
        }
    }

    fn wants_media(&self) -> bool {
        is_requested(&self.audio) || is_requested(&self.video)
    }
}

/// Whether a media constraint asks for the device (`true` or a constraints object).
fn is_requested(v: &JsValue) -> bool {
    v.as_bool().unwrap_or_else(|| v.is_object())
}

/// The relay connection's state, as `signaling` events report it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Signaling {
    Connecting,
    Connected,
    Reconnecting,
    Closed,
}

impl Signaling {
    fn as_str(self) -> &'static str {
        match self {
            Signaling::Connecting => "connecting",
            Signaling::Connected => "connected",
            Signaling::Reconnecting => "reconnecting",
            Signaling::Closed => "closed",
        }
    }
}

/// The relay connection.
struct Conn {
    socket: Option<Socket>,
    /// Bumped per socket: events of an old socket are ignored.
    generation: u32,
    state: Signaling,
    /// Whether the current socket has been welcomed.
    welcomed: bool,
    resume_token: Option<String>,
    /// The join token the next `join` carries (`Options::token`, or what its function
    /// last gave).
    token: Option<String>,
    /// Frames waiting to go, in order: until the socket is welcomed, or until the
    /// relay's rate limit lets them (`pace`). Each with the peer it is a signal for
    /// (`None`: a broadcast).
    outbox: Vec<(Option<String>, String)>,
    /// The welcomed socket's rate limit, kept on this side.
    pace: Pace,
    /// Sends what waits in the outbox once `pace` allows it.
    drain_timer: Option<Timer>,
    /// `Room.join` waits for the first `welcome` (or a failure) on a promise; these
    /// settle it (`resolve`, `reject`).
    joined: Option<(Function, Function)>,
    attempts: u32,
    /// A pending reconnect.
    retry: Option<Timer>,
    /// Gives up on the current socket if it is not welcomed in time
    /// (`joinTimeoutMs`); dropped on welcome, close and shutdown.
    welcome_timer: Option<Timer>,
    /// The relay asked us to wait this long before reconnecting (`shutdown`).
    reconnect_hint_ms: Option<u32>,
    /// Why the relay refused the latest reconnect attempt (`room-full`, …), for the
    /// message when reconnecting gives up.
    refused: Option<Error>,
    /// When the current socket last delivered a frame, and when a `ping` went out that
    /// nothing has followed yet (see `heartbeat`).
    heard_at: f64,
    ping_sent_at: Option<f64>,
    /// The next liveness check of the current socket.
    heartbeat: Option<Timer>,
}

/// The relay's rate limit (`welcome.limits`), counted on this side as well so that the
/// SDK never goes over it: the relay drops frames over its limit (a lost offer, a lost
/// chat message) and closes a connection that keeps flooding (1008). Frames over it
/// wait in the outbox instead, and go out as the limit allows.
///
/// A token bucket like the relay's, with a margin: half its burst and 90 % of its
/// rate, since frames can reach the relay closer together than they left.
#[derive(Default)]
struct Pace {
    /// Tokens per millisecond (0: no limit), the bucket's size, what is in it, and
    /// when that was counted (`Date.now()`).
    per_ms: f64,
    burst: f64,
    tokens: f64,
    at: f64,
}

impl Pace {
    fn new(per_s: f64, burst: f64) -> Pace {
        let burst = (burst / 2.0).max(1.0);
        Pace {
            per_ms: per_s * 0.9 / 1000.0,
            burst,
            tokens: burst,
            at: js_sys::Date::now(),
        }
    }

    /// Takes a token for one frame, or says how many ms until there is one.
    fn take(&mut self) -> core::result::Result<(), u32> {
        if self.per_ms <= 0.0 {
            return Ok(());
        }
        let now = js_sys::Date::now();
        // A wall clock set back must not stall the outbox: no negative refill.
        self.tokens = (self.tokens + (now - self.at).max(0.0) * self.per_ms).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(((1.0 - self.tokens) / self.per_ms) as u32 + 1)
    }
}

/// Everything a room is. `Room` (lib.rs) holds the only strong reference; listeners,
/// timers and tasks hold `Weak`s, so dropping the room ends them all.
pub struct Inner {
    url: String,
    pub room_id: String,
    pub options: Options,
    me: RefCell<String>,
    pub emitter: Emitter,
    pub local: RefCell<Local>,
    /// The peers, sorted by id (so `room.peers` lists them in a stable order).
    peers: RefCell<Vec<Peer>>,
    conn: RefCell<Conn>,
    /// The relay's ICE servers from the latest `welcome`.
    relay_ice: RefCell<JsValue>,
    /// User channels from `createChannel`, opened to every peer.
    channels: RefCell<Vec<(String, ChannelOptions)>>,
    /// Reverts a screen share when the user ends it from the browser's UI.
    screen_ended: RefCell<Option<Listener>>,
    /// File transfers under way, both directions (`files.rs`); each leaves the list
    /// when it ends.
    transfers: RefCell<Vec<Rc<Transfer>>>,
    /// Analysers for `speaking` (`speaking.rs`) and the timer that samples them, which
    /// runs only while someone listens to `speaking`.
    speaking: RefCell<Speaking>,
    speaking_timer: RefCell<Option<Timer>>,
    /// `quality` polling runs (only while someone listens to `quality`); its next tick.
    quality_polling: Cell<bool>,
    quality_timer: RefCell<Option<Timer>>,
    /// The samples of the previous `quality` poll (their `quality` was reported), or
    /// `undefined`.
    qualities: RefCell<JsValue>,
    /// Holds each peer's counters at recent `getStats` calls (rates are deltas;
    /// `events::collect_stats`).
    stats_prev: js_sys::Object,
    /// `devicechange`, listened to once someone subscribes to `devices-changed`.
    devices_listener: RefCell<Option<Listener>>,
    left: Cell<bool>,
}

impl Inner {
    /// Connects and joins; resolves on the relay's `welcome`. Fails with the error to
    /// throw.
    pub async fn join(
        url: String,
        room_id: String,
        options: Options,
    ) -> core::result::Result<Rc<Inner>, JsValue> {
        if !meshwire_protocol::is_valid_room(&room_id) {
            return Err(Error::relay(
                ErrorCode::InvalidRoom.as_str(),
                cat(&[
                    "room name ",
                    &quote(&room_id),
                    " is invalid: use 1-64 characters of A-Z a-z 0-9 _ . : -",
                ]),
            )
            .into());
        }
        let url = ws_url(&url)?;
        let inner = Rc::new(Inner {
            url,
            room_id,
            options,
            me: RefCell::default(),
            emitter: Emitter::new(),
            local: RefCell::default(),
            peers: RefCell::default(),
            conn: RefCell::new(Conn {
                socket: None,
                generation: 0,
                state: Signaling::Connecting,
                welcomed: false,
                resume_token: None,
                token: None,
                outbox: Vec::new(),
                pace: Pace::default(),
                drain_timer: None,
                joined: None,
                attempts: 0,
                retry: None,
                welcome_timer: None,
                reconnect_hint_ms: None,
                refused: None,
                heard_at: 0.0,
                ping_sent_at: None,
                heartbeat: None,
            }),
            relay_ice: RefCell::new(JsValue::UNDEFINED),
            channels: RefCell::default(),
            screen_ended: RefCell::default(),
            transfers: RefCell::default(),
            speaking: RefCell::default(),
            speaking_timer: RefCell::default(),
            quality_polling: Cell::new(false),
            quality_timer: RefCell::default(),
            qualities: RefCell::default(),
            stats_prev: js_sys::Object::new(),
            devices_listener: RefCell::default(),
            left: Cell::new(false),
        });
        if inner.options.wants_media() {
            let constraints = js::object(&[
                ("audio", inner.options.audio.clone()),
                ("video", inner.options.video.clone()),
            ]);
            inner.enable_media(&constraints).await?;
        }
        let mut settle = None;
        let welcomed =
            js_sys::Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        inner.conn.borrow_mut().joined = settle;
        // The browser can refuse the socket at once (a malformed URL, or `ws://` from
        // an https page): the devices opened above must not stay on.
        if let Err(e) = inner.fetch_token().await.and_then(|()| inner.connect()) {
            inner.shutdown();
            return Err(e.into());
        }
        match JsFuture::from(welcomed).await {
            Ok(_) => Ok(inner),
            Err(e) => {
                inner.shutdown();
                Err(e)
            }
        }
    }

    /// Settles `Room.join`'s wait, if it still waits; says whether it did.
    fn settle_join(&self, outcome: Result<()>) -> bool {
        let Some((resolve, reject)) = self.conn.borrow_mut().joined.take() else {
            return false;
        };
        let _ = match outcome {
            Ok(()) => resolve.call1(&JsValue::UNDEFINED, &JsValue::UNDEFINED),
            Err(e) => reject.call1(&JsValue::UNDEFINED, &e.into()),
        };
        true
    }

    pub fn my_id(&self) -> String {
        self.me.borrow().clone()
    }

    /// `unknown-peer` for `id`: not (or no longer) in the room, or our own id.
    fn unknown_peer(&self, id: &str) -> Error {
        let why = if *self.me.borrow() == id {
            " is this peer itself: send to one of room.peers"
        } else {
            " in this room (it may have left)"
        };
        Error::new(Code::UnknownPeer, cat(&["no peer ", &quote(id), why]))
    }

    pub fn emit(&self, event: &str, payload: &JsValue) {
        self.emitter.emit(event, payload);
    }

    fn set_signaling(&self, state: Signaling, event: Option<&'static str>) {
        self.conn.borrow_mut().state = state;
        if let Some(name) = event {
            self.emit("signaling", &JsValue::from_str(name));
        }
    }

    // ---- relay connection ------------------------------------------------------------

    /// Opens a socket; the `join` (with the resume token, if any) goes out on open.
    fn connect(self: &Rc<Self>) -> Result<()> {
        let generation = {
            let mut c = self.conn.borrow_mut();
            c.generation += 1;
            c.welcomed = false;
            c.generation
        };
        let weak = Rc::downgrade(self);
        let socket = Socket::open(&self.url, move |event| {
            if let Some(room) = weak.upgrade() {
                room.on_socket(generation, event);
            }
        })?;
        // Bad frames are only logged (a newer relay may send what we do not know), so
        // without a deadline a server that never sends a usable `welcome` would keep
        // `Room.join` pending forever.
        let weak = Rc::downgrade(self);
        let timer = Timer::new(self.options.join_timeout_ms, move |_| {
            if let Some(room) = weak.upgrade() {
                room.on_welcome_timeout(generation);
            }
        });
        let mut c = self.conn.borrow_mut();
        c.socket = Some(socket);
        c.welcome_timer = Some(timer);
        Ok(())
    }

    fn arm_heartbeat(self: &Rc<Self>, generation: u32, every: u32) {
        let weak = Rc::downgrade(self);
        let timer = Timer::new(every, move |_| {
            // Out of the timer's callback: the check replaces this timer.
            let weak = weak.clone();
            crate::spawn(async move {
                if let Some(room) = weak.upgrade() {
                    room.heartbeat(generation, every);
                }
            });
        });
        self.conn.borrow_mut().heartbeat = Some(timer);
    }

    /// Liveness of the welcomed socket of `generation`, checked every `every` ms. A
    /// browser can take minutes to notice a connection whose network went away
    /// silently (the relay's WebSocket pings are invisible to JavaScript), and frames
    /// sent into it meanwhile are lost. So a connection quiet for a period gets a
    /// `ping`, and one that has not answered within two periods is given up: closed
    /// with `RESUMING` (the relay holds this peer, as after a drop) and reconnected.
    fn heartbeat(self: &Rc<Self>, generation: u32, every: u32) {
        let now = js_sys::Date::now();
        let period = f64::from(every);
        let silent = {
            let mut c = self.conn.borrow_mut();
            if self.left.get() || c.generation != generation || !c.welcomed {
                return;
            }
            match c.ping_sent_at {
                Some(at) => now - at >= 2.0 * period,
                None => {
                    if now - c.heard_at >= period {
                        if let Some(s) = &c.socket {
                            s.send(wire::PING);
                        }
                        c.ping_sent_at = Some(now);
                    }
                    false
                }
            }
        };
        if silent {
            let socket = self.conn.borrow_mut().socket.take();
            if let (false, Some(s)) = (self.options.reconnect, &socket) {
                s.close();
            }
            drop(socket);
            self.on_closed(1006, "the relay stopped answering");
            return;
        }
        self.arm_heartbeat(generation, every);
    }

    /// The socket of `generation` was not welcomed in time: fail the join, or treat it
    /// as a dropped connection while reconnecting (which retries or gives up).
    fn on_welcome_timeout(self: &Rc<Self>, generation: u32) {
        let (joining, socket) = {
            let mut c = self.conn.borrow_mut();
            if self.left.get() || c.generation != generation || c.welcomed {
                return;
            }
            c.welcome_timer = None;
            // Dropping the socket removes its listener: no late `close` arrives.
            (c.joined.is_some(), c.socket.take())
        };
        if let (true, Some(s)) = (joining, &socket) {
            // The join fails: nothing will resume, so a clean close (not `RESUMING`).
            s.close();
        }
        drop(socket);
        let ms = num(f64::from(self.options.join_timeout_ms));
        if joining {
            self.settle_join(Err(Error::new(
                Code::SignalingFailed,
                cat(&[
                    "the relay at ",
                    &self.url,
                    " did not admit this peer within ",
                    &ms,
                    " ms (no usable welcome); check that the URL is a meshwire relay of a \
                     compatible version, or raise joinTimeoutMs on a slow network",
                ]),
            )));
            return;
        }
        // 1006, "abnormal closure": what a browser reports for a connection that
        // dropped without a close frame, which is what this amounts to.
        self.on_closed(1006, "no welcome in time");
    }

    fn on_socket(self: &Rc<Self>, generation: u32, event: SocketEvent) {
        if self.left.get() || self.conn.borrow().generation != generation {
            return;
        }
        match event {
            SocketEvent::Open => {
                let frame = self.join_frame();
                if let Some(s) = &self.conn.borrow().socket {
                    s.send(&frame);
                }
            }
            SocketEvent::Message(text) => {
                {
                    let mut c = self.conn.borrow_mut();
                    c.heard_at = js_sys::Date::now();
                    c.ping_sent_at = None;
                }
                self.on_frame(&text)
            }
            SocketEvent::Closed { code, reason } => self.on_closed(code, &reason),
        }
    }

    fn join_frame(&self) -> String {
        let c = self.conn.borrow();
        wire::join(
            &self.room_id,
            self.options.name.as_deref(),
            c.token.as_deref(),
            c.resume_token.as_deref(),
            &self.options.meta,
        )
    }

    /// Takes the join token for the next join from `options.token`.
    async fn fetch_token(&self) -> Result<()> {
        let token = token_from(self.options.token.clone(), self.options.join_timeout_ms).await?;
        self.conn.borrow_mut().token = token;
        Ok(())
    }

    /// Sends a frame now, or keeps it in the outbox: until the relay connection is
    /// back, or while the relay's rate limit would drop it. `false`: the outbox is
    /// full and the frame was not kept.
    fn send_frame(self: &Rc<Self>, frame: String, to: Option<&str>) -> bool {
        let mut c = self.conn.borrow_mut();
        let c = &mut *c;
        if c.welcomed && c.outbox.is_empty() {
            if let Some(s) = &c.socket {
                match c.pace.take() {
                    Ok(()) => {
                        s.send(&frame);
                        return true;
                    }
                    Err(wait) => self.arm_drain(&mut c.drain_timer, wait),
                }
            }
        }
        let max = if to.is_some() {
            OUTBOX_MAX
        } else {
            OUTBOX_BROADCASTS_MAX
        };
        if c.outbox.len() >= max {
            return false;
        }
        c.outbox.push((to.map(ToOwned::to_owned), frame));
        true
    }

    fn arm_drain(self: &Rc<Self>, slot: &mut Option<Timer>, wait: u32) {
        if slot.is_some() {
            return;
        }
        let weak = Rc::downgrade(self);
        *slot = Some(Timer::new(wait, move |_| {
            // Out of the timer's callback: the drain may replace this timer.
            let weak = weak.clone();
            crate::spawn(async move {
                if let Some(room) = weak.upgrade() {
                    room.drain();
                }
            });
        }));
    }

    /// Sends what waits in the outbox while the rate limit allows, signals first (a
    /// flood of broadcasts must not hold up a negotiation); comes back when a frame can
    /// go again.
    fn drain(self: &Rc<Self>) {
        self.conn.borrow_mut().drain_timer = None;
        if let Some(wait) = self.flush() {
            self.arm_drain(&mut self.conn.borrow_mut().drain_timer, wait);
        }
    }

    /// Sends what the rate limit allows now; if frames still wait, how many ms until
    /// the next can go.
    fn flush(&self) -> Option<u32> {
        let mut c = self.conn.borrow_mut();
        let c = &mut *c;
        let s = c.socket.as_ref().filter(|_| c.welcomed)?;
        while !c.outbox.is_empty() {
            if let Err(wait) = c.pace.take() {
                return Some(wait);
            }
            let i = c
                .outbox
                .iter()
                .position(|(to, _)| to.is_some())
                .unwrap_or(0);
            s.send(&c.outbox.remove(i).1);
        }
        None
    }

    /// Whether frames go out now: the relay connection is open and welcomed.
    pub fn relay_up(&self) -> bool {
        let c = self.conn.borrow();
        c.welcomed && c.socket.is_some()
    }

    /// Sends `signal` (a peer signal, see `wire`) to peer `to` through the relay.
    pub fn signal(self: &Rc<Self>, to: &str, signal: &JsValue) {
        if let Some(frame) = wire::signal(to, signal) {
            // Dropped if 512 frames wait already: a lost offer is sent again, and
            // ICE restarts over lost candidates.
            self.send_frame(frame, Some(to));
        }
    }

    fn on_frame(self: &Rc<Self>, text: &JsValue) {
        let frame = match wire::decode(text) {
            Ok(frame) => frame,
            Err(what) => {
                js::warn(&cat(&["unexpected relay message (", what, "); ignored"]));
                return;
            }
        };
        match frame {
            Frame::Welcome {
                peer_id,
                resume_token,
                resumed,
                peers,
                ice_servers,
                ping_interval_ms,
                rate_limit,
                rate_burst,
            } => {
                // Before `on_welcome` sends what waited: through the new limit.
                self.conn.borrow_mut().pace = Pace::new(rate_limit, rate_burst);
                self.on_welcome(&peer_id, resumed, &resume_token, &peers, ice_servers);
                // A third of the relay's ping period: a dead connection is given up
                // 15–20 s after its last frame by default, before the relay's own timeout and
                // resume grace run out, so the session resumes.
                let every = (ping_interval_ms / 3.0).clamp(250.0, 60_000.0) as u32;
                let generation = self.conn.borrow().generation;
                self.arm_heartbeat(generation, every);
            }
            Frame::PeerJoined { peer, id } => {
                self.add_peer(id.clone(), peer, false);
                self.emit("peer-joined", &js::object(&[("peer", self.peer_view(&id))]));
            }
            Frame::PeerLeft { peer_id, reason } => {
                if reason == "left" {
                    self.transfers_peer_gone(&peer_id, true);
                }
                if let Some(removed) = self.remove_peer(&peer_id) {
                    drop(removed);
                    self.emit(
                        "peer-left",
                        &js::object(&[
                            ("peerId", JsValue::from_str(&peer_id)),
                            ("reason", JsValue::from_str(reason)),
                        ]),
                    );
                }
            }
            Frame::Signal { from, data } => match wire::decode_signal(&data) {
                Ok(signal) => self.on_signal(&from, signal),
                Err(what) => js::warn(&cat(&[
                    "malformed signal from ",
                    &from,
                    " (",
                    what,
                    "); ignored",
                ])),
            },
            Frame::Broadcast { from, data } => {
                self.emit(
                    "broadcast",
                    &js::object(&[("from", JsValue::from_str(&from)), ("data", data)]),
                );
            }
            Frame::Error { code, message } => self.on_relay_error(code, &message),
            Frame::Shutdown { reconnect_in_ms } => {
                self.conn.borrow_mut().reconnect_hint_ms =
                    Some(reconnect_in_ms.clamp(0.0, 60_000.0) as u32);
            }
            Frame::Pong => {}
        }
    }

    /// Hands a peer's signal to its connection. An offer from another connection of
    /// that peer than ours negotiated with replaces ours first: the peer came back as
    /// a new session under the same id while the relay held us, so our resume kept
    /// the old connection and nothing else said it was gone. What the old one
    /// reported ends first (`track-removed`, `peer-disconnected`), as after the grace.
    fn on_signal(self: &Rc<Self>, from: &str, mut signal: wire::Signal) {
        let (session, offer) = match &signal.description {
            Some((kind, init)) => (
                crate::events::sdp_session(&js::get(init, "sdp")),
                *kind == SdpKind::Offer,
            ),
            None => (String::new(), false),
        };
        let stale = {
            let peers = self.peers.borrow();
            let Some(p) = peers.iter().find(|p| p.shared.id == from) else {
                return;
            };
            p.shared
                .replaced_remotely(&session, offer)
                .then(|| p.info.clone())
        };
        if let Some(info) = stale {
            self.renew_peer(from, info, false);
        }
        if let Some(p) = self.peers.borrow().iter().find(|p| p.shared.id == from) {
            signal.session = session;
            p.deliver(signal);
        }
    }

    fn on_relay_error(self: &Rc<Self>, code: &'static str, message: &str) {
        let joining = !self.conn.borrow().welcomed;
        if joining && code == "resume-failed" {
            // Our session is gone (e.g. the relay's secret changed): join as a new peer.
            self.conn.borrow_mut().resume_token = None;
            let frame = self.join_frame();
            if let Some(s) = &self.conn.borrow().socket {
                s.send(&frame);
            }
            return;
        }
        let error = Error::relay(code, message);
        if joining && self.settle_join(Err(error.clone())) {
            return;
        }
        self.emit("error", &error.to_event());
        // `unauthorized` is followed by the relay's 4401 close, which ends the session.
        if joining && code != ErrorCode::Unauthorized.as_str() && !self.left.get() {
            // The relay refused a reconnect (the room filled up after our grace ran
            // out; a cluster that cannot reach Redis): no welcome will come on this
            // socket, so the next attempt goes now, counted and with backoff, rather
            // than after `joinTimeoutMs`.
            let socket = {
                let mut c = self.conn.borrow_mut();
                c.refused = Some(error);
                c.socket.take()
            };
            if let Some(s) = &socket {
                // Not admitted: nothing to hold for a resume.
                s.close();
            }
            drop(socket);
            self.on_closed(1000, "join refused");
        }
    }

    fn on_welcome(
        self: &Rc<Self>,
        peer_id: &str,
        resumed: bool,
        token: &str,
        peers: &js_sys::Array,
        ice: JsValue,
    ) {
        let first = self.me.borrow().is_empty();
        let same_session = !first && resumed && *self.me.borrow() == peer_id;
        *self.me.borrow_mut() = peer_id.to_owned();
        *self.relay_ice.borrow_mut() = ice;
        let listed: Vec<(String, JsValue)> = peers
            .iter()
            .map(|p| (peer_id_of(&p), p))
            .filter(|(id, _)| !id.is_empty())
            .collect();
        {
            let mut c = self.conn.borrow_mut();
            c.resume_token = Some(token.to_owned());
            c.welcomed = true;
            c.welcome_timer = None;
            c.attempts = 0;
            // Queued signals belong to the connections they were made on: in the same
            // session only those to peers still here go out; in a new one every
            // connection is new, and an old offer or candidate would only derail the
            // first negotiation. Broadcasts go out either way (below, `drain`).
            c.outbox.retain(|(to, _)| match to {
                None => true,
                Some(to) => same_session && listed.iter().any(|(id, _)| id == to),
            });
        }
        let mut joined = Vec::new();
        let mut left = Vec::new();
        if same_session {
            // The relay held us: connections that survived stay. Peers that came
            // during the outage offer to us; peers that went are dropped.
            let known = self.peer_ids();
            for id in known
                .iter()
                .filter(|id| !listed.iter().any(|(l, _)| l == *id))
            {
                drop(self.remove_peer(id));
                left.push(id.clone());
            }
            for (id, info) in listed.iter().filter(|(id, _)| !known.contains(id)) {
                self.add_peer(id.clone(), info.clone(), false);
                joined.push(id.clone());
            }
            // An offer written into the connection that died may be lost, and so may
            // an answer to it written into the other side's. What was queued here
            // goes out below, and the relay replays what it held for us, so give
            // those a moment before sending an unanswered offer again.
            for p in self.peers.borrow().iter() {
                p.shared.await_answer(RESUMED_ANSWER_WAIT_MS);
            }
        } else {
            // A new session (first join, or back after the grace): the others see us
            // as a newcomer, so we offer to every one of them on fresh connections.
            let old = self.peer_ids();
            let replaced = core::mem::take(&mut *self.peers.borrow_mut());
            // A peer that is listed again gets a new connection: what the old one
            // reported ends first (`track-removed`, `peer-disconnected`), so the
            // app's view does not hold dead tracks until the new ones arrive.
            let mut farewells = Vec::new();
            for p in &replaced {
                if listed.iter().any(|(id, _)| *id == p.shared.id) {
                    p.shared.farewells(&mut farewells);
                }
            }
            drop(replaced);
            for (event, payload) in farewells {
                self.emit(event, &payload);
            }
            // A listener may have left the room: build nothing for a room that is gone.
            if self.left.get() {
                return;
            }
            for (id, info) in &listed {
                self.add_peer(id.clone(), info.clone(), true);
                if !first && !old.contains(id) {
                    joined.push(id.clone());
                }
            }
            left.extend(
                old.into_iter()
                    .filter(|id| !listed.iter().any(|(l, _)| l == id)),
            );
        }
        self.drain();
        self.settle_join(Ok(()));
        for id in left {
            self.emit(
                "peer-left",
                &js::object(&[
                    ("peerId", JsValue::from_str(&id)),
                    ("reason", JsValue::from_str("lost")),
                ]),
            );
        }
        for id in joined {
            self.emit("peer-joined", &js::object(&[("peer", self.peer_view(&id))]));
        }
        if first {
            self.set_signaling(Signaling::Connected, Some("connected"));
        } else {
            self.set_signaling(Signaling::Connected, Some("resumed"));
        }
    }

    fn on_closed(self: &Rc<Self>, code: u16, reason: &str) {
        // An `error` listener may have left the room just before this runs.
        if self.left.get() {
            return;
        }
        let (joining, attempts, refused) = {
            let mut c = self.conn.borrow_mut();
            c.socket = None;
            c.welcome_timer = None;
            c.heartbeat = None;
            c.drain_timer = None;
            c.ping_sent_at = None;
            c.welcomed = false;
            (c.joined.is_some(), c.attempts, c.refused.take())
        };
        // Closes that reconnecting cannot fix.
        let fatal = match code {
            close_code::UNAUTHORIZED => Some(Error::relay(
                ErrorCode::Unauthorized.as_str(),
                "the relay refused the join token; join again with a new one (pass `token` \
                 as a function and every reconnect asks it for a fresh token)",
            )),
            close_code::REPLACED => Some(Error::new(
                Code::SignalingFailed,
                "this session was resumed in another tab or connection",
            )),
            _ if joining && attempts == 0 => Some(Error::new(
                Code::SignalingFailed,
                cat(&[
                    "could not join through the relay at ",
                    &self.url,
                    " (closed with ",
                    &num(f64::from(code)),
                    " ",
                    reason,
                    "); check the URL and that the relay is running",
                ]),
            )),
            _ if !self.options.reconnect => Some(Error::new(
                Code::SignalingFailed,
                "the relay connection dropped and reconnect is off",
            )),
            _ if attempts >= self.options.max_reconnect_attempts => Some(Error::new(
                Code::SignalingFailed,
                cat(&[
                    "gave up reconnecting to the relay after ",
                    &num(f64::from(attempts)),
                    " attempts; ",
                    &match refused {
                        Some(e) => cat(&["the relay refused the last one: ", &e.message]),
                        None => "join again when the network is back".into(),
                    },
                ]),
            )),
            _ => None,
        };
        if let Some(error) = fatal {
            if self.settle_join(Err(error.clone())) {
                return;
            }
            self.set_signaling(Signaling::Closed, Some("closed"));
            self.emit("error", &error.to_event());
            return;
        }
        if self.conn.borrow().state != Signaling::Reconnecting {
            self.set_signaling(Signaling::Reconnecting, Some("reconnecting"));
        }
        self.schedule_reconnect();
    }

    /// Reconnects after an exponential backoff with jitter (or the relay's hint).
    fn schedule_reconnect(self: &Rc<Self>) {
        let delay = {
            let mut c = self.conn.borrow_mut();
            let attempt = c.attempts;
            c.attempts += 1;
            match c.reconnect_hint_ms.take() {
                Some(hint) => hint,
                None => {
                    let base = f64::from(self.options.reconnect_base_delay_ms);
                    let cap = f64::from(self.options.reconnect_max_delay_ms);
                    let exp = (base * f64::from(1u32 << attempt.min(16))).min(cap);
                    // Full jitter in [exp/2, exp): reconnecting clients spread out.
                    (exp / 2.0 + js_sys::Math::random() * exp / 2.0) as u32
                }
            }
        };
        let weak = Rc::downgrade(self);
        let timer = Timer::new(delay, move |_| {
            let Some(room) = weak.upgrade() else { return };
            room.conn.borrow_mut().retry = None;
            if room.left.get() {
                return;
            }
            let source = room.options.token.clone();
            let timeout_ms = room.options.join_timeout_ms;
            drop(room);
            let weak = weak.clone();
            crate::spawn(async move {
                // No strong reference while the app's function runs: a room dropped
                // meanwhile just ends here.
                let token = token_from(source, timeout_ms).await;
                let Some(room) = weak.upgrade() else { return };
                if room.left.get() {
                    return;
                }
                let fetched = token.map(|t| room.conn.borrow_mut().token = t);
                if let Err(e) = fetched.and_then(|()| room.connect()) {
                    // As a failed attempt: counted, so that reconnecting gives up in
                    // the end (a token backend down with the network is retried).
                    room.emit("error", &e.to_event());
                    room.on_closed(1006, "");
                }
            });
        });
        self.conn.borrow_mut().retry = Some(timer);
    }

    // ---- peers -----------------------------------------------------------------------

    fn rtc_config(&self) -> RtcConfiguration {
        let servers = js_sys::Array::new();
        for list in [&self.options.ice_servers, &*self.relay_ice.borrow()] {
            if js_sys::Array::is_array(list) {
                for s in list.unchecked_ref::<js_sys::Array>().iter() {
                    servers.push(&s);
                }
            }
        }
        // A plain object (the dictionary's web-sys setters are one import each).
        let config = js::object(&[("iceServers", servers.into())]);
        if let Some(policy) = &self.options.ice_transport_policy {
            let policy = if policy == "relay" { "relay" } else { "all" };
            js::set(&config, "iceTransportPolicy", &policy.into());
        }
        config.unchecked_into()
    }

    fn add_peer(self: &Rc<Self>, id: String, info: JsValue, initiate: bool) {
        match Peer::new(self, id, info, &self.rtc_config(), initiate) {
            Ok(p) => {
                let mut peers = self.peers.borrow_mut();
                match peers.binary_search_by(|q| q.shared.id.cmp(&p.shared.id)) {
                    Ok(i) => {
                        let old = peers.get_mut(i).map(|q| core::mem::replace(q, p));
                        drop(peers);
                        drop(old);
                    }
                    Err(i) => peers.insert(i, p),
                }
            }
            Err(e) => self.emit("error", &e.to_event()),
        }
    }

    /// Replaces the connection to peer `id` with a new one (`initiate`: we make its
    /// first offer): the old one's tracks end with events, its queued signals are
    /// dropped (they would only derail the new one).
    fn renew_peer(self: &Rc<Self>, id: &str, info: JsValue, initiate: bool) {
        (self.conn.borrow_mut().outbox).retain(|(to, _)| to.as_deref() != Some(id));
        let mut farewells = Vec::new();
        if let Some(old) = self.remove_peer(id) {
            old.shared.farewells(&mut farewells);
        }
        for (event, payload) in farewells {
            self.emit(event, &payload);
        }
        if !self.left.get() {
            self.add_peer(id.to_owned(), info, initiate);
        }
    }

    /// A colliding offer of `id`'s that we could not apply (`peer.rs`): starts over on a
    /// new connection, which the other side takes as a replacement (a new SDP session).
    pub fn start_over_with(self: &Rc<Self>, id: &str) {
        let info = self
            .peers
            .borrow()
            .iter()
            .find(|p| p.shared.id == id)
            .map(|p| p.info.clone());
        if let Some(info) = info {
            self.renew_peer(id, info, true);
        }
    }

    /// Takes peer `id` out of the room (the caller drops it, with no borrow held).
    fn remove_peer(&self, id: &str) -> Option<Peer> {
        let mut peers = self.peers.borrow_mut();
        let i = peers.iter().position(|p| p.shared.id == id)?;
        Some(peers.remove(i))
    }

    fn peer_ids(&self) -> Vec<String> {
        self.peers
            .borrow()
            .iter()
            .map(|p| p.shared.id.clone())
            .collect()
    }

    /// The user channels to open to every peer.
    pub fn user_channels(&self) -> Vec<(String, ChannelOptions)> {
        self.channels.borrow().clone()
    }

    /// `PeerInfo` for `id` as `room.peers` shows it.
    pub fn peer_view(&self, id: &str) -> JsValue {
        let peers = self.peers.borrow();
        let Some(p) = peers.iter().find(|p| p.shared.id == id) else {
            return JsValue::UNDEFINED;
        };
        js::object(&[
            ("id", JsValue::from_str(id)),
            ("name", js::get(&p.info, "name")),
            ("meta", js::get(&p.info, "meta")),
            ("userId", js::get(&p.info, "userId")),
            ("connectionState", js::get(&p.shared.pc, "connectionState")),
            (
                "audioMuted",
                JsValue::from_bool(p.shared.remote_muted(Source::Microphone)),
            ),
            (
                "videoMuted",
                JsValue::from_bool(p.shared.remote_muted(Source::Camera)),
            ),
        ])
    }

    pub fn peer_views(&self) -> js_sys::Array {
        self.peer_ids()
            .iter()
            .map(|id| self.peer_view(id))
            .collect()
    }

    /// Every track `track` announced and `track-removed` has not taken back: the other
    /// peers' tracks, then our own screen share. A view mounted late (a React tile)
    /// reads this instead of having to have seen the events.
    pub fn track_views(&self) -> js_sys::Array {
        let out = js_sys::Array::new();
        for p in self.peers.borrow().iter() {
            for t in p.shared.track_events() {
                out.push(&t);
            }
        }
        if let Some(screen) = &self.local.borrow().screen {
            out.push(&screen_event(&self.my_id(), screen));
        }
        out
    }

    // ---- data ------------------------------------------------------------------------

    pub fn send(&self, data: &JsValue, to: Option<String>, channel: Option<String>) -> Result<()> {
        self.ensure_joined()?;
        let label = channel.unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
        let payload = if let Some(s) = data.as_string() {
            Payload::Text(s)
        } else if data.is_instance_of::<js_sys::ArrayBuffer>()
            || data.is_instance_of::<js_sys::Uint8Array>()
        {
            Payload::Binary(js_sys::Uint8Array::new(data))
        } else {
            return Err(Error::new(
                Code::InvalidArgument,
                "send() takes a string, an ArrayBuffer or a Uint8Array; use broadcast() for JSON",
            ));
        };
        let peers = self.peers.borrow();
        let targets: Vec<&Peer> = match &to {
            Some(id) => vec![peers
                .iter()
                .find(|p| p.shared.id == *id)
                .ok_or_else(|| self.unknown_peer(id))?],
            None => peers.iter().collect(),
        };
        for p in targets {
            if p.shared.with_channel(&label, |_| ()).is_none() {
                if to.is_some() {
                    let label = quote(&label);
                    return Err(Error::new(
                        Code::ChannelNotOpen,
                        cat(&[
                            "no open channel ",
                            &label,
                            " to peer ",
                            &p.shared.id,
                            ": wait for 'peer-connected', or call createChannel(",
                            &label,
                            ") first",
                        ]),
                    ));
                }
                continue;
            }
            // RTCSctpTransport.maxMessageSize (web-sys has no binding); 64 KiB, what
            // every browser accepts, until the connection has negotiated one.
            let max =
                js::get_f64(&js::get(&p.shared.pc, "sctp"), "maxMessageSize").unwrap_or(65_536.0);
            let size = match &payload {
                Payload::Text(s) => s.len() as f64,
                Payload::Binary(b) => f64::from(b.length()),
            };
            if size > max {
                return Err(Error::new(
                    Code::MessageTooLarge,
                    cat(&[
                        "a ",
                        &num(size),
                        " byte message is over the ",
                        &num(max),
                        " byte limit negotiated with peer ",
                        &p.shared.id,
                        "; split it or use sendFile",
                    ]),
                ));
            }
            let copy = match &payload {
                Payload::Text(s) => Payload::Text(s.clone()),
                Payload::Binary(b) => Payload::Binary(b.clone()),
            };
            if let Some(Err(queued)) = p.shared.with_channel(&label, |ch| ch.send(copy)) {
                return Err(Error::new(
                    Code::MessageTooLarge,
                    cat(&[
                        &num(queued as f64),
                        " bytes are already waiting for peer ",
                        &p.shared.id,
                        "; wait for it to catch up",
                    ]),
                ));
            }
        }
        Ok(())
    }

    pub fn broadcast(self: &Rc<Self>, data: &JsValue) -> Result<()> {
        self.ensure_joined()?;
        let frame = wire::broadcast(data).ok_or_else(|| {
            Error::new(
                Code::InvalidArgument,
                "the data is not JSON-serialisable (cyclic, or contains a BigInt)",
            )
        })?;
        if self.send_frame(frame, None) {
            return Ok(());
        }
        Err(Error::relay(
            ErrorCode::RateLimited.as_str(),
            cat(&[
                &num(OUTBOX_BROADCASTS_MAX as f64),
                " messages are already waiting to go to the relay (its connection is down, \
                 or its rate limit holds them back); send fewer, or use send() over the peer \
                 connections, which has no such limit",
            ]),
        ))
    }

    // ---- files -----------------------------------------------------------------------

    /// `sendFile`: a new channel to `to` for this transfer; the offer goes out when it
    /// opens. `corrupt_at` is a test hook (see `files.rs`).
    pub fn send_file(
        self: &Rc<Self>,
        file: &JsValue,
        to: Option<String>,
        name: Option<String>,
        corrupt_at: Option<f64>,
    ) -> Result<Rc<Transfer>> {
        self.ensure_joined()?;
        if !crate::events::can_hash() {
            return Err(files::no_hashing("sendFile()"));
        }
        if !file.is_instance_of::<JsBlob>() {
            return Err(Error::new(
                Code::InvalidArgument,
                "sendFile() takes a Blob or a File",
            ));
        }
        let Some(to) = to else {
            return Err(Error::new(
                Code::InvalidArgument,
                "sendFile() needs { to: peerId }: a file goes to one peer",
            ));
        };
        let shared = self
            .peers
            .borrow()
            .iter()
            .find(|p| p.shared.id == to)
            .map(|p| p.shared.clone())
            .ok_or_else(|| self.unknown_peer(&to))?;
        let id = files::new_id();
        let label = cat(&[files::LABEL_PREFIX, &id]);
        let dc = shared.create_raw_channel(&label)?;
        let file: JsBlob = file.clone().unchecked_into();
        let meta = files::Meta {
            name: name
                .or_else(|| js::get_string(&file, "name"))
                .unwrap_or_default(),
            size: js::get_f64(&file, "size").unwrap_or(0.0),
            mime: js::get_string(&file, "type").unwrap_or_default(),
        };
        let t = files::outgoing(self, id, to, dc, file, meta, corrupt_at);
        self.transfers.borrow_mut().push(t.clone());
        Ok(t)
    }

    /// A channel the remote side opened for a file (`peer.rs` routes it here): a new
    /// transfer, or an offer to resume one we hold (`files.rs`).
    pub fn incoming_file(self: &Rc<Self>, from: &str, dc: web_sys::RtcDataChannel) {
        if self.left.get() {
            js::close(&dc, None);
            return;
        }
        let id = files::label_id(&dc);
        let held = self.transfers.borrow().iter().find(|t| t.id == id).cloned();
        match held {
            // A resume offer for a transfer we receive (or received: see `linger`).
            Some(t) if !t.outgoing => t.probe(from, dc),
            // Anything else with the id of a transfer we hold (a peer that heard our
            // resume offer, say) is refused: one transfer per id.
            Some(_) => js::close(&dc, None),
            None => {
                let t = files::incoming(self, from.to_owned(), id, dc);
                self.transfers.borrow_mut().push(t);
            }
        }
    }

    /// `t` (ours, just interrupted) offers a resume to every peer connected now.
    pub fn offer_resumes_now(&self, t: &Rc<Transfer>) {
        let connected: Vec<Rc<Shared>> = self
            .peers
            .borrow()
            .iter()
            .filter(|p| p.shared.connected.get())
            .map(|p| p.shared.clone())
            .collect();
        for peer in connected {
            self.offer_resume(t, &peer);
        }
    }

    fn offer_resume(&self, t: &Rc<Transfer>, peer: &Shared) {
        match peer.create_raw_channel(&cat(&[files::LABEL_PREFIX, &t.id])) {
            Ok(dc) => t.probe(&peer.id, dc),
            Err(e) => self.emit("error", &e.to_event()),
        }
    }

    /// `peer` connected: each transfer of ours waiting for its peer to come back offers
    /// it a resume (`files.rs`).
    pub fn offer_resumes(&self, peer: &Shared) {
        let waiting: Vec<Rc<Transfer>> = self
            .transfers
            .borrow()
            .iter()
            .filter(|t| t.outgoing && t.is_interrupted())
            .cloned()
            .collect();
        for t in waiting {
            self.offer_resume(&t, peer);
        }
    }

    /// Takes transfer `t` out of the list (it ended).
    pub fn forget_transfer(&self, t: &Transfer) {
        let gone = {
            let mut list = self.transfers.borrow_mut();
            list.iter()
                .position(|x| core::ptr::eq(&**x, t))
                .map(|i| list.remove(i))
        };
        drop(gone);
    }

    /// The connection to `peer` is gone (`left`: the peer left the room for good): its
    /// transfers wait for it to come back, or fail; on a later task (the caller may
    /// hold the peer list; handlers may call back into the room).
    pub fn transfers_peer_gone(&self, peer: &str, left: bool) {
        let gone: Vec<Rc<Transfer>> = self
            .transfers
            .borrow()
            .iter()
            .filter(|t| t.is_with(peer))
            .cloned()
            .collect();
        if gone.is_empty() {
            return;
        }
        crate::spawn(async move {
            for t in gone {
                if left {
                    t.peer_left();
                } else {
                    t.peer_gone();
                }
            }
        });
    }

    /// The connection to `peer`'s `RTCSctpTransport.maxMessageSize`, once negotiated.
    pub fn sctp_max_message_size(&self, peer: &str) -> Option<f64> {
        let peers = self.peers.borrow();
        let p = peers.iter().find(|p| p.shared.id == peer)?;
        js::get_f64(&js::get(&p.shared.pc, "sctp"), "maxMessageSize")
    }

    pub fn create_channel(&self, label: String, options: ChannelOptions) -> Result<()> {
        self.ensure_joined()?;
        if label.is_empty() || label == DEFAULT_CHANNEL || files::is_file_label(&label) {
            return Err(Error::new(
                Code::InvalidArgument,
                cat(&[
                    "channel label ",
                    &quote(&label),
                    " is reserved or empty; choose another",
                ]),
            ));
        }
        // The browser's own limit (a TypeError from createDataChannel): checked here
        // because the label is kept and opened to every future peer.
        if label.len() > 65_535 {
            return Err(Error::new(
                Code::InvalidArgument,
                cat(&[
                    "a channel label is at most 65535 bytes; this one has ",
                    &num(label.len() as f64),
                    ": choose a shorter one",
                ]),
            ));
        }
        if self.channels.borrow().iter().any(|(l, _)| *l == label) {
            return Ok(());
        }
        // Open to the current peers first, with no borrow of `peers` held by a caller
        // of JavaScript that may fail; keep the channel for future peers only if every
        // current peer took it, so a refusal is reported once, here, not per peer.
        let peers: Vec<Rc<Shared>> = self
            .peers
            .borrow()
            .iter()
            .map(|p| p.shared.clone())
            .collect();
        let mut refused = None;
        for p in &peers {
            if let Err(e) = p.open_channel(&label, &options) {
                refused.get_or_insert(e);
            }
        }
        if let Some(e) = refused {
            return Err(e);
        }
        self.channels.borrow_mut().push((label, options));
        Ok(())
    }

    // ---- media -----------------------------------------------------------------------

    /// Boxed (`crate::Task`), like the other async helpers with several callers.
    pub fn enable_media<'a>(
        self: &'a Rc<Self>,
        constraints: &'a JsValue,
    ) -> crate::Task<'a, Result<MediaStream>> {
        Box::pin(self.enable_media_now(constraints))
    }

    async fn enable_media_now(self: &Rc<Self>, constraints: &JsValue) -> Result<MediaStream> {
        self.ensure_joined()?;
        let constraints = if constraints.is_object() {
            constraints.clone()
        } else {
            js::object(&[("audio", JsValue::TRUE), ("video", JsValue::TRUE)])
        };
        let opens = is_requested(&js::get(&constraints, "audio"))
            || is_requested(&js::get(&constraints, "video"));
        // Only `false`s (stop a kind): getUserMedia refuses to open nothing.
        let stream = if opens {
            media::get_user_media(&constraints).await?
        } else {
            MediaStream::new().map_err(|e| Error::js(Code::MediaFailed, "new MediaStream", &e))?
        };
        // `leave` may have run while the browser opened the devices: its `stop_all`
        // cannot know these tracks, so stop them here or the camera stays on.
        self.ensure_joined_or_stop(&stream)?;
        {
            // A kind the options leave out keeps its track (moved into the new stream);
            // one they name is replaced, or stopped when `false`. A muted microphone
            // stays muted: reopening it must not put the user on air.
            let mut local = self.local.borrow_mut();
            let local = &mut *local;
            let audio = js::get(&constraints, "audio");
            if audio.is_undefined() {
                if let Some(mic) = &local.mic {
                    stream.add_track(mic);
                }
            } else {
                let mic = media::first_track(&stream, "audio");
                if let Some(old) = local.mic.take() {
                    if let Some(mic) = &mic {
                        mic.set_enabled(old.enabled());
                    }
                    old.stop();
                }
                local.mic = mic;
            }
            let video = js::get(&constraints, "video");
            if video.is_undefined() {
                if let Some(camera) = &local.camera {
                    stream.add_track(camera);
                }
            } else {
                if let Some(old) = local.camera.take() {
                    old.stop();
                }
                local.camera = media::first_track(&stream, "video");
                local.wants_video = is_requested(&video);
                local.camera_constraints = video;
            }
            local.stream = Some(Clone::clone(&stream));
        }
        self.sync_senders().await;
        // A `leave` during the sync stopped the tracks (they were in `local`), but the
        // stream is dead: say so rather than hand it out.
        self.ensure_joined()?;
        Ok(stream)
    }

    /// Makes every peer's senders match the local media: adds missing slots
    /// (renegotiated), swaps tracks in existing ones (not renegotiated), removes slots
    /// with nothing left to send, then announces the labels.
    fn sync_senders(&self) -> crate::Task<'_, ()> {
        Box::pin(self.sync_senders_now())
    }

    async fn sync_senders_now(&self) {
        let wanted = self.local.borrow().outgoing();
        let mut swaps = Vec::new();
        for p in self.peers.borrow().iter() {
            for (slot, track, stream) in &wanted {
                match p.shared.sender(*slot) {
                    Some(sender) => {
                        let current: &JsValue = track;
                        if js::get(&sender, "track") != *current {
                            if *slot == Slot::Screen {
                                p.shared.set_sending(&sender, true);
                            }
                            swaps.push((sender, Some(Clone::clone(track))));
                        }
                    }
                    None => p.shared.add_sender(*slot, track, stream),
                }
            }
            for slot in Slot::ALL {
                let Some(sender) = p.shared.sender(slot) else {
                    continue;
                };
                if wanted.iter().any(|(s, ..)| *s == slot) {
                    continue;
                }
                match slot {
                    // Microphone and camera slots stay, sending nothing, so turning
                    // the device on again is a replaceTrack without renegotiation.
                    // The extra screen slot is parked (recvonly, renegotiated) for the
                    // next share to reuse.
                    Slot::Audio | Slot::Video | Slot::Screen => {
                        if js::get(&sender, "track").is_object() {
                            if slot == Slot::Screen {
                                p.shared.set_sending(&sender, false);
                            }
                            swaps.push((sender, None));
                        }
                    }
                }
            }
        }
        for (sender, track) in swaps {
            if let Err(e) = JsFuture::from(sender.replace_track(track.as_ref())).await {
                js::warn(&cat(&[
                    "replaceTrack failed: ",
                    &crate::error::describe(&e),
                ]));
            }
        }
        self.announce_media();
    }

    /// Sends every peer our current media labels (mute state, camera vs screen).
    fn announce_media(&self) {
        let peers = self.peers.borrow();
        for p in peers.iter() {
            let media = p.shared.media_info();
            if !media.is_empty() {
                p.shared.send(&wire::media_signal(&media));
            }
        }
    }

    pub fn set_microphone_enabled(&self, on: bool) {
        if let Some(mic) = &self.local.borrow().mic {
            mic.set_enabled(on);
        }
        self.announce_media();
    }

    pub async fn set_camera_enabled(self: &Rc<Self>, on: bool) -> Result<()> {
        if on {
            self.ensure_joined()?;
            if self.local.borrow().camera.is_some() {
                return Ok(());
            }
            let constraints = {
                let local = self.local.borrow();
                let video = if local.camera_constraints.is_object() {
                    local.camera_constraints.clone()
                } else {
                    JsValue::TRUE
                };
                js::object(&[("video", video)])
            };
            let stream = media::get_user_media(&constraints).await?;
            self.ensure_joined_or_stop(&stream)?;
            let Some(track) = media::first_track(&stream, "video") else {
                media::stop_tracks(&stream);
                return Err(Error::new(
                    Code::MediaFailed,
                    "the camera gave no video track",
                ));
            };
            let mut local = self.local.borrow_mut();
            if local.camera.is_some() {
                // Another `setCameraEnabled(true)` won the race: keep its track.
                media::stop_tracks(&stream);
                return Ok(());
            }
            let local_stream = local
                .stream
                .get_or_insert_with(|| MediaStream::new().unwrap_or(Clone::clone(&stream)));
            local_stream.add_track(&track);
            local.camera = Some(track);
            local.wants_video = true;
        } else {
            let mut local = self.local.borrow_mut();
            if let Some(cam) = local.camera.take() {
                cam.stop();
                if let Some(s) = &local.stream {
                    s.remove_track(&cam);
                }
            }
        }
        self.sync_senders().await;
        Ok(())
    }

    pub async fn start_screen_share(
        self: &Rc<Self>,
        replace_camera: bool,
        audio: bool,
    ) -> Result<MediaStream> {
        self.ensure_joined()?;
        if self.local.borrow().screen.is_some() {
            self.stop_screen_share().await;
            self.ensure_joined()?;
        }
        let stream = media::get_display_media(audio).await?;
        // The picker may stay open for long: the room may have been left meanwhile.
        self.ensure_joined_or_stop(&stream)?;
        if self.local.borrow().screen.is_some() {
            // Another `startScreenShare` finished while this picker was open: this
            // share replaces it, as a second call after the first one would.
            self.stop_screen_share().await;
            self.ensure_joined_or_stop(&stream)?;
        }
        let Some(track) = media::first_track(&stream, "video") else {
            media::stop_tracks(&stream);
            return Err(Error::new(
                Code::MediaFailed,
                "the screen share gave no video track",
            ));
        };
        let replaces = replace_camera && self.local.borrow().wants_video;
        let weak = Rc::downgrade(self);
        // The user may end the share from the browser's own UI. `ended` fires once;
        // stopping the share drops this listener.
        let ended = Listener::new(&track, &["ended"], move |_| {
            if let Some(room) = weak.upgrade() {
                crate::spawn(async move { room.stop_screen_share().await });
            }
        });
        *self.screen_ended.borrow_mut() = Some(ended);
        let screen = Screen {
            stream: Clone::clone(&stream),
            track,
            replaces_camera: replaces,
        };
        let event = screen_event(&self.my_id(), &screen);
        self.local.borrow_mut().screen = Some(screen);
        self.sync_senders().await;
        // A `leave` during the sync stopped the share (it was in `local`).
        self.ensure_joined()?;
        self.emit("track", &event);
        Ok(stream)
    }

    pub fn stop_screen_share(self: &Rc<Self>) -> crate::Task<'_, ()> {
        Box::pin(self.stop_screen_share_now())
    }

    async fn stop_screen_share_now(self: &Rc<Self>) {
        self.screen_ended.borrow_mut().take();
        let Some(screen) = self.local.borrow_mut().screen.take() else {
            return;
        };
        screen.track.stop();
        media::stop_tracks(&screen.stream);
        self.sync_senders().await;
        self.emit("track-removed", &screen_event(&self.my_id(), &screen));
    }

    // ---- watched events ---------------------------------------------------------------

    /// Someone subscribed to `event`: start what produces it, if it is produced only
    /// while listened to (`speaking`, `quality`, `devices-changed`).
    pub fn subscribed(self: &Rc<Self>, event: &str) {
        if self.left.get() {
            return;
        }
        match event {
            "speaking" if self.speaking_timer.borrow().is_none() => self.schedule_speaking(),
            "quality" if !self.quality_polling.replace(true) => self.schedule_quality(0),
            "devices-changed" => self.watch_devices(),
            _ => {}
        }
    }

    fn schedule_speaking(self: &Rc<Self>) {
        let weak = Rc::downgrade(self);
        let timer = Timer::new(speaking::TICK_MS, move |_| {
            if let Some(room) = weak.upgrade() {
                room.speaking_tick();
            }
        });
        *self.speaking_timer.borrow_mut() = Some(timer);
    }

    /// Samples every audio track; stops (closing the `AudioContext`) once nobody
    /// listens to `speaking`.
    fn speaking_tick(self: &Rc<Self>) {
        if self.left.get() {
            return;
        }
        if !self.emitter.has("speaking") {
            self.speaking_timer.borrow_mut().take();
            self.speaking.borrow_mut().stop();
            return;
        }
        // `peers[i]` is the peer of `tracks[i]`; our microphone is under our own id.
        let me = self.my_id();
        let (peers, tracks) = (Array::new(), Array::new());
        if let Some(mic) = &self.local.borrow().mic {
            peers.push(&JsValue::from_str(&me));
            tracks.push(mic);
        }
        for p in self.peers.borrow().iter() {
            let id = JsValue::from_str(&p.shared.id);
            for t in p.shared.audio_tracks() {
                peers.push(&id);
                tracks.push(&t);
            }
        }
        let changes = self.speaking.borrow_mut().tick(&me, &peers, &tracks);
        self.schedule_speaking();
        for change in changes.iter() {
            self.emit("speaking", &change);
        }
    }

    /// Whether an `AudioContext` exists now (for the tests).
    pub fn has_audio_context(&self) -> bool {
        self.speaking.borrow().has_context()
    }

    fn schedule_quality(self: &Rc<Self>, ms: u32) {
        let weak = Rc::downgrade(self);
        let timer = Timer::new(ms, move |_| {
            let weak = weak.clone();
            crate::spawn(async move { Inner::quality_tick(weak).await });
        });
        *self.quality_timer.borrow_mut() = Some(timer);
    }

    /// Polls the stats and emits `quality` for each peer whose quality changed; stops
    /// once nobody listens to `quality`.
    async fn quality_tick(weak: alloc::rc::Weak<Inner>) {
        let samples = Inner::collect_stats(weak.clone()).await;
        let Some(room) = weak.upgrade() else { return };
        if room.left.get() || !room.quality_polling.get() {
            return;
        }
        if !room.emitter.has("quality") {
            room.quality_polling.set(false);
            room.quality_timer.borrow_mut().take();
            *room.qualities.borrow_mut() = JsValue::UNDEFINED;
            return;
        }
        let changed = crate::events::quality_changes(&room.qualities.borrow(), &samples);
        *room.qualities.borrow_mut() = samples.into();
        room.schedule_quality(stats::QUALITY_POLL_MS);
        for change in changed.iter() {
            room.emit("quality", &change);
        }
    }

    /// `getStats()` of every peer connection, as samples against earlier calls (`stats.rs`).
    /// Holds only a `Weak` across the awaits.
    fn collect_stats(weak: alloc::rc::Weak<Inner>) -> crate::Task<'static, Array> {
        Box::pin(async move {
            let round = {
                let Some(room) = weak.upgrade() else {
                    return Array::new();
                };
                let (pcs, ids) = (Array::new(), Array::new());
                for p in room.peers.borrow().iter() {
                    pcs.push(&p.shared.pc);
                    ids.push(&JsValue::from_str(&p.shared.id));
                }
                crate::events::collect_stats(&pcs, &ids, &room.stats_prev)
            };
            let done = JsFuture::from(round).await;
            if weak.strong_count() == 0 {
                return Array::new();
            }
            let done: Array = match done {
                Ok(done) => done.unchecked_into(),
                Err(_) => Array::new(),
            };
            done.iter().map(|holder| stats::finish(&holder)).collect()
        })
    }

    /// `room.getStats()`: one `PeerStats` per peer.
    pub async fn get_stats(self: &Rc<Self>) -> Result<js_sys::Array> {
        self.ensure_joined()?;
        let samples = Inner::collect_stats(Rc::downgrade(self)).await;
        Ok(samples)
    }

    fn watch_devices(self: &Rc<Self>) {
        if self.devices_listener.borrow().is_some() {
            return;
        }
        let Ok(md) = media::media_devices() else {
            return;
        };
        let weak = Rc::downgrade(self);
        let listener = Listener::new(&md, &["devicechange"], move |_| {
            let weak = weak.clone();
            crate::spawn(async move {
                let list = devices::list().await;
                let Some(room) = weak.upgrade() else { return };
                if room.left.get() {
                    return;
                }
                match list {
                    Ok(list) => {
                        room.emit("devices-changed", &js::object(&[("devices", list.into())]))
                    }
                    Err(e) => js::warn(&e.message),
                }
            });
        });
        *self.devices_listener.borrow_mut() = Some(listener);
    }

    /// `switchDevice`: opens `device_id` and puts its track in place of the microphone
    /// or camera on every connection (`replaceTrack`: no renegotiation). With the
    /// camera off, the device is only remembered for when it is turned on.
    pub async fn switch_device(self: &Rc<Self>, kind: &str, device_id: &str) -> Result<()> {
        self.ensure_joined()?;
        let track_kind = devices::track_kind(kind)?;
        if device_id.is_empty() {
            return Err(Error::new(
                Code::InvalidArgument,
                "switchDevice needs a deviceId: use one from listDevices()",
            ));
        }
        let video = track_kind == "video";
        if video && self.local.borrow().camera.is_none() {
            let mut local = self.local.borrow_mut();
            local.camera_constraints = devices::with_device(&local.camera_constraints, device_id);
            return Ok(());
        }
        let previous = if video {
            self.local.borrow().camera_constraints.clone()
        } else {
            JsValue::TRUE
        };
        let constraints = js::object(&[(track_kind, devices::with_device(&previous, device_id))]);
        let stream = media::get_user_media(&constraints).await.map_err(|e| {
            // Name the device that is not there.
            if e.message == media::NO_MATCH {
                Error::new(
                    Code::MediaFailed,
                    cat(&[
                        "no ",
                        kind,
                        " with deviceId ",
                        &quote(device_id),
                        ": use an id from listDevices()",
                    ]),
                )
            } else {
                e
            }
        })?;
        self.ensure_joined_or_stop(&stream)?;
        let Some(track) = media::first_track(&stream, track_kind) else {
            media::stop_tracks(&stream);
            return Err(Error::new(
                Code::MediaFailed,
                cat(&["the device gave no ", track_kind, " track"]),
            ));
        };
        {
            let mut local = self.local.borrow_mut();
            let local = &mut *local;
            let slot = if video {
                &mut local.camera
            } else {
                &mut local.mic
            };
            let old = slot.replace(Clone::clone(&track));
            if let Some(old) = &old {
                track.set_enabled(old.enabled());
                old.stop();
            }
            let local_stream = local
                .stream
                .get_or_insert_with(|| MediaStream::new().unwrap_or(Clone::clone(&stream)));
            if let Some(old) = &old {
                local_stream.remove_track(old);
            }
            local_stream.add_track(&track);
            if video {
                local.camera_constraints = devices::with_device(&previous, device_id);
                local.wants_video = true;
            }
        }
        self.sync_senders().await;
        self.ensure_joined()
    }

    // ---- leaving ---------------------------------------------------------------------

    fn ensure_joined(&self) -> Result<()> {
        if self.left.get() {
            return Err(Error::new(
                Code::NotJoined,
                "this room was left; join again with Room.join()",
            ));
        }
        Ok(())
    }

    /// [`Self::ensure_joined`] after an await that produced `stream`: a room left
    /// meanwhile stops the stream's tracks (nothing else would) and fails.
    fn ensure_joined_or_stop(&self, stream: &MediaStream) -> Result<()> {
        let joined = self.ensure_joined();
        if joined.is_err() {
            media::stop_tracks(stream);
        }
        joined
    }

    /// Leaves: tells the relay, closes every connection, stops local media.
    pub fn leave(&self) {
        if self.left.get() {
            return;
        }
        // What the rate limit allows of what waits goes first; the rest is dropped.
        self.flush();
        if let Some(s) = &self.conn.borrow().socket {
            s.send(wire::LEAVE);
        }
        self.shutdown();
        self.emit("signaling", &JsValue::from_str("closed"));
        self.emitter.clear();
    }

    /// Releases everything (also when a join fails).
    fn shutdown(&self) {
        self.left.set(true);
        {
            let mut c = self.conn.borrow_mut();
            c.retry = None;
            c.welcome_timer = None;
            c.heartbeat = None;
            c.drain_timer = None;
            c.state = Signaling::Closed;
            if let Some(s) = c.socket.take() {
                s.close();
            }
        }
        self.speaking_timer.borrow_mut().take();
        self.speaking.borrow_mut().stop();
        self.quality_polling.set(false);
        self.quality_timer.borrow_mut().take();
        self.devices_listener.borrow_mut().take();
        let transfers = core::mem::take(&mut *self.transfers.borrow_mut());
        for t in &transfers {
            t.abandon();
        }
        let peers = core::mem::take(&mut *self.peers.borrow_mut());
        drop(peers);
        self.screen_ended.borrow_mut().take();
        self.local.borrow_mut().stop_all();
    }

    pub fn signaling_state(&self) -> &'static str {
        self.conn.borrow().state.as_str()
    }
}

/// Our screen share as a `track` / `track-removed` event (and in `room.tracks`) shows it.
fn screen_event(my_id: &str, screen: &Screen) -> JsValue {
    js::object(&[
        ("peerId", JsValue::from_str(my_id)),
        ("track", Clone::clone(&screen.track).into()),
        ("stream", Clone::clone(&screen.stream).into()),
        ("source", JsValue::from_str("screen")),
        ("muted", JsValue::FALSE),
    ])
}

fn peer_id_of(info: &JsValue) -> String {
    js::get_string(info, "id").unwrap_or_default()
}

/// The join token `source` (`options.token`) gives: the string itself, or what the
/// function returns (awaited if it is a promise). A function that throws, rejects or
/// gives something else, or does not answer within `timeout_ms`, fails the attempt.
async fn token_from(source: JsValue, timeout_ms: u32) -> Result<Option<String>> {
    let Some(f) = source.dyn_ref::<Function>() else {
        return Ok(source.as_string());
    };
    let given = match f.call0(&JsValue::UNDEFINED) {
        Ok(v) => {
            // The deadline rejects with `undefined`, which nothing else here does.
            let deadline = js_sys::Promise::new(&mut |_, reject| {
                js::set_timeout(&reject, timeout_ms);
            });
            let race = Array::of2(&js_sys::Promise::resolve(&v), &deadline);
            JsFuture::from(js_sys::Promise::race(&race)).await
        }
        Err(e) => Err(e),
    };
    if given.as_ref().is_err_and(JsValue::is_undefined) {
        return Err(Error::relay(
            ErrorCode::Unauthorized.as_str(),
            cat(&[
                "could not get a join token: the `token` function did not answer within ",
                &num(f64::from(timeout_ms)),
                " ms (joinTimeoutMs)",
            ]),
        ));
    }
    let failed = |what: &str| {
        Error::relay(
            ErrorCode::Unauthorized.as_str(),
            cat(&[
                "could not get a join token: the `token` function ",
                what,
                " (it runs before every join and reconnect)",
            ]),
        )
    };
    let token = given.map_err(|e| failed(&cat(&["failed: ", &crate::error::describe(&e)])))?;
    match token.as_string() {
        Some(t) => Ok(Some(t)),
        None => Err(failed("must return a string or a promise of one")),
    }
}

/// `ws://` / `wss://` URL of the relay's socket from what the app passed: a ws(s) or
/// http(s) URL, with or without the `/ws` path.
fn ws_url(url: &str) -> Result<String> {
    // Byte-wise trimming: `str::trim` and `splitn` would bring Unicode tables and
    // pattern searchers into the wasm for one call.
    let url = url.trim_ascii();
    let url = url
        .get(..url.bytes().rposition(|b| b != b'/').map_or(0, |i| i + 1))
        .unwrap_or(url);
    let (scheme, host_and_path) = if let Some(r) = url.strip_prefix("https://") {
        ("wss://", r)
    } else if let Some(r) = url.strip_prefix("http://") {
        ("ws://", r)
    } else if let Some(r) = url.strip_prefix("wss://") {
        ("wss://", r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        ("ws://", r)
    } else {
        return Err(Error::new(
            Code::InvalidArgument,
            cat(&[
                "relay URL ",
                &quote(url),
                " must start with ws://, wss://, http:// or https://",
            ]),
        ));
    };
    // Trailing slashes are gone, so a slash after the host means a non-empty path.
    let path = if host_and_path.bytes().any(|b| b == b'/') {
        ""
    } else {
        "/ws"
    };
    Ok(cat(&[scheme, host_and_path, path]))
}

/// Parses the `createChannel` options (kept here so `lib.rs` stays a thin face).
pub fn channel_options(options: &JsValue) -> Result<ChannelOptions> {
    data::parse_options(options)
}
