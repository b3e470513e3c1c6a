//! Cluster mode (`--redis-url`): several relay instances behind any load balancer,
//! sharing rooms through Redis. docs/scaling.md describes it for operators.
//!
//! - Every room's membership lives in Redis (`store`), changed only by Lua scripts, so
//!   capacity holds cluster-wide: two joins racing for the last seat cannot both win.
//! - Each instance subscribes to its own channel, `mw:to:{instance}`. A frame for a
//!   peer on another instance is published to that instance's channel (`wire`);
//!   a broadcast once per instance with members in the room. A frame for a local peer
//!   never leaves the process (`rooms.rs` delivers it before looking here).
//! - Each room keeps a mirror of its remote members (`rooms::Link::Remote`), updated by
//!   the other instances' `J`/`L`/`M` messages and checked against Redis every
//!   `--instance-ttl` (reconciliation), which repairs anything a lost message or a
//!   Redis restart left out of step.
//! - Liveness: each instance refreshes `mw:instance:{id}` (TTL `--instance-ttl`) every
//!   fifth of the TTL. Every instance sweeps: one whose key has expired is reaped (its
//!   members removed by one script, whoever runs it first) and the survivors tell
//!   their local members `peer-left` "lost".
//! - Redis unreachable: `/ready` answers 503 and `/health` says why; local delivery
//!   goes on; cross-instance frames are dropped (counted); joins get `internal`.
//!   When Redis answers again the instance re-registers, writes its members back and
//!   resubscribes, without a restart.
//!
//! Everything Redis-facing runs in this module's tasks; `rooms.rs` only hands frames to
//! an [`Outlet`], which never blocks.

pub mod store;
pub mod wire;

use crate::error::Error;
use crate::metrics::Metrics;
use crate::rooms::{Admission, ClusterAdmission, Rooms};
use meshwire_protocol::{ErrorCode, LeaveReason, PeerInfo};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{IntoConnectionInfo, PushKind, Value};
use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use store::{Joined, Scripts};
use tokio::sync::mpsc;

/// How long the heartbeat woken by a lost connection waits before trying Redis.
const WAKE_DELAY: Duration = Duration::from_millis(100);
/// How many commands may wait for the publisher before frames are dropped (a full
/// queue means Redis is far behind; blocking a connection instead would stall rooms).
const QUEUE: usize = 65_536;
/// Most payload bytes waiting for the publisher. A count alone would let 65,536
/// frames of up to `--max-message-bytes` each (GiBs) pile up while Redis stalls; past
/// this, frames are dropped and counted, as when Redis is down.
const QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// Most channel messages (and their payload bytes) received from Redis and not yet
/// handed to the rooms; past either, messages are dropped and counted.
const PUSHES: usize = 65_536;
const PUSH_BYTES: usize = 32 * 1024 * 1024;

/// A byte allowance shared by a queue's producers and its consumer, so the queue is
/// bounded by memory, not only by count, without ever blocking a producer.
pub struct Budget {
    used: AtomicUsize,
    max: usize,
}

impl Budget {
    /// An allowance of `max` bytes.
    pub fn new(max: usize) -> Self {
        Budget {
            used: AtomicUsize::new(0),
            max,
        }
    }

    /// Takes `n` bytes if they fit; false (nothing taken) otherwise.
    pub fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.max)
            })
            .is_ok()
    }

    /// Gives back `n` bytes taken before.
    pub fn give(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}
/// Most commands sent to Redis as one pipeline.
const BATCH: usize = 512;
/// How long a join waits for Redis before the client gets `internal`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(3);
/// `/health`'s error before the first heartbeat.
const CONNECTING: &str = "connecting to Redis";
/// How long one heartbeat may take before Redis counts as unreachable.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

fn timed_out() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer in time",
    ))
}

/// Work for the publisher task, in the order the rooms produced it.
enum Cmd {
    /// PUBLISH `payload` to `to`'s channel.
    Publish { to: Arc<str>, payload: Vec<u8> },
    /// A local member left: run the leave script, then tell the instances still there.
    Left {
        room: Arc<str>,
        peer: Box<str>,
        reason: LeaveReason,
    },
    /// A peer resumed here: deliver the signals Redis kept for it. Queued behind the
    /// publishes before it, so a signal this instance sent before the resume is kept
    /// (or delivered) first.
    Claim { room: Arc<str>, peer: Box<str> },
    /// Answered once everything queued before it is done: a resume waits for it, so
    /// that a leave of the same peer queued just before cannot land after the resume.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// The rooms' handle on the cluster: queues work for the publisher without blocking.
#[derive(Clone)]
pub struct Outlet {
    me: Arc<str>,
    tx: mpsc::Sender<Cmd>,
    /// Payload bytes queued in `tx`.
    bytes: Arc<Budget>,
    metrics: Arc<Metrics>,
}

impl Outlet {
    /// This instance's id.
    pub fn me(&self) -> &Arc<str> {
        &self.me
    }

