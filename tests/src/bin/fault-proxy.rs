//! `fault-proxy`: a TCP proxy between the SDK (in a browser) and the relay that a test
//! can break on demand, to show what users see when the network drops.
//!
//! Control (HTTP, CORS open so a test page can call it with `fetch`):
//! - `POST /cut`     reset every proxied connection now (RST, no WebSocket close);
//! - `POST /block`   refuse new connections (accepted, then reset at once);
//! - `POST /unblock` accept again;
//! - `POST /delay/MS` hold every byte MS milliseconds (at most 60000) in each direction,
//!   from now on and on connections already open (0: none), as a long path would;
//! - `GET  /health`  `{"connections":N,"blocked":bool,"delayMs":MS}`.

use clap::Parser;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use warp::Filter;

#[derive(Parser)]
#[command(about = "TCP proxy for tests, with an HTTP control port to cut connections")]
struct Args {
    /// Where clients connect.
    #[arg(long)]
    listen: SocketAddr,
    /// Where connections are forwarded (the relay).
    #[arg(long)]
    upstream: SocketAddr,
    /// The control port's address.
    #[arg(long)]
    control: SocketAddr,
}

#[derive(Default)]
struct State {
    blocked: AtomicBool,
    open: AtomicUsize,
    delay_ms: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let state = Arc::new(State::default());
    // Every connection watches this; a bump cuts them all.
    let (cut_tx, cut_rx) = watch::channel(0u64);
    let cut_tx = Arc::new(cut_tx);

    let listener = TcpListener::bind(args.listen).await?;
    let control = TcpListener::bind(args.control).await?;
    eprintln!(
        "fault-proxy: {} -> {}, control on {}",
        args.listen, args.upstream, args.control
    );

    let s = state.clone();
    let c = cut_tx.clone();
    let cors = warp::cors()
        .allow_any_origin()
        .allow_methods(["GET", "POST"]);
    let routes = warp::post()
        .and(warp::path!("cut"))
        .map(move || {
            c.send_modify(|n| *n += 1);
            "cut"
        })
        .or(warp::post().and(warp::path!("block")).map({
            let s = s.clone();
            move || {
                s.blocked.store(true, Ordering::SeqCst);
                "blocked"
            }
        }))
        .or(warp::post().and(warp::path!("unblock")).map({
            let s = s.clone();
            move || {
                s.blocked.store(false, Ordering::SeqCst);
                "unblocked"
            }
        }))
        .or(warp::post().and(warp::path!("delay" / u64)).map({
            let s = s.clone();
            move |ms: u64| {
                // At most a minute: a test's long path, not a way to overflow `Instant`.
                let ms = ms.min(60_000);
                s.delay_ms.store(ms, Ordering::SeqCst);
                format!("delay {ms} ms")
            }
        }))
        .or(warp::get().and(warp::path!("health")).map({
            let s = s.clone();
            move || {
                format!(
                    r#"{{"connections":{},"blocked":{},"delayMs":{}}}"#,
                    s.open.load(Ordering::SeqCst),
                    s.blocked.load(Ordering::SeqCst),
                    s.delay_ms.load(Ordering::SeqCst)
                )
            }
        }))
        .with(cors);
    tokio::spawn(warp::serve(routes).incoming(control).run());

    loop {
        let (client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("fault-proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if state.blocked.load(Ordering::SeqCst) {
            reset(&client);
            continue;
        }
        let upstream = args.upstream;
        let state = state.clone();
        let mut cut = cut_rx.clone();
        cut.mark_unchanged();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                reset(&client);
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            state.open.fetch_add(1, Ordering::SeqCst);
            let (mut client, mut server) = (client, server);
            let cut = {
                let (client_rx, client_tx) = client.split();
                let (server_rx, server_tx) = server.split();
                tokio::select! {
                    _ = async {
                        tokio::join!(
                            pipe(client_rx, server_tx, &state),
                            pipe(server_rx, client_tx, &state)
                        )
                    } => false,
                    _ = cut.changed() => true,
                }
            };
            if cut {
                reset(&client);
                reset(&server);
            }
            state.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Copies `from` to `to`, each read held back by the delay in force when it was read
/// (so bytes keep their order and spacing). Ends when `from` closes or `to` fails; a
/// cut stops it where it is. What waits is buffered without a bound (no TCP
/// backpressure through the proxy): fine for the tests' few MiB.
async fn pipe(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, state: &State) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf).await {
            let due = Instant::now() + Duration::from_millis(state.delay_ms.load(Ordering::SeqCst));
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((due, bytes)) = rx.recv().await {
            if due > Instant::now() {
                tokio::time::sleep_until(due).await;
            }
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // The other side closed: pass the FIN on.
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

/// Makes the socket's close a reset (RST) instead of an orderly FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
