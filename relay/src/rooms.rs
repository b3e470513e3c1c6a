//! The room registry: who is in which room, and delivery of frames to them.
//!
//! Every member of a room is either *live* (a connection is attached: frames go into
//! its bounded [`Outbox`]) or *held* (its connection dropped abnormally: frames
//! are queued, bounded, for up to `--resume-grace`, waiting for a `join` with its
//! resume token). A held member still counts toward capacity and is still listed in
//! `welcome.peers`; the others see `peer-left` only when the hold expires.
//!
//! Locking: one registry mutex (taken on join and when a room may have emptied) and
//! one mutex per room (taken for every delivery). The order is always registry, then
//! room. No lock is held across an `.await`: delivery appends to the recipient's
//! [`Outbox`], so a slow recipient never stalls its sender. A recipient whose outbox is
//! full is detached and held, exactly as if its connection had dropped; its connection
//! then closes with 4429 and the client resumes.
//!
//! In cluster mode (`--redis-url`) a room also lists the members connected to other
//! instances as *remote* members (a mirror kept by `crate::cluster`), so presence,
//! `welcome.peers` and `unknown-peer` read one map. Delivery to a remote member hands
//! the frame to the cluster's [`Outlet`]; delivery to a local one never does.

use crate::cluster::{wire, Outlet};
use crate::metrics::{Kind, Metrics};
use crate::outbox::{Outbox, ReadAt, Refused};
use meshwire_protocol::json::{Raw, RawValue};
use meshwire_protocol::{
    ErrorCode, IceServer, LeaveReason, Limits, PeerInfo, ServerMessage, Welcome,
};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

/// A relay-assigned peer id: 128 random bits, base64url (22 characters).
pub type PeerId = Arc<str>;

/// Most frames queued for a held peer.
pub const HOLD_MAX_FRAMES: usize = 64;
/// Most bytes queued for a held peer.
pub const HOLD_MAX_BYTES: usize = 256 * 1024;

/// A fresh peer id.
pub fn new_peer_id() -> PeerId {
    use base64::Engine;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(bytes)
        .into()
}

/// Serialises a relay message; the protocol types always serialise.
pub(crate) fn encode<D: Serialize>(message: &ServerMessage<'_, D>) -> String {
    serde_json::to_string(message).unwrap_or_else(|_| {
        String::from(r#"{"type":"error","code":"internal","message":"encoding failed"}"#)
    })
}

/// The frame of a relayed `signal` or `broadcast` (`tag`) as the pieces it is copied
/// from, equal when joined to what [`encode`] writes for it: the client's `data` is
/// spliced in as its raw bytes, and the frame is never built on its own, only written
/// straight into each recipient's outbox.
fn relayed_frame<'a>(tag: &'a str, from: &'a str, data: Raw<'a>) -> [&'a str; 7] {
    // Peer ids are made by the relay (URL-safe base64): nothing in them needs escaping.
    debug_assert!(from
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    [
        r#"{"type":""#,
        tag,
        r#"","from":""#,
        from,
        r#"","data":"#,
        data.get(),
        "}",
    ]
}

/// Whether an encoded relay frame is `peer-joined` or `peer-left`. `encode` writes the
/// `type` tag first (serde's internally tagged enums do), so the prefix decides.
fn is_presence(frame: &str) -> bool {
    frame.starts_with(r#"{"type":"peer-joined""#) || frame.starts_with(r#"{"type":"peer-left""#)
}

/// One peer of a room.
struct Member {
    /// `join.name`, or the token's `name`.
    name: Option<Box<str>>,
    /// `join.meta`, kept as the client's bytes.
    meta: Option<Box<RawValue>>,
    /// The verified token's `sub`.
    user_id: Option<Box<str>>,
    /// Where its frames go.
    link: Link,
}

enum Link {
    Live {
        /// The connection that owns the peer; stale connections must not detach it.
        conn: u64,
        outbox: Arc<Outbox>,
    },
    Held {
        /// The connection that dropped; the hold's expiry timer carries the same value,
        /// so a timer from an earlier hold cannot end a later one.
        conn: u64,
        queue: VecDeque<Box<str>>,
        bytes: usize,
    },
    /// Connected to another instance of the cluster; frames for it are published to
    /// that instance's channel.
    Remote {
        /// The instance it is connected to.
        instance: Arc<str>,
        /// Since when reconciliation has not found it in Redis (it is dropped once
        /// this is older than `--instance-ttl`, giving a restarted Redis time to be
        /// refilled by its owner).
        missing_since: Option<Instant>,
    },
}

impl Link {
    /// The owning connection; 0 (never a real connection id) for a remote member.
    fn conn(&self) -> u64 {
        match self {
            Link::Live { conn, .. } | Link::Held { conn, .. } => *conn,
            Link::Remote { .. } => 0,
        }
    }

    fn is_local(&self) -> bool {
        !matches!(self, Link::Remote { .. })
    }
}

impl Member {
    fn info<'a>(&'a self, id: &'a str) -> PeerInfo<'a, &'a RawValue> {
        PeerInfo {
            id: Cow::Borrowed(id),
            name: self.name.as_deref().map(Cow::Borrowed),
            meta: self.meta.as_deref(),
            user_id: self.user_id.as_deref().map(Cow::Borrowed),
        }
    }
}

/// A room: created on its first join, removed from the registry when its last member goes.
pub struct Room {
    /// The room's name.
    pub name: Arc<str>,
    /// When it was created (shown by `/api/rooms`).
    pub created: SystemTime,
    members: Mutex<HashMap<PeerId, Member>>,
    /// The [`Rooms::epoch`] at which the room was created here.
    born: u64,
    /// The epoch of each remote peer's latest `peer-left` heard here, so that a
    /// reconciliation reading Redis before it cannot bring the peer back. Pruned by
    /// reconciliation. Locked after `members`, never across an `.await`.
    left: Mutex<HashMap<PeerId, u64>>,
}

/// A snapshot of one member for `/api/rooms/{room}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// Peer id.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Verified user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// `"connected"`, or `"held"` while waiting for a resume.
    pub state: &'static str,
}