    /// Publishes `payload` to instance `to`. Dropped (and counted) when the queue is
    /// full or the cluster is stopping.
    pub fn publish(&self, to: &Arc<str>, payload: Vec<u8>) {
        let n = payload.len();
        if !self.bytes.try_take(n) {
            self.metrics.cluster.dropped.inc();
            return;
        }
        let cmd = Cmd::Publish {
            to: to.clone(),
            payload,
        };
        if self.tx.try_send(cmd).is_err() {
            self.bytes.give(n);
            self.metrics.cluster.dropped.inc();
        }
    }

    /// A peer resumed here from another instance: fetch what Redis kept for it.
    pub fn claim(&self, room: &Arc<crate::rooms::Room>, peer: &str) {
        let cmd = Cmd::Claim {
            room: room.name.clone(),
            peer: peer.into(),
        };
        if self.tx.try_send(cmd).is_err() {
            self.metrics.cluster.dropped.inc();
        }
    }

    /// Answers once the commands queued so far are done (None if the queue is full).
    fn barrier(&self) -> Option<tokio::sync::oneshot::Receiver<()>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.tx.try_send(Cmd::Barrier(tx)).ok().map(|()| rx)
    }

    /// A local member is gone for good.
    pub fn left(&self, room: &Arc<str>, peer: &str, reason: LeaveReason) {
        let cmd = Cmd::Left {
            room: room.clone(),
            peer: peer.into(),
            reason,
        };
        if self.tx.try_send(cmd).is_err() {
            // Reconciliation removes the record later (it is this instance's and stale).
            self.metrics.cluster.dropped.inc();
        }
    }
}

/// Whether Redis is reachable, for `/ready` and `/health`.
#[derive(Clone, Debug)]
pub struct Health {
    /// Redis answered the last heartbeat.
    pub up: bool,
    /// The last failure, while down.
    pub error: Option<String>,
}

/// A leave to tell Redis and the other instances: room, peer, why.
type Leave = (Arc<str>, Box<str>, LeaveReason);

/// One instance's membership of the cluster.
pub struct Cluster {
    /// This instance's id (random per process).
    pub me: Arc<str>,
    con: ConnectionManager,
    scripts: Scripts,
    rooms: Arc<Rooms>,
    metrics: Arc<Metrics>,
    capacity: u32,
    ttl: Duration,
    /// `--resume-grace`: how long Redis keeps signals for a peer whose instance is gone.
    grace: Duration,
    health: Mutex<Health>,
    /// Leaves whose script failed (Redis down), retried when it is back.
    retry_leaves: Mutex<Vec<Leave>>,
    /// Wakes the heartbeat before its tick: the connection to Redis dropped, and is
    /// usually back at once (the client reconnects), so re-register now rather than
    /// drop cross-instance traffic until the next tick.
    wake: tokio::sync::Notify,
    /// The module's tasks, aborted by [`Cluster::stop`] (they hold the `Arc`).
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Cluster {
    /// Connects (lazily: an unreachable Redis is reported by `/ready`, not fatal), hooks
    /// the rooms up, and starts the heartbeat, publisher and subscriber tasks.
    pub fn start(
        url: &str,
        rooms: Arc<Rooms>,
        metrics: Arc<Metrics>,
        capacity: u32,
        ttl: Duration,
        grace: Duration,
    ) -> Result<Arc<Cluster>, Error> {
        let mut info: redis::ConnectionInfo = url
            .into_connection_info()
            .map_err(|e| Error::Config(format!("--redis-url: {e}")))?;
        // RESP3: pushes (channel messages) arrive on the same managed connection, which
        // reconnects and resubscribes by itself.
        let redis_settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        info = info.set_redis_settings(redis_settings);
        let client =
            redis::Client::open(info).map_err(|e| Error::Config(format!("--redis-url: {e}")))?;
        let (push_tx, push_rx) = mpsc::channel(PUSHES);
        let push_bytes = Arc::new(Budget::new(PUSH_BYTES));
        let push_sender = {
            let bytes = push_bytes.clone();
            let metrics = metrics.clone();
            // Called by the connection's reader, which must not block: a full channel
            // drops the message (counted), as a slow consumer would.
            move |push: redis::PushInfo| -> Result<(), ()> {
                let n = push_size(&push);
                if !bytes.try_take(n) {
                    metrics.cluster.dropped.inc();
                    return Ok(());
                }
                if push_tx.try_send((push, n)).is_err() {
                    bytes.give(n);
                    metrics.cluster.dropped.inc();
                }
                Ok(())
            }
        };
        let config = ConnectionManagerConfig::new()
            .set_push_sender(push_sender)
            .set_automatic_resubscription()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_max_delay(Duration::from_millis(500))
            // Few: a command during an outage should fail soon (the next one starts a
            // new reconnection), not wait for Redis to come back.
            .set_number_of_retries(3);
        let con = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| Error::Config(format!("--redis-url: {e}")))?;
        let me: Arc<str> = crate::rooms::new_peer_id();
        let (tx, rx) = mpsc::channel(QUEUE);
        let queued = Arc::new(Budget::new(QUEUE_BYTES));
        let cluster = Arc::new(Cluster {
            me: me.clone(),
            con,
            scripts: Scripts::default(),
            rooms: rooms.clone(),
            metrics: metrics.clone(),
            capacity,
            ttl,
            grace,
            health: Mutex::new(Health {
                up: false,
                error: Some(CONNECTING.into()),
            }),
            retry_leaves: Mutex::new(Vec::new()),
            wake: tokio::sync::Notify::new(),
            tasks: Mutex::new(Vec::new()),
        });
        rooms.set_cluster(Outlet {
            me: me.clone(),
            tx,
            bytes: queued.clone(),
            metrics,
        });
        tracing::info!(instance = &*me, "cluster mode: coordinating through Redis");
        let tasks = vec![
            tokio::spawn(cluster.clone().publisher(rx, queued)),
            tokio::spawn(cluster.clone().subscriber(push_rx, push_bytes)),
            tokio::spawn(cluster.clone().heartbeat()),
        ];
        *cluster.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        Ok(cluster)
    }

