//! One remote peer: its `RTCPeerConnection`, negotiated with the W3C "perfect
//! negotiation" pattern (<https://w3c.github.io/webrtc-pc/#perfect-negotiation-example>),
//! trickle ICE, ICE restart, its data channels and its media.
//!
//! Ownership: [`Peer`] (kept in the room's map) owns the connection, every event
//! listener on it and on its channels, and the sender of its signal queue. Listeners
//! capture only a `Weak` of the shared part, so dropping the `Peer` (on `peer-left` or
//! `leave`) removes every listener and ends its signal task: nothing leaks per peer.

use crate::cell::RefCell;
use crate::data::Channel;
use crate::error::{Code, Error};
use crate::js::{self, cat, Listener, Timer};
use crate::media::{Local, Slot};
use crate::prelude::*;
use crate::room::Inner;
use crate::wire::{self, Signal};
use alloc::collections::VecDeque;
use alloc::rc::{Rc, Weak};
use core::cell::Cell;
use meshwire_protocol::peer::{MediaInfo, SdpKind, Source};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MediaStream, MediaStreamTrack, RtcConfiguration, RtcDataChannel, RtcPeerConnection,
    RtcRtpSender, RtcSessionDescriptionInit,
};

/// The connection's `localDescription` (pending, else current) and
/// `currentLocalDescription` (of the latest negotiation that completed).
const LOCAL: &str = "localDescription";
const CURRENT: &str = "currentLocalDescription";

/// The label of the channel every pair of peers has (`send` without `channel`).
pub const DEFAULT_CHANNEL: &str = "meshwire";

/// The peer connection events a peer listens to (one handler, see [`Shared::on_event`]).
const EVENTS: &[&str] = &[
    "negotiationneeded",
    "icecandidate",
    "track",
    "datachannel",
    "iceconnectionstatechange",
    "connectionstatechange",
];

/// A remote track as this side sees it.
pub struct RemoteTrack {
    /// The `mid` of the transceiver it arrived on.
    pub mid: String,
    pub track: MediaStreamTrack,
    pub stream: MediaStream,
    pub source: Source,
    pub muted: bool,
}

/// The part of a peer that event listeners and async tasks reach (through a `Weak`).
pub struct Shared {
    /// The remote peer's id.
    pub id: String,
    pub pc: RtcPeerConnection,
    /// Perfect negotiation's role: the polite peer rolls back its own offer on a
    /// collision. Rule: the peer whose id sorts higher is polite.
    polite: bool,
    making_offer: Cell<bool>,
    ignore_offer: Cell<bool>,
    setting_answer: Cell<bool>,
    /// The number (`seq`) of our latest offer, 1, 2, …: the pending one while we are in
    /// `have-local-offer`. Answers echo it, so an answer to an earlier offer (sent
    /// again, see [`Shared::await_answer`]) is not applied to a later one.
    offers: Cell<u32>,
    /// The `seq` of the other side's latest offer that we answered.
    answered: Cell<u32>,
    /// The session id (`events::sdp_session`) of the other side's descriptions: which
    /// of its connections this one negotiates with (see [`Shared::replaced_remotely`]).
    remote_session: RefCell<String>,
    /// Whether local tracks were added (the newcomer adds them at once; the peer that
    /// was already in the room adds them right after applying the first offer, so they
    /// ride on the offered transceivers instead of forcing a second negotiation).
    attached: Cell<bool>,
    room: Weak<Inner>,
    /// Our senders, indexed by outgoing [`Slot`] (`slot as usize`).
    pub senders: RefCell<[Option<RtcRtpSender>; 3]>,
    /// What the remote side said about its transceivers (one entry per mid).
    remote_media: RefCell<Vec<MediaInfo>>,
    /// Remote tracks (one per mid).
    tracks: RefCell<Vec<RemoteTrack>>,
    /// Data channels, ours and the remote's. Both sides may open a channel with the
    /// same label (`createChannel` on each): each is listened to; sends use ours.
    pub channels: RefCell<Vec<Channel>>,
    /// `connected` was reported (so a drop reports `peer-disconnected` once).
    pub connected: Cell<bool>,
    /// Signals from the relay, handled strictly in order by one task at a time
    /// (`draining` says whether it runs).
    inbox: RefCell<VecDeque<Signal>>,
    draining: Cell<bool>,
    /// While an ICE restart is under way: reports `peer-connection-failed` unless
    /// connected again in time. Cleared when the connection comes back.
    restart_timer: RefCell<Option<Timer>>,
    /// A restart is under way (one round at a time; the next failure after the
    /// timeout starts another).
    restarting: Cell<bool>,
    /// ICE is `disconnected`: restart unless it recovers on its own within
    /// [`DISCONNECTED_GRACE_MS`].
    disconnect_timer: RefCell<Option<Timer>>,
    /// The next check that our offer was answered (see [`Shared::await_answer`]).
    answer_timer: RefCell<Option<Timer>>,
    /// Resolved (`close_now`) when the connection is closed. A closed connection may
    /// never settle the promises of operations under way
    /// (<https://w3c.github.io/webrtc-pc/#dom-rtcpeerconnection-close>), so [`settle`]
    /// races them with this one: a task parked on such a promise would hold its
    /// callbacks forever.
    closed: js_sys::Promise,
    close_now: js_sys::Function,
    is_closed: Cell<bool>,
}

