//! Limits and bad input: message size, hard frame cap, rate limit, connection cap,
//! binary frames and malformed messages. Refused input never costs accepted state.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn too_large_message_is_refused_and_the_connection_kept() {
    let relay = Relay::start(&["--max-message-bytes", "1024"]).await;
    let room = room("big");
    let (mut c, ids) = joined(&relay, &room, 2).await;

    // Just under the limit is fine.
    let pad = "p".repeat(900);
    c[0].send_json(json!({"type": "signal", "to": ids[1], "data": pad}))
        .await;
    assert_eq!(
        c[1].expect("signal").await["data"].as_str().unwrap().len(),
        900
    );

    let big = "b".repeat(2000);
    c[0].send_json(json!({"id": 5, "type": "signal", "to": ids[1], "data": big}))
        .await;
    let e = c[0].expect_error("too-large").await;
    if let Some(r) = e.get("ref") {
        assert_eq!(r, 5, "{e}");
    }
    c[0].ping_pong().await;
    // Nothing of it was delivered; the room membership is intact.
    c[1].ping_pong().await;
    c[0].send_json(json!({"type": "signal", "to": ids[1], "data": "small"}))
        .await;
    assert_eq!(c[1].expect("signal").await["data"], "small");
}

#[tokio::test]
async fn default_limit_is_64_kib() {
    let relay = Relay::start(&[]).await;
    let room = room("big64");
    let (mut c, ids) = joined(&relay, &room, 2).await;
    let fits = "f".repeat(60 * 1024);
    c[0].send_json(json!({"type": "broadcast", "data": fits}))
        .await;
    assert_eq!(
        c[1].expect("broadcast").await["data"]
            .as_str()
            .unwrap()
            .len(),
        60 * 1024
    );
    let over = "o".repeat(70 * 1024);
    c[0].send_json(json!({"type": "signal", "to": ids[1], "data": over}))
        .await;
    c[0].expect_error("too-large").await;
    c[0].ping_pong().await;
    c[1].ping_pong().await;
}

#[tokio::test]
async fn oversized_name_or_meta_is_too_large() {
    let relay = Relay::start(&[]).await;
    let room = room("meta");
    let mut c = relay.connect().await;
    c.send_json(json!({"type": "join", "room": room, "name": "n".repeat(200), "id": 1}))
        .await;
    assert_eq!(c.expect_error("too-large").await["ref"], 1);
    c.send_json(json!({"type": "join", "room": room, "meta": {"k": "m".repeat(3000)}, "id": 2}))
        .await;
    assert_eq!(c.expect_error("too-large").await["ref"], 2);
    c.send_json(json!({"type": "join", "room": room, "meta": [1, 2], "id": 3}))
        .await;
    assert_eq!(c.expect_error("bad-message").await["ref"], 3);
    c.join(&room).await;
}

#[tokio::test]
async fn frame_over_one_mib_closes_with_1009() {
    let relay = Relay::start(&[]).await;
    let room = room("huge");
    let (mut c, _) = joined(&relay, &room, 2).await;
    let huge = "h".repeat(1024 * 1024 + 100 * 1024);
    // The relay may close before it has read the whole frame, so the send may fail.
    let _ = c[0]
        .ws
        .send(Message::text(
            json!({"type": "broadcast", "data": huge}).to_string(),
        ))
        .await;
    let closed = c[0].expect_close().await;
    assert_eq!(
        closed.code,
        Some(1009),
        "expected close 1009 (message too big): {closed:?}"
    );
    // The other peer is fine and saw nothing but (eventually) the departure.
    c[1].send_json(json!({"type": "ping"})).await;
    let (_, skipped) = c[1].recv_until("pong", STEP).await;
    assert!(
        skipped.iter().all(|m| m["type"] == "peer-left"),
        "{skipped:?}"
    );
}