    /// Stops the cluster's tasks (when `run` returns). The instance is not removed
    /// from Redis: its peers stay listed until its liveness key expires, so clients
    /// of a draining instance can resume elsewhere without the others seeing them go.
    pub fn stop(&self) {
        for t in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// Whether Redis is reachable.
    pub fn health(&self) -> Health {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_down(&self, error: String) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        // Once per outage (and once if Redis is not there at start-up), not per beat.
        if h.up || h.error.as_deref() == Some(CONNECTING) {
            tracing::warn!(instance = &*self.me, "Redis unreachable: {error}; local peers keep working, cross-instance traffic and joins wait for it");
        }
        h.up = false;
        h.error = Some(error);
        self.metrics.cluster.up.set(0);
    }

    /// Returns whether this was a recovery.
    fn set_up(&self) -> bool {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let was = h.up;
        h.up = true;
        h.error = None;
        self.metrics.cluster.up.set(1);
        !was
    }

    /// Admits a peer through Redis (capacity, resume from any instance), then locally,
    /// then tells the other instances in the room.
    pub async fn join(
        &self,
        mut a: Admission<'_>,
    ) -> Result<Arc<crate::rooms::Room>, (ErrorCode, &'static str)> {
        const DOWN: &str = "the relay cannot reach its cluster store (Redis); retry shortly";
        if !self.health().up {
            return Err((ErrorCode::Internal, DOWN));
        }
        let meta = a.meta.and_then(meshwire_protocol::json::Raw::to_boxed);
        let info = PeerInfo {
            id: Cow::Borrowed(&*a.peer_id),
            name: a.name.map(Cow::Borrowed),
            meta: meta.as_deref(),
            user_id: a.user_id.map(Cow::Borrowed),
        };
        let info = serde_json::to_string(&info).unwrap_or_default();
        // Before the script: presence events published after it ran may be handled
        // (by the subscriber) before the room exists here; the watch keeps them for
        // `Rooms::join` to apply on top of the script's snapshot.
        let _watch = self.rooms.expect_join(a.room);
        // A resume may follow its own leave (or the end of its hold) at once: that
        // leave waits in the command queue, and the join script must not overtake it
        // (it would find the old record and take this for a resume that tells nobody,
        // and the leave would then remove the peer from Redis while it is connected).
        if a.resuming {
            if let Some(done) = self.rooms_outlet().and_then(|o| o.barrier()) {
                let _ = tokio::time::timeout(JOIN_TIMEOUT, done).await;
            }
        }
        let mut con = self.con.clone();
        let result = tokio::time::timeout(
            JOIN_TIMEOUT,
            self.scripts.join(
                &mut con,
                &self.me,
                a.room,
                &a.peer_id,
                a.user_id,
                &info,
                self.capacity,
                a.resuming,
            ),
        )
        .await;
        let joined = match result {
            Ok(Ok(j)) => j,
            Ok(Err(e)) => {
                tracing::warn!("join script failed: {e}");
                return Err((ErrorCode::Internal, DOWN));
            }
            Err(_) => return Err((ErrorCode::Internal, DOWN)),
        };
        let (resumed_from, members) = match joined {
            Joined::Joined(m) => (None, m),
            Joined::Resumed { from, members } => (Some(from), members),
            Joined::Full => {
                return Err((
                    ErrorCode::RoomFull,
                    "the room is full; try another room or later",
                ))
            }
            Joined::Taken => return Err((ErrorCode::Internal, "peer id in use; retry the join")),
            Joined::OtherUser => {
                return Err((
                    ErrorCode::ResumeFailed,
                    "the resume token belongs to a session of another user",
                ))
            }
        };
        let members: Vec<(String, Arc<str>, String)> = members
            .into_iter()
            .filter_map(|(peer, rec)| {
                let r = store::parse_record(&rec)?;
                Some((peer, Arc::from(r.instance), r.info.to_string()))
            })
            .collect();
        let instances = distinct_others(members.iter().map(|(_, i, _)| i), &self.me);
        let room_name = a.room.to_string();
        let peer = a.peer_id.clone();
        a.cluster = Some(ClusterAdmission {
            resumed: resumed_from.is_some(),
            members,
        });
        let room = match self.rooms.join(a) {
            Ok(room) => room,
            Err(e) => {
                // Refused locally after Redis admitted it: undo, so no ghost remains.
                if let Err(err) = self
                    .scripts
                    .leave(&mut con, &self.me, &room_name, &peer)
                    .await
                {
                    tracing::warn!("undoing a refused join failed: {err}");
                }
                return Err(e);
            }
        };
        let Some(outlet) = self.rooms_outlet() else {
            return Ok(room);
        };
        match resumed_from {
            None => {
                let msg = wire::joined(&room_name, &peer, &self.me, &info);
                for i in &instances {
                    outlet.publish(i, msg.clone());
                }
            }
            // Also when Redis says it was here already: it may have moved here in a
            // join whose answer came too late (the client was told to retry), and the
            // instance that held it must hear of the move, or it keeps holding it and
            // its queue is lost. Whoever already mirrors it here ignores the `M`.
            Some(from) => {
                outlet.claim(&room, &peer);
                let msg = wire::moved(&room_name, &peer, &self.me);
                let from: Arc<str> = from.into();
                let mut told = instances.clone();
                if *from != *self.me && !told.contains(&from) {
                    told.push(from);
                }
                for i in &told {
                    outlet.publish(i, msg.clone());
                }
                // The others may never have heard of it (it joined while their view was
                // stale): a `J` is ignored by whoever already mirrors it.
                let msg = wire::joined(&room_name, &peer, &self.me, &info);
                for i in &instances {
                    outlet.publish(i, msg.clone());
                }
            }
        }
        Ok(room)
    }

    fn rooms_outlet(&self) -> Option<Outlet> {
        self.rooms.outlet()
    }

    /// Sends the rooms' commands to Redis in order, pipelining runs of PUBLISH.
    async fn publisher(self: Arc<Self>, mut rx: mpsc::Receiver<Cmd>, queued: Arc<Budget>) {
        let mut con = self.con.clone();
        let mut batch: Vec<Cmd> = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            // Out of the queue: what is in flight is bounded by BATCH.
            for cmd in &batch {
                if let Cmd::Publish { payload, .. } = cmd {
                    queued.give(payload.len());
                }
            }
            if !self.health().up {
                // Fail fast while Redis is away, so nothing stale piles up for later.
                for cmd in batch.drain(..) {
                    match cmd {
                        Cmd::Publish { .. } | Cmd::Claim { .. } => {
                            self.metrics.cluster.dropped.inc()
                        }
                        Cmd::Left { room, peer, reason } => self
                            .retry_leaves
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((room, peer, reason)),
                        Cmd::Barrier(done) => {
                            let _ = done.send(());
                        }
                    }
                }
                continue;
            }
            let mut pending: Vec<(Arc<str>, Vec<u8>)> = Vec::new();
            for cmd in batch.drain(..) {
                match cmd {
                    Cmd::Publish { to, payload } => pending.push((to, payload)),
                    Cmd::Left { room, peer, reason } => {
                        self.publish_all(&mut con, &mut pending).await;
                        self.leave(&mut con, &room, &peer, reason).await;
                    }
                    Cmd::Claim { room, peer } => {
                        self.publish_all(&mut con, &mut pending).await;
                        self.claim(&mut con, &room, &peer).await;
                    }
                    Cmd::Barrier(done) => {
                        self.publish_all(&mut con, &mut pending).await;
                        let _ = done.send(());
                    }
                }
            }
            self.publish_all(&mut con, &mut pending).await;
        }
    }

