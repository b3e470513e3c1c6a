//! One WebSocket's life, from upgrade to cleanup.
//!
//! A single task per connection selects over: the relay's shutdown signal, its
//! [`Outbox`] having something to write, bytes from the client, the heartbeat and the
//! liveness deadline. Everything the client sends is handled synchronously as it is
//! read: a relayed message is copied into the recipient's outbox, a reply into this
//! connection's own, so handling a message never waits on another socket.
//!
//! How it ends decides what the room sees, exactly once (see [`End`]).

use crate::metrics::Kind;
use crate::outbox::{Outbox, ReadAt};
use crate::rooms::{self, Admission, PeerId, Room};
use crate::ws::{self, op, Reader};
use crate::Shared;
use meshwire_protocol::json::{decode_client, Raw, RawValue};
use meshwire_protocol::{
    close_code, is_valid_room, ClientMessage, ErrorCode, Join, MessageId, ServerMessage,
};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// Frames above this close the connection with 1009 (the configurable limit below it
/// only rejects the message).
pub const HARD_FRAME_CAP: usize = 1 << 20;

/// How long the relay waits for the client to complete the closing handshake.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// How a connection ended, which decides what its room sees.
#[derive(Debug)]
enum End {
    /// The client sent a close frame (with this code): the peer left (`peer-left` now),
    /// unless the code is `close_code::RESUMING` (held, as for `Lost`).
    Clean(Option<u16>),
    /// The socket dropped, errored, or stopped answering pings: hold the peer for resume.
    Lost,
    /// The relay closed it for a policy reason (flood, oversize, bad token): the peer left.
    Kicked(u16, &'static str),
    /// The room gave the peer to another connection or found this one too slow: the
    /// room has already dealt with the peer; only the socket is closed.
    Detached(u16, &'static str),
    /// The relay is shutting down.
    Shutdown,
}

/// A `join` waiting for the cluster store (cluster mode): what the connection checked
/// and decided, owned, so the read buffer is free while Redis answers.
struct PendingJoin {
    room: String,
    peer_id: PeerId,
    resuming: bool,
    name: Option<String>,
    meta: Option<Box<RawValue>>,
    user_id: Option<String>,
    /// The join's `id`, for an error's `ref`.
    id: Option<Box<RawValue>>,
}

/// The peer this connection is in a room as.
struct Membership {
    room: Arc<Room>,
    peer: PeerId,
}

/// How long a client may keep exceeding its rate before it is closed with 1008.
const ABUSE_AFTER: Duration = Duration::from_secs(5);
/// A pause this long without a dropped message ends a stretch of over-limit sending.
const ABUSE_GAP: Duration = Duration::from_secs(1);

/// Per-connection token bucket (`--rate-limit`, `--rate-burst`).
struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Start of the current stretch in which messages keep being dropped (no gap of
    /// [`ABUSE_GAP`] without a drop). A stretch of [`ABUSE_AFTER`] is abuse.
    over_since: Option<Instant>,
    /// When the last message was dropped.
    last_drop: Option<Instant>,
    /// When the last `rate-limited` error was sent (they are sent at most once a second).
    last_error: Option<Instant>,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        RateLimit {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
            over_since: None,
            last_drop: None,
            last_error: None,
        }
    }

    /// Takes one token; false when there is none.
    fn allow(&mut self, now: Instant) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return true;
        }
        // A flood refills a token now and then, so "dropped in a row" is never long;
        // what marks abuse is that drops keep coming, second after second.
        let continues = self
            .last_drop
            .is_some_and(|t| now.saturating_duration_since(t) < ABUSE_GAP);
        if !continues {
            self.over_since = Some(now);
        }
        self.last_drop = Some(now);
        false
    }

    /// Messages dropped without a break for [`ABUSE_AFTER`] close the connection with 1008.
    fn abusive(&self, now: Instant) -> bool {
        self.over_since
            .is_some_and(|t| now.saturating_duration_since(t) >= ABUSE_AFTER)
    }
}

/// Identity of a connection, fixed at upgrade.
pub struct ConnInfo {
    /// Unique per process; tells a peer's current connection from stale ones.
    pub id: u64,
    /// `?token=` from the upgrade URL.
    pub query_token: Option<String>,
}