/// How long ICE may stay `disconnected` (a lost path that may come back by itself, a
/// Wi-Fi blip) before the SDK restarts it rather than waiting for `failed`, which
/// Chrome reports only on the connection state, and only after ~15 s.
const DISCONNECTED_GRACE_MS: u32 = 2_500;

/// How long an offer may go unanswered before it is sent again; each further wait is
/// twice as long, up to [`ANSWER_WAIT_MAX_MS`]. An answer takes a relay round trip
/// (well under a second), so a longer silence means the offer or its answer was lost
/// on the relay path (see [`Shared::await_answer`]).
const ANSWER_WAIT_MS: u32 = 5_000;
const ANSWER_WAIT_MAX_MS: u32 = 30_000;

/// A remote peer, owned by the room.
pub struct Peer {
    pub shared: Rc<Shared>,
    _listener: Listener,
    /// The peer's public fields (`name`, `meta`, `userId`) as the relay sent them.
    pub info: JsValue,
}

impl Peer {
    /// Creates the connection to `id`. `initiate`: we are the newcomer and make the
    /// first offer (by opening the default channel and adding our tracks).
    pub fn new(
        room: &Rc<Inner>,
        id: String,
        info: JsValue,
        config: &RtcConfiguration,
        initiate: bool,
    ) -> Result<Peer, Error> {
        let pc = RtcPeerConnection::new_with_configuration(config)
            .map_err(|e| Error::js(Code::Unsupported, "cannot create an RTCPeerConnection", &e))?;
        let polite = room.my_id().as_str() > id.as_str();
        let mut close_now = None;
        let closed = js_sys::Promise::new(&mut |resolve, _| close_now = Some(resolve));
        let shared = Rc::new(Shared {
            id,
            pc,
            polite,
            making_offer: Cell::new(false),
            ignore_offer: Cell::new(false),
            setting_answer: Cell::new(false),
            offers: Cell::new(0),
            answered: Cell::new(0),
            remote_session: RefCell::default(),
            attached: Cell::new(false),
            room: Rc::downgrade(room),
            senders: RefCell::default(),
            remote_media: RefCell::default(),
            tracks: RefCell::default(),
            channels: RefCell::default(),
            connected: Cell::new(false),
            inbox: RefCell::default(),
            draining: Cell::new(false),
            restart_timer: RefCell::default(),
            restarting: Cell::new(false),
            disconnect_timer: RefCell::default(),
            answer_timer: RefCell::default(),
            closed,
            close_now: close_now.unwrap_or_else(|| JsValue::UNDEFINED.unchecked_into()),
            is_closed: Cell::new(false),
        });
        let weak = Rc::downgrade(&shared);
        let listener = Listener::new(&shared.pc, EVENTS, move |e| {
            if let Some(peer) = weak.upgrade() {
                peer.on_event(&e);
            }
        });
        if initiate {
            // Without the default channel the peer is of no use: fail it. A user
            // channel the browser refuses is reported; the peer works without it.
            shared.open_channel(DEFAULT_CHANNEL, &crate::data::ChannelOptions::default())?;
            shared.open_user_channels(room);
            shared.attach_local(&room.local.borrow());
            // The first offer now rather than on `negotiationneeded`, a task later
            // (~1 ms of every join). Browsers hold that event back while the offer is
            // pending, and `on_event` skips it should one come anyway.
            crate::spawn(negotiate(Rc::downgrade(&shared)));
        }
        Ok(Peer {
            shared,
            _listener: listener,
            info,
        })
    }

    /// Queues a signal from the relay for in-order processing.
    pub fn deliver(&self, signal: Signal) {
        let shared = &self.shared;
        shared.inbox.borrow_mut().push_back(signal);
        if !shared.draining.replace(true) {
            crate::spawn(drain(Rc::downgrade(shared)));
        }
    }

    /// Closes the connection and its channels.
    pub fn close(&self) {
        for channel in self.shared.channels.borrow().iter() {
            channel.close();
        }
        // File channels belong to their transfers, which fail (on a later task).
        if let Some(room) = self.shared.room() {
            room.transfers_peer_gone(&self.shared.id, false);
        }
        self.shared.restart_timer.borrow_mut().take();
        self.shared.disconnect_timer.borrow_mut().take();
        self.shared.answer_timer.borrow_mut().take();
        js::close(&self.shared.pc, None);
        self.shared.is_closed.set(true);
        let _ = self.shared.close_now.call0(&JsValue::UNDEFINED);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.close();
    }
}