    /// Publishes `pending` as one pipeline. A `signal` nobody received (its peer's
    /// instance is gone, or cut off from Redis) is kept in the peer's Redis queue for
    /// `--resume-grace`, for a resume on another instance to pick up.
    async fn publish_all(
        &self,
        con: &mut ConnectionManager,
        pending: &mut Vec<(Arc<str>, Vec<u8>)>,
    ) {
        if pending.is_empty() {
            return;
        }
        let mut pipe = redis::pipe();
        for (to, payload) in pending.iter() {
            pipe.publish(store::channel(to), payload);
        }
        let n = pending.len() as u64;
        let received: Vec<i64> = match pipe.query_async(con).await {
            Ok(r) => r,
            Err(e) => {
                self.metrics.cluster.dropped.inc_by(n);
                tracing::debug!("publishing {n} cluster messages failed: {e}");
                pending.clear();
                return;
            }
        };
        self.metrics.cluster.published.inc_by(n);
        let mut keep = redis::pipe();
        let mut kept = 0;
        let grace = self.grace.as_millis().max(1) as u64;
        for ((_, payload), got) in pending.iter().zip(received) {
            if got != 0 {
                continue;
            }
            if let Some(wire::Wire::Signal { room, to, frame }) = wire::decode(payload) {
                let key = store::queue(room, to);
                keep.rpush(&key, frame)
                    .ignore()
                    .ltrim(&key, 0, crate::rooms::HOLD_MAX_FRAMES as isize - 1)
                    .ignore()
                    .pexpire(&key, grace as i64)
                    .ignore();
                kept += 1;
            }
        }
        pending.clear();
        if kept > 0 {
            if let Err(e) = keep.exec_async(con).await {
                tracing::debug!("keeping {kept} undeliverable signals failed: {e}");
            }
        }
    }