#[tokio::test]
async fn rate_limit_drops_excess_and_throttles_errors() {
    let relay = Relay::start(&["--rate-limit", "5", "--rate-burst", "5"]).await;
    let room = room("rate");
    let (mut c, _) = joined(&relay, &room, 2).await;
    // Let the bucket fill after the join.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c[1].ping_pong().await;

    let started = Instant::now();
    for n in 0..30 {
        c[0].send_json(json!({"type": "broadcast", "data": n}))
            .await;
    }
    let flood_time = started.elapsed();
    // Let tokens come back so the ping is accepted.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    c[0].send_json(json!({"type": "ping"})).await;
    let (_, before_pong) = c[0].recv_until("pong", STEP).await;
    let limited = before_pong
        .iter()
        .filter(|m| m["type"] == "error" && m["code"] == "rate-limited")
        .count();
    assert!(
        before_pong
            .iter()
            .all(|m| m["type"] == "error" && m["code"] == "rate-limited"),
        "only rate-limited errors expected: {before_pong:?}"
    );
    assert!(
        limited >= 1,
        "30 messages at once with burst 5 must be rate-limited"
    );
    assert!(
        limited <= 2,
        "errors are throttled (≈1/s) but got {limited} in {flood_time:?}"
    );

    // The receiver got the burst (plus what refilled during the flood), not all 30.
    c[1].send_json(json!({"type": "ping"})).await;
    let (_, got) = c[1].recv_until("pong", STEP).await;
    assert!(got.iter().all(|m| m["type"] == "broadcast"), "{got:?}");
    let max = 5 + 1 + (flood_time.as_millis() as usize * 5 / 1000) + 1;
    assert!(
        (5..=max).contains(&got.len()),
        "{} broadcasts delivered (burst 5, rate 5/s)",
        got.len()
    );
    // The burst is the first messages, and everything delivered is in order.
    let seq: Vec<u64> = got.iter().map(|m| m["data"].as_u64().unwrap()).collect();
    assert_eq!(seq[..5], [0, 1, 2, 3, 4], "{seq:?}");
    assert!(seq.windows(2).all(|w| w[0] < w[1]), "{seq:?}");
    // The connection survived a short overrun.
    c[0].ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_flooding_closes_with_1008() {
    let relay = Relay::start(&["--rate-limit", "10", "--rate-burst", "10"]).await;
    let room = room("flood");
    let (mut c, _) = joined(&relay, &room, 2).await;
    let flooder = c.remove(0);
    let (mut sink, mut stream) = flooder.ws.split();
    let started = Instant::now();
    // 500 messages/s against a limit of 10/s (50×), for up to 25 s: 5 every 10 ms.
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut sent = 0u32;
        'flood: while started.elapsed() < Duration::from_secs(25) {
            tick.tick().await;
            for _ in 0..5 {
                if sink
                    .send(Message::text(r#"{"type":"broadcast","data":"spam"}"#))
                    .await
                    .is_err()
                {
                    break 'flood;
                }
                sent += 1;
            }
        }
        sent
    });
    let mut limited = 0;
    let code = within(
        Duration::from_secs(30),
        "the relay to close a flooding client",
        async {
            loop {
                match stream.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let m = parse_server(t.as_str());
                        assert_eq!(m["code"], "rate-limited", "{m}");
                        limited += 1;
                    }
                    Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break None,
                }
            }
        },
    )
    .await;
    let elapsed = started.elapsed();
    // Once closed, the writer's sends fail; it stops by itself after 25 s at most.
    let sent = within(Duration::from_secs(30), "the flood writer to stop", writer)
        .await
        .unwrap_or(0);
    assert_eq!(
        code,
        Some(1008),
        "sustained flooding ({sent} messages in {elapsed:?} at --rate-limit 10) must close with 1008"
    );
    let bound = elapsed.as_secs() as usize + 2;
    assert!(
        (1..=bound).contains(&limited),
        "{limited} rate-limited errors in {elapsed:?}"
    );
    // The flood was throttled for the other peer.
    c[0].send_json(json!({"type": "ping"})).await;
    let (_, got) = c[0].recv_until("pong", STEP).await;
    let spam = got.iter().filter(|m| m["type"] == "broadcast").count();
    let max = 10 + 10 * (elapsed.as_secs_f64().ceil() as usize) + 1;
    assert!(
        spam <= max,
        "{spam} broadcasts got through in {elapsed:?} at 10/s"
    );
}

