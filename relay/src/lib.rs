//! # meshwire-relay
//!
//! The meshwire signaling relay: rooms, presence, and targeted relay of WebRTC
//! offers/answers/ICE candidates between browsers, over one WebSocket per client
//! (`GET /ws`, protocol in `docs/protocol.md` and the `meshwire-protocol` crate).
//! It never touches media and never parses SDP.
//!
//! The relay is a library: [`run`] serves a listener until a shutdown future resolves;
//! `main.rs` only parses options, sets up logging and passes `ctrl_c`/SIGTERM.
//!
//! ## Layout
//! - [`config`]: every option (clap, with environment fallbacks);
//! - [`server`]: HTTP routes (`/health`, `/ready`, `/metrics`, `/api/rooms`, static files);
//! - [`upgrade`]: the `/ws` handshake (origin check, connection cap, tuned socket);
//! - [`connection`]: one socket's life: read loop, writes, heartbeat, rate limit, cleanup;
//! - [`ws`]: RFC 6455 framing (the relay's own codec: no allocation per message);
//! - [`outbox`]: what waits to be written to one connection;
//! - [`buffers`]: the per-thread pool of read and write buffers;
//! - [`rooms`]: the registry, presence, delivery, and holding dropped peers for resume;
//! - [`cluster`]: cluster mode over Redis (`--redis-url`): shared rooms, cross-instance
//!   delivery, liveness;
//! - [`auth`]: JWT join tokens and the relay's resume tokens;
//! - [`ice`]: STUN/TURN servers and TURN REST credentials;
//! - [`metrics`]: Prometheus metrics;
//! - [`error`]: why the relay could not start.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod buffers;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod error;
pub mod ice;
pub mod metrics;
pub mod outbox;
pub mod rooms;
pub mod server;
pub mod upgrade;
pub mod ws;

pub use config::Config;
pub use error::Error;

use meshwire_protocol::Limits;
use metrics::Metrics;
use rooms::Rooms;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// State shared by every route and connection.
pub struct Shared {
    /// The options the relay runs with.
    pub config: Config,
    /// Exported at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Who is in which room.
    pub rooms: Arc<Rooms>,
    /// ICE servers for `welcome`.
    pub ice: ice::Ice,
    /// Join-token checks, when auth is on.
    pub jwt: Option<auth::JwtVerifier>,
    /// Signs and checks resume tokens.
    pub resume: auth::ResumeKey,
    /// Becomes `true` when the relay starts draining. Every connection holds a
    /// receiver, so `closed()` on the sender tells `run` when the last one is gone.
    pub shutdown: watch::Sender<bool>,
    /// For `/health`'s `uptimeS`.
    pub started: Instant,
    /// Gives each connection a distinct id.
    pub next_conn_id: AtomicU64,
    /// Open connections, checked against `--max-connections` at upgrade.
    open: AtomicUsize,
    /// Cluster mode (`--redis-url`); set once by [`Shared::start_cluster`].
    pub cluster: std::sync::OnceLock<Arc<cluster::Cluster>>,
}

/// A place counted against `--max-connections`; freed on drop.
pub struct ConnectionSlot(Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.connections.dec();
    }
}

impl Shared {
    /// Builds the relay's state from its options.
    pub fn new(config: Config) -> Result<Arc<Self>, Error> {
        config.validate().map_err(Error::Config)?;
        let metrics = Arc::new(Metrics::new());
        let rooms = Rooms::new(metrics.clone(), config.room_capacity, config.resume_grace);
        Ok(Arc::new(Shared {
            ice: ice::Ice::new(&config),
            jwt: auth::JwtVerifier::from_config(&config)?,
            resume: auth::ResumeKey::from_config(&config),
            shutdown: watch::Sender::new(false),
            started: Instant::now(),
            next_conn_id: AtomicU64::new(1),
            open: AtomicUsize::new(0),
            cluster: std::sync::OnceLock::new(),
            metrics,
            rooms,
            config,
        }))
    }

    /// Joins the cluster when `--redis-url` is set (needs a tokio runtime).
    pub fn start_cluster(&self) -> Result<(), Error> {
        if let Some(url) = &self.config.redis_url {
            let cluster = cluster::Cluster::start(
                url,
                self.rooms.clone(),
                self.metrics.clone(),
                self.config.room_capacity,
                self.config.instance_ttl,
                self.config.resume_grace,
            )?;
            let _ = self.cluster.set(cluster);
        }
        Ok(())
    }

    /// Takes a connection place, or `None` at `--max-connections`.
    pub fn reserve_connection(self: &Arc<Self>) -> Option<ConnectionSlot> {
        let max = self.config.max_connections;
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            });
        taken.ok().map(|_| {
            self.metrics.connections.inc();
            ConnectionSlot(self.clone())
        })
    }

    /// The limits announced in `welcome`.
    pub fn limits(&self) -> Limits {
        let c = &self.config;
        Limits {
            max_message_bytes: c.max_message_bytes,
            rate_limit: c.rate_limit,
            rate_burst: c.rate_burst,
            room_capacity: c.room_capacity,
            resume_grace_ms: c.resume_grace.as_millis() as u64,
            ping_interval_ms: c.ping_interval.as_millis() as u64,
        }
    }
}

/// Serves the relay on `listener` until `shutdown` resolves, then drains: `/ready`
/// turns 503, new upgrades are refused, the listener closes, every client gets a
/// `shutdown` message and a 1001 close, and `run` returns once all connections are
/// gone or `--drain-timeout` has passed.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let shared = Shared::new(config)?;
    shared.start_cluster()?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "meshwire relay listening (WebSocket at /ws)");
    }
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = warp::serve(server::routes(shared.clone()))
        .incoming(listener)
        .graceful(async move {
            let _ = http_stopped.await;
        });
    let server = tokio::spawn(server.run());

    shutdown.await;
    let drain_timeout = shared.config.drain_timeout;
    tracing::info!(
        connections = shared.metrics.connections.get(),
        "shutting down: draining for up to {drain_timeout:?}"
    );
    // Flips /ready and /health, refuses new upgrades, and tells every connection to
    // send `shutdown` and close with 1001.
    shared.shutdown.send_replace(true);
    let _ = stop_http.send(());
    let drained = tokio::time::timeout(drain_timeout, async {
        shared.shutdown.closed().await;
        let _ = server.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = shared.metrics.connections.get(),
            "drain timeout reached; exiting with connections still open"
        );
    }
    if let Some(cluster) = shared.cluster.get() {
        cluster.stop();
    }
    Ok(())
}
