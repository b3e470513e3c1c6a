//! The servers under test and their wire formats: how a client reaches one, how two
//! clients become partners in a room, and what a timestamped message looks like.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::ValueEnum;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T, E = Error> = std::result::Result<T, E>;
pub type Ws = WebSocketStream<TcpStream>;

/// Read buffer of every WebSocket the benchmark opens or accepts (tungstenite's
/// default, 128 KiB, is allocated eagerly per connection).
const READ_BUFFER: usize = 4096;
/// A pair that is not ready by then is reported as an error.
const PAIR_TIMEOUT: Duration = Duration::from_secs(30);
/// Client connections bound to one source address (the loopback port range holds ~28k).
const CONNS_PER_SOURCE: usize = 20_000;
/// The timestamp travels as `"t:` followed by this many zero-padded decimal digits,
/// inside a JSON string, which every target forwards unchanged.
const TS_MARK: &str = "\"t:";
const TS_DIGITS: usize = 20;

pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(READ_BUFFER)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The meshwire relay (wire protocol v1, `GET /ws`).
    Meshwire,
    /// `meshwire-bench forwarder`, the null-forwarder baseline.
    Forwarder,
    /// matchbox_server 0.15.
    Matchbox,
    /// peerjs-server (npm `peer`).
    Peerjs,
}

impl Target {
    pub const ALL: [Target; 4] = [
        Target::Meshwire,
        Target::Forwarder,
        Target::Matchbox,
        Target::Peerjs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Meshwire => "meshwire",
            Target::Forwarder => "forwarder",
            Target::Matchbox => "matchbox",
            Target::Peerjs => "peerjs",
        }
    }

    /// Opens two connections that are partners in the room `room` (a fresh name) and
    /// returns once both are registered and each knows the other's id, so that nothing
    /// sent from then on can be dropped for want of a recipient.
    pub async fn open_pair(
        self,
        server: &Server,
        room: &str,
        sources: [Option<IpAddr>; 2],
    ) -> Result<[Peer; 2]> {
        let pair = async {
            match self {
                Target::Forwarder => forwarder_pair(server, room, sources).await,
                Target::Meshwire => {
                    let (a, b) = tokio::try_join!(
                        meshwire_join(server, room, sources[0]),
                        meshwire_join(server, room, sources[1]),
                    )?;
                    Ok([a, b])
                }
                Target::Matchbox => matchbox_pair(server, room, sources).await,
                Target::Peerjs => peerjs_pair(server, room, sources).await,
            }
        };
        tokio::time::timeout(PAIR_TIMEOUT, pair)
            .await
            .map_err(|_| {
                format!(
                    "{}: pair {room} not ready within {PAIR_TIMEOUT:?}",
                    self.name()
                )
            })?
    }
}

impl Target {
    /// meshwire only: two partners in `room`, one joined through each of two instances
    /// of a relay cluster.
    pub async fn open_pair_across(self, servers: [&Server; 2], room: &str) -> Result<[Peer; 2]> {
        let pair = async {
            let (a, b) = tokio::try_join!(
                meshwire_join(servers[0], room, None),
                meshwire_join(servers[1], room, None),
            )?;
            Ok([a, b])
        };
        tokio::time::timeout(PAIR_TIMEOUT, pair)
            .await
            .map_err(|_| format!("meshwire: pair {room} not ready within {PAIR_TIMEOUT:?}"))?
    }
}

/// One client connection and the id its partner has on the server (empty for the
/// forwarder, where the partner is implicit).
pub struct Peer {
    pub ws: Ws,
    pub partner: String,
}

/// A WebSocket server on this machine: `ws://127.0.0.1:PORT` (a path is ignored).
#[derive(Clone, Debug)]
pub struct Server {
    addr: SocketAddr,
    authority: String,
}