/// Handles a peer's queued signals one after the other; ends when the queue is empty
/// (the next `deliver` starts it again) or the peer is gone.
///
/// Only a `Weak` is held across awaits: a connection closed mid-operation may never
/// settle its promises (<https://w3c.github.io/webrtc-pc/#dom-rtcpeerconnection-close>),
/// and a strong reference parked in such an await would keep the peer's connection,
/// channels and tracks alive for good.
async fn drain(weak: Weak<Shared>) {
    loop {
        let next = {
            let Some(peer) = weak.upgrade() else { return };
            let next = peer.inbox.borrow_mut().pop_front();
            if next.is_none() {
                peer.draining.set(false);
            }
            next
        };
        let Some(signal) = next else { return };
        handle(&weak, signal).await;
    }
}

/// Makes an offer, on `negotiationneeded` or as a newcomer's first (perfect
/// negotiation's `makingOffer` guards the window in which a remote offer would collide
/// with ours). Holds only a `Weak` across the await, as [`drain`] does.
async fn negotiate(weak: Weak<Shared>) {
    let offered = {
        let Some(peer) = weak.upgrade() else { return };
        peer.making_offer.set(true);
        peer.ext().set_local_description_auto()
    };
    let Some((peer, result)) = settle(&weak, offered).await else {
        return;
    };
    if result.is_ok() {
        peer.offers.set(peer.offers.get() + 1);
        peer.send_description(LOCAL);
        peer.await_answer(ANSWER_WAIT_MS);
    }
    peer.making_offer.set(false);
    if let Err(e) = result {
        js::warn(&cat(&[
            "offer to ",
            &peer.id,
            " failed: ",
            &crate::error::describe(&e),
        ]));
    }
}

/// Awaits `promise` without keeping the peer alive, and hands back the peer if it still
/// exists, not closed, when the promise settles (see [`drain`]); gives up when the
/// connection closes, whether or not `promise` ever settles.
async fn settle(
    weak: &Weak<Shared>,
    promise: js_sys::Promise,
) -> Option<(Rc<Shared>, Result<JsValue, JsValue>)> {
    let raced = {
        let peer = weak.upgrade()?;
        js_sys::Promise::race(&js_sys::Array::of2(&promise, &peer.closed))
    };
    let result = JsFuture::from(raced).await;
    weak.upgrade()
        .filter(|peer| !peer.is_closed.get())
        .map(|peer| (peer, result))
}

/// Handles one signal from this peer, in arrival order. Track labels that come with a
/// description are applied with it (see [`on_description`]); alone (a mute), at once.
async fn handle(weak: &Weak<Shared>, signal: Signal) {
    if let Some((kind, init)) = signal.description {
        let init = init.unchecked_into();
        let (media, seq, session) = (signal.media, signal.seq, signal.session);
        if let Err(e) = on_description(weak, kind, init, media, seq, session).await {
            let Some(peer) = weak.upgrade() else { return };
            js::warn(&cat(&[
                "negotiation with ",
                &peer.id,
                " failed: ",
                &e.message,
            ]));
        }
    } else if let Some(media) = signal.media {
        let Some(peer) = weak.upgrade() else { return };
        peer.on_media(media);
    }
    if let Some(init) = signal.candidate {
        let added = {
            let Some(peer) = weak.upgrade() else { return };
            peer.pc
                .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(init.unchecked_ref()))
        };
        let Some((peer, added)) = settle(weak, added).await else {
            return;
        };
        // Candidates of an offer we ignored are expected to fail.
        if let (Err(e), false) = (added, peer.ignore_offer.get()) {
            js::warn(&cat(&[
                "ICE candidate from ",
                &peer.id,
                " rejected: ",
                &crate::error::describe(&e),
            ]));
        }
    }
}

