//! One remote peer: its `RTCPeerConnection`, negotiated with the W3C "perfect
//! negotiation" pattern (<https://w3c.github.io/webrtc-pc/#perfect-negotiation-example>),
//! trickle ICE, ICE restart, its data channels and its media.
//!
//! Ownership: [`Peer`] (kept in the room's map) owns the connection, every event
//! listener on it and on its channels, and the sender of its signal queue. Listeners
//! capture only a `Weak` of the shared part, so dropping the `Peer` (on `peer-left` or
//! `leave`) removes every listener and ends its signal task: nothing leaks per peer.

use crate::data::Channel;
use crate::error::{Code, Error};
use crate::js;
use crate::media::{Local, Slot};
use crate::room::Inner;
use futures_channel::mpsc;
use futures_util::StreamExt;
use gloo_events::EventListener;
use meshwire_protocol::peer::{
    IceCandidate, MediaInfo, PeerSignal, SdpKind, SessionDescription, Source,
};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::{Rc, Weak};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    MediaStream, MediaStreamTrack, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent,
    RtcIceCandidateInit, RtcPeerConnection, RtcPeerConnectionIceEvent, RtcRtpSender, RtcSdpType,
    RtcSessionDescriptionInit, RtcSignalingState, RtcTrackEvent,
};

/// The label of the channel every pair of peers has (`send` without `channel`).
pub const DEFAULT_CHANNEL: &str = "meshwire";

/// A remote track as this side sees it.
pub struct RemoteTrack {
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
    /// Whether local tracks were added (the newcomer adds them at once; the peer that
    /// was already in the room adds them right after applying the first offer, so they
    /// ride on the offered transceivers instead of forcing a second negotiation).
    attached: Cell<bool>,
    room: Weak<Inner>,
    /// Our senders by outgoing slot.
    pub senders: RefCell<BTreeMap<Slot, RtcRtpSender>>,
    /// What the remote side said about its transceivers, by mid.
    remote_media: RefCell<BTreeMap<String, MediaInfo>>,
    /// Remote tracks by mid.
    pub tracks: RefCell<BTreeMap<String, RemoteTrack>>,
    /// Data channels, ours and the remote's. Both sides may open a channel with the
    /// same label (`createChannel` on each): each is listened to; sends use ours.
    pub channels: RefCell<Vec<Channel>>,
    /// `connected` was reported (so a drop reports `peer-disconnected` once).
    pub connected: Cell<bool>,
    /// Bumped by every ICE restart; a give-up timer only acts on its own round.
    restart_round: Cell<u32>,
}

/// A remote peer, owned by the room.
pub struct Peer {
    pub shared: Rc<Shared>,
    /// In-order signal processing: one task per peer drains this queue.
    inbox: mpsc::UnboundedSender<PeerSignal>,
    _listeners: Vec<EventListener>,
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
        let shared = Rc::new(Shared {
            id,
            pc,
            polite,
            making_offer: Cell::new(false),
            ignore_offer: Cell::new(false),
            setting_answer: Cell::new(false),
            attached: Cell::new(false),
            room: Rc::downgrade(room),
            senders: RefCell::default(),
            remote_media: RefCell::default(),
            tracks: RefCell::default(),
            channels: RefCell::default(),
            connected: Cell::new(false),
            restart_round: Cell::new(0),
        });
        let listeners = listen(&shared);
        let (inbox, mut queue) = mpsc::unbounded::<PeerSignal>();
        let weak = Rc::downgrade(&shared);
        spawn_local(async move {
            // Ends when the Peer (and so the sender) is dropped.
            while let Some(signal) = queue.next().await {
                let Some(peer) = weak.upgrade() else { break };
                peer.handle(signal).await;
            }
        });
        if initiate {
            shared.open_channel(DEFAULT_CHANNEL, &crate::data::ChannelOptions::default());
            for (label, options) in room.user_channels() {
                shared.open_channel(&label, &options);
            }
            shared.attach_local(&room.local.borrow());
        }
        Ok(Peer {
            shared,
            inbox,
            _listeners: listeners,
            info,
        })
    }

    /// Queues a signal from the relay for in-order processing.
    pub fn deliver(&self, signal: PeerSignal) {
        let _ = self.inbox.unbounded_send(signal);
    }

    /// Closes the connection and its channels.
    pub fn close(&self) {
        for channel in self.shared.channels.borrow().iter() {
            channel.close();
        }
        self.shared.pc.close();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.close();
    }
}