    /// Delivers what Redis kept for `peer` (now local after a resume), oldest first.
    async fn claim(&self, con: &mut ConnectionManager, room: &str, peer: &str) {
        let key = store::queue(room, peer);
        let taken: redis::RedisResult<(Vec<String>,)> = redis::pipe()
            .atomic()
            .lrange(&key, 0, -1)
            .del(&key)
            .ignore()
            .query_async(con)
            .await;
        match taken {
            Ok((frames,)) => {
                for frame in frames {
                    self.rooms.remote_signal(room, peer, &frame);
                }
            }
            Err(e) => tracing::debug!("taking the kept signals of {peer} failed: {e}"),
        }
    }

    /// `claim` for many peers, a pipeline per `BATCH`.
    async fn claim_all(
        &self,
        con: &mut ConnectionManager,
        keys: &[(Arc<str>, String)],
    ) -> redis::RedisResult<()> {
        for part in keys.chunks(BATCH) {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (room, peer) in part {
                let key = store::queue(room, peer);
                pipe.lrange(&key, 0, -1).del(&key).ignore();
            }
            let taken: Vec<Vec<String>> = pipe.query_async(con).await?;
            for ((room, peer), frames) in part.iter().zip(taken) {
                for frame in frames {
                    self.rooms.remote_signal(room, peer, &frame);
                }
            }
        }
        Ok(())
    }

    async fn flush(&self, con: &mut ConnectionManager, pipe: &mut redis::Pipeline, n: u64) {
        match pipe.exec_async(con).await {
            Ok(()) => self.metrics.cluster.published.inc_by(n),
            Err(e) => {
                self.metrics.cluster.dropped.inc_by(n);
                tracing::debug!("publishing {n} cluster messages failed: {e}");
            }
        }
        pipe.clear();
    }

    async fn leave(
        &self,
        con: &mut ConnectionManager,
        room: &Arc<str>,
        peer: &str,
        reason: LeaveReason,
    ) {
        match self.scripts.leave(con, &self.me, room, peer).await {
            Ok(instances) => {
                let msg = wire::left(room, peer, reason);
                let mut pipe = redis::pipe();
                let mut n = 0;
                for i in instances.iter().filter(|i| **i != *self.me) {
                    pipe.publish(store::channel(i), msg.clone()).ignore();
                    n += 1;
                }
                if n > 0 {
                    self.flush(con, &mut pipe, n).await;
                }
            }
            Err(e) => {
                tracing::debug!("leave script failed ({e}); retried when Redis is back");
                self.retry_leaves
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((room.clone(), peer.into(), reason));
            }
        }
    }