/// Perfect negotiation's description handling (a peer gone meanwhile ends it quietly).
///
/// `media`, the sender's track labels as of this description, is applied only if the
/// description is: an impolite peer that ignores a colliding offer ignores its labels
/// too. (Applied anyway, a screen share stopped in that offer was reported removed
/// while this side's browser, which never applied the offer, still counted the track
/// as received; when the share restarted before the next offer, the browser fired no
/// new `track` and the share never reappeared: the glare test, 1 run in ~15 under load.)
/// They are applied before `setRemoteDescription`, so its `track` events see them.
async fn on_description(
    weak: &Weak<Shared>,
    kind: SdpKind,
    init: RtcSessionDescriptionInit,
    media: Option<Vec<MediaInfo>>,
    seq: u32,
    session: String,
) -> Result<(), Error> {
    let is_offer = kind == SdpKind::Offer;
    let (applied, collided) = {
        let Some(peer) = weak.upgrade() else {
            return Ok(());
        };
        let signaling = peer.state("signalingState");
        if !is_offer {
            // An answer to an offer no longer pending (`seq` says which it answers; 0
            // from a peer that does not number offers): a second answer to an offer
            // sent again (`await_answer`), or one to an offer since replaced.
            if signaling != "have-local-offer" || (seq != 0 && seq != peer.offers.get()) {
                return Ok(());
            }
        } else if seq != 0 && seq <= peer.answered.get() {
            // An offer we answered already, sent again because our answer was slow or
            // lost: answer it again, without negotiating anew (which could roll back
            // an offer of ours). Unless a later negotiation completed since: then
            // the other side had our answer, and this is only late.
            let current = js::get(&peer.pc, CURRENT);
            if seq == peer.answered.get()
                && js::get_string(&current, "type").as_deref() == Some("answer")
            {
                // The candidates that trickled after the first may be lost with our
                // answer: the copy sent again carries those gathered since.
                crate::events::add_sdp_candidates(&peer.pc, &js::get(&init, "sdp"));
                peer.send_description(CURRENT);
            }
            return Ok(());
        }
        let ready_for_offer =
            !peer.making_offer.get() && (signaling == "stable" || peer.setting_answer.get());
        let collision = is_offer && !ready_for_offer;
        peer.ignore_offer.set(!peer.polite && collision);
        if peer.ignore_offer.get() {
            return Ok(());
        }
        if let Some(media) = media {
            peer.on_media(media);
        }
        peer.setting_answer.set(kind == SdpKind::Answer);
        // A polite peer's colliding offer is rolled back implicitly here.
        (peer.pc.set_remote_description(&init), collision)
    };
    let Some((peer, applied)) = settle(weak, applied).await else {
        return Ok(());
    };
    peer.setting_answer.set(false);
    if let (Err(e), true) = (&applied, collided) {
        // Chromium, polite, cannot take Firefox's colliding offer: its rollback keeps
        // the RTP header extension ids of its own offer, which Firefox's gives other
        // meanings ("RTP extension ID reassignment not supported"; an explicit rollback
        // first fails the same way). The connection is left half rolled back and the
        // other side waits for an answer for good: start over on a new connection,
        // which the other side takes as a replacement (tests/e2e/interop.test.mjs).
        let e = Error::js(Code::Internal, "setRemoteDescription", e);
        js::warn(&cat(&[
            "starting a new connection to ",
            &peer.id,
            ": its offer collided with ours and could not be applied (",
            &e.message,
            ")",
        ]));
        if let Some(room) = peer.room() {
            let id = peer.id.clone();
            drop(peer);
            room.start_over_with(&id);
        }
        return Ok(());
    }
    applied.map_err(|e| Error::js(Code::Internal, "setRemoteDescription", &e))?;
    peer.negotiated_with(session);
    if !is_offer {
        return Ok(());
    }
    if !peer.attached.get() {
        if let Some(room) = peer.room() {
            peer.attach_local(&room.local.borrow());
            peer.open_user_channels(&room);
        }
    }
    let answered = peer.ext().set_local_description_auto();
    drop(peer);
    let Some((peer, answered)) = settle(weak, answered).await else {
        return Ok(());
    };
    answered.map_err(|e| Error::js(Code::Internal, "setLocalDescription (answer)", &e))?;
    peer.answered.set(seq);
    peer.send_description(LOCAL);
    Ok(())
}

impl Shared {
    fn room(&self) -> Option<Rc<Inner>> {
        self.room.upgrade()
    }

    fn ext(&self) -> &js::PeerConnectionExt {
        self.pc.unchecked_ref()
    }

    /// A string property of the connection (`signalingState`, `connectionState`, …).
    fn state(&self, key: &str) -> String {
        js::get_string(&self.pc, key).unwrap_or_default()
    }

    /// Every event of the connection.
    fn on_event(self: &Rc<Self>, e: &JsValue) {
        match js::event_type(e).as_str() {
            // Not while an offer is being made or answered: the browser checks again
            // once the connection is stable, and fires anew if the offer in flight
            // did not cover the change. (Chrome and Firefox do not fire it then; this
            // guards against a second offer from one that does. If the skipped event
            // was needed and the offer in flight then failed, nothing fires again: the
            // same as a failed offer without the skip.)
            "negotiationneeded" => {
                if !self.making_offer.get() && self.state("signalingState") == "stable" {
                    crate::spawn(negotiate(Rc::downgrade(self)));
                }
            }
            "icecandidate" => {
                // Trickle ICE: every candidate goes out as soon as it is gathered; the
                // end-of-candidates event (null) is not sent.
                let c = js::get(e, "candidate");
                if c.is_object() {
                    self.send(&wire::candidate_signal(&c));
                }
            }
            "track" => self.on_track(e),
            "datachannel" => {
                let dc: RtcDataChannel = js::get(e, "channel").unchecked_into();
                let label = js::get_string(&dc, "label").unwrap_or_default();
                if crate::files::is_file_label(&label) {
                    if let Some(room) = self.room() {
                        room.incoming_file(&self.id, dc);
                    }
                } else {
                    self.adopt_channel(dc, false);
                }
            }
            "iceconnectionstatechange" => self.on_ice_state(),
            _ => self.on_connection_state(),
        }
    }