/// The connection's event listeners; each holds only a `Weak<Shared>`.
fn listen(shared: &Rc<Shared>) -> Vec<EventListener> {
    let pc = &shared.pc;
    let on = |event: &'static str, f: fn(&Rc<Shared>, &web_sys::Event)| {
        let weak = Rc::downgrade(shared);
        EventListener::new(pc, event, move |e| {
            if let Some(peer) = weak.upgrade() {
                f(&peer, e);
            }
        })
    };
    vec![
        on("negotiationneeded", |peer, _| {
            let peer = peer.clone();
            spawn_local(async move { peer.negotiate().await });
        }),
        on("icecandidate", |peer, e| {
            // Trickle ICE: every candidate goes out as soon as it is gathered; the
            // end-of-candidates event (null) is not sent.
            let Some(e) = e.dyn_ref::<RtcPeerConnectionIceEvent>() else {
                return;
            };
            let Some(c) = e.candidate() else { return };
            let candidate = IceCandidate {
                candidate: c.candidate(),
                sdp_mid: c.sdp_mid(),
                sdp_m_line_index: c.sdp_m_line_index(),
                // web-sys has no binding for usernameFragment.
                username_fragment: js::get_string(&c, "usernameFragment"),
            };
            peer.send(PeerSignal {
                candidate: Some(candidate),
                ..PeerSignal::default()
            });
        }),
        on("track", |peer, e| {
            if let Some(e) = e.dyn_ref::<RtcTrackEvent>() {
                peer.on_track(e);
            }
        }),
        on("datachannel", |peer, e| {
            if let Some(e) = e.dyn_ref::<RtcDataChannelEvent>() {
                peer.adopt_channel(e.channel(), false);
            }
        }),
        on("iceconnectionstatechange", |peer, _| peer.on_ice_state()),
        on("connectionstatechange", |peer, _| {
            peer.on_connection_state()
        }),
    ]
}

impl Shared {
    fn room(&self) -> Option<Rc<Inner>> {
        self.room.upgrade()
    }

    fn ext(&self) -> &js::PeerConnectionExt {
        self.pc.unchecked_ref()
    }

    /// Sends a signal to this peer through the relay.
    pub fn send(&self, signal: PeerSignal) {
        if let Some(room) = self.room() {
            room.signal(&self.id, &signal);
        }
    }

    /// `negotiationneeded`: make an offer (perfect negotiation's `makingOffer` guards
    /// the window in which a remote offer would collide with ours).
    async fn negotiate(self: Rc<Self>) {
        self.making_offer.set(true);
        let result = JsFuture::from(self.ext().set_local_description_auto()).await;
        if result.is_ok() {
            self.send_description();
        }
        self.making_offer.set(false);
        if let Err(e) = result {
            js::warn(&format!(
                "offer to {} failed: {}",
                self.id,
                crate::error::describe(&e)
            ));
        }
    }

    /// Sends our current local description, with our media labels.
    fn send_description(&self) {
        let Some(local) = self.pc.local_description() else {
            return;
        };
        let kind = match local.type_() {
            RtcSdpType::Offer => SdpKind::Offer,
            RtcSdpType::Answer => SdpKind::Answer,
            RtcSdpType::Pranswer => SdpKind::Pranswer,
            _ => return,
        };
        self.send(PeerSignal {
            description: Some(SessionDescription {
                kind,
                sdp: local.sdp(),
            }),
            media: Some(self.media_info()),
            ..PeerSignal::default()
        });
    }

    /// What each of our negotiated transceivers carries now.
    pub fn media_info(&self) -> Vec<MediaInfo> {
        let Some(room) = self.room() else {
            return Vec::new();
        };
        let local = room.local.borrow();
        let transceivers = self.pc.get_transceivers();
        let mut info = Vec::new();
        for (slot, sender) in self.senders.borrow().iter() {
            // A parked screen transceiver carries nothing: not announced.
            if *slot == Slot::Screen && sender.track().is_none() {
                continue;
            }
            let mid = transceivers.iter().find_map(|t| {
                let t: web_sys::RtcRtpTransceiver = t.unchecked_into();
                (t.sender() == *sender).then(|| t.mid()).flatten()
            });
            if let Some(mid) = mid {
                let (source, muted) = local.describe(*slot);
                info.push(MediaInfo { mid, source, muted });
            }
        }
        info
    }

