//! One WebSocket's life, from upgrade to cleanup.
//!
//! A single task per connection selects over: frames from the client, frames for the
//! client (its outbound channel, written in batches with one flush), the heartbeat,
//! the liveness deadline and the relay's shutdown signal. Replies to the client's own
//! requests (errors, `pong`, `welcome`) are written directly, so they are never stuck
//! behind a full channel.
//!
//! How it ends decides what the room sees, exactly once (see [`End`]).

use crate::metrics::Kind;
use crate::rooms::{self, Admission, Out, PeerId, Room};
use crate::Shared;
use futures_util::{SinkExt, StreamExt};
use meshwire_protocol::json::{decode_client, RawValue};
use meshwire_protocol::{
    close_code, is_valid_room, ClientMessage, ErrorCode, Join, MessageId, ServerMessage,
};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

/// Frames above this close the connection with 1009 (the configurable limit below it
/// only rejects the message).
pub const HARD_FRAME_CAP: usize = 1 << 20;
/// Frames a connection's outbound channel holds before its client counts as too slow.
const OUTBOUND_CAPACITY: usize = 512;
/// Frames written per flush.
const WRITE_BATCH: usize = 64;

/// The tungstenite settings for every relay socket. A 2 KiB read buffer instead of the
/// default 128 KiB is most of what keeps an idle connection near 8 KiB; signaling
/// messages are small, and a larger frame just takes more reads.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        .max_message_size(Some(HARD_FRAME_CAP))
        .max_frame_size(Some(HARD_FRAME_CAP))
}

/// How a connection ended, which decides what its room sees.
#[derive(Debug)]
enum End {
    /// The client sent a close frame: the peer left (`peer-left` now).
    Clean,
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

/// The peer this connection is in a room as.
struct Membership {
    room: Arc<Room>,
    peer: PeerId,
    rx: mpsc::Receiver<Out>,
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

/// Runs one connection to its end. `slot` is held for the connection's whole life:
/// dropping it frees the place counted against `--max-connections`.
pub async fn serve<S, G>(mut ws: WebSocketStream<S>, shared: Arc<Shared>, info: ConnInfo, slot: G)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Connection {
        rate: RateLimit::new(shared.config.rate_limit, shared.config.rate_burst),
        shared,
        info,
        membership: None,
        last_seen: Instant::now(),
    };
    let end = conn.run(&mut ws).await;
    // Boxed, like `join`: a future used once per connection need not sit inline in
    // every idle connection's task (docs/benchmarks.md, memory per connection).
    Box::pin(conn.finish(&mut ws, end)).await;
    drop(slot);
}

struct Connection {
    shared: Arc<Shared>,
    info: ConnInfo,
    membership: Option<Membership>,
    rate: RateLimit,
    /// When the client last sent anything (a pong counts).
    last_seen: Instant,
}

impl Connection {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(&mut self, ws: &mut WebSocketStream<S>) -> End {
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
        // Grown by the first write that needs it: an idle connection keeps no batch.
        let mut batch = Vec::new();
        // One `changed()` future for the connection's life, not one per loop turn.
        let stopping = shutdown.changed();
        tokio::pin!(stopping);