    /// Sends a signal (see `wire`) to this peer through the relay.
    pub fn send(&self, signal: &JsValue) {
        if let Some(room) = self.room() {
            room.signal(&self.id, signal);
        }
    }

    /// Whether a description from the other side with SDP session id `session` is an
    /// offer from another connection than the one this one negotiated with: the other
    /// side replaced its connection while this one stayed, and this one can never
    /// negotiate with the new one (its `seq`s start again, its keys differ).
    pub fn replaced_remotely(&self, session: &str, offer: bool) -> bool {
        let known = self.remote_session.borrow();
        offer && !session.is_empty() && !known.is_empty() && *known != *session
    }

    /// Notes the session id of a remote description just applied: only what was
    /// applied counts (an ignored offer or a dropped answer says nothing of which
    /// connection this one negotiates with). `answered` counts the offers of that
    /// connection, so it starts again with another.
    fn negotiated_with(&self, session: String) {
        let mut known = self.remote_session.borrow_mut();
        if !session.is_empty() && *known != session {
            *known = session;
            self.answered.set(0);
        }
    }

    /// Sends a local description (`which`: [`LOCAL`] or [`CURRENT`]) with our media
    /// labels and its `seq`: an offer's own number, an answer's offer's.
    fn send_description(&self, which: &str) {
        let local = js::get(&self.pc, which);
        let kind = js::get_string(&local, "type").unwrap_or_default();
        let seq = match kind.as_str() {
            "offer" => self.offers.get(),
            "answer" | "pranswer" => self.answered.get(),
            _ => return,
        };
        self.send(&wire::description_signal(
            &kind,
            js::get(&local, "sdp"),
            seq,
            &self.media_info(),
        ));
    }

    /// Checks in `ms` that our offer was answered, and sends it again if not, checking
    /// again twice as late, for as long as it stays unanswered. The relay path can lose
    /// an offer or its answer with no error to anyone: written into a relay connection
    /// that had died silently, or relayed into the other side's, or dropped over the
    /// rate limit. Perfect negotiation alone never recovers: this side waits in
    /// `have-local-offer` for good, and every later change (a track, an ICE restart)
    /// waits behind it.
    ///
    /// What is sent again is the current local description, with the same `seq`, so it
    /// also carries the candidates gathered so far, which may have been lost with it.
    /// Should the first have arrived after all, the other side sends its answer again
    /// rather than negotiating anew, and an answer that finds its offer no longer
    /// pending is dropped (`on_description`).
    pub fn await_answer(self: &Rc<Self>, ms: u32) {
        let weak = Rc::downgrade(self);
        let timer = Timer::new(ms, move |_| {
            // Out of the timer's callback: the check replaces this timer.
            let weak = weak.clone();
            crate::spawn(async move {
                let Some(peer) = weak.upgrade() else { return };
                if peer.is_closed.get() || peer.state("signalingState") != "have-local-offer" {
                    return;
                }
                // With the relay down, the offer waits for the resume (which checks
                // again soon after, see `Inner::on_welcome`).
                let busy = peer.making_offer.get() || peer.setting_answer.get();
                if !busy && peer.room().is_some_and(|r| r.relay_up()) {
                    peer.send_description(LOCAL);
                }
                peer.await_answer(ms.saturating_mul(2).min(ANSWER_WAIT_MAX_MS));
            });
        });
        *self.answer_timer.borrow_mut() = Some(timer);
    }

    /// What each of our negotiated transceivers carries now.
    pub fn media_info(&self) -> Vec<MediaInfo> {
        let Some(room) = self.room() else {
            return Vec::new();
        };
        let local = room.local.borrow();
        let transceivers = self.pc.get_transceivers();
        let mut info = Vec::new();
        for (slot, sender) in Slot::ALL.into_iter().zip(self.senders.borrow().iter()) {
            let Some(sender) = sender else { continue };
            // A parked screen transceiver carries nothing: not announced.
            if slot == Slot::Screen && !js::get(sender, "track").is_object() {
                continue;
            }
            let mid = transceivers
                .iter()
                .find(|t| js::get(t, "sender") == ***sender)
                .and_then(|t| js::get_string(&t, "mid"));
            if let Some(mid) = mid {
                let (source, muted) = local.describe(slot);
                info.push(MediaInfo { mid, source, muted });
            }
        }
        info
    }

