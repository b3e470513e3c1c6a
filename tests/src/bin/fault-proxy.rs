//! `fault-proxy`: a TCP proxy between the SDK (in a browser) and the relay that a test
//! can break on demand, to show what users see when the network drops.
//!
//! Control (HTTP, CORS open so a test page can call it with `fetch`):
//! - `POST /cut`     reset every proxied connection now (RST, no WebSocket close);
//! - `POST /block`   refuse new connections (accepted, then reset at once);
//! - `POST /unblock` accept again;
//! - `GET  /health`  `{"connections":N,"blocked":bool}`.

use clap::Parser;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
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
        .or(warp::get().and(warp::path!("health")).map({
            let s = s.clone();
            move || {
                format!(
                    r#"{{"connections":{},"blocked":{}}}"#,
                    s.open.load(Ordering::SeqCst),
                    s.blocked.load(Ordering::SeqCst)
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
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                _ = cut.changed() => {
                    reset(&client);
                    reset(&server);
                }
            }
            state.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// Makes the socket's close a reset (RST) instead of an orderly FIN.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}