    /// Handles one signal from this peer, in arrival order.
    async fn handle(self: &Rc<Self>, signal: PeerSignal) {
        if let Some(media) = signal.media {
            self.on_media(media);
        }
        if let Some(description) = signal.description {
            if let Err(e) = self.on_description(description).await {
                js::warn(&format!(
                    "negotiation with {} failed: {}",
                    self.id, e.message
                ));
            }
        }
        if let Some(candidate) = signal.candidate {
            let init = RtcIceCandidateInit::new(&candidate.candidate);
            init.set_sdp_mid(candidate.sdp_mid.as_deref());
            init.set_sdp_m_line_index(candidate.sdp_m_line_index);
            if let Some(ufrag) = &candidate.username_fragment {
                js::set(&init, "usernameFragment", &JsValue::from_str(ufrag));
            }
            let added = JsFuture::from(
                self.pc
                    .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init)),
            )
            .await;
            // Candidates of an offer we ignored are expected to fail.
            if let (Err(e), false) = (added, self.ignore_offer.get()) {
                js::warn(&format!(
                    "ICE candidate from {} rejected: {}",
                    self.id,
                    crate::error::describe(&e)
                ));
            }
        }
    }

    /// Perfect negotiation's description handling.
    async fn on_description(self: &Rc<Self>, description: SessionDescription) -> Result<(), Error> {
        let is_offer = description.kind == SdpKind::Offer;
        let ready_for_offer = !self.making_offer.get()
            && (self.pc.signaling_state() == RtcSignalingState::Stable
                || self.setting_answer.get());
        let collision = is_offer && !ready_for_offer;
        self.ignore_offer.set(!self.polite && collision);
        if self.ignore_offer.get() {
            return Ok(());
        }
        let kind = match description.kind {
            SdpKind::Offer => RtcSdpType::Offer,
            SdpKind::Answer => RtcSdpType::Answer,
            SdpKind::Pranswer => RtcSdpType::Pranswer,
            SdpKind::Rollback => RtcSdpType::Rollback,
        };
        let init = RtcSessionDescriptionInit::new(kind);
        init.set_sdp(&description.sdp);
        self.setting_answer.set(description.kind == SdpKind::Answer);
        // A polite peer's colliding offer is rolled back implicitly here.
        let applied = JsFuture::from(self.pc.set_remote_description(&init)).await;
        self.setting_answer.set(false);
        applied.map_err(|e| Error::js(Code::Internal, "setRemoteDescription", &e))?;
        if is_offer {
            if !self.attached.get() {
                if let Some(room) = self.room() {
                    self.attach_local(&room.local.borrow());
                    for (label, options) in room.user_channels() {
                        self.open_channel(&label, &options);
                    }
                }
            }
            JsFuture::from(self.ext().set_local_description_auto())
                .await
                .map_err(|e| Error::js(Code::Internal, "setLocalDescription (answer)", &e))?;
            self.send_description();
        }
        Ok(())
    }

    /// Adds our current local tracks (once; later changes go through `media.rs`).
    pub fn attach_local(&self, local: &Local) {
        self.attached.set(true);
        for (slot, track, stream) in local.outgoing() {
            self.add_sender(slot, &track, &stream);
        }
    }

    /// Adds a track in `slot` (negotiation follows through `negotiationneeded`).
    pub fn add_sender(&self, slot: Slot, track: &MediaStreamTrack, stream: &MediaStream) {
        if self.senders.borrow().contains_key(&slot) {
            return;
        }
        let streams = js_sys::Array::of1(stream);
        let sender = self.pc.add_track(track, stream, &streams);
        self.senders.borrow_mut().insert(slot, sender);
    }

    /// Sets whether the transceiver of `sender` sends (renegotiates). A screen share
    /// that stops parks its transceiver as `recvonly` instead of `removeTrack`, and the
    /// next share reuses it: a removed track leaves its m-line in the SDP for good, and
    /// repeated shares would grow the SDP past the relay's message limit.
    pub fn set_sending(&self, sender: &RtcRtpSender, sending: bool) {
        use web_sys::RtcRtpTransceiverDirection as D;
        let transceiver = self.pc.get_transceivers().iter().find_map(|t| {
            let t: web_sys::RtcRtpTransceiver = t.unchecked_into();
            (t.sender() == *sender).then_some(t)
        });
        if let Some(t) = transceiver {
            t.set_direction(if sending { D::Sendrecv } else { D::Recvonly });
        }
    }

    /// The remote side's new media labels: relabel tracks, report mutes and removals.
    fn on_media(&self, media: Vec<MediaInfo>) {
        let Some(room) = self.room() else { return };
        let mut events: Vec<(&'static str, JsValue)> = Vec::new();
        {
            let mut tracks = self.tracks.borrow_mut();
            let previous = std::mem::take(&mut *self.remote_media.borrow_mut());
            for info in &media {
                if let Some(t) = tracks.get_mut(&info.mid) {
                    if t.source != info.source {
                        t.source = info.source;
                        t.muted = info.muted;
                        events.push(("track", self.track_event(t)));
                    } else if t.muted != info.muted {
                        t.muted = info.muted;
                        events.push(("mute", self.mute_event(t.source, t.muted)));
                    }
                }
            }
            for (mid, _) in previous
                .iter()
                .filter(|(mid, _)| !media.iter().any(|m| &m.mid == *mid))
            {
                if let Some(t) = tracks.remove(mid) {
                    events.push(("track-removed", self.track_event(&t)));
                }
            }
            *self.remote_media.borrow_mut() =
                media.into_iter().map(|m| (m.mid.clone(), m)).collect();
        }
        for (event, payload) in events {
            room.emit(event, &payload);
        }
    }

    fn on_track(&self, e: &RtcTrackEvent) {
        let Some(room) = self.room() else { return };
        let track = e.track();
        let Some(mid) = e.transceiver().mid() else {
            return;
        };
        let stream = e
            .streams()
            .get(0)
            .dyn_into::<MediaStream>()
            .unwrap_or_else(|_| {
                let s = MediaStream::new().unwrap_or_else(|_| unreachable_stream());
                s.add_track(&track);
                s
            });
        let (source, muted) = match self.remote_media.borrow().get(&mid) {
            Some(info) => (info.source, info.muted),
            None if track.kind() == "audio" => (Source::Microphone, false),
            None => (Source::Camera, false),
        };
        let remote = RemoteTrack {
            track,
            stream,
            source,
            muted,
        };
        let payload = self.track_event(&remote);
        self.tracks.borrow_mut().insert(mid, remote);
        room.emit("track", &payload);
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

    /// Whether the remote peer's `source` is muted or absent.
    pub fn remote_muted(&self, source: Source) -> bool {
        !self
            .remote_media
            .borrow()
            .values()
            .any(|m| m.source == source && !m.muted)
    }

    /// Opens a channel we create (the remote side adopts it through `datachannel`).
    pub fn open_channel(&self, label: &str, options: &crate::data::ChannelOptions) {
        if self
            .channels
            .borrow()
            .iter()
            .any(|c| c.ours && c.label == label)
        {
            return;
        }
        let dc = self
            .pc
            .create_data_channel_with_data_channel_dict(label, &options.to_init());
        self.adopt_channel(dc, true);
    }

    /// Takes ownership of a channel (ours, or the remote's) and listens to it.
    fn adopt_channel(&self, dc: RtcDataChannel, ours: bool) {
        let channel = Channel::new(dc, ours, &self.id, self.room.clone());
        self.channels.borrow_mut().push(channel);
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

    fn on_ice_state(self: &Rc<Self>) {
        use web_sys::RtcIceConnectionState as S;
        if self.pc.ice_connection_state() == S::Failed {
            // Both sides may restart; perfect negotiation sorts out the offers.
            self.ext().restart_ice();
            let round = self.restart_round.get() + 1;
            self.restart_round.set(round);
            let Some(room) = self.room() else { return };
            let timeout = room.options.ice_restart_timeout_ms;
            let weak = Rc::downgrade(self);
            spawn_local(async move {
                gloo_timers::future::TimeoutFuture::new(timeout).await;
                let Some(peer) = weak.upgrade() else { return };
                if peer.restart_round.get() == round && !peer.connected.get() {
                    if let Some(room) = peer.room() {
                        let e = Error::new(
                            Code::PeerConnectionFailed,
                            format!("the connection to peer {} failed and ICE restart did not recover it within {timeout} ms; check the network, or configure a TURN server (iceServers)", peer.id),
                        );
                        room.emit("error", &e.to_event());
                    }
                }
            });
        }
    }

    fn on_connection_state(&self) {
        use web_sys::RtcPeerConnectionState as S;
        let Some(room) = self.room() else { return };
        let state = self.pc.connection_state();
        let name = connection_state_name(state);
        room.emit(
            "connection-state",
            &js::object(&[
                ("peerId", JsValue::from_str(&self.id)),
                ("state", JsValue::from_str(name)),
            ]),
        );
        let who = js::object(&[("peerId", JsValue::from_str(&self.id))]);
        match state {
            S::Connected if !self.connected.get() => {
                self.connected.set(true);
                room.emit("peer-connected", &who);
            }
            S::Disconnected | S::Failed | S::Closed if self.connected.get() => {
                self.connected.set(false);
                room.emit("peer-disconnected", &who);
            }
            _ => {}
        }
    }
}

/// `RTCPeerConnectionState` as its string.
pub fn connection_state_name(state: web_sys::RtcPeerConnectionState) -> &'static str {
    use web_sys::RtcPeerConnectionState as S;
    match state {
        S::New => "new",
        S::Connecting => "connecting",
        S::Connected => "connected",
        S::Disconnected => "disconnected",
        S::Failed => "failed",
        S::Closed => "closed",
        _ => "new",
    }
}

/// `new MediaStream()` cannot fail in a browser that fired a track event; this keeps
/// the types total without a panic path.
fn unreachable_stream() -> MediaStream {
    JsValue::NULL.unchecked_into()
}