impl Room {
    fn lock(&self) -> MutexGuard<'_, HashMap<PeerId, Member>> {
        // A panic while holding the lock cannot leave a member half-updated in a way
        // that matters more than losing the whole room, so poisoning is ignored.
        self.members.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of members on this instance, held ones included.
    pub fn len(&self) -> usize {
        self.lock().values().filter(|m| m.link.is_local()).count()
    }

    /// Whether the room has no members on this instance.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members, for the admin API.
    pub fn members(&self) -> Vec<MemberView> {
        self.lock()
            .iter()
            .map(|(id, m)| MemberView {
                id: id.to_string(),
                name: m.name.as_deref().map(str::to_string),
                user_id: m.user_id.as_deref().map(str::to_string),
                state: match m.link {
                    Link::Live { .. } => "connected",
                    Link::Held { .. } => "held",
                    Link::Remote { .. } => "remote",
                },
            })
            .collect()
    }
}

/// Everything `join` needs to admit a peer.
pub struct Admission<'a> {
    /// Room name (already validated).
    pub room: &'a str,
    /// The id to give: fresh, or from a verified resume token.
    pub peer_id: PeerId,
    /// True when `peer_id` came from a verified resume token.
    pub resuming: bool,
    /// Display name.
    pub name: Option<&'a str>,
    /// App data (already checked to be a small JSON object).
    pub meta: Option<Raw<'a>>,
    /// Verified user id.
    pub user_id: Option<&'a str>,
    /// The joining connection.
    pub conn: u64,
    /// Where its frames go; the `welcome` is put there too.
    pub outbox: Arc<Outbox>,
    /// For the welcome.
    pub ice_servers: Vec<IceServer>,
    /// For the welcome.
    pub resume_token: String,
    /// For the welcome.
    pub limits: Limits,
    /// In cluster mode, what Redis said when it admitted the peer.
    pub cluster: Option<ClusterAdmission>,
}

/// What the cluster's join script decided, for [`Rooms::join`].
pub struct ClusterAdmission {
    /// The peer's record existed (it resumed, possibly from another instance).
    pub resumed: bool,
    /// The room's members cluster-wide after the join: id, instance, `PeerInfo` JSON.
    pub members: Vec<(String, Arc<str>, String)>,
}

/// A local member, as the cluster writes it back to Redis after an outage.
pub struct LocalMember {
    /// Its room.
    pub room: Arc<str>,
    /// Its id.
    pub peer: PeerId,
    /// Its verified user id.
    pub user_id: Option<String>,
    /// Its `PeerInfo` JSON.
    pub info: String,
}

/// What [`Rooms::reconcile`] found out of step with Redis.
#[derive(Default)]
pub struct Drift {
    /// Local members Redis does not list as this instance's (to write back).
    pub unlisted: Vec<LocalMember>,
    /// Records Redis gives this instance for peers it does not have (to remove).
    pub stale: Vec<String>,
}

/// Builds a member from the `PeerInfo` JSON another instance published.
fn remote_member(info: &str, instance: Arc<str>) -> Option<Member> {
    let info: PeerInfo<'_, &RawValue> = serde_json::from_str(info).ok()?;
    Some(Member {
        name: info.name.map(|n| n.into()),
        meta: info.meta.map(|m| m.to_owned()),
        user_id: info.user_id.map(|u| u.into()),
        link: Link::Remote {
            instance,
            missing_since: None,
        },
    })
}

/// Applies a kept presence event to a room being built from a join's snapshot (nobody
/// local to tell yet: the newcomer's welcome lists the result). `newcomer` and this
/// instance's (`me`) own members are not the mirror's business.
fn replay(members: &mut HashMap<PeerId, Member>, e: Presence, newcomer: &str, me: &str) {
    match e {
        Presence::Joined {
            peer,
            instance,
            info,
        } => {
            if *peer == *newcomer || *instance == *me {
                return;
            }
            match members.get_mut(&peer) {
                Some(m) => {
                    if let Link::Remote { instance: at, .. } = &mut m.link {
                        *at = instance;
                    }
                }
                None => {
                    if let Some(m) = remote_member(&info, instance) {
                        members.insert(peer, m);
                    }
                }
            }
        }
        Presence::Left { peer } => {
            if *peer != *newcomer && members.get(&peer).is_some_and(|m| !m.link.is_local()) {
                members.remove(&peer);
            }
        }
        Presence::Moved { peer, instance } => {
            if let Some(Link::Remote { instance: at, .. }) =
                members.get_mut(&peer).map(|m| &mut m.link)
            {
                *at = instance;
            }
        }
    }
}

