//! Shared helpers for the relay's integration tests: start a relay on a free port,
//! connect WebSocket clients, exchange JSON messages with bounded waits, and make
//! plain HTTP requests.
#![allow(dead_code)]

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use meshwire_protocol::ServerMessage;
use meshwire_relay::Config;
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected event may take before the test fails.
pub const STEP: Duration = Duration::from_secs(5);

/// A client WebSocket.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The relay's `run` result.
pub type RunResult = Result<(), meshwire_relay::Error>;

/// A config as the command line would build it from `args`.
pub fn config(args: &[&str]) -> Config {
    let mut argv = vec!["meshwire-relay"];
    argv.extend_from_slice(args);
    Config::try_parse_from(argv).expect("test config must parse")
}

/// Runs `fut`, failing the test if it takes longer than `limit`.
pub async fn within<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// A relay running in this test's runtime.
pub struct Relay {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<RunResult>>,
}

impl Relay {
    /// Starts a relay on 127.0.0.1 with the given command-line flags.
    pub async fn start(args: &[&str]) -> Relay {
        Relay::start_with(config(args)).await
    }

    /// Starts a relay on 127.0.0.1 with `config`.
    pub async fn start_with(config: Config) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let handle = tokio::spawn(meshwire_relay::run(listener, config, shutdown));
        let relay = Relay {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
        };
        // The listener is bound before `run` starts, so connections queue in the
        // backlog; still, wait until the relay answers so a startup failure shows up
        // here with a clear message instead of as a confusing later timeout.
        let deadline = Instant::now() + STEP;
        loop {
            if let Ok(resp) = relay.try_get("/health", &[]).await {
                if resp.status == 200 {
                    break;
                }
            }
            if relay.handle.as_ref().unwrap().is_finished() {
                panic!("relay exited during startup");
            }
            assert!(
                Instant::now() < deadline,
                "relay did not answer /health within {STEP:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        relay
    }

    /// `ws://127.0.0.1:port/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Opens a WebSocket at `/ws`.
    pub async fn connect(&self) -> Client {
        self.connect_path("/ws").await
    }

    /// Opens a WebSocket at `path` (e.g. `/ws?token=...`).
    pub async fn connect_path(&self, path: &str) -> Client {
        match self.try_connect(path, &[]).await {
            Ok(ws) => Client::new(ws),
            Err(e) => panic!(
                "WebSocket connect to {path} failed: {}",
                describe_ws_error(&e)
            ),
        }
    }

    /// Opens a WebSocket at `path` with extra request headers (`Host` may be replaced).
    pub async fn try_connect(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, tungstenite::Error> {
        let mut request = format!("ws://{}{}", self.addr, path).into_client_request()?;
        for (name, value) in headers {
            request.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let (ws, _response) = within(
            STEP,
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(request),
        )
        .await?;
        Ok(ws)
    }

    /// A WebSocket upgrade that is expected to be refused: returns the HTTP status.
    pub async fn refused_upgrade_status(&self, path: &str, headers: &[(&str, &str)]) -> u16 {
        match self.try_connect(path, headers).await {
            Ok(_) => panic!(
                "expected the upgrade of {path} with {headers:?} to be refused, but it succeeded"
            ),
            Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("expected an HTTP refusal of the upgrade, got: {e}"),
        }
    }

    /// GET `path`, panicking on a transport error.
    pub async fn get(&self, path: &str) -> HttpResponse {
        self.get_with(path, &[]).await
    }

    /// GET `path` with extra headers, panicking on a transport error.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
        match self.try_get(path, headers).await {
            Ok(r) => r,
            Err(e) => panic!("GET {path} failed: {e}"),
        }
    }

    /// GET `path` with extra headers.
    pub async fn try_get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<HttpResponse> {
        http_get(self.addr, path, headers).await
    }

    /// `/health` as JSON.
    pub async fn health(&self) -> Value {
        let resp = self.get("/health").await;
        assert_eq!(resp.status, 200, "/health status; body: {}", resp.body);
        resp.json()
    }

    /// Polls `/health` until `pred` holds (fails after [`STEP`]).
    pub async fn wait_health(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + STEP;
        loop {
            let h = self.health().await;
            if pred(&h) {
                return h;
            }
            assert!(
                Instant::now() < deadline,
                "/health never showed {what}; last: {h}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the relay counts exactly `n` open WebSocket connections.
    pub async fn wait_connections(&self, n: u64) {
        self.wait_health(&format!("connections == {n}"), |h| {
            h["connections"].as_u64() == Some(n)
        })
        .await;
    }

    /// Resolves the shutdown future given to `run`.
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Takes the handle of the `run` task (to await it with a custom deadline).
    pub fn take_handle(&mut self) -> JoinHandle<RunResult> {
        self.handle.take().expect("run handle already taken")
    }

    /// Triggers shutdown and waits (bounded) for `run` to return `Ok`.
    pub async fn stop(mut self) {
        self.trigger_shutdown();
        let handle = self.take_handle();
        let joined = within(
            Duration::from_secs(15),
            "run() to return after shutdown",
            handle,
        )
        .await;
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("run() returned an error: {e:?}"),
            Err(e) => panic!("run() panicked: {e}"),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            // A relay that panicked must fail the test, not vanish silently.
            if handle.is_finished() && !std::thread::panicking() {
                eprintln!("note: relay task had already finished when the test ended");
            }
            handle.abort();
        }
    }
}

pub fn describe_ws_error(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(resp) => format!(
            "HTTP {} {}",
            resp.status(),
            resp.body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        ),
        other => other.to_string(),
    }
}

/// How a connection ended, as seen by [`Client::expect_close`].
#[derive(Debug)]
pub struct Closed {
    /// The close frame's code; `None` when the connection ended without one.
    pub code: Option<u16>,
    /// The close frame's reason.
    pub reason: String,
    /// Text messages received before the close.
    pub texts: Vec<String>,
}

impl Closed {
    /// The JSON messages received before the close.
    pub fn messages(&self) -> Vec<Value> {
        self.texts
            .iter()
            .map(|t| serde_json::from_str(t).unwrap())
            .collect()
    }

    /// Whether an `error` with `code` came before the close.
    pub fn had_error(&self, code: &str) -> bool {
        self.messages()
            .iter()
            .any(|m| m["type"] == "error" && m["code"] == code)
    }
}

/// A test client.
pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub fn new(ws: Ws) -> Client {
        Client { ws }
    }

    /// Sends a JSON value as one text frame.
    pub async fn send_json(&mut self, v: Value) {
        self.send_text(v.to_string()).await;
    }

    /// Sends `text` as one text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text: String = text.into();
        within(STEP, "a send", self.ws.send(Message::text(text)))
            .await
            .expect("send text frame");
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        within(STEP, "a send", self.ws.send(Message::binary(bytes)))
            .await
            .expect("send binary frame");
    }

    /// The next text frame within `limit`, or `None` on timeout. Panics if the
    /// connection closes or a binary frame arrives. Control frames are skipped
    /// (tungstenite answers pings by itself while we read).
    pub async fn recv_text_within(&mut self, limit: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(n) => n,
            };
            match next {
                Some(Ok(Message::Text(t))) => return Some(t.as_str().to_owned()),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(b))) => {
                    panic!("relay sent a binary frame ({} bytes)", b.len())
                }
                Some(Ok(Message::Close(frame))) => {
                    panic!("connection closed while a message was expected: {frame:?}")
                }
                Some(Err(e)) => panic!("connection failed while a message was expected: {e}"),
                None => panic!("connection ended while a message was expected"),
            }
        }
    }

    /// The next text frame (within [`STEP`]), as raw text.
    pub async fn recv_text(&mut self) -> String {
        match self.recv_text_within(STEP).await {
            Some(t) => t,
            None => panic!("no message from the relay within {STEP:?}"),
        }
    }

    /// The next message within `limit`, parsed, or `None` on timeout.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Value> {
        let text = self.recv_text_within(limit).await?;
        Some(parse_server(&text))
    }

    /// The next message (within [`STEP`]), parsed and checked against the protocol types.
    pub async fn recv(&mut self) -> Value {
        let text = self.recv_text().await;
        parse_server(&text)
    }

    /// The next message, which must be of type `ty`.
    pub async fn expect(&mut self, ty: &str) -> Value {
        let msg = self.recv().await;
        assert_eq!(msg["type"], ty, "expected a `{ty}` message, got {msg}");
        msg
    }

    /// Skips messages until one of type `ty` arrives (within `limit`); returns it and
    /// the messages skipped.
    pub async fn recv_until(&mut self, ty: &str, limit: Duration) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + limit;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv_within(left).await {
                Some(m) if m["type"] == ty => return (m, skipped),
                Some(m) => skipped.push(m),
                None => panic!("no `{ty}` within {limit:?}; got instead: {skipped:?}"),
            }
        }
    }

    /// The next message, which must be an `error` with `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let msg = self.recv().await;
        assert_eq!(
            msg["type"], "error",
            "expected an `{code}` error, got {msg}"
        );
        assert_eq!(msg["code"], code, "expected error code `{code}`, got {msg}");
        assert!(
            msg["message"].as_str().is_some_and(|m| !m.is_empty()),
            "error without a message: {msg}"
        );
        msg
    }

    /// Asserts nothing arrives for `window`.
    pub async fn assert_quiet(&mut self, window: Duration) {
        if let Some(m) = self.recv_text_within(window).await {
            panic!("expected no message for {window:?}, got {m}");
        }
    }

    /// Sends `ping` and expects the very next message to be `pong`: proves the
    /// connection works and that nothing else was queued for this client.
    pub async fn ping_pong(&mut self) {
        self.send_json(json!({"type": "ping"})).await;
        let msg = self.recv().await;
        assert_eq!(
            msg["type"], "pong",
            "expected `pong` (nothing else pending), got {msg}"
        );
    }

    /// Joins `room`; returns the welcome.
    pub async fn join(&mut self, room: &str) -> Value {
        self.join_with(json!({"type": "join", "room": room})).await
    }

    /// Joins `room` with a display name; returns the welcome.
    pub async fn join_named(&mut self, room: &str, name: &str) -> Value {
        self.join_with(json!({"type": "join", "room": room, "name": name}))
            .await
    }

    /// Sends a custom join message and expects a welcome.
    pub async fn join_with(&mut self, join: Value) -> Value {
        self.send_json(join.clone()).await;
        let msg = self.recv().await;
        assert_eq!(
            msg["type"], "welcome",
            "join {join} was not welcomed: {msg}"
        );
        msg
    }

    /// Reads until the relay closes the connection (within `limit`); returns the close
    /// code (`None` if the TCP connection ended without a close frame) and the text
    /// messages that came first.
    pub async fn expect_close_within(&mut self, limit: Duration) -> Closed {
        let deadline = tokio::time::Instant::now() + limit;
        let mut texts = Vec::new();
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("relay did not close the connection within {limit:?}; messages so far: {texts:?}"),
                Ok(n) => n,
            };
            match next {
                Some(Ok(Message::Text(t))) => texts.push(t.as_str().to_owned()),
                Some(Ok(Message::Close(frame))) => {
                    // Keep polling so tungstenite sends its close reply and the
                    // relay sees a clean closing handshake.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(_)) = self.ws.next().await {}
                    })
                    .await;
                    return Closed {
                        code: frame.as_ref().map(|f| u16::from(f.code)),
                        reason: frame
                            .map(|f| f.reason.as_str().to_owned())
                            .unwrap_or_default(),
                        texts,
                    };
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => {
                    return Closed {
                        code: None,
                        reason: String::new(),
                        texts,
                    }
                }
            }
        }
    }

    /// [`Client::expect_close_within`] with [`STEP`].
    pub async fn expect_close(&mut self) -> Closed {
        self.expect_close_within(STEP).await
    }

    /// Closes the WebSocket cleanly (close frame) and waits for the relay's answer.
    pub async fn close(self) {
        self.close_frame(None).await;
    }

    /// Closes the WebSocket with `code` and waits for the relay's answer.
    pub async fn close_with(self, code: u16) {
        let frame = tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: "".into(),
        };
        self.close_frame(Some(frame)).await;
    }

    async fn close_frame(mut self, frame: Option<tungstenite::protocol::CloseFrame>) {
        let _ = within(STEP, "sending a close frame", self.ws.close(frame)).await;
        let _ = tokio::time::timeout(STEP, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// Drops the TCP connection without a WebSocket close frame (an abnormal drop,
    /// like a network failure or a killed process).
    pub fn drop_abruptly(self) {
        if let MaybeTlsStream::Plain(tcp) = self.ws.get_ref() {
            let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Both);
        }
        drop(self);
    }

    /// Drops the TCP connection with a reset (RST, via `SO_LINGER` 0) and no close
    /// frame, like a crashed host or a middlebox killing the connection.
    pub fn reset_abruptly(self) {
        if let MaybeTlsStream::Plain(tcp) = self.ws.get_ref() {
            let _ = socket2::SockRef::from(tcp).set_linger(Some(Duration::ZERO));
        }
        drop(self);
    }
}