/// Runs one connection to its end over the socket's two halves. `early` holds bytes the
/// HTTP server read past the upgrade request. `slot` is held for the connection's whole
/// life: dropping it frees the place counted against `--max-connections`.
pub async fn serve<R, W, G>(
    mut rd: R,
    mut wr: W,
    early: Vec<u8>,
    shared: Arc<Shared>,
    info: ConnInfo,
    slot: G,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut conn = Connection {
        rate: RateLimit::new(shared.config.rate_limit, shared.config.rate_burst),
        shared,
        info,
        membership: None,
        pending: None,
        last_seen: Instant::now(),
        outbox: Arc::new(Outbox::default()),
    };
    let mut reader = Reader::new(early, HARD_FRAME_CAP);
    let end = conn.run(&mut rd, &mut wr, &mut reader).await;
    // Boxed: a future used once per connection need not sit inline in every idle
    // connection's task (docs/benchmarks.md, memory per connection).
    Box::pin(conn.finish(&mut rd, &mut wr, &mut reader, end)).await;
    drop(slot);
}

struct Connection {
    shared: Arc<Shared>,
    info: ConnInfo,
    membership: Option<Membership>,
    /// Set by `join` in cluster mode; the read loop completes it before the next message.
    pending: Option<PendingJoin>,
    rate: RateLimit,
    /// When the client last sent anything (a pong counts).
    last_seen: Instant,
    /// Frames for the client: relayed by others and this connection's own replies.
    outbox: Arc<Outbox>,
}

impl Connection {
    async fn run<R, W>(&mut self, rd: &mut R, wr: &mut W, reader: &mut Reader) -> End
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let config = &self.shared.config;
        let mut shutdown = self.shared.shutdown.subscribe();
        if *shutdown.borrow_and_update() {
            return End::Shutdown;
        }
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + config.ping_interval,
            config.ping_interval,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let timeout = config.ping_timeout;
        // Re-armed lazily: only when it fires is it pushed to `last_seen + timeout`, so a
        // busy connection does not touch the timer per message.
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        // One `changed()` future for the connection's life, not one per loop turn.
        let stopping = shutdown.changed();
        tokio::pin!(stopping);
        let outbox = Arc::clone(&self.outbox);

        loop {
            tokio::select! {
                // Writing first keeps what is queued small before more is read.
                biased;
                _ = &mut stopping => return End::Shutdown,
                () = outbox.ready() => {
                    if let Err(end) = self.flush(wr).await {
                        return end;
                    }
                }
                read = reader.fill(rd) => {
                    match read {
                        // The stream ended without a close frame: a dropped network,
                        // not a misbehaving client, so the peer is held for resume.
                        Ok(0) | Err(_) => return End::Lost,
                        Ok(_) => {}
                    }
                    // One clock read per read from the socket, not per message.
                    let now = Instant::now();
                    self.last_seen = now;
                    loop {
                        match reader.message() {
                            Ok(Some(message)) => {
                                if let Err(end) = self.on_message(message, now) {
                                    return end;
                                }
                                // Cluster mode: the join needs Redis. Later messages of
                                // this read wait, so they see the membership.
                                if let Some(pending) = self.pending.take() {
                                    self.join_clustered(pending).await;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::debug!(conn = self.info.id, "websocket error: {e:?}");
                                return End::Kicked(e.close_code(), match e {
                                    ws::ReadError::TooBig => "frame larger than 1 MiB",
                                    ws::ReadError::Utf8 => "text frame is not valid UTF-8",
                                    ws::ReadError::Protocol(_) => "websocket protocol error",
                                });
                            }
                        }
                    }
                }
                _ = ping.tick() => self.outbox.reply(op::PING, b""),
                () = &mut deadline => {
                    let due = self.last_seen + timeout;
                    if due <= Instant::now() {
                        tracing::debug!(conn = self.info.id, "no frame for {timeout:?}: connection lost");
                        return End::Lost;
                    }
                    deadline.as_mut().reset(tokio::time::Instant::from_std(due));
                }
            }
        }
    }