/// The `peer-joined` frame for a `PeerInfo` JSON (what [`encode`] writes for it).
fn joined_frame(info: &str) -> String {
    format!(r#"{{"type":"peer-joined","peer":{info}}}"#)
}

/// Most presence events kept for one room while joins to it are in flight. Past it,
/// the newcomer's view may be out of step until reconciliation repairs it.
const IN_FLIGHT_EVENTS: usize = 4096;

/// A presence change another instance announced, as kept for a join in flight.
#[derive(Clone)]
enum Presence {
    Joined {
        peer: PeerId,
        instance: Arc<str>,
        info: Box<str>,
    },
    Left {
        peer: PeerId,
    },
    Moved {
        peer: PeerId,
        instance: Arc<str>,
    },
}

/// Joins to one room whose Redis script has been (or is being) run but whose local
/// admission has not happened yet, and the presence events heard meanwhile.
///
/// The join script's reply and the other instances' `J`/`L`/`M` messages arrive on
/// one Redis connection but are handled by different tasks; an event published
/// after the script ran must be applied to the newcomer's view even if it is handled
/// before the room exists here. Replaying every event heard since before the script
/// ran, in order, is safe: each is idempotent against the script's snapshot.
#[derive(Default)]
struct InFlight {
    joins: usize,
    events: Vec<Presence>,
}

/// Keeps a room's presence events for a join until dropped (see [`Rooms::expect_join`]).
pub struct JoinWatch<'a> {
    rooms: &'a Rooms,
    room: Arc<str>,
}

impl Drop for JoinWatch<'_> {
    fn drop(&mut self) {
        let mut flights = self.rooms.flights();
        if let Some(f) = flights.get_mut(&self.room) {
            f.joins = f.joins.saturating_sub(1);
            if f.joins == 0 {
                flights.remove(&self.room);
            }
        }
    }
}

/// The registry of rooms.
pub struct Rooms {
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    metrics: Arc<Metrics>,
    capacity: usize,
    grace: Duration,
    /// Lets hold-expiry timers reach the registry without keeping it alive.
    me: Weak<Rooms>,
    /// Set once in cluster mode: where frames for remote members and local departures
    /// go. Unset, the registry is the whole relay.
    cluster: OnceLock<Outlet>,
    /// Cluster joins in flight, by room. Locked alone or last (after a room).
    in_flight: Mutex<HashMap<Arc<str>, InFlight>>,
    /// Counts room creations and remote departures, so reconciliation can tell which
    /// of them happened after it read Redis (see [`Rooms::epoch`]).
    epoch: AtomicU64,
}

impl Rooms {
    /// An empty registry.
    pub fn new(metrics: Arc<Metrics>, capacity: u32, grace: Duration) -> Arc<Self> {
        Arc::new_cyclic(|me| Rooms {
            rooms: Mutex::new(HashMap::new()),
            metrics,
            capacity: capacity as usize,
            grace,
            me: me.clone(),
            cluster: OnceLock::new(),
            in_flight: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
        })
    }