    /// Hands each message on this instance's channel to the rooms.
    async fn subscriber(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<(redis::PushInfo, usize)>,
        bytes: Arc<Budget>,
    ) {
        while let Some((push, n)) = rx.recv().await {
            bytes.give(n);
            match push.kind {
                PushKind::Message => {
                    let Some(Value::BulkString(payload)) = push.data.get(1) else {
                        continue;
                    };
                    self.metrics.cluster.received.inc();
                    self.on_message(payload);
                }
                PushKind::Disconnection => {
                    self.set_down("connection to Redis lost".into());
                    self.wake.notify_one();
                }
                _ => {}
            }
        }
    }

    fn on_message(&self, payload: &[u8]) {
        let Some(msg) = wire::decode(payload) else {
            tracing::warn!(bytes = payload.len(), "unreadable cluster message");
            return;
        };
        match msg {
            wire::Wire::Signal { room, to, frame } => self.rooms.remote_signal(room, to, frame),
            wire::Wire::Broadcast { room, from, frame } => {
                self.rooms.remote_broadcast(room, from, frame)
            }
            wire::Wire::Joined {
                room,
                peer,
                instance,
                info,
            } => self.rooms.remote_joined(room, peer, instance, info),
            wire::Wire::Left { room, peer, reason } => self.rooms.remote_left(room, peer, reason),
            wire::Wire::Moved {
                room,
                peer,
                instance,
            } => {
                let frames = self.rooms.moved(room, peer, instance);
                if !frames.is_empty() {
                    if let Some(outlet) = self.rooms_outlet() {
                        let to: Arc<str> = instance.into();
                        for f in frames {
                            outlet.publish(&to, wire::signal(room, peer, &[&f]));
                        }
                    }
                }
            }
        }
    }

