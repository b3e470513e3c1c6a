//! Graceful shutdown: clients get `shutdown` then a 1001 close, new connections are
//! refused, and `run` returns promptly when clients go, or at --drain-timeout when
//! one never does.

mod common;

use common::*;
use std::time::{Duration, Instant};

fn assert_shutdown_then_1001(closed: &Closed) {
    assert_eq!(
        closed.code,
        Some(1001),
        "expected close 1001 (going away): {closed:?}"
    );
    let msgs = closed.messages();
    let last = msgs
        .last()
        .unwrap_or_else(|| panic!("no `shutdown` message before the close: {closed:?}"));
    assert_eq!(last["type"], "shutdown", "{closed:?}");
    assert!(
        last["reconnectInMs"].is_u64(),
        "reconnectInMs must be a number: {last}"
    );
    parse_server(&closed.texts[closed.texts.len() - 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_told_and_run_returns_once_they_are_gone() {
    let mut relay = Relay::start(&["--drain-timeout", "20s"]).await;
    let addr = relay.addr;
    let room = room("bye");
    let (mut joined_clients, _) = joined(&relay, &room, 2).await;
    let mut idle = relay.connect().await;
    relay.wait_connections(3).await;

    let started = Instant::now();
    relay.trigger_shutdown();
    let handle = relay.take_handle();
    let mut b = joined_clients.pop().unwrap();
    let mut a = joined_clients.pop().unwrap();
    let (ca, cb, ci) = tokio::join!(a.expect_close(), b.expect_close(), idle.expect_close());
    for closed in [&ca, &cb, &ci] {
        assert_shutdown_then_1001(closed);
    }
    // No presence churn is sent for a shutdown: the last message is `shutdown`.
    assert!(
        ca.messages().iter().all(|m| m["type"] == "shutdown"),
        "{ca:?}"
    );

    let result = within(
        Duration::from_secs(10),
        "run() to return after every client left",
        handle,
    )
    .await;
    assert!(matches!(result, Ok(Ok(()))), "run() result: {result:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "run() waited {:?} although every client had gone (drain timeout 20 s)",
        started.elapsed()
    );
    // The listener is closed.
    assert!(
        http_get(addr, "/health", &[]).await.is_err(),
        "relay still answering after run() returned"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port still accepting after run() returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_timeout_bounds_a_client_that_never_closes() {
    let mut relay = Relay::start(&["--drain-timeout", "1s"]).await;
    let addr = relay.addr;
    let room = room("stubborn");
    let (mut clients, _) = joined(&relay, &room, 2).await;
    let stubborn = clients.pop().unwrap();
    let mut observer = clients.pop().unwrap();
    // `stubborn` is never read again: it never answers the close handshake.
    relay.wait_connections(2).await;

    let started = Instant::now();
    relay.trigger_shutdown();
    let handle = relay.take_handle();
    // Once a client has been told, the relay is draining.
    observer.expect("shutdown").await;

    // While draining, nothing new is admitted: not /ready 200, not a WebSocket.
    match http_get(addr, "/ready", &[]).await {
        Ok(r) => assert_eq!(r.status, 503, "/ready while draining: {r:?}"),
        Err(e) => eprintln!("/ready while draining: connection refused ({e})"),
    }
    if let Ok(ws) = relay.try_connect("/ws", &[]).await {
        let mut c = Client::new(ws);
        let closed = c.expect_close().await;
        panic!("a new WebSocket was accepted while draining: {closed:?}");
    }

    let result = within(
        Duration::from_secs(5),
        "run() to return at the drain timeout",
        handle,
    )
    .await;
    let elapsed = started.elapsed();
    assert!(matches!(result, Ok(Ok(()))), "run() result: {result:?}");
    assert!(
        elapsed < Duration::from_millis(3500),
        "run() took {elapsed:?} with --drain-timeout 1s"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "port still accepting after run() returned"
    );
    drop(stubborn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_turns_503_while_draining() {
    // Observe /ready over a connection opened before the shutdown: send the request
    // after the shutdown, while a stubborn client holds the drain open.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut relay = Relay::start(&["--drain-timeout", "3s"]).await;
    let (mut clients, _) = joined(&relay, &room("ready"), 2).await;
    let stubborn = clients.pop().unwrap();
    let mut observer = clients.pop().unwrap();
    let mut early = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    // Make sure the relay has accepted the HTTP connection before shutting down.
    early
        .write_all(format!("GET /ready HTTP/1.1\r\nHost: {}\r\n\r\n", relay.addr).as_bytes())
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = within(STEP, "the first /ready", early.read(&mut buf))
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    relay.trigger_shutdown();
    let handle = relay.take_handle();
    // Once a client has been told, the relay is draining.
    observer.expect("shutdown").await;
    let second = async {
        early
            .write_all(
                format!(
                    "GET /ready HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    relay.addr
                )
                .as_bytes(),
            )
            .await?;
        let mut raw = Vec::new();
        early.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    match tokio::time::timeout(STEP, second).await {
        Ok(Ok(raw)) if !raw.is_empty() => {
            let text = String::from_utf8_lossy(&raw);
            assert!(
                text.starts_with("HTTP/1.1 503"),
                "/ready while draining must be 503: {text}"
            );
        }
        // The relay closed the idle keep-alive connection on shutdown: also fine,
        // it is no longer advertising readiness.
        other => eprintln!("/ready on a kept-alive connection while draining: {other:?}"),
    }
    let _ = within(Duration::from_secs(8), "run() to return", handle).await;
    drop(stubborn);
}

#[tokio::test]
async fn run_refuses_an_invalid_config() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = config(&["--turn", "turn:t.example.org"]);
    let result = within(
        STEP,
        "run() to refuse the config",
        meshwire_relay::run(listener, cfg, std::future::pending()),
    )
    .await;
    assert!(
        result.is_err(),
        "--turn without --turn-secret must be refused"
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = config(&["--ping-interval", "2s", "--ping-timeout", "1s"]);
    let result = within(
        STEP,
        "run() to refuse the config",
        meshwire_relay::run(listener, cfg, std::future::pending()),
    )
    .await;
    assert!(
        result.is_err(),
        "a ping timeout shorter than the interval must be refused"
    );
}