    /// The current epoch. Take it before reading Redis for [`Rooms::reconcile`]: a
    /// room created or a `peer-left` heard after it is newer than what was read.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn bump(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn flights(&self) -> MutexGuard<'_, HashMap<Arc<str>, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts keeping `room`'s presence events for a cluster join about to run its
    /// Redis script; [`Rooms::join`] replays them onto the script's snapshot. Call it
    /// before the script, and keep the watch until the join is over.
    pub fn expect_join(&self, room: &str) -> JoinWatch<'_> {
        let room: Arc<str> = Arc::from(room);
        self.flights().entry(room.clone()).or_default().joins += 1;
        JoinWatch { rooms: self, room }
    }

    /// Whether a cluster join to `room` is in flight (its Redis record may exist before
    /// the room lists the member).
    pub fn joining(&self, room: &str) -> bool {
        self.flights().contains_key(room)
    }

    /// Whether `peer` is a local (live or held) member of `room` here.
    pub fn owns(&self, room: &str, peer: &str) -> bool {
        self.get(room)
            .is_some_and(|r| r.lock().get(peer).is_some_and(|m| m.link.is_local()))
    }

    /// Keeps `event` for the joins in flight to `room`, if any.
    fn note(&self, room: &str, event: impl FnOnce() -> Presence) {
        let mut flights = self.flights();
        if let Some(f) = flights.get_mut(room) {
            if f.events.len() < IN_FLIGHT_EVENTS {
                f.events.push(event());
            }
        }
    }

    /// The cluster's outlet, in cluster mode.
    pub fn outlet(&self) -> Option<Outlet> {
        self.cluster.get().cloned()
    }

    /// Turns on cluster mode (once, at start-up).
    pub fn set_cluster(&self, outlet: Outlet) {
        let _ = self.cluster.set(outlet);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Room>>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot of every room, for `/health` and the admin API.
    pub fn list(&self) -> Vec<Arc<Room>> {
        self.lock().values().cloned().collect()
    }

    /// One room, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.lock().get(name).cloned()
    }

    /// Admits a peer (new, re-admitted, or resuming a held/live session) and puts its
    /// `welcome`, then what was queued during a hold, into its outbox. Returns the room,
    /// which the connection keeps so deliveries skip the registry.
    pub fn join(&self, a: Admission<'_>) -> Result<Arc<Room>, (ErrorCode, &'static str)> {
        let mut registry = self.lock();
        let room = registry
            .entry(Arc::from(a.room))
            .or_insert_with(|| {
                self.metrics.rooms.inc();
                Arc::new(Room {
                    name: Arc::from(a.room),
                    created: SystemTime::now(),
                    members: Mutex::new(HashMap::new()),
                    born: self.bump(),
                    left: Mutex::new(HashMap::new()),
                })
            })
            .clone();
        let mut members = room.lock();
        drop(registry);

        if let (Some(view), Some(outlet)) = (&a.cluster, self.cluster.get()) {
            // A room new to this instance starts from Redis's view; an existing one is
            // kept current by the other instances' messages (and reconciliation).
            if !members.values().any(|m| m.link.is_local()) {
                members.clear();
                for (id, instance, info) in &view.members {
                    if **id == *a.peer_id || **instance == **outlet.me() {
                        continue;
                    }
                    if let Some(m) = remote_member(info, instance.clone()) {
                        members.insert(PeerId::from(id.as_str()), m);
                    }
                }
                // What the other instances announced after the snapshot was taken
                // (and maybe before: harmless) may have been handled while the room
                // was not here; apply it now, in order, under the room lock, so later
                // events find the room and queue behind this.
                let events = self
                    .flights()
                    .get(a.room)
                    .map(|f| f.events.clone())
                    .unwrap_or_default();
                for e in events {
                    replay(&mut members, e, &a.peer_id, outlet.me());
                }
            }
        }
        let cluster_resumed = a.cluster.as_ref().is_some_and(|v| v.resumed);

        let mut queued = Vec::new();
        let resumed = match members.get_mut(&a.peer_id) {
            Some(existing) if a.resuming => {
                if existing.user_id.as_deref() != a.user_id {
                    return Err((
                        ErrorCode::ResumeFailed,
                        "the resume token belongs to a session of another user",
                    ));
                }
                let old = std::mem::replace(
                    &mut existing.link,
                    Link::Live {
                        conn: a.conn,
                        outbox: a.outbox.clone(),
                    },
                );
                match old {
                    // `welcome.peers` is the room as it is now, so presence changes
                    // from the outage would repeat it (or contradict it): drop them.
                    Link::Held { queue, .. } => {
                        queued = queue.into_iter().filter(|f| !is_presence(f)).collect()
                    }
                    // The old connection has not noticed it is dead (or the same session
                    // is open twice): the newest connection wins, and gets what the old
                    // one had not written yet, as from a hold.
                    Link::Live { outbox, .. } => {
                        queued = outbox
                            .shut()
                            .into_iter()
                            .filter(|f| !is_presence(f))
                            .collect();
                        outbox.close(
                            meshwire_protocol::close_code::REPLACED,
                            "session resumed on another connection",
                        );
                    }
                    // It was connected to another instance, which forwards what it
                    // queued once it hears of the move.
                    Link::Remote { .. } => self.metrics.peers.inc(),
                }
                true
            }
            Some(_) => {
                // A fresh random id collided, or a resume token was replayed without
                // `resume`: refuse rather than merge two peers.
                return Err((ErrorCode::Internal, "peer id in use; retry the join"));
            }
            None => {
                // In cluster mode Redis has counted the room, atomically.
                if a.cluster.is_none() && members.len() >= self.capacity {
                    return Err((
                        ErrorCode::RoomFull,
                        "the room is full; try another room or later",
                    ));
                }
                let member = Member {
                    name: a.name.map(Into::into),
                    meta: a.meta.and_then(Raw::to_boxed),
                    user_id: a.user_id.map(Into::into),
                    link: Link::Live {
                        conn: a.conn,
                        outbox: a.outbox.clone(),
                    },
                };
                let joined = encode(&ServerMessage::PeerJoined {
                    peer: member.info(&a.peer_id),
                });
                let now = ReadAt::new(Instant::now());
                let mut evicted = Vec::new();
                for (id, other) in members.iter_mut() {
                    self.deliver(
                        &room,
                        id,
                        other,
                        &[&joined],
                        now,
                        Kind::Control,
                        &mut evicted,
                    );
                }
                // Held peers whose queue the `peer-joined` overflowed go before the
                // newcomer is in: it is not told of them, and its `welcome` (below)
                // stays its first message.
                self.evict(&room, &mut members, evicted);
                members.insert(a.peer_id.clone(), member);
                self.metrics.peers.inc();
                cluster_resumed
            }
        };

        let welcome = encode(&ServerMessage::<'_, &RawValue>::Welcome(Welcome {
            peer_id: Cow::Borrowed(&a.peer_id),
            room: Cow::Borrowed(a.room),
            peers: members
                .iter()
                .filter(|(id, _)| **id != a.peer_id)
                .map(|(id, m)| m.info(id))
                .collect(),
            ice_servers: a.ice_servers,
            resume_token: Cow::Owned(a.resume_token),
            resumed,
            limits: a.limits,
        }));
        self.metrics
            .outbound(Kind::Control, 1 + queued.len() as u64);
        // Under the room lock, so nothing another member sends can come first.
        a.outbox.reply(crate::ws::op::TEXT, welcome.as_bytes());
        for frame in &queued {
            a.outbox.reply(crate::ws::op::TEXT, frame.as_bytes());
        }
        drop(members);
        Ok(room)
    }

    /// Delivers a `signal` to one member of `room`.
    pub fn signal(
        &self,
        room: &Arc<Room>,
        from: &str,
        to: &str,
        data: Raw<'_>,
        read_at: ReadAt,
    ) -> Result<(), ErrorCode> {
        let frame = relayed_frame("signal", from, data);
        let mut members = room.lock();
        // Signalling oneself is refused like an unknown peer: no client needs it.
        let Some(target) = members.get_mut(to).filter(|_| to != from) else {
            return Err(ErrorCode::UnknownPeer);
        };
        let mut evicted = Vec::new();
        self.deliver(
            room,
            to,
            target,
            &frame,
            read_at,
            Kind::Signal,
            &mut evicted,
        );
        self.evict(room, &mut members, evicted);
        self.drop_if_empty(room, members);
        Ok(())
    }

    /// Delivers a `broadcast` to every other member of `room`.
    pub fn broadcast(&self, room: &Arc<Room>, from: &str, data: Raw<'_>, read_at: ReadAt) {
        let frame = relayed_frame("broadcast", from, data);
        let mut members = room.lock();
        let mut evicted = Vec::new();
        for (id, m) in members.iter_mut() {
            if **id != *from {
                self.deliver(room, id, m, &frame, read_at, Kind::Broadcast, &mut evicted);
            }
        }
        if let Some(outlet) = self.cluster.get() {
            // Once per instance with members here; that instance fans it out.
            let mut sent: Vec<&Arc<str>> = Vec::new();
            for m in members.values() {
                if let Link::Remote { instance, .. } = &m.link {
                    if !sent.contains(&instance) {
                        sent.push(instance);
                        outlet.publish(instance, wire::broadcast(&room.name, from, &frame));
                    }
                }
            }
        }
        self.evict(room, &mut members, evicted);
        self.drop_if_empty(room, members);
    }

    /// The peer leaves for good (`leave`, a clean close, or a policy close): the others
    /// get `peer-left` now. Ignored if another connection owns the peer by now.
    pub fn leave(&self, room: &Arc<Room>, peer: &str, conn: u64) {
        let mut members = room.lock();
        if members.get(peer).is_some_and(|m| m.link.conn() == conn) {
            self.evict_one(room, &mut members, peer, LeaveReason::Left);
        }
        self.drop_if_empty(room, members);
    }

    /// The peer's connection dropped abnormally: hold it for the resume grace.
    /// Relayed frames still in the connection's outbox (accepted, never written) become
    /// the start of the hold queue, so a resume replays them. Ignored unless `conn` is
    /// still the peer's live connection.
    pub fn detach(&self, room: &Arc<Room>, peer: &str, conn: u64, outbox: &Outbox) {
        let mut members = room.lock();
        let Some(m) = members.get_mut(peer) else {
            return;
        };
        if !matches!(m.link, Link::Live { conn: c, .. } if c == conn) {
            return;
        }
        // Shut under the room lock: nothing new can enter the outbox, so what is in it
        // now is older than anything queued later.
        let unsent = outbox.shut();
        self.hold(room, peer, m);
        let mut overflow = false;
        if let Link::Held { queue, bytes, .. } = &mut m.link {
            for frame in unsent {
                if queue.len() < HOLD_MAX_FRAMES && *bytes + frame.len() <= HOLD_MAX_BYTES {
                    *bytes += frame.len();
                    queue.push_back(frame);
                } else {
                    overflow = true;
                }
            }
        }
        if overflow {
            self.evict_one(room, &mut members, peer, LeaveReason::Lost);
            self.drop_if_empty(room, members);
        }
    }

    /// Turns a member into a held one and starts its expiry timer.
    fn hold(&self, room: &Arc<Room>, id: &str, member: &mut Member) {
        let conn = member.link.conn();
        member.link = Link::Held {
            conn,
            queue: VecDeque::new(),
            bytes: 0,
        };
        let registry = self.me.clone();
        let room = room.clone();
        let id: PeerId = id.into();
        let grace = self.grace;
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if let Some(registry) = registry.upgrade() {
                registry.expire(&room, &id, conn);
            }
        });
    }

    /// The grace of a hold ran out: if still held by the same hold, the peer is lost.
    fn expire(&self, room: &Arc<Room>, peer: &str, conn: u64) {
        let mut members = room.lock();
        if members
            .get(peer)
            .is_some_and(|m| matches!(m.link, Link::Held { conn: c, .. } if c == conn))
        {
            self.evict_one(room, &mut members, peer, LeaveReason::Lost);
        }
        self.drop_if_empty(room, members);
    }

    /// Puts one frame (`parts`, joined) on its way to `member`: into its outbox if
    /// live, its queue if held. A full outbox turns the member into a held one (its
    /// connection closes with 4429 once it has written what it has); a full hold queue
    /// adds it to `evicted`.
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &self,
        room: &Arc<Room>,
        id: &str,
        member: &mut Member,
        parts: &[&str],
        read_at: ReadAt,
        kind: Kind,
        evicted: &mut Vec<PeerId>,
    ) {
        if let Link::Remote { instance, .. } = &member.link {
            // Presence and broadcasts reach other instances from their own code paths
            // (once per instance, not per member); a signal goes to its instance here.
            if matches!(kind, Kind::Signal) {
                if let Some(outlet) = self.cluster.get() {
                    outlet.publish(instance, wire::signal(&room.name, id, parts));
                }
            }
            return;
        }
        if let Link::Live { outbox, .. } = &member.link {
            match outbox.relay(parts, read_at) {
                Ok(()) => {
                    self.metrics.outbound(kind, 1);
                    return;
                }
                // Too slow, or already ending: hold it and queue below, so the frame is
                // there when the client resumes.
                Err(refused) => {
                    if refused == Refused::Full {
                        outbox.close(
                            meshwire_protocol::close_code::SLOW_CONSUMER,
                            "too slow reading; resume to continue",
                        );
                    }
                    self.hold(room, id, member);
                }
            }
        }
        if let Link::Held { queue, bytes, .. } = &mut member.link {
            let len: usize = parts.iter().map(|p| p.len()).sum();
            if queue.len() < HOLD_MAX_FRAMES && *bytes + len <= HOLD_MAX_BYTES {
                *bytes += len;
                queue.push_back(parts.concat().into());
            } else {
                evicted.push(id.into());
            }
        }
    }

    /// Removes members whose hold overflowed, telling the others; repeats while the
    /// notices themselves overflow further holds.
    fn evict(
        &self,
        room: &Arc<Room>,
        members: &mut HashMap<PeerId, Member>,
        mut evicted: Vec<PeerId>,
    ) {
        while let Some(id) = evicted.pop() {
            if members.contains_key(&id) {
                self.remove(room, members, &id, LeaveReason::Lost, &mut evicted);
            }
        }
    }

    fn evict_one(
        &self,
        room: &Arc<Room>,
        members: &mut HashMap<PeerId, Member>,
        id: &str,
        reason: LeaveReason,
    ) {
        let mut evicted = Vec::new();
        self.remove(room, members, id, reason, &mut evicted);
        self.evict(room, members, evicted);
    }

    fn remove(
        &self,
        room: &Arc<Room>,
        members: &mut HashMap<PeerId, Member>,
        id: &str,
        reason: LeaveReason,
        evicted: &mut Vec<PeerId>,
    ) {
        let Some(gone) = members.remove(id) else {
            return;
        };
        if gone.link.is_local() {
            self.metrics.peers.dec();
            if let Some(outlet) = self.cluster.get() {
                outlet.left(&room.name, id, reason);
            }
        }
        let left: ServerMessage<'_, ()> = ServerMessage::PeerLeft {
            peer_id: Cow::Borrowed(id),
            reason,
        };
        let left = encode(&left);
        let now = ReadAt::new(Instant::now());
        for (other, m) in members.iter_mut() {
            self.deliver(room, other, m, &[&left], now, Kind::Control, evicted);
        }
    }

    /// Removes `room` from the registry if it is empty. Takes the room's guard to keep
    /// the lock order (registry, then room).
    fn drop_if_empty(&self, room: &Room, members: MutexGuard<'_, HashMap<PeerId, Member>>) {
        // Remote members alone do not keep a room here: nobody local needs the mirror.
        if members.values().any(|m| m.link.is_local()) {
            return;
        }
        drop(members);
        let mut registry = self.lock();
        if let Some(current) = registry.get(&room.name) {
            // Re-check under both locks: a join may have refilled it meanwhile, or the
            // name may now belong to a newer room.
            if std::ptr::eq(current.as_ref(), room) && current.is_empty() {
                registry.remove(&room.name);
                self.metrics.rooms.dec();
            }
        }
    }
}