    /// Writes what the outbox holds, with one `write` call when the socket keeps up.
    async fn flush<W: AsyncWrite + Unpin>(&mut self, wr: &mut W) -> Result<(), End> {
        let batch = self.outbox.take();
        if !batch.bytes.is_empty() {
            // A client that stops reading cannot keep the task waiting forever.
            let written =
                tokio::time::timeout(self.shared.config.ping_timeout, wr.write_all(&batch.bytes))
                    .await;
            if !matches!(written, Ok(Ok(()))) {
                return Err(End::Lost);
            }
            if let Some(at) = batch.oldest {
                self.shared
                    .metrics
                    .relay_latency
                    .observe(at.elapsed().as_secs_f64());
            }
        }
        crate::buffers::give(batch.bytes);
        match batch.close {
            Some((code, reason)) => Err(End::Detached(code, reason)),
            None => Ok(()),
        }
    }

    fn on_message(&mut self, message: ws::Message<'_>, now: Instant) -> Result<(), End> {
        let text = match message {
            ws::Message::Text(text) => text,
            ws::Message::Close(code) => return Err(End::Clean(code)),
            ws::Message::Binary(_) => {
                self.shared.metrics.inbound(Kind::Invalid);
                return self.reply_error(
                    ErrorCode::BadMessage,
                    "binary frames are not part of the protocol; send JSON text frames".into(),
                    None,
                );
            }
            ws::Message::Ping(payload) => {
                self.outbox.reply(op::PONG, payload);
                return Ok(());
            }
            // Liveness is all a pong tells, and `last_seen` is already updated.
            ws::Message::Pong => return Ok(()),
        };
        if !self.rate.allow(now) {
            return self.rate_limited(now);
        }
        if text.len() > self.shared.config.max_message_bytes as usize {
            self.shared.metrics.inbound(Kind::Invalid);
            let msg = format!(
                "message of {} bytes is over this relay's limit of {} (limits.maxMessageBytes); split it or send it over a data channel",
                text.len(),
                self.shared.config.max_message_bytes
            );
            return self.reply_error(ErrorCode::TooLarge, msg.into(), None);
        }
        self.on_text(text, now)
    }