/// Parses a relay message: it must be a JSON object that deserialises as the
/// protocol crate's `ServerMessage`.
pub fn parse_server(text: &str) -> Value {
    if let Err(e) = serde_json::from_str::<ServerMessage<'_, Value>>(text) {
        panic!("relay sent a message that does not match the protocol types ({e}): {text}");
    }
    serde_json::from_str(text).unwrap()
}

/// The welcome's `peerId`.
pub fn peer_id(welcome: &Value) -> String {
    welcome["peerId"]
        .as_str()
        .unwrap_or_else(|| panic!("no peerId in {welcome}"))
        .to_owned()
}

/// Whether `id` looks like a relay peer id: at least 22 URL-safe characters (≥128 bits).
pub fn is_valid_peer_id(id: &str) -> bool {
    id.len() >= 22
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A unique room name for this test.
pub fn room(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{tag}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Connects `n` clients that all join `room`, draining the presence events so every
/// client starts with an empty inbox. Returns the clients and their peer ids.
pub async fn joined(relay: &Relay, room: &str, n: usize) -> (Vec<Client>, Vec<String>) {
    let mut clients: Vec<Client> = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..n {
        let mut c = relay.connect().await;
        let w = c.join(room).await;
        let id = peer_id(&w);
        for other in clients.iter_mut() {
            let m = other.expect("peer-joined").await;
            assert_eq!(m["peer"]["id"], id.as_str());
        }
        clients.push(c);
        ids.push(id);
    }
    (clients, ids)
}

/// A plain HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.1 GET over a fresh TCP connection (`Connection: close`).
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let io = async {
        let mut stream = TcpStream::connect(addr).await?;
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = tokio::time::timeout(STEP, io).await.map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "HTTP request timed out")
    })??;
    parse_http(&raw)
}

fn parse_http(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of HTTP head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or_else(|| bad("empty response"))?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