/// What other instances tell this one (called by `crate::cluster` for each message on
/// its channel). Each keeps the mirror of remote members exact and tells local members
/// only what they have not been told, so a message that arrives twice (an event and a
/// reconciliation both reporting a join, say) changes nothing the second time.
impl Rooms {
    /// A `signal` from another instance for the local peer `to`. Dropped if `to` is not
    /// (or no longer) a local member: the sender's instance saw it here a moment ago.
    pub fn remote_signal(&self, room: &str, to: &str, frame: &str) {
        let Some(room) = self.get(room) else { return };
        let mut members = room.lock();
        let Some(target) = members.get_mut(to).filter(|m| m.link.is_local()) else {
            return;
        };
        let mut evicted = Vec::new();
        let now = ReadAt::new(Instant::now());
        self.deliver(&room, to, target, &[frame], now, Kind::Signal, &mut evicted);
        self.evict(&room, &mut members, evicted);
        self.drop_if_empty(&room, members);
    }

    /// A `broadcast` from another instance, for every local member but `from`.
    pub fn remote_broadcast(&self, room: &str, from: &str, frame: &str) {
        let Some(room) = self.get(room) else { return };
        let mut members = room.lock();
        let mut evicted = Vec::new();
        let now = ReadAt::new(Instant::now());
        for (id, m) in members.iter_mut() {
            if **id != *from && m.link.is_local() {
                self.deliver(&room, id, m, &[frame], now, Kind::Broadcast, &mut evicted);
            }
        }
        self.evict(&room, &mut members, evicted);
        self.drop_if_empty(&room, members);
    }