    /// Adds our current local tracks (once; later changes go through `media.rs`).
    pub fn attach_local(&self, local: &Local) {
        self.attached.set(true);
        for (slot, track, stream) in local.outgoing() {
            self.add_sender(slot, &track, &stream);
        }
    }

    /// Our sender in `slot`, if there is one.
    pub fn sender(&self, slot: Slot) -> Option<RtcRtpSender> {
        self.senders.borrow().get(slot as usize).cloned().flatten()
    }

    /// Adds a track in `slot` (negotiation follows through `negotiationneeded`).
    pub fn add_sender(&self, slot: Slot, track: &MediaStreamTrack, stream: &MediaStream) {
        if self.sender(slot).is_some() {
            return;
        }
        let sender = self.pc.add_track_0(track, stream);
        if let Some(s) = self.senders.borrow_mut().get_mut(slot as usize) {
            *s = Some(sender);
        }
    }

    /// Sets whether the transceiver of `sender` sends (renegotiates). A screen share
    /// that stops parks its transceiver as `recvonly` instead of `removeTrack`, and the
    /// next share reuses it: a removed track leaves its m-line in the SDP for good, and
    /// repeated shares would grow the SDP past the relay's message limit.
    pub fn set_sending(&self, sender: &RtcRtpSender, sending: bool) {
        let transceiver = self
            .pc
            .get_transceivers()
            .iter()
            .find(|t| js::get(t, "sender") == ***sender);
        if let Some(t) = transceiver {
            let direction = if sending { "sendrecv" } else { "recvonly" };
            js::set(&t, "direction", &direction.into());
        }
    }