        loop {
            tokio::select! {
                _ = &mut stopping => return End::Shutdown,
                frame = ws.next() => {
                    let frame = match frame {
                        Some(Ok(frame)) => frame,
                        Some(Err(e)) => return self.transport_error(e),
                        None => return End::Lost,
                    };
                    if let Err(end) = self.on_frame(ws, frame).await {
                        return end;
                    }
                }
                n = recv_batch(&mut self.membership, &mut batch) => {
                    if n == 0 {
                        return End::Detached(close_code::SLOW_CONSUMER, "too slow reading; resume to continue");
                    }
                    if let Err(end) = self.write_batch(ws, &mut batch).await {
                        return end;
                    }
                }
                _ = ping.tick() => {
                    if ws.send(Message::Ping(Default::default())).await.is_err() {
                        return End::Lost;
                    }
                }
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

    fn transport_error(&self, e: WsError) -> End {
        match e {
            WsError::Capacity(_) => End::Kicked(1009, "frame larger than 1 MiB"),
            WsError::Utf8(_) => End::Kicked(1007, "text frame is not valid UTF-8"),
            // The TCP stream ended without a close frame: a dropped network, not a
            // misbehaving client, so the peer is held for resume.
            WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Lost,
            WsError::Protocol(p) => {
                tracing::debug!(conn = self.info.id, "websocket protocol error: {p}");
                End::Kicked(1002, "websocket protocol error")
            }
            _ => End::Lost,
        }
    }

    async fn write_batch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        batch: &mut Vec<Out>,
    ) -> Result<(), End> {
        let mut oldest = None;
        for out in batch.drain(..) {
            match out {
                Out::Frame(frame, read_at) => {
                    oldest.get_or_insert(read_at);
                    if ws.feed(Message::Text(frame)).await.is_err() {
                        return Err(End::Lost);
                    }
                }
                Out::Close(code, reason) => return Err(End::Detached(code, reason)),
            }
        }
        if ws.flush().await.is_err() {
            return Err(End::Lost);
        }
        if let Some(at) = oldest {
            self.shared
                .metrics
                .relay_latency
                .observe(at.elapsed().as_secs_f64());
        }
        Ok(())
    }

    async fn on_frame<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        frame: Message,
    ) -> Result<(), End> {
        let now = Instant::now();
        self.last_seen = now;
        let text = match frame {
            Message::Text(text) => text,
            Message::Close(_) => return Err(End::Clean),
            Message::Binary(_) => {
                self.shared.metrics.inbound(Kind::Invalid);
                return self
                    .reply_error(
                        ws,
                        ErrorCode::BadMessage,
                        "binary frames are not part of the protocol; send JSON text frames".into(),
                        None,
                    )
                    .await;
            }
            // Liveness is all a ping or pong tells; tungstenite answers pings itself.
            _ => return Ok(()),
        };
        if !self.rate.allow(now) {
            return self.rate_limited(ws, now).await;
        }
        if text.len() > self.shared.config.max_message_bytes as usize {
            self.shared.metrics.inbound(Kind::Invalid);
            let msg = format!(
                "message of {} bytes is over this relay's limit of {} (limits.maxMessageBytes); split it or send it over a data channel",
                text.len(),
                self.shared.config.max_message_bytes
            );
            return self
                .reply_error(ws, ErrorCode::TooLarge, msg.into(), None)
                .await;
        }
        self.on_text(ws, &text, now).await
    }

    async fn rate_limited<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        now: Instant,
    ) -> Result<(), End> {
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
            ws,
            Kind::Control,
            error_frame(ErrorCode::RateLimited, &msg, None),
        )
        .await
    }

