//! Relay configuration: every option is a command-line flag with an environment
//! fallback (`PORT`, otherwise `MESHWIRE_*`). `meshwire-relay --help` lists them.

use clap::{Parser, ValueEnum};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// meshwire signaling relay: rooms, presence and targeted offer/answer/ICE relay over
/// WebSocket (`GET /ws`). Never touches media.
#[derive(Parser, Debug, Clone)]
#[command(name = "meshwire-relay", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "MESHWIRE_BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,

    /// Port to listen on (0 picks a free one and logs it).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Most peers in one room; a join beyond it gets `room-full`.
    #[arg(long, env = "MESHWIRE_ROOM_CAPACITY", default_value_t = 16)]
    pub room_capacity: u32,

    /// How often the relay pings each connection (e.g. `15s`, `500ms`).
    #[arg(long, env = "MESHWIRE_PING_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// A connection silent for this long is dead (its peer is then held for resume).
    #[arg(long, env = "MESHWIRE_PING_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ping_timeout: Duration,

    /// How long a peer whose connection dropped abnormally is held (no `peer-left`,
    /// signals to it queued) waiting for it to resume.
    #[arg(long, env = "MESHWIRE_RESUME_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub resume_grace: Duration,

    /// How long a resume token stays valid (it re-admits the same peer id after the
    /// grace, or after a relay restart with the same `--secret`).
    #[arg(long, env = "MESHWIRE_RESUME_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub resume_ttl: Duration,

    /// Key that signs resume tokens. Set it (same value on every restart) so sessions
    /// survive a relay restart; random when unset.
    #[arg(long, env = "MESHWIRE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,

    /// Largest accepted text frame in bytes; larger gets `too-large` (connection kept).
    /// Frames over 1 MiB close the connection with 1009.
    #[arg(long, env = "MESHWIRE_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: u32,

    /// Sustained messages per second per connection (0 = unlimited).
    #[arg(long, env = "MESHWIRE_RATE_LIMIT", default_value_t = 50)]
    pub rate_limit: u32,

    /// Messages a connection may send in a burst above the rate.
    #[arg(long, env = "MESHWIRE_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,

    /// Most simultaneous WebSocket connections (0 = unlimited); beyond it the upgrade
    /// gets HTTP 503.
    #[arg(long, env = "MESHWIRE_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// HS256 secret for join tokens. With this or --jwt-public-key, every join needs a
    /// valid token.
    #[arg(long, env = "MESHWIRE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// RS256/ES256 public key for join tokens: a PEM file path, or the PEM itself.
    #[arg(long, env = "MESHWIRE_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<String>,

    /// Origins allowed to open /ws, comma-separated (`https://app.example.com`); `*`
    /// allows any. Default: same origin as the relay, plus localhost and 127.0.0.1 on
    /// any port. Requests without an Origin header (non-browser clients) are allowed.
    #[arg(long, env = "MESHWIRE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// STUN server URLs handed to clients in `welcome` (comma-separated).
    #[arg(long, env = "MESHWIRE_STUN", value_delimiter = ',')]
    pub stun: Vec<String>,

    /// TURN server URLs handed to clients with fresh credentials (needs --turn-secret).
    #[arg(long, env = "MESHWIRE_TURN", value_delimiter = ',')]
    pub turn: Vec<String>,

    /// coturn `static-auth-secret` used to mint TURN REST API credentials.
    #[arg(long, env = "MESHWIRE_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Lifetime of minted TURN credentials.
    #[arg(long, env = "MESHWIRE_TURN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub turn_ttl: Duration,

    /// Enables GET /api/rooms and /api/rooms/{room}, which require
    /// `Authorization: Bearer <this token>`.
    #[arg(long, env = "MESHWIRE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Serve this directory at `/` (e.g. the demo app).
    #[arg(long = "static", env = "MESHWIRE_STATIC")]
    pub static_dir: Option<PathBuf>,

    /// On SIGINT/SIGTERM, how long to wait for clients to go before exiting anyway.
    #[arg(long, env = "MESHWIRE_DRAIN_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,

    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(long, env = "MESHWIRE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Cluster mode: coordinate with the other relay instances through this Redis
    /// (`redis://[:password@]host:port[/db]`). Unset, the relay keeps everything in memory.
    #[arg(long, env = "MESHWIRE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Cluster mode: an instance that has not refreshed its liveness key for this long
    /// is dead; the others then send `peer-left` for its peers.
    #[arg(long, env = "MESHWIRE_INSTANCE_TTL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub instance_ttl: Duration,

    /// Runtime worker threads (default: one per core).
    #[arg(long, env = "MESHWIRE_WORKERS")]
    pub workers: Option<usize>,
}

/// How logs are printed.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    /// The command line's defaults (environment fallbacks such as `PORT` still apply).
    fn default() -> Self {
        Config::parse_from(["meshwire-relay"])
    }
}

impl Config {
    /// Checks that options fit together, with a message saying what to change.
    pub fn validate(&self) -> Result<(), String> {
        if !self.turn.is_empty() && self.turn_secret.is_none() {
            return Err("--turn needs --turn-secret (coturn's static-auth-secret) so the relay can mint credentials".into());
        }
        if self.ping_timeout <= self.ping_interval {
            return Err(format!(
                "--ping-timeout ({:?}) must be longer than --ping-interval ({:?})",
                self.ping_timeout, self.ping_interval
            ));
        }
        if self.room_capacity == 0 {
            return Err("--room-capacity must be at least 1".into());
        }
        if self.max_message_bytes as usize > crate::connection::HARD_FRAME_CAP {
            return Err("--max-message-bytes cannot exceed 1 MiB (1048576)".into());
        }
        if self.instance_ttl < Duration::from_millis(500) {
            return Err("--instance-ttl must be at least 500ms".into());
        }
        if self.rate_limit > 0 && self.rate_burst == 0 {
            return Err("--rate-burst must be at least 1 when --rate-limit is on".into());
        }
        Ok(())
    }
}