impl Server {
    /// Parses `ws://HOST:PORT[/…]`; HOST must be a loopback address or `localhost`.
    pub fn parse(url: &str) -> Result<Self> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or("the URL must start with ws://")?;
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = authority.rsplit_once(':').ok_or("the URL needs a port")?;
        let ip: IpAddr = match host.trim_start_matches('[').trim_end_matches(']') {
            "localhost" => Ipv4Addr::LOCALHOST.into(),
            literal => literal
                .parse()
                .map_err(|_| format!("{host} is not an IP address"))?,
        };
        if !ip.is_loopback() {
            return Err(format!(
                "{ip} is not a loopback address: the benchmark only targets this machine"
            )
            .into());
        }
        let port = port.parse().map_err(|_| format!("bad port {port}"))?;
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            authority: authority.to_owned(),
        })
    }

    /// Source address for the `index`-th client connection: consecutive loopback
    /// addresses in blocks of 20k, so that 50k connections do not exhaust the ephemeral
    /// ports of one address. Each run starts at its own address (from the process id):
    /// the previous run's connections sit in TIME_WAIT on their ports for a minute, and
    /// reusing its addresses would run out of ports. `None` (let the kernel choose)
    /// unless the server is on IPv4 loopback.
    pub fn source_for(&self, index: usize) -> Option<IpAddr> {
        match self.addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => {
                let first = 2 + (std::process::id() % 4096) * 8;
                let host = first + u32::try_from(index / CONNS_PER_SOURCE).ok()?;
                Some(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 0)) + host).into())
            }
            _ => None,
        }
    }

    /// Opens a WebSocket to `path` (starting with `/`), from `source` when given.
    pub async fn connect(&self, path: &str, source: Option<IpAddr>) -> Result<Ws> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            // Lets a port whose previous connection is in TIME_WAIT be bound again.
            socket.set_reuseaddr(true)?;
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let url = format!("ws://{}{path}", self.authority);
        let (ws, _) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config())).await?;
        Ok(ws)
    }
}

/// A name no earlier run used, for rooms and peer ids (a relay may still hold the
/// peers of a previous run for its resume grace period).
pub fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{:x}{:x}", std::process::id(), nanos)
}

/// Reads until the next text frame and parses it (setup only; the measured loop never
/// parses JSON).
async fn next_json(ws: &mut Ws) -> Result<Value> {
    while let Some(msg) = ws.next().await {
        if let Message::Text(text) = msg? {
            return Ok(serde_json::from_str(&text)?);
        }
    }
    Err("the server closed the connection during setup".into())
}

async fn forwarder_pair(
    server: &Server,
    room: &str,
    sources: [Option<IpAddr>; 2],
) -> Result<[Peer; 2]> {
    // The forwarder holds the first connection's frames until its partner arrives.
    let path = format!("/?pair={room}");
    let a = server.connect(&path, sources[0]).await?;
    let b = server.connect(&path, sources[1]).await?;
    Ok([a, b].map(|ws| Peer {
        ws,
        partner: String::new(),
    }))
}

/// meshwire: `join`, then the partner is in `welcome.peers` (second joiner) or arrives
/// as `peer-joined` (first joiner).
async fn meshwire_join(server: &Server, room: &str, source: Option<IpAddr>) -> Result<Peer> {
    let mut ws = server.connect("/ws", source).await?;
    ws.send(Message::text(
        json!({"type": "join", "room": room}).to_string(),
    ))
    .await?;
    loop {
        let event = next_json(&mut ws).await?;
        let partner = match event["type"].as_str() {
            Some("welcome") => event["peers"][0]["id"].as_str(),
            Some("peer-joined") => event["peer"]["id"].as_str(),
            Some("error") => return Err(format!("meshwire refused the join: {event}").into()),
            _ => None,
        };
        if let Some(partner) = partner {
            return Ok(Peer {
                ws,
                partner: partner.to_owned(),
            });
        }
    }
}

/// matchbox: the room is the path; each client is sent `{"IdAssigned":id}` before the
/// server has registered it, and exactly one of the two gets `{"NewPeer":id}` once both
/// are registered (a signal to an unregistered peer is dropped).
async fn matchbox_pair(
    server: &Server,
    room: &str,
    sources: [Option<IpAddr>; 2],
) -> Result<[Peer; 2]> {
    async fn connect(server: &Server, room: &str, source: Option<IpAddr>) -> Result<(Ws, String)> {
        let mut ws = server.connect(&format!("/{room}"), source).await?;
        loop {
            if let Some(id) = next_json(&mut ws).await?["IdAssigned"].as_str() {
                return Ok((ws, id.to_owned()));
            }
        }
    }
    let (mut a, a_id) = connect(server, room, sources[0]).await?;
    let (mut b, b_id) = connect(server, room, sources[1]).await?;
    loop {
        let event = tokio::select! {
            event = next_json(&mut a) => event?,
            event = next_json(&mut b) => event?,
        };
        if event.get("NewPeer").is_some() {
            break;
        }
    }
    Ok([
        Peer {
            ws: a,
            partner: b_id,
        },
        Peer {
            ws: b,
            partner: a_id,
        },
    ])
}