    async fn on_text<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        text: &str,
        now: Instant,
    ) -> Result<(), End> {
        let metrics = &self.shared.metrics;
        let inbound = match decode_client(text) {
            Ok(inbound) => inbound,
            Err(e) => {
                metrics.inbound(Kind::Invalid);
                return self.reply_error(ws, e.code, e.message, e.id).await;
            }
        };
        let id = inbound.id;
        match inbound.message {
            ClientMessage::Signal { to, data } => {
                metrics.inbound(Kind::Signal);
                let Some(m) = &self.membership else {
                    return self.not_joined(ws, id).await;
                };
                if self
                    .shared
                    .rooms
                    .signal(&m.room, &m.peer, &to, data, now)
                    .is_err()
                {
                    let msg = format!(
                        "no peer {:?} in this room (it may have left)",
                        truncate(&to)
                    );
                    return self
                        .reply_error(ws, ErrorCode::UnknownPeer, msg.into(), id)
                        .await;
                }
                Ok(())
            }
            ClientMessage::Broadcast { data } => {
                metrics.inbound(Kind::Broadcast);
                let Some(m) = &self.membership else {
                    return self.not_joined(ws, id).await;
                };
                self.shared.rooms.broadcast(&m.room, &m.peer, data, now);
                Ok(())
            }
            ClientMessage::Ping => {
                metrics.inbound(Kind::Ping);
                let pong: ServerMessage<'_, ()> = ServerMessage::Pong;
                self.send(ws, Kind::Ping, rooms::encode(&pong)).await
            }
            ClientMessage::Leave => {
                metrics.inbound(Kind::Leave);
                let Some(m) = self.membership.take() else {
                    return self.not_joined(ws, id).await;
                };
                self.shared.rooms.leave(&m.room, &m.peer, self.info.id);
                Ok(())
            }
            ClientMessage::Join(join) => {
                metrics.inbound(Kind::Join);
                Box::pin(self.join(ws, join, id)).await
            }
        }
    }

    async fn join<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        join: Join<'_, &RawValue>,
        id: Option<&RawValue>,
    ) -> Result<(), End> {
        let shared = Arc::clone(&self.shared);
        if let Some(m) = &self.membership {
            let msg = format!(
                "already in room {:?}; send `leave` before joining another",
                &*m.room.name
            );
            return self
                .reply_error(ws, ErrorCode::AlreadyJoined, msg.into(), id)
                .await;
        }
        if !is_valid_room(&join.room) {
            let msg = "room names are 1-64 characters of A-Z a-z 0-9 _ . : -";
            return self
                .reply_error(ws, ErrorCode::InvalidRoom, msg.into(), id)
                .await;
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
                        self.reply_error(ws, ErrorCode::Unauthorized, msg.into(), id)
                            .await?;
                        return Err(End::Kicked(close_code::UNAUTHORIZED, "unauthorized"));
                    }
                }
            }
        };
        let (peer_id, resuming) = match join.resume.as_deref() {
            None => (rooms::new_peer_id(), false),
            Some(token) => match shared.resume.verify(token, &join.room) {
                Ok(resume) => (PeerId::from(resume.peer_id), true),
                Err(msg) => {
                    return self
                        .reply_error(ws, ErrorCode::ResumeFailed, msg.into(), id)
                        .await;
                }
            },
        };
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let admission = Admission {
            room: &join.room,
            peer_id: peer_id.clone(),
            resuming,
            name: identity.name.as_deref().or(join.name.as_deref()),
            meta: join.meta,
            user_id: identity.user_id.as_deref(),
            conn: self.info.id,
            tx,
            ice_servers: shared.ice.servers_for(&peer_id),
            resume_token: shared.resume.issue(&peer_id, &join.room),
            limits: shared.limits(),
        };
        let joined = match shared.rooms.join(admission) {
            Ok(joined) => joined,
            Err((code, msg)) => return self.reply_error(ws, code, msg.into(), id).await,
        };
        tracing::debug!(
            conn = self.info.id,
            peer = &*peer_id,
            room = &*joined.room.name,
            resuming,
            "joined"
        );
        self.membership = Some(Membership {
            room: joined.room,
            peer: peer_id,
            rx,
        });
        // Written before the loop reads the channel again, so they precede anything
        // other peers send from now on.
        for frame in std::iter::once(joined.welcome).chain(joined.queued) {
            if ws.feed(Message::Text(frame)).await.is_err() {
                return Err(End::Lost);
            }
        }
        ws.flush().await.map_err(|_| End::Lost)
    }

    async fn not_joined<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        id: Option<&RawValue>,
    ) -> Result<(), End> {
        let msg = "join a room first";
        self.reply_error(ws, ErrorCode::NotJoined, msg.into(), id)
            .await
    }

    async fn reply_error<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        code: ErrorCode,
        message: Cow<'_, str>,
        id: Option<&RawValue>,
    ) -> Result<(), End> {
        self.shared.metrics.error(code);
        self.send(ws, Kind::Control, error_frame(code, &message, id))
            .await
    }

    async fn send<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        kind: Kind,
        frame: Utf8Bytes,
    ) -> Result<(), End> {
        self.shared.metrics.outbound(kind, 1);
        ws.send(Message::Text(frame)).await.map_err(|_| End::Lost)
    }

    /// Tells the room how the connection ended and closes the socket.
    async fn finish<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        ws: &mut WebSocketStream<S>,
        end: End,
    ) {
        tracing::debug!(conn = self.info.id, ?end, "connection ended");
        if let Some(mut m) = self.membership.take() {
            match end {
                End::Clean | End::Kicked(..) => {
                    self.shared.rooms.leave(&m.room, &m.peer, self.info.id)
                }
                End::Lost => self
                    .shared
                    .rooms
                    .detach(&m.room, &m.peer, self.info.id, &mut m.rx),
                End::Detached(..) | End::Shutdown => {}
            }
        }
        let close = match end {
            End::Clean | End::Lost => None,
            End::Kicked(code, reason) | End::Detached(code, reason) => Some((code, reason)),
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
                let notice = rooms::encode(&notice);
                let _ = ws.feed(Message::Text(notice)).await;
                Some((1001, "relay shutting down"))
            }
        };
        let close = close.map(|(code, reason)| CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        });
        // Best effort, bounded: the peer may be gone or not reading.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if let Err(e) = ws.close(close).await {
                tracing::trace!("close: {e}");
            }
            // Wait for the client's close reply so the handshake completes cleanly.
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
    }
}

/// Receives up to a batch from the membership's channel; pending forever when not in a room.
async fn recv_batch(membership: &mut Option<Membership>, batch: &mut Vec<Out>) -> usize {
    match membership {
        Some(m) => m.rx.recv_many(batch, WRITE_BATCH).await,
        None => std::future::pending().await,
    }
}

fn error_frame(code: ErrorCode, message: &str, id: Option<&RawValue>) -> Utf8Bytes {
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