    /// A peer joined on another instance (or is confirmed there): local members get
    /// `peer-joined` unless they already know it.
    pub fn remote_joined(&self, room: &str, peer: &str, instance: &str, info: &str) {
        self.note(room, || Presence::Joined {
            peer: peer.into(),
            instance: instance.into(),
            info: info.into(),
        });
        self.mirror_joined(room, peer, instance, info);
    }

    /// [`Rooms::remote_joined`] without keeping it for joins in flight (reconciliation:
    /// its data is a snapshot, not an event in the stream's order).
    fn mirror_joined(&self, room: &str, peer: &str, instance: &str, info: &str) {
        let Some(room) = self.get(room) else { return };
        let mut members = room.lock();
        match members.get_mut(peer) {
            Some(m) => {
                if let Link::Remote {
                    instance: at,
                    missing_since,
                } = &mut m.link
                {
                    if **at != *instance {
                        *at = instance.into();
                    }
                    *missing_since = None;
                }
            }
            None => {
                let Some(member) = remote_member(info, instance.into()) else {
                    tracing::warn!(
                        room = &*room.name,
                        peer,
                        "unreadable peer info from {instance}"
                    );
                    return;
                };
                let frame = joined_frame(info);
                let now = ReadAt::new(Instant::now());
                let mut evicted = Vec::new();
                for (id, other) in members.iter_mut() {
                    self.deliver(
                        &room,
                        id,
                        other,
                        &[&frame],
                        now,
                        Kind::Control,
                        &mut evicted,
                    );
                }
                members.insert(PeerId::from(peer), member);
                self.evict(&room, &mut members, evicted);
            }
        }
        self.drop_if_empty(&room, members);
    }