#[tokio::test]
async fn max_connections_refuses_with_503() {
    let relay = Relay::start(&["--max-connections", "2"]).await;
    let mut a = relay.connect().await;
    let b = relay.connect().await;
    relay.wait_connections(2).await;
    let status = relay.refused_upgrade_status("/ws", &[]).await;
    assert_eq!(status, 503);
    // HTTP routes are not connections.
    assert_eq!(relay.get("/health").await.status, 200);
    a.ping_pong().await;
    b.close().await;
    relay.wait_connections(1).await;
    let mut c = relay.connect().await;
    c.ping_pong().await;
}

#[tokio::test]
async fn binary_frames_are_bad_messages() {
    let relay = Relay::start(&[]).await;
    let mut c = relay.connect().await;
    c.send_binary(br#"{"type":"ping"}"#.to_vec()).await;
    c.expect_error("bad-message").await;
    c.send_binary(vec![0, 159, 146, 150]).await;
    c.expect_error("bad-message").await;
    c.ping_pong().await;
}

#[tokio::test]
async fn malformed_messages_are_bad_messages_with_ref() {
    let relay = Relay::start(&[]).await;
    let mut c = relay.connect().await;
    let with_ref = [
        (r#"{"type":"nope","id":7}"#, json!(7)),
        (r#"{"type":"signal","id":"r1"}"#, json!("r1")),
        (r#"{"id":"no-type"}"#, json!("no-type")),
        (r#"{"type":"join","id":-3}"#, json!(-3)),
        (r#"{"type":"JOIN","room":"a","id":"caps"}"#, json!("caps")),
    ];
    for (frame, expected) in with_ref {
        c.send_text(frame).await;
        let e = c.expect_error("bad-message").await;
        assert_eq!(e["ref"], expected, "for {frame}: {e}");
    }
    let without_ref = [
        "not json",
        "",
        "null",
        "[]",
        "42",
        r#""ping""#,
        "{",
        r#"{"type":5}"#,
        r#"{"type":"join","room":7}"#,
        r#"{"type":"ping","id":{"a":1}}"#,
        r#"{"type":"ping"} trailing"#,
    ];
    for frame in without_ref {
        c.send_text(frame).await;
        let e = c.expect_error("bad-message").await;
        assert!(
            e.get("ref").is_none_or(|r| r.is_null()),
            "for {frame:?}: {e}"
        );
    }
    c.ping_pong().await;
}

#[tokio::test]
async fn bad_input_does_not_lose_accepted_state() {
    let relay = Relay::start(&["--max-message-bytes", "2048"]).await;
    let room = room("intact");
    let (mut c, ids) = joined(&relay, &room, 2).await;
    c[0].send_text("{{{").await;
    c[0].expect_error("bad-message").await;
    c[0].send_binary(vec![1, 2, 3]).await;
    c[0].expect_error("bad-message").await;
    c[0].send_text("x".repeat(5000)).await;
    c[0].expect_error("too-large").await;
    c[0].send_json(json!({"type": "join", "room": "elsewhere"}))
        .await;
    c[0].expect_error("already-joined").await;
    c[0].send_json(json!({"type": "signal", "to": "nobody-at-all-xxxxxxxxxx", "data": 1}))
        .await;
    c[0].expect_error("unknown-peer").await;

    // Still in the room, both ways; the other peer saw none of it.
    c[1].send_json(json!({"type": "signal", "to": ids[0], "data": "to 0"}))
        .await;
    let s = c[0].expect("signal").await;
    assert_eq!(
        (s["from"].as_str(), s["data"].as_str()),
        (Some(ids[1].as_str()), Some("to 0"))
    );
    c[0].send_json(json!({"type": "signal", "to": ids[1], "data": "to 1"}))
        .await;
    let s = c[1].expect("signal").await;
    assert_eq!(s["data"], "to 1");
    c[1].ping_pong().await;
    relay.wait_health("2 peers", |h| h["peers"] == 2).await;
}
