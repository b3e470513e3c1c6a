//! Presence: peer-joined / peer-left on leave, on a clean close, after missed
//! heartbeats and after an abnormal drop (each held for the resume grace).

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn join_announces_and_leave_reports_left() {
    let relay = Relay::start(&[]).await;
    let room = room("pres");
    let mut a = relay.connect().await;
    let a_id = peer_id(&a.join_named(&room, "a").await);
    let mut b = relay.connect().await;
    let b_id = peer_id(&b.join_named(&room, "b").await);
    let j = a.expect("peer-joined").await;
    assert_eq!(j["peer"]["id"], b_id.as_str());
    assert_eq!(j["peer"]["name"], "b");
    // The joiner does not get a peer-joined about itself.
    b.ping_pong().await;

    b.send_json(json!({"type": "leave"})).await;
    let l = within(
        Duration::from_secs(1),
        "peer-left after leave",
        a.expect("peer-left"),
    )
    .await;
    assert_eq!(l["peerId"], b_id.as_str());
    assert_eq!(l["reason"], "left");
    // b is out: signals to it are refused.
    a.send_json(json!({"type": "signal", "to": b_id, "data": 1}))
        .await;
    a.expect_error("unknown-peer").await;
    let _ = a_id;
}

#[tokio::test]
async fn clean_close_reports_left_promptly() {
    let relay = Relay::start(&["--resume-grace", "10s"]).await;
    let room = room("close");
    let (mut c, ids) = joined(&relay, &room, 2).await;
    let leaver = c.pop().unwrap();
    let started = Instant::now();
    leaver.close().await;
    let l = within(
        Duration::from_secs(1),
        "peer-left after a clean close",
        c[0].expect("peer-left"),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(l["peerId"], ids[1].as_str());
    assert_eq!(
        l["reason"], "left",
        "a close frame is a deliberate leave: {l}"
    );
    relay
        .wait_health("one peer left", |h| h["peers"] == 1)
        .await;
}

/// TCP closed (FIN) without a WebSocket close frame.
#[tokio::test]
async fn abnormal_drop_is_held_for_the_grace_then_lost() {
    let relay = Relay::start(&["--resume-grace", "1500ms"]).await;
    let room = room("drop");
    let (mut c, ids) = joined(&relay, &room, 2).await;
    let dropped = c.pop().unwrap();
    dropped.drop_abruptly();
    let started = Instant::now();
    relay.wait_connections(1).await;

    // Held: no peer-left while the grace runs (checked until well inside it).
    let quiet_until = started + Duration::from_millis(1000);
    c[0].assert_quiet(quiet_until.saturating_duration_since(Instant::now()))
        .await;
    // Still counted as a peer while held.
    assert_eq!(relay.health().await["peers"], 2);

    let l = within(
        Duration::from_secs(5),
        "peer-left after the grace",
        c[0].expect("peer-left"),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(l["peerId"], ids[1].as_str());
    assert_eq!(l["reason"], "lost", "{l}");
    assert!(
        elapsed >= Duration::from_millis(1300),
        "peer-left after {elapsed:?}, before the 1.5 s grace"
    );
    relay
        .wait_health("held peer released", |h| h["peers"] == 1)
        .await;
}

/// TCP reset (RST) without a WebSocket close frame.
#[tokio::test]
async fn connection_reset_is_held_for_the_grace_then_lost() {
    let relay = Relay::start(&["--resume-grace", "1500ms"]).await;
    let room = room("reset");
    let (mut c, ids) = joined(&relay, &room, 2).await;
    let dropped = c.pop().unwrap();
    dropped.reset_abruptly();
    let started = Instant::now();
    relay.wait_connections(1).await;

    // Held: no peer-left while the grace runs (checked until well inside it).
    let quiet_until = started + Duration::from_millis(1000);
    c[0].assert_quiet(quiet_until.saturating_duration_since(Instant::now()))
        .await;
    // Still counted as a peer while held.
    assert_eq!(relay.health().await["peers"], 2);

    let l = within(
        Duration::from_secs(5),
        "peer-left after the grace",
        c[0].expect("peer-left"),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(l["peerId"], ids[1].as_str());
    assert_eq!(l["reason"], "lost", "{l}");
    assert!(
        elapsed >= Duration::from_millis(1300),
        "peer-left after {elapsed:?}, before the 1.5 s grace"
    );
    relay
        .wait_health("held peer released", |h| h["peers"] == 1)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_lost() {
    let relay = Relay::start(&[
        "--ping-interval",
        "100ms",
        "--ping-timeout",
        "300ms",
        "--resume-grace",
        "300ms",
    ])
    .await;
    let room = room("hb");
    let mut watcher = relay.connect().await;
    watcher.join(&room).await;
    let mut alive = relay.connect().await;
    let alive_id = peer_id(&alive.join(&room).await);
    watcher.expect("peer-joined").await;

    let mut silent = relay.connect().await;
    let joined_at = Instant::now();
    let silent_id = peer_id(&silent.join(&room).await);
    // From here on `silent` is never read again, so tungstenite never answers the
    // relay's pings; the TCP connection stays open.
    let j = watcher.expect("peer-joined").await;
    assert_eq!(j["peer"]["id"], silent_id.as_str());
    // `alive` keeps reading (answering pings) the whole time.
    let j = alive.expect("peer-joined").await;
    assert_eq!(j["peer"]["id"], silent_id.as_str());

    // Both readers are polled concurrently the whole time, so they keep answering pings.
    let (l, l2) = within(
        Duration::from_secs(4),
        "peer-left for the silent client",
        async { tokio::join!(watcher.expect("peer-left"), alive.expect("peer-left")) },
    )
    .await;
    let elapsed = joined_at.elapsed();
    assert_eq!(l["peerId"], silent_id.as_str(), "{l}");
    assert_eq!(l["reason"], "lost", "{l}");
    assert!(
        elapsed >= Duration::from_millis(450),
        "reported lost after {elapsed:?}: before ping-timeout + grace (600 ms)"
    );
    assert_eq!(l2["peerId"], silent_id.as_str());

    // Clients that keep reading survive many ping intervals.
    let (q1, q2) = tokio::join!(
        watcher.recv_text_within(Duration::from_millis(1500)),
        alive.recv_text_within(Duration::from_millis(1500))
    );
    assert_eq!(
        (q1, q2),
        (None, None),
        "reading clients must not be reported or disturbed"
    );
    watcher.ping_pong().await;
    alive.ping_pong().await;
    watcher
        .send_json(json!({"type": "signal", "to": alive_id, "data": "still with us"}))
        .await;
    assert_eq!(alive.expect("signal").await["data"], "still with us");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_pings_at_the_configured_interval() {
    let relay = Relay::start(&["--ping-interval", "100ms", "--ping-timeout", "1s"]).await;
    let mut c = relay.connect().await;
    // Count WebSocket pings over ~1 s: about 10 expected.
    use futures_util::StreamExt;
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1050);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, c.ws.next()).await {
        if let tokio_tungstenite::tungstenite::Message::Ping(_) = msg.expect("read") {
            pings += 1;
        }
    }
    assert!(
        (4..=25).contains(&pings),
        "{pings} pings in ~1 s with --ping-interval 100ms"
    );
    c.ping_pong().await;
}