    /// A remote peer is gone: local members get `peer-left` if they knew it.
    pub fn remote_left(&self, room: &str, peer: &str, reason: LeaveReason) {
        self.note(room, || Presence::Left { peer: peer.into() });
        let Some(room) = self.get(room) else { return };
        let mut members = room.lock();
        // Even if the mirror lacks it: a reconciliation may be about to add it from
        // what it read before this.
        let at = self.bump();
        room.left
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(PeerId::from(peer), at);
        if members.get(peer).is_some_and(|m| !m.link.is_local()) {
            self.evict_one(&room, &mut members, peer, reason);
        }
        self.drop_if_empty(&room, members);
    }

    /// `peer` resumed on `instance`. If it was a member here, it becomes a remote one
    /// without presence changes, and what was waiting for it here (its hold queue, or
    /// what its still-open connection had not written) is returned, oldest first, for
    /// the cluster to forward. Another instance's move only updates the mirror.
    pub fn moved(&self, room: &str, peer: &str, instance: &str) -> Vec<Box<str>> {
        self.note(room, || Presence::Moved {
            peer: peer.into(),
            instance: instance.into(),
        });
        let Some(room) = self.get(room) else {
            return Vec::new();
        };
        let mut members = room.lock();
        let Some(m) = members.get_mut(peer) else {
            return Vec::new();
        };
        let frames = match &mut m.link {
            Link::Remote { instance: at, .. } => {
                *at = instance.into();
                Vec::new()
            }
            Link::Held { queue, .. } => std::mem::take(queue)
                .into_iter()
                .filter(|f| !is_presence(f))
                .collect(),
            Link::Live { outbox, .. } => {
                let unsent = outbox.shut();
                outbox.close(
                    meshwire_protocol::close_code::REPLACED,
                    "session resumed on another relay instance",
                );
                unsent
            }
        };
        if m.link.is_local() {
            self.metrics.peers.dec();
            m.link = Link::Remote {
                instance: instance.into(),
                missing_since: None,
            };
        }
        self.drop_if_empty(&room, members);
        frames
    }

    /// Compares `room` with its members in Redis (`records`: peer id, owning instance,
    /// `PeerInfo` JSON, read after [`Rooms::epoch`] returned `read`; `me` is this
    /// instance). Remote peers Redis has and the mirror lacks are announced, unless
    /// their `peer-left` was heard since `read` (the record is older than that); a
    /// room created since `read` is left alone (its join's snapshot is newer).
    /// Mirrored ones Redis has lost for longer than `patience` are dropped with
    /// `peer-left` "lost". Returns what this instance must fix in Redis.
    pub fn reconcile(
        &self,
        room: &str,
        records: &[(String, String, String)],
        me: &str,
        patience: Duration,
        read: u64,
    ) -> Drift {
        let mut drift = Drift::default();
        let Some(room) = self.get(room) else {
            drift.stale = records
                .iter()
                .filter(|(_, inst, _)| inst == me)
                .map(|(p, _, _)| p.clone())
                .collect();
            return drift;
        };
        if room.born > read {
            return drift;
        }
        let left_since: Vec<PeerId> = {
            let mut left = room.left.lock().unwrap_or_else(|p| p.into_inner());
            // Older departures cannot matter to this or any later pass (they read
            // Redis after them).
            left.retain(|_, at| *at > read);
            left.keys().cloned().collect()
        };
        for (peer, instance, info) in records {
            if instance != me && !left_since.iter().any(|p| **p == **peer) {
                self.mirror_joined(&room.name, peer, instance, info);
            }
        }
        let now = Instant::now();
        let mut members = room.lock();
        let mut gone = Vec::new();
        for (id, m) in members.iter_mut() {
            let listed = records.iter().find(|(p, _, _)| **p == **id);
            match &mut m.link {
                Link::Remote { missing_since, .. } => match listed {
                    Some(_) => *missing_since = None,
                    None => {
                        let since = *missing_since.get_or_insert(now);
                        if now.saturating_duration_since(since) >= patience {
                            gone.push(id.clone());
                        }
                    }
                },
                _ => {
                    if !listed.is_some_and(|(_, inst, _)| inst == me) {
                        drift.unlisted.push(LocalMember {
                            room: room.name.clone(),
                            peer: id.clone(),
                            user_id: m.user_id.as_deref().map(str::to_string),
                            info: serde_json::to_string(&m.info(id)).unwrap_or_default(),
                        });
                    }
                }
            }
        }
        for (peer, inst, _) in records {
            if inst == me
                && !members
                    .get(peer.as_str())
                    .is_some_and(|m| m.link.is_local())
            {
                drift.stale.push(peer.clone());
            }
        }
        for id in gone {
            self.evict_one(&room, &mut members, &id, LeaveReason::Lost);
        }
        self.drop_if_empty(&room, members);
        drift
    }