/// peerjs: clients choose their ids; the server answers `{"type":"OPEN"}` once the id is
/// registered.
async fn peerjs_pair(
    server: &Server,
    room: &str,
    sources: [Option<IpAddr>; 2],
) -> Result<[Peer; 2]> {
    async fn open(server: &Server, id: &str, source: Option<IpAddr>) -> Result<Ws> {
        let path = format!("/peerjs?key=peerjs&id={id}&token=tok-{id}");
        let mut ws = server.connect(&path, source).await?;
        loop {
            let event = next_json(&mut ws).await?;
            match event["type"].as_str() {
                Some("OPEN") => return Ok(ws),
                Some("ERROR" | "ID-TAKEN") => {
                    return Err(format!("peerjs refused {id}: {event}").into())
                }
                _ => {}
            }
        }
    }
    let (a_id, b_id) = (format!("{room}-a"), format!("{room}-b"));
    let (a, b) = tokio::try_join!(
        open(server, &a_id, sources[0]),
        open(server, &b_id, sources[1])
    )?;
    Ok([
        Peer {
            ws: a,
            partner: b_id,
        },
        Peer {
            ws: b,
            partner: a_id,
        },
    ])
}

/// The frame a client sends to its partner, minus the timestamp: each target's
/// signaling envelope around an ICE-candidate-like string `t:<timestamp> xxx…`, padded
/// so that the whole frame is `size` bytes.
pub struct Frame {
    prefix: String,
    suffix: String,
}

impl Frame {
    pub fn new(target: Target, partner: &str, size: usize) -> Self {
        let (head, tail) = match target {
            Target::Forwarder => (r#"{"candidate":""#.to_owned(), r#""}"#),
            Target::Meshwire => (
                format!(r#"{{"type":"signal","to":"{partner}","data":{{"candidate":""#),
                r#""}}"#,
            ),
            // The data of a matchbox signal is its PeerSignal enum, here an IceCandidate.
            Target::Matchbox => (
                format!(r#"{{"Signal":{{"receiver":"{partner}","data":{{"IceCandidate":""#),
                r#""}}}"#,
            ),
            Target::Peerjs => (
                format!(r#"{{"type":"CANDIDATE","dst":"{partner}","payload":{{"candidate":""#),
                r#""}}"#,
            ),
        };
        let prefix = format!("{head}t:");
        let pad = size.saturating_sub(prefix.len() + TS_DIGITS + 1 + tail.len());
        let suffix = format!(" {}{tail}", "x".repeat(pad));
        Self { prefix, suffix }
    }

    /// The message carrying timestamp `ts`.
    pub fn encode(&self, ts: u64) -> Message {
        let mut text = String::with_capacity(self.prefix.len() + TS_DIGITS + self.suffix.len());
        text.push_str(&self.prefix);
        let _ = write!(text, "{ts:0width$}", width = TS_DIGITS);
        text.push_str(&self.suffix);
        Message::text(text)
    }
}

/// The timestamp in a message written by [`Frame::encode`], whatever envelope the
/// target put around it; `None` for anything else (presence, pongs, errors).
pub fn decode_ts(text: &str) -> Option<u64> {
    let start = text.find(TS_MARK)? + TS_MARK.len();
    text.get(start..start + TS_DIGITS)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_the_requested_size_and_round_trip() {
        for target in Target::ALL {
            let frame = Frame::new(target, "7oJ2dXk1TCe0w3cYwz2s4A", 256);
            let Message::Text(text) = frame.encode(123_456_789) else {
                unreachable!()
            };
            assert_eq!(text.len(), 256, "{target:?}: {text}");
            assert_eq!(decode_ts(&text), Some(123_456_789));
            serde_json::from_str::<Value>(&text).expect("valid JSON");
        }
    }

    #[test]
    fn only_timestamped_messages_decode() {
        assert_eq!(decode_ts(r#"{"type":"pong"}"#), None);
        assert_eq!(decode_ts(r#"{"type":"peer-left","peerId":"x"}"#), None);
    }

    #[test]
    fn only_loopback_servers_are_accepted() {
        assert!(Server::parse("ws://127.0.0.1:8080").is_ok());
        assert!(Server::parse("ws://localhost:8080/ws").is_ok());
        assert!(Server::parse("ws://[::1]:8080").is_ok());
        assert!(Server::parse("ws://10.0.0.1:8080").is_err());
        assert!(Server::parse("http://127.0.0.1:8080").is_err());
    }

    #[test]
    fn sources_rotate_in_blocks() {
        let server = Server::parse("ws://127.0.0.1:1").unwrap();
        let host = |index| match server.source_for(index) {
            Some(IpAddr::V4(ip)) if ip.is_loopback() => u32::from(ip),
            other => panic!("not a loopback source: {other:?}"),
        };
        assert_eq!(host(1), host(0));
        assert_eq!(host(CONNS_PER_SOURCE), host(0) + 1);
        assert_eq!(host(2 * CONNS_PER_SOURCE), host(0) + 2);
        // Never the server's own 127.0.0.1, and the same for the whole run.
        assert!(host(0) > u32::from(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(server.source_for(5), server.source_for(5));
    }
}