    /// Liveness, recovery, reaping and reconciliation, every fifth of the TTL.
    async fn heartbeat(self: Arc<Self>) {
        let tick = (self.ttl / 5).max(Duration::from_millis(50));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut con = self.con.clone();
        let mut last_reconcile = Instant::now();
        let mut suspects: HashSet<(String, String)> = HashSet::new();
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = self.wake.notified() => {
                    // A moment for the client to reconnect, then at once.
                    tokio::time::sleep(WAKE_DELAY).await;
                }
            }
            let beat = tokio::time::timeout(STEP_TIMEOUT, self.beat(&mut con)).await;
            match beat.unwrap_or_else(|_| Err(timed_out())) {
                Ok(added) => {
                    let was_up = self.health().up;
                    let mut registered = Vec::new();
                    if !was_up || added {
                        let r =
                            tokio::time::timeout(STEP_TIMEOUT * 4, self.register(&mut con)).await;
                        match r.unwrap_or_else(|_| Err(timed_out())) {
                            Ok(members) => registered = members,
                            Err(e) => {
                                self.set_down(e.to_string());
                                continue;
                            }
                        }
                    }
                    // Ready only once subscribed and written back.
                    let recovered = self.set_up();
                    // While this instance was not subscribed (its connection to Redis
                    // dropped for a moment), what the others published to it had no
                    // receiver and was kept for its members (`publish_all`): nobody else
                    // would take it. Taken once up, so the answers it prompts go out.
                    if !registered.is_empty() {
                        let claimed = tokio::time::timeout(
                            STEP_TIMEOUT * 4,
                            self.claim_all(&mut con, &registered),
                        )
                        .await;
                        if let Err(e) = claimed.unwrap_or_else(|_| Err(timed_out())) {
                            tracing::debug!("taking the signals kept for local peers failed: {e}");
                        }
                    }
                    if recovered {
                        tracing::info!(
                            instance = &*self.me,
                            "Redis reachable: cluster mode active"
                        );
                    }
                    if let Err(e) = self.sweep(&mut con).await {
                        tracing::debug!("sweep failed: {e}");
                    }
                    if recovered || last_reconcile.elapsed() >= self.ttl {
                        last_reconcile = Instant::now();
                        if let Err(e) = self.reconcile(&mut con, &mut suspects).await {
                            tracing::debug!("reconcile failed: {e}");
                        }
                    }
                }
                Err(e) => self.set_down(e.to_string()),
            }
        }
    }

    /// Refreshes the liveness key; true if this instance was not registered (first
    /// beat, Redis restarted, or it was reaped while cut off).
    async fn beat(&self, con: &mut ConnectionManager) -> redis::RedisResult<bool> {
        let (added,): (i64,) = redis::pipe()
            .cmd("SET")
            .arg(store::alive(&self.me))
            .arg(env!("CARGO_PKG_VERSION"))
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .ignore()
            .sadd(store::instances(), &*self.me)
            .query_async(con)
            .await?;
        Ok(added == 1)
    }

    /// (Re)subscribes, writes every local member back, and retries failed leaves.
    /// Returns the local members, whose kept signals the caller takes once up.
    async fn register(
        &self,
        con: &mut ConnectionManager,
    ) -> redis::RedisResult<Vec<(Arc<str>, String)>> {
        con.subscribe(store::channel(&self.me)).await?;
        let members = self.rooms.local_members();
        let n = members.len();
        let keys: Vec<(Arc<str>, String)> = members
            .iter()
            .map(|m| (m.room.clone(), m.peer.to_string()))
            .collect();
        self.restore(con, members).await?;
        // One at a time, each taken off the list only once tried: `register` runs under
        // a timeout, and a cancelled one must not forget the leaves it had not reached.
        // (One that fails again goes back at the end, by `leave`.)
        let retries = self
            .retry_leaves
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        for _ in 0..retries {
            let next = self
                .retry_leaves
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .first()
                .cloned();
            let Some((room, peer, reason)) = next else {
                break;
            };
            self.leave(con, &room, &peer, reason).await;
            self.retry_leaves
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(0);
        }
        tracing::info!(
            instance = &*self.me,
            peers = n,
            "registered with the cluster"
        );
        Ok(keys)
    }

    /// Writes local members back, pipelined (one round trip per member made a big
    /// instance's write-back outlast its TTL after a Redis restart: reaped, it wrote
    /// everything back again, forever), refreshing liveness between pipelines.
    async fn restore(
        &self,
        con: &mut ConnectionManager,
        members: Vec<crate::rooms::LocalMember>,
    ) -> redis::RedisResult<()> {
        if members.is_empty() {
            return Ok(());
        }
        let records: Vec<(String, String, String)> = members
            .into_iter()
            .map(|m| {
                let rec = store::record(&self.me, m.user_id.as_deref(), &m.info);
                (m.room.to_string(), m.peer.to_string(), rec)
            })
            .collect();
        for part in records.chunks(BATCH) {
            self.scripts
                .restore_pipeline(&self.me, part)
                .exec_async(con)
                .await?;
            self.beat(con).await?;
        }
        Ok(())
    }

    /// Reaps instances whose liveness key expired, telling local members `peer-left`
    /// and the other instances in each room.
    async fn sweep(&self, con: &mut ConnectionManager) -> redis::RedisResult<()> {
        let all: Vec<String> = redis::cmd("SMEMBERS")
            .arg(store::instances())
            .query_async(con)
            .await?;
        let others: Vec<&String> = all.iter().filter(|i| **i != *self.me).collect();
        let mut pipe = redis::pipe();
        pipe.scard(store::rooms());
        for i in &all {
            pipe.scard(store::owned(i));
        }
        for i in &others {
            pipe.exists(store::alive(i));
        }
        let counts: Vec<i64> = pipe.query_async(con).await?;
        let (rooms, rest) = counts.split_first().unwrap_or((&0, &[]));
        let (peers, alive) = rest.split_at(all.len().min(rest.len()));
        let c = &self.metrics.cluster;
        c.instances.set(all.len() as i64);
        c.rooms.set(*rooms);
        c.peers.set(peers.iter().sum());
        let alive: Vec<bool> = alive.iter().map(|n| *n > 0).collect();
        for (dead, _) in others.iter().zip(alive).filter(|(_, a)| !a) {
            let removed = self.scripts.reap(con, dead).await?;
            if !removed.is_empty() {
                tracing::info!(
                    instance = &*self.me,
                    dead = dead.as_str(),
                    peers = removed.len(),
                    "reaped a dead instance"
                );
            }
            let mut pipe = redis::pipe();
            let mut n = 0;
            for item in removed {
                let [room, peer, instances @ ..] = item.as_slice() else {
                    continue;
                };
                let msg = wire::left(room, peer, LeaveReason::Lost);
                for i in instances {
                    if *i == *self.me {
                        self.rooms.remote_left(room, peer, LeaveReason::Lost);
                    } else {
                        pipe.publish(store::channel(i), msg.clone()).ignore();
                        n += 1;
                    }
                }
            }
            if n > 0 {
                self.flush(con, &mut pipe, n).await;
            }
        }
        Ok(())
    }

    /// Compares every local room with Redis (see `Rooms::reconcile`), writes back local
    /// members Redis lacks, and removes records of this instance's that no local member
    /// matches in two passes running (one pass could race a join in progress).
    /// Records in rooms this instance does not have are found through its peer set
    /// (`mw:instance:{me}:peers`): a join whose script ran but whose reply timed out
    /// (the client got `internal`) leaves one behind, which nothing else would remove.
    async fn reconcile(
        &self,
        con: &mut ConnectionManager,
        suspects: &mut HashSet<(String, String)>,
    ) -> redis::RedisResult<()> {
        // Before reading: departures heard after this may be missing from what is read
        // only because it was read first (the pass below awaits between rooms).
        let read = self.rooms.epoch();
        let rooms = self.rooms.list();
        let mut pipe = redis::pipe();
        for r in &rooms {
            pipe.hgetall(store::room(&r.name));
        }
        pipe.smembers(store::owned(&self.me));
        let mut values: Vec<Value> = pipe.query_async(con).await?;
        let owned: Vec<String> = match values.pop() {
            Some(v) => redis::from_redis_value(v)?,
            None => Vec::new(),
        };
        let hashes: Vec<Vec<(String, String)>> = values
            .into_iter()
            .map(redis::from_redis_value)
            .collect::<Result<_, _>>()?;
        let mut stale: HashSet<(String, String)> = HashSet::new();
        for entry in owned {
            let Some((room, peer)) = entry.split_once('\n') else {
                continue;
            };
            if !self.rooms.owns(room, peer) && !self.rooms.joining(room) {
                stale.insert((room.to_string(), peer.to_string()));
            }
        }
        for (r, hash) in rooms.iter().zip(hashes) {
            let records: Vec<(String, String, String)> = hash
                .into_iter()
                .filter_map(|(peer, rec)| {
                    let p = store::parse_record(&rec)?;
                    Some((peer, p.instance.to_string(), p.info.to_string()))
                })
                .collect();
            // Twice the TTL: after a Redis restart every instance writes its members
            // back within a heartbeat or two of seeing it again.
            let drift = self
                .rooms
                .reconcile(&r.name, &records, &self.me, self.ttl * 2, read);
            self.restore(con, drift.unlisted).await?;
            for peer in drift.stale {
                stale.insert((r.name.to_string(), peer));
            }
        }
        let mut next = HashSet::new();
        for key in stale {
            if suspects.contains(&key) {
                let room: Arc<str> = key.0.as_str().into();
                self.leave(con, &room, &key.1, LeaveReason::Lost).await;
            } else {
                next.insert(key);
            }
        }
        *suspects = next;
        Ok(())
    }

    /// Rooms cluster-wide with their sizes, for `/api/rooms`.
    pub async fn room_sizes(&self) -> redis::RedisResult<Vec<(String, usize)>> {
        let mut con = self.con.clone();
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(store::rooms())
            .query_async(&mut con)
            .await?;
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.hlen(store::room(n));
        }
        let sizes: Vec<usize> = pipe.query_async(&mut con).await?;
        Ok(names
            .into_iter()
            .zip(sizes)
            .filter(|(_, s)| *s > 0)
            .collect())
    }

    /// One room's members cluster-wide: peer id, instance, `PeerInfo` JSON.
    pub async fn room_members(
        &self,
        room: &str,
    ) -> redis::RedisResult<Vec<(String, String, String)>> {
        let mut con = self.con.clone();
        let hash: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(store::room(room))
            .query_async(&mut con)
            .await?;
        Ok(hash
            .into_iter()
            .filter_map(|(peer, rec)| {
                let r = store::parse_record(&rec)?;
                Some((peer, r.instance.to_string(), r.info.to_string()))
            })
            .collect())
    }
}

/// The payload bytes a push holds (what its channel message carries).
fn push_size(push: &redis::PushInfo) -> usize {
    push.data
        .iter()
        .map(|v| match v {
            Value::BulkString(b) => b.len(),
            _ => 0,
        })
        .sum()
}

/// The distinct instances among `all`, without `me`.
fn distinct_others<'a>(all: impl Iterator<Item = &'a Arc<str>>, me: &str) -> Vec<Arc<str>> {
    let mut out: Vec<Arc<str>> = Vec::new();
    for i in all {
        if **i != *me && !out.contains(i) {
            out.push(i.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_what_does_not_fit_and_takes_it_back() {
        let b = Budget::new(10);
        assert!(b.try_take(6));
        assert!(!b.try_take(5), "11 of 10");
        assert!(b.try_take(4));
        assert!(!b.try_take(1));
        b.give(6);
        assert!(b.try_take(6));
        assert!(!b.try_take(usize::MAX), "no overflow");
    }
}