    /// The remote side's new media labels: relabel tracks, report mutes and removals,
    /// and report a track the labels bring back on a transceiver the browser still
    /// receives on.
    fn on_media(&self, media: Vec<MediaInfo>) {
        let Some(room) = self.room() else { return };
        let mut events: Vec<(&'static str, JsValue)> = Vec::new();
        {
            let mut tracks = self.tracks.borrow_mut();
            let previous = core::mem::take(&mut *self.remote_media.borrow_mut());
            for info in &media {
                if let Some(t) = tracks.iter_mut().find(|t| t.mid == info.mid) {
                    if t.source != info.source {
                        t.source = info.source;
                        t.muted = info.muted;
                        events.push(("track", self.track_event(t)));
                    } else if t.muted != info.muted {
                        t.muted = info.muted;
                        events.push(("mute", self.mute_event(t.source, t.muted)));
                    }
                } else if let Some(track) = self.receiving(&info.mid) {
                    // Labels said this track was removed (a stopped screen share), and
                    // it is back before any description told the browser it had
                    // stopped: the browser fires no `track` for it, so this is the
                    // only report it gets. Otherwise `on_track` reports it.
                    let t = RemoteTrack {
                        mid: info.mid.clone(),
                        stream: stream_of(&track),
                        track,
                        source: info.source,
                        muted: info.muted,
                    };
                    events.push(("track", self.track_event(&t)));
                    tracks.push(t);
                }
            }
            for old in previous
                .iter()
                .filter(|old| !media.iter().any(|m| m.mid == old.mid))
            {
                if let Some(i) = tracks.iter().position(|t| t.mid == old.mid) {
                    let t = tracks.remove(i);
                    events.push(("track-removed", self.track_event(&t)));
                }
            }
            *self.remote_media.borrow_mut() = media;
        }
        for (event, payload) in events {
            room.emit(event, &payload);
        }
    }

    /// The live track of the transceiver `mid` if the browser counts it as receiving
    /// (its negotiated direction includes `recv`).
    fn receiving(&self, mid: &str) -> Option<MediaStreamTrack> {
        let t = self
            .pc
            .get_transceivers()
            .iter()
            .find(|t| js::get_string(t, "mid").as_deref() == Some(mid))?;
        let direction = js::get_string(&t, "currentDirection")?;
        let track = js::get(&js::get(&t, "receiver"), "track");
        let live = js::get_string(&track, "readyState").as_deref() == Some("live");
        (live && matches!(direction.as_str(), "sendrecv" | "recvonly"))
            .then(|| track.unchecked_into())
    }

    fn on_track(&self, e: &JsValue) {
        let Some(room) = self.room() else { return };
        let track: MediaStreamTrack = js::get(e, "track").unchecked_into();
        let Some(mid) = js::get_string(&js::get(e, "transceiver"), "mid") else {
            return;
        };
        // Already reported from the labels (`on_media`).
        if self
            .tracks
            .borrow()
            .iter()
            .any(|t| t.mid == mid && t.track == track)
        {
            return;
        }
        let first = js::get(e, "streams")
            .unchecked_into::<js_sys::Array>()
            .get(0);
        let stream: MediaStream = if first.is_object() {
            first.unchecked_into()
        } else {
            stream_of(&track)
        };
        let (source, muted) = match self.remote_media.borrow().iter().find(|m| m.mid == mid) {
            Some(info) => (info.source, info.muted),
            None if js::get_string(&track, "kind").as_deref() == Some("audio") => {
                (Source::Microphone, false)
            }
            None => (Source::Camera, false),
        };
        let remote = RemoteTrack {
            mid,
            track,
            stream,
            source,
            muted,
        };
        let payload = self.track_event(&remote);
        {
            let mut tracks = self.tracks.borrow_mut();
            tracks.retain(|t| t.mid != remote.mid);
            tracks.push(remote);
        }
        room.emit("track", &payload);
    }

    /// The remote tracks as `track` events describe them (`room.tracks`).
    pub fn track_events(&self) -> Vec<JsValue> {
        self.tracks
            .borrow()
            .iter()
            .map(|t| self.track_event(t))
            .collect()
    }

    fn track_event(&self, t: &RemoteTrack) -> JsValue {
        js::object(&[
            ("peerId", JsValue::from_str(&self.id)),
            ("track", Clone::clone(&t.track).into()),
            ("stream", Clone::clone(&t.stream).into()),
            ("source", JsValue::from_str(t.source.as_str())),
            ("muted", JsValue::from_bool(t.muted)),
        ])
    }

    fn mute_event(&self, source: Source, muted: bool) -> JsValue {
        js::object(&[
            ("peerId", JsValue::from_str(&self.id)),
            ("source", JsValue::from_str(source.as_str())),
            ("muted", JsValue::from_bool(muted)),
        ])
    }

    /// The remote audio tracks (for `speaking`).
    pub fn audio_tracks(&self) -> Vec<MediaStreamTrack> {
        self.tracks
            .borrow()
            .iter()
            .filter(|t| js::get_string(&t.track, "kind").as_deref() == Some("audio"))
            .map(|t| Clone::clone(&t.track))
            .collect()
    }

    /// Whether the remote peer's `source` is muted or absent.
    pub fn remote_muted(&self, source: Source) -> bool {
        !self
            .remote_media
            .borrow()
            .iter()
            .any(|m| m.source == source && !m.muted)
    }

    /// Opens a channel we create (the remote side adopts it through `datachannel`).
    /// Fails if the browser refuses (`createChannel` validated the options, so this
    /// is unexpected: a closed connection, or no channel ids left).
    pub fn open_channel(
        self: &Rc<Self>,
        label: &str,
        options: &crate::data::ChannelOptions,
    ) -> Result<(), Error> {
        if self
            .channels
            .borrow()
            .iter()
            .any(|c| c.ours && c.label == label)
        {
            return Ok(());
        }
        let dc = self
            .ext()
            .create_data_channel(label, &options.to_init())
            .map_err(|e| {
                let code = if e.is_instance_of::<js_sys::TypeError>() {
                    Code::InvalidArgument
                } else {
                    Code::Internal
                };
                Error::js(
                    code,
                    &cat(&[
                        "the browser refused data channel ",
                        &js::quote(label),
                        " to peer ",
                        &self.id,
                    ]),
                    &e,
                )
            })?;
        self.adopt_channel(dc, true);
        Ok(())
    }

    /// A new ordered, reliable channel that the caller owns (a file transfer's). The
    /// connection already has its default channel, so this needs no renegotiation.
    pub fn create_raw_channel(&self, label: &str) -> Result<RtcDataChannel, Error> {
        self.ext()
            .create_data_channel(label, &js::object(&[]))
            .map_err(|e| {
                Error::js(
                    Code::Internal,
                    &cat(&["the browser refused a file channel to peer ", &self.id]),
                    &e,
                )
            })
    }

    /// Opens the room's `createChannel` channels; one the browser refuses is reported
    /// as an `error` event (there is no caller to throw to).
    fn open_user_channels(self: &Rc<Self>, room: &Inner) {
        for (label, options) in room.user_channels() {
            if let Err(e) = self.open_channel(&label, &options) {
                room.emit("error", &e.to_event());
            }
        }
    }

    /// Takes ownership of a channel (ours, or the remote's) and listens to it.
    fn adopt_channel(self: &Rc<Self>, dc: RtcDataChannel, ours: bool) {
        let weak = Rc::downgrade(self);
        let channel = Channel::new(dc, ours, &self.id, self.room.clone(), move || {
            if let Some(peer) = weak.upgrade() {
                peer.check_connected();
            }
        });
        self.channels.borrow_mut().push(channel);
        // A channel the remote side opened arrives already open.
        self.check_connected();
    }

    /// Reports `peer-connected` once the connection is up **and** the default channel
    /// is open, so `send` works from that event on. (The connection comes up before
    /// the channel: on the side that did not open it, the channel arrives a round
    /// trip later, and a message sent in between had nowhere to go.)
    fn check_connected(&self) {
        if self.connected.get() || self.state("connectionState") != "connected" {
            return;
        }
        if self.with_channel(DEFAULT_CHANNEL, Channel::is_open) != Some(true) {
            return;
        }
        self.connected.set(true);
        self.restarting.set(false);
        self.restart_timer.borrow_mut().take();
        if let Some(room) = self.room() {
            let who = js::object(&[("peerId", JsValue::from_str(&self.id))]);
            room.emit("peer-connected", &who);
            room.offer_resumes(self);
        }
    }

    /// Runs `f` on the channel `send` should use for `label`: ours if we opened one,
    /// else the remote's; never a closed one.
    pub fn with_channel<T>(&self, label: &str, f: impl FnOnce(&Channel) -> T) -> Option<T> {
        let channels = self.channels.borrow();
        let usable = || {
            channels
                .iter()
                .filter(|c| c.label == label && !c.is_closed())
        };
        let chosen = usable().find(|c| c.ours).or_else(|| usable().next());
        chosen.map(f)
    }

    /// ICE restart, on `failed` or a `disconnected` that lasts. Chrome can leave
    /// `iceConnectionState` at `disconnected` while `connectionState` turns `failed`
    /// (seen with a cut TURN connection), so both states are watched.
    fn on_ice_state(self: &Rc<Self>) {
        match self.state("iceConnectionState").as_str() {
            "failed" => self.restart_ice(),
            "disconnected" => {
                let weak = Rc::downgrade(self);
                let timer = Timer::new(DISCONNECTED_GRACE_MS, move |_| {
                    let Some(peer) = weak.upgrade() else { return };
                    if matches!(
                        peer.state("iceConnectionState").as_str(),
                        "disconnected" | "failed"
                    ) {
                        peer.restart_ice();
                    }
                });
                *self.disconnect_timer.borrow_mut() = Some(timer);
            }
            _ => {
                self.disconnect_timer.borrow_mut().take();
            }
        }
    }

    /// Starts a round of ICE restart unless one is under way: `restartIce()` now (both
    /// sides may; perfect negotiation sorts out the offers), and `peer-connection-failed`
    /// if the peer is not connected again within `iceRestartTimeoutMs`.
    fn restart_ice(self: &Rc<Self>) {
        if self.restarting.replace(true) || self.state("connectionState") == "closed" {
            return;
        }
        self.ext().restart_ice();
        let Some(room) = self.room() else { return };
        let timeout = room.options.ice_restart_timeout_ms;
        let weak = Rc::downgrade(self);
        let timer = Timer::new(timeout, move |_| {
            let Some(peer) = weak.upgrade() else { return };
            // The round is over either way; a later failure may start another.
            peer.restarting.set(false);
            if peer.connected.get() {
                return;
            }
            if let Some(room) = peer.room() {
                let e = Error::new(
                    Code::PeerConnectionFailed,
                    cat(&[
                        "the connection to peer ",
                        &peer.id,
                        " failed and ICE restart did not recover it within ",
                        &js::num(f64::from(timeout)),
                        " ms; check the network, or configure a TURN server (iceServers)",
                    ]),
                );
                room.emit("error", &e.to_event());
            }
        });
        *self.restart_timer.borrow_mut() = Some(timer);
    }

    fn on_connection_state(self: &Rc<Self>) {
        let Some(room) = self.room() else { return };
        let state = self.state("connectionState");
        room.emit(
            "connection-state",
            &js::object(&[
                ("peerId", JsValue::from_str(&self.id)),
                ("state", JsValue::from_str(&state)),
            ]),
        );
        match state.as_str() {
            "connected" => self.check_connected(),
            "disconnected" | "failed" | "closed" if self.connected.get() => {
                self.connected.set(false);
                let who = js::object(&[("peerId", JsValue::from_str(&self.id))]);
                room.emit("peer-disconnected", &who);
            }
            _ => {}
        }
        if state == "failed" {
            self.restart_ice();
        }
    }
}

impl Shared {
    /// The events that end what this connection reported, for when it is replaced
    /// while the peer stays: `track-removed` for each remote track, then
    /// `peer-disconnected` if `peer-connected` was reported.
    pub fn farewells(&self, out: &mut Vec<(&'static str, JsValue)>) {
        for t in core::mem::take(&mut *self.tracks.borrow_mut()) {
            out.push(("track-removed", self.track_event(&t)));
        }
        if self.connected.replace(false) {
            let who = js::object(&[("peerId", JsValue::from_str(&self.id))]);
            out.push(("peer-disconnected", who));
        }
    }
}

/// A new stream holding `track`.
fn stream_of(track: &MediaStreamTrack) -> MediaStream {
    let s = MediaStream::new().unwrap_or_else(|_| unreachable_stream());
    s.add_track(track);
    s
}

/// `new MediaStream()` cannot fail in a browser that fired a track event; this keeps
/// the types total without a panic path.
fn unreachable_stream() -> MediaStream {
    JsValue::NULL.unchecked_into()
}