    fn rate_limited(&mut self, now: Instant) -> Result<(), End> {
        self.shared.metrics.error(ErrorCode::RateLimited);
        if self.rate.abusive(now) {
            return Err(End::Kicked(1008, "message flood"));
        }
        if self
            .rate
            .last_error
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return Ok(());
        }
        self.rate.last_error = Some(now);
        let msg = format!(
            "more than {} messages per second (burst {}); messages are being dropped, slow down",
            self.shared.config.rate_limit, self.shared.config.rate_burst
        );
        // Counted above, not again in reply_error.
        self.send(
            Kind::Control,
            error_frame(ErrorCode::RateLimited, &msg, None).as_bytes(),
        );
        Ok(())
    }

    fn on_text(&mut self, text: &str, now: Instant) -> Result<(), End> {
        let metrics = &self.shared.metrics;
        let inbound = match decode_client(text) {
            Ok(inbound) => inbound,
            Err(e) => {
                metrics.inbound(Kind::Invalid);
                return self.reply_error(e.code, e.message, e.id);
            }
        };
        let id = inbound.id;
        match inbound.message {
            ClientMessage::Signal { to, data } => {
                metrics.inbound(Kind::Signal);
                let Some(m) = &self.membership else {
                    return self.not_joined(id);
                };
                let read_at = ReadAt::new(now);
                if self
                    .shared
                    .rooms
                    .signal(&m.room, &m.peer, &to, data, read_at)
                    .is_err()
                {
                    let msg = format!(
                        "no peer {:?} in this room (it may have left)",
                        truncate(&to)
                    );
                    return self.reply_error(ErrorCode::UnknownPeer, msg.into(), id);
                }
                Ok(())
            }
            ClientMessage::Broadcast { data } => {
                metrics.inbound(Kind::Broadcast);
                let Some(m) = &self.membership else {
                    return self.not_joined(id);
                };
                self.shared
                    .rooms
                    .broadcast(&m.room, &m.peer, data, ReadAt::new(now));
                Ok(())
            }
            ClientMessage::Ping => {
                metrics.inbound(Kind::Ping);
                self.send(Kind::Ping, br#"{"type":"pong"}"#);
                Ok(())
            }
            ClientMessage::Leave => {
                metrics.inbound(Kind::Leave);
                let Some(m) = self.membership.take() else {
                    return self.not_joined(id);
                };
                self.shared.rooms.leave(&m.room, &m.peer, self.info.id);
                Ok(())
            }
            ClientMessage::Join(join) => {
                metrics.inbound(Kind::Join);
                self.join(join, id)
            }
        }
    }

    fn join(&mut self, join: Join<'_, Raw<'_>>, id: Option<Raw<'_>>) -> Result<(), End> {
        let shared = Arc::clone(&self.shared);
        if let Some(m) = &self.membership {
            let msg = format!(
                "already in room {:?}; send `leave` before joining another",
                &*m.room.name
            );
            return self.reply_error(ErrorCode::AlreadyJoined, msg.into(), id);
        }
        if !is_valid_room(&join.room) {
            let msg = "room names are 1-64 characters of A-Z a-z 0-9 _ . : -";
            return self.reply_error(ErrorCode::InvalidRoom, msg.into(), id);
        }
        let identity = match &shared.jwt {
            None => Default::default(),
            Some(jwt) => {
                let token = join.token.as_deref().or(self.info.query_token.as_deref());
                let verified = match token {
                    None => Err(
                        "this relay requires a token: pass `token` in join (or ?token= on /ws)"
                            .to_string(),
                    ),
                    Some(token) => jwt.verify(token, &join.room),
                };
                match verified {
                    Ok(identity) => identity,
                    Err(msg) => {
                        self.reply_error(ErrorCode::Unauthorized, msg.into(), id)?;
                        return Err(End::Kicked(close_code::UNAUTHORIZED, "unauthorized"));
                    }
                }
            }
        };
        let (peer_id, resuming) = match join.resume.as_deref() {
            None => (rooms::new_peer_id(), false),
            Some(token) => match shared.resume.verify(token, &join.room) {
                // Also once the session is gone (after the grace), a token gives its
                // peer id back only to the user it was issued to.
                Ok(resume) if resume.user_id != identity.user_id => {
                    return self.reply_error(
                        ErrorCode::ResumeFailed,
                        "the resume token belongs to a session of another user; join without `resume`".into(),
                        id,
                    );
                }
                Ok(resume) => (PeerId::from(resume.peer_id), true),
                Err(msg) => {
                    return self.reply_error(ErrorCode::ResumeFailed, msg.into(), id);
                }
            },
        };
        if shared.cluster.get().is_some() {
            self.pending = Some(PendingJoin {
                room: join.room.into_owned(),
                peer_id,
                resuming,
                name: identity.name.or(join.name.map(Cow::into_owned)),
                meta: join.meta.and_then(Raw::to_boxed),
                user_id: identity.user_id,
                id: id.and_then(Raw::to_boxed),
            });
            return Ok(());
        }
        let admission = Admission {
            room: &join.room,
            peer_id: peer_id.clone(),
            resuming,
            name: identity.name.as_deref().or(join.name.as_deref()),
            meta: join.meta,
            user_id: identity.user_id.as_deref(),
            conn: self.info.id,
            outbox: Arc::clone(&self.outbox),
            ice_servers: shared.ice.servers_for(&peer_id),
            resume_token: shared
                .resume
                .issue(&peer_id, &join.room, identity.user_id.as_deref()),
            limits: shared.limits(),
            cluster: None,
        };
        // On success the room has put the `welcome` (and what was queued during a
        // hold) into the outbox, ahead of anything another member can send.
        let room = match shared.rooms.join(admission) {
            Ok(room) => room,
            Err((code, msg)) => return self.reply_error(code, msg.into(), id),
        };
        tracing::debug!(
            conn = self.info.id,
            peer = &*peer_id,
            room = &*room.name,
            resuming,
            "joined"
        );
        self.membership = Some(Membership {
            room,
            peer: peer_id,
        });
        Ok(())
    }

    /// Completes a join through the cluster: Redis admits (capacity, resume from any
    /// instance), then the local room, as `join` does in one step without a cluster.
    async fn join_clustered(&mut self, p: PendingJoin) {
        let shared = Arc::clone(&self.shared);
        let Some(cluster) = shared.cluster.get() else {
            return;
        };
        let admission = Admission {
            room: &p.room,
            peer_id: p.peer_id.clone(),
            resuming: p.resuming,
            name: p.name.as_deref(),
            meta: p.meta.as_deref().map(Raw::from),
            user_id: p.user_id.as_deref(),
            conn: self.info.id,
            outbox: Arc::clone(&self.outbox),
            ice_servers: shared.ice.servers_for(&p.peer_id),
            resume_token: shared
                .resume
                .issue(&p.peer_id, &p.room, p.user_id.as_deref()),
            limits: shared.limits(),
            cluster: None,
        };
        match cluster.join(admission).await {
            Ok(room) => {
                tracing::debug!(
                    conn = self.info.id,
                    peer = &*p.peer_id,
                    room = &*room.name,
                    resuming = p.resuming,
                    "joined (cluster)"
                );
                self.membership = Some(Membership {
                    room,
                    peer: p.peer_id,
                });
            }
            Err((code, msg)) => {
                let _ = self.reply_error(code, msg.into(), p.id.as_deref().map(Raw::from));
            }
        }
    }

    fn not_joined(&mut self, id: Option<Raw<'_>>) -> Result<(), End> {
        self.reply_error(ErrorCode::NotJoined, "join a room first".into(), id)
    }

    fn reply_error(
        &mut self,
        code: ErrorCode,
        message: Cow<'_, str>,
        id: Option<Raw<'_>>,
    ) -> Result<(), End> {
        self.shared.metrics.error(code);
        self.send(Kind::Control, error_frame(code, &message, id).as_bytes());
        Ok(())
    }

    /// Queues a reply of the relay's own for the client.
    fn send(&self, kind: Kind, frame: &[u8]) {
        self.shared.metrics.outbound(kind, 1);
        self.outbox.reply(op::TEXT, frame);
    }

    /// Tells the room how the connection ended and closes the socket.
    async fn finish<R, W>(&mut self, rd: &mut R, wr: &mut W, reader: &mut Reader, end: End)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        tracing::debug!(conn = self.info.id, ?end, "connection ended");
        if let Some(m) = self.membership.take() {
            match end {
                End::Clean(code) if code != Some(close_code::RESUMING) => {
                    self.shared.rooms.leave(&m.room, &m.peer, self.info.id)
                }
                End::Kicked(..) => self.shared.rooms.leave(&m.room, &m.peer, self.info.id),
                // A client that closes to resume elsewhere is held like a dropped one.
                End::Clean(_) | End::Lost => {
                    self.shared
                        .rooms
                        .detach(&m.room, &m.peer, self.info.id, &self.outbox)
                }
                End::Detached(..) | End::Shutdown => {}
            }
        }
        let mut last = Vec::new();
        let (code, reason) = match end {
            // Nobody is listening.
            End::Lost => return,
            // The client closed: answer its close frame at once (RFC 6455 §5.5.1).
            End::Clean(code) => {
                ws::write_close(&mut last, code.unwrap_or(1000), "");
                let _ = tokio::time::timeout(CLOSE_WAIT, wr.write_all(&last)).await;
                let _ = wr.shutdown().await;
                return;
            }
            End::Kicked(code, reason) | End::Detached(code, reason) => (code, reason),
            End::Shutdown => {
                let delay = self
                    .shared
                    .config
                    .drain_timeout
                    .as_millis()
                    .min(u128::from(u32::MAX)) as u64;
                let notice: ServerMessage<'_, ()> = ServerMessage::Shutdown {
                    reconnect_in_ms: delay.max(1000),
                };
                self.send(Kind::Control, rooms::encode(&notice).as_bytes());
                (1001, "relay shutting down")
            }
        };
        // What is queued (an `unauthorized` error, say) goes out before the close frame.
        let mut bytes = self.outbox.take().bytes;
        ws::write_close(&mut bytes, code, reason);
        // Best effort, bounded: the client may be gone or not reading. Wait for its
        // close frame so the handshake completes and it sees the code.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            wr.write_all(&bytes).await?;
            loop {
                while let Ok(Some(message)) = reader.message() {
                    if matches!(message, ws::Message::Close(_)) {
                        return Ok(());
                    }
                }
                if reader.fill(rd).await? == 0 {
                    return Ok(());
                }
            }
        })
        .await
        .map(|r: std::io::Result<()>| r.map_err(|e| tracing::trace!("close: {e}")));
        let _ = wr.shutdown().await;
    }
}

fn error_frame(code: ErrorCode, message: &str, id: Option<Raw<'_>>) -> String {
    let error: ServerMessage<'_, ()> = ServerMessage::Error {
        code,
        message: Cow::Borrowed(message),
        reference: id.and_then(|raw| serde_json::from_str::<MessageId>(raw.get()).ok()),
    };
    rooms::encode(&error)
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