    /// Every local member, for writing them back to Redis after it lost them.
    pub fn local_members(&self) -> Vec<LocalMember> {
        let mut out = Vec::new();
        for room in self.list() {
            for (id, m) in room.lock().iter() {
                if m.link.is_local() {
                    out.push(LocalMember {
                        room: room.name.clone(),
                        peer: id.clone(),
                        user_id: m.user_id.as_deref().map(str::to_string),
                        info: serde_json::to_string(&m.info(id)).unwrap_or_default(),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_frames_match_the_serde_encoding() {
        let data = RawValue::from_string(r#"{"sdp":"v=0\r\n","n":[1,2]}"#.to_owned()).unwrap();
        let from = "m-O4mFkp2lwZJdRy6r0MmQ";
        let signal = ServerMessage::Signal {
            from: Cow::Borrowed(from),
            data: &*data,
        };
        let broadcast = ServerMessage::Broadcast {
            from: Cow::Borrowed(from),
            data: &*data,
        };
        assert_eq!(
            relayed_frame("signal", from, Raw::from(&*data)).concat(),
            encode(&signal)
        );
        assert_eq!(
            relayed_frame("broadcast", from, Raw::from(&*data)).concat(),
            encode(&broadcast)
        );
    }

    fn count(bytes: &[u8], needle: &str) -> usize {
        bytes
            .windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    }

    /// Admits `peer` to room "r" on connection `conn` writing to `outbox`.
    fn admit(
        rooms: &Rooms,
        peer: &str,
        conn: u64,
        outbox: &Arc<Outbox>,
        resuming: bool,
    ) -> Arc<Room> {
        rooms
            .join(Admission {
                room: "r",
                peer_id: PeerId::from(peer),
                resuming,
                name: None,
                meta: None,
                user_id: None,
                conn,
                outbox: outbox.clone(),
                ice_servers: Vec::new(),
                resume_token: String::new(),
                limits: Limits {
                    max_message_bytes: 65536,
                    rate_limit: 0,
                    rate_burst: 0,
                    room_capacity: 8,
                    resume_grace_ms: 5000,
                    ping_interval_ms: 20000,
                },
                cluster: None,
            })
            .unwrap()
    }

    #[test]
    fn a_reconciliation_read_before_a_leave_does_not_bring_the_peer_back() {
        let rooms = Rooms::new(Arc::new(Metrics::new()), 8, Duration::from_secs(5));
        let outbox = Arc::new(Outbox::default());
        let room = admit(&rooms, "local", 1, &outbox, false);
        let info = r#"{"id":"x"}"#;
        rooms.remote_joined("r", "x", "other", info);
        // Reconciliation reads Redis (x still listed), then the `L` is handled, then
        // the pass reaches this room.
        let read = rooms.epoch();
        let records = vec![("x".to_string(), "other".to_string(), info.to_string())];
        rooms.remote_left("r", "x", LeaveReason::Left);
        rooms.reconcile("r", &records, "me", Duration::from_secs(10), read);
        assert_eq!(room.members().len(), 1, "x came back");
        let bytes = outbox.take().bytes;
        assert_eq!(count(&bytes, r#""type":"peer-joined""#), 1);
        assert_eq!(count(&bytes, r#""type":"peer-left""#), 1);
        // A later pass, reading after the leave, lists x again (it rejoined): added.
        let read = rooms.epoch();
        rooms.reconcile("r", &records, "me", Duration::from_secs(10), read);
        assert_eq!(room.members().len(), 2);
    }

    #[test]
    fn a_resume_that_takes_over_an_open_connection_gets_what_it_had_not_written() {
        let rooms = Rooms::new(Arc::new(Metrics::new()), 8, Duration::from_secs(5));
        let (old, other, new) = (
            Arc::new(Outbox::default()),
            Arc::new(Outbox::default()),
            Arc::new(Outbox::default()),
        );
        let room = admit(&rooms, "a", 1, &old, false);
        admit(&rooms, "b", 2, &other, false);
        let _ = old.take(); // the welcome and the `peer-joined`, written
                            // Two signals reach the old connection's outbox; its socket never writes them.
        for n in ["1", "2"] {
            let data = RawValue::from_string(n.to_owned()).unwrap();
            rooms
                .signal(
                    &room,
                    "b",
                    "a",
                    Raw::from(&*data),
                    ReadAt::new(Instant::now()),
                )
                .unwrap();
        }
        admit(&rooms, "a", 3, &new, true);
        let got = new.take().bytes;
        let text = String::from_utf8_lossy(&got);
        let welcome = text.find(r#""type":"welcome""#).expect("a welcome");
        let first = text
            .find(r#"{"type":"signal","from":"b","data":1}"#)
            .expect("signal 1");
        let second = text
            .find(r#"{"type":"signal","from":"b","data":2}"#)
            .expect("signal 2");
        assert!(welcome < first && first < second, "{text}");
        // The old connection gets only its close (4409).
        let rest = old.take();
        assert_eq!(count(&rest.bytes, r#""type":"signal""#), 0);
        assert_eq!(
            rest.close.map(|(code, _)| code),
            Some(meshwire_protocol::close_code::REPLACED)
        );
    }

    #[test]
    fn is_presence_recognises_encoded_presence_frames_only() {
        let joined: ServerMessage<'_, ()> = ServerMessage::PeerJoined {
            peer: PeerInfo {
                id: Cow::Borrowed("a"),
                name: None,
                meta: None,
                user_id: None,
            },
        };
        let left: ServerMessage<'_, ()> = ServerMessage::PeerLeft {
            peer_id: Cow::Borrowed("a"),
            reason: LeaveReason::Lost,
        };
        let pong: ServerMessage<'_, ()> = ServerMessage::Pong;
        assert!(is_presence(&encode(&joined)));
        assert!(is_presence(&encode(&left)));
        assert!(!is_presence(&encode(&pong)));
        assert!(!is_presence(
            r#"{"type":"signal","from":"a","data":{"type":"peer-left"}}"#
        ));
    }
}
