//! Resume: coming back as the same peer within the grace (queued messages delivered
//! in order, no presence churn), after the grace or a relay restart (same id, normal
//! join), refused tokens, taking over a still-open connection, and queue bounds.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn token(welcome: &Value) -> String {
    welcome["resumeToken"]
        .as_str()
        .expect("resumeToken")
        .to_owned()
}

/// A joined pair in a fresh room: (stayer, stayer id, leaver, leaver id, leaver's token).
async fn pair(relay: &Relay, room: &str) -> (Client, String, Client, String, String) {
    let mut stayer = relay.connect().await;
    let stayer_id = peer_id(&stayer.join(room).await);
    let mut leaver = relay.connect().await;
    let w = leaver.join(room).await;
    let leaver_id = peer_id(&w);
    stayer.expect("peer-joined").await;
    (stayer, stayer_id, leaver, leaver_id, token(&w))
}

#[tokio::test]
async fn resume_within_grace_keeps_the_peer_and_delivers_queued_messages() {
    let relay = Relay::start(&["--resume-grace", "10s"]).await;
    let room = room("res");
    let (mut stayer, stayer_id, leaver, leaver_id, tok) = pair(&relay, &room).await;

    leaver.drop_abruptly();
    relay.wait_connections(1).await;

    // Messages to the held peer are accepted (no error) and queued.
    stayer
        .send_json(json!({"type": "signal", "to": leaver_id, "data": {"seq": 1}}))
        .await;
    stayer
        .send_json(json!({"type": "broadcast", "data": {"seq": 2}}))
        .await;
    stayer
        .send_json(json!({"type": "signal", "to": leaver_id, "data": {"seq": 3}}))
        .await;
    stayer.ping_pong().await;

    let mut back = relay.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": tok}))
        .await;
    assert_eq!(w["peerId"], leaver_id.as_str(), "{w}");
    assert_eq!(w["resumed"], true, "{w}");
    assert_eq!(w["room"], room.as_str());
    let peers: Vec<_> = w["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(peers, vec![json!(stayer_id)], "{w}");
    assert!(w["resumeToken"].as_str().is_some(), "{w}");

    let m1 = back.expect("signal").await;
    assert_eq!(
        (m1["from"].as_str(), &m1["data"]),
        (Some(stayer_id.as_str()), &json!({"seq": 1}))
    );
    let m2 = back.expect("broadcast").await;
    assert_eq!(
        (m2["from"].as_str(), &m2["data"]),
        (Some(stayer_id.as_str()), &json!({"seq": 2}))
    );
    let m3 = back.expect("signal").await;
    assert_eq!(m3["data"], json!({"seq": 3}));
    back.ping_pong().await;

    // The stayer never saw it go or come back.
    stayer.assert_quiet(Duration::from_millis(300)).await;
    stayer.ping_pong().await;

    // Business as usual, both ways.
    stayer
        .send_json(json!({"type": "signal", "to": leaver_id, "data": "after"}))
        .await;
    assert_eq!(back.expect("signal").await["data"], "after");
    back.send_json(json!({"type": "signal", "to": stayer_id, "data": "back"}))
        .await;
    let s = stayer.expect("signal").await;
    assert_eq!(s["from"], leaver_id.as_str());
    relay
        .wait_health("2 peers, 2 connections", |h| {
            h["peers"] == 2 && h["connections"] == 2
        })
        .await;
}

#[tokio::test]
async fn a_held_peer_is_still_in_welcome_for_newcomers_and_resumes_twice() {
    let relay = Relay::start(&["--resume-grace", "10s"]).await;
    let room = room("res2");
    let (mut stayer, _stayer_id, leaver, leaver_id, tok) = pair(&relay, &room).await;
    leaver.drop_abruptly();
    relay.wait_connections(1).await;

    // A newcomer sees the held peer (the others never saw it leave).
    let mut newcomer = relay.connect().await;
    let w = newcomer.join(&room).await;
    let ids: Vec<_> = w["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&leaver_id), "held peer missing from {w}");
    stayer.expect("peer-joined").await;

    let mut back = relay.connect().await;
    let w1 = back
        .join_with(json!({"type": "join", "room": room, "resume": tok}))
        .await;
    assert_eq!(w1["resumed"], true);
    // The newcomer's arrival happened during the outage: it must reach the resumed
    // peer (as queued peer-joined, or already in welcome.peers).
    // Exactly once: either listed in welcome.peers or as a queued peer-joined after it.
    let newcomer_id = peer_id(&w);
    let listed = w1["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["id"] == newcomer_id.as_str())
        .count();
    back.send_json(json!({"type": "ping"})).await;
    let (_, queued) = back.recv_until("pong", STEP).await;
    let announced = queued
        .iter()
        .filter(|m| m["type"] == "peer-joined" && m["peer"]["id"] == newcomer_id.as_str())
        .count();
    assert_eq!(
        listed + announced,
        1,
        "the newcomer must reach the resumed peer exactly once: welcome {w1}, then {queued:?}"
    );

    // Drop again and resume with the newest token.
    let tok2 = token(&w1);
    back.reset_abruptly();
    relay.wait_connections(2).await;
    let mut again = relay.connect().await;
    let w2 = again
        .join_with(json!({"type": "join", "room": room, "resume": tok2}))
        .await;
    assert_eq!(w2["peerId"], leaver_id.as_str());
    assert_eq!(w2["resumed"], true);
    stayer.assert_quiet(Duration::from_millis(200)).await;
    newcomer.assert_quiet(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn resume_after_the_grace_rejoins_with_the_same_id() {
    let relay = Relay::start(&["--resume-grace", "300ms"]).await;
    let room = room("late");
    let (mut stayer, _, leaver, leaver_id, tok) = pair(&relay, &room).await;
    leaver.reset_abruptly();
    let l = stayer.expect("peer-left").await;
    assert_eq!(l["peerId"], leaver_id.as_str());
    assert_eq!(l["reason"], "lost");

    let mut back = relay.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": tok}))
        .await;
    assert_eq!(
        w["peerId"],
        leaver_id.as_str(),
        "a valid token keeps the id after the grace: {w}"
    );
    assert_eq!(w["resumed"], false, "{w}");
    let j = stayer.expect("peer-joined").await;
    assert_eq!(j["peer"]["id"], leaver_id.as_str());
}

#[tokio::test]
async fn resume_survives_a_relay_restart_with_the_same_secret() {
    let room = room("restart");
    let first = Relay::start(&["--secret", "restart-secret-123"]).await;
    let mut a = first.connect().await;
    let w = a.join(&room).await;
    let a_id = peer_id(&w);
    let tok = token(&w);
    // A restart as clients see it: `shutdown`, then a 1001 close.
    let ((), closed) = tokio::join!(first.stop(), a.expect_close());
    assert_eq!(closed.code, Some(1001), "{closed:?}");

    let second = Relay::start(&["--secret", "restart-secret-123"]).await;
    let mut other = second.connect().await;
    other.join(&room).await;
    let mut back = second.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": tok.clone()}))
        .await;
    assert_eq!(w["peerId"], a_id.as_str(), "{w}");
    assert_eq!(w["resumed"], false, "{w}");
    let j = other.expect("peer-joined").await;
    assert_eq!(j["peer"]["id"], a_id.as_str());

    // A relay with another secret does not accept it.
    let third = Relay::start(&["--secret", "a-different-secret"]).await;
    let mut c = third.connect().await;
    c.send_json(json!({"type": "join", "room": room, "resume": tok, "id": 9}))
        .await;
    assert_eq!(c.expect_error("resume-failed").await["ref"], 9);
}

#[tokio::test]
async fn bad_resume_tokens_are_refused() {
    let relay = Relay::start(&[]).await;
    let other_room = room("badtok-other");
    let room = room("badtok");
    let mut a = relay.connect().await;
    let tok = token(&a.join(&room).await);

    let mut c = relay.connect().await;
    let mut tampered = tok.clone().into_bytes();
    let mid = tampered.len() / 2;
    tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let truncated = tok[..tok.len() - 4].to_owned();
    for (i, bad) in [
        "garbage",
        "",
        "a.b.c",
        tampered.as_str(),
        truncated.as_str(),
    ]
    .into_iter()
    .enumerate()
    {
        c.send_json(json!({"type": "join", "room": room, "resume": bad, "id": i}))
            .await;
        let e = c.expect_error("resume-failed").await;
        assert_eq!(e["ref"], i, "{e}");
    }
    // A valid token for another room.
    c.send_json(json!({"type": "join", "room": other_room, "resume": tok, "id": "x"}))
        .await;
    assert_eq!(c.expect_error("resume-failed").await["ref"], "x");
    // The refusals joined nothing: a normal join still works and `a` saw only that.
    let w = c.join(&room).await;
    assert_eq!(w["resumed"], false);
    let j = a.expect("peer-joined").await;
    assert_eq!(j["peer"]["id"], w["peerId"]);
    a.ping_pong().await;
}

#[tokio::test]
async fn resume_takes_over_a_connection_that_is_still_open() {
    let relay = Relay::start(&["--resume-grace", "10s"]).await;
    let room = room("takeover");
    let (mut stayer, stayer_id, mut old, old_id, tok) = pair(&relay, &room).await;

    let mut new = relay.connect().await;
    let w = new
        .join_with(json!({"type": "join", "room": room, "resume": tok}))
        .await;
    assert_eq!(w["peerId"], old_id.as_str(), "{w}");
    assert_eq!(w["resumed"], true, "{w}");

    let closed = old.expect_close().await;
    assert_eq!(
        closed.code,
        Some(4409),
        "the replaced connection must close with 4409: {closed:?}"
    );

    stayer.assert_quiet(Duration::from_millis(300)).await;
    stayer
        .send_json(json!({"type": "signal", "to": old_id, "data": "to the new one"}))
        .await;
    assert_eq!(new.expect("signal").await["data"], "to the new one");
    new.send_json(json!({"type": "broadcast", "data": "hello"}))
        .await;
    let b = stayer.expect("broadcast").await;
    assert_eq!(b["from"], old_id.as_str());
    let _ = stayer_id;
    relay
        .wait_health("2 peers, 2 connections", |h| {
            h["peers"] == 2 && h["connections"] == 2
        })
        .await;
}

/// A pair in `room` whose leaver dropped and is held with a full queue: 64 signals
/// (`data` 0..64) from the stayer. Returns (stayer, leaver id, leaver's token).
async fn held_with_a_full_queue(relay: &Relay, room: &str) -> (Client, String, String) {
    let (mut stayer, _, leaver, leaver_id, tok) = pair(relay, room).await;
    leaver.reset_abruptly();
    relay.wait_connections(1).await;
    for n in 0..64 {
        stayer
            .send_json(json!({"type": "signal", "to": leaver_id, "data": n}))
            .await;
    }
    stayer.ping_pong().await;
    (stayer, leaver_id, tok)
}

#[tokio::test]
async fn queue_of_64_messages_is_kept() {
    let relay = Relay::start(&["--resume-grace", "10s"]).await;
    let room = room("q64");
    let (mut stayer, _, tok) = held_with_a_full_queue(&relay, &room).await;
    stayer.assert_quiet(Duration::from_millis(300)).await;

    let mut back = relay.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": tok}))
        .await;
    assert_eq!(w["resumed"], true);
    for n in 0..64 {
        let m = back.expect("signal").await;
        assert_eq!(m["data"], n);
    }
    back.ping_pong().await;
}

#[tokio::test]
async fn queue_overflow_by_count_ends_the_hold() {
    let relay = Relay::start(&["--resume-grace", "30s"]).await;
    let room = room("q65");
    let (mut stayer, _, leaver, leaver_id, tok) = pair(&relay, &room).await;
    leaver.reset_abruptly();
    relay.wait_connections(1).await;
    let started = Instant::now();
    for n in 0..65 {
        stayer
            .send_json(json!({"type": "signal", "to": leaver_id, "data": n}))
            .await;
    }
    let (l, _skipped) = stayer.recv_until("peer-left", Duration::from_secs(5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "peer-left must come from the overflow, not the 30 s grace"
    );
    assert_eq!(l["peerId"], leaver_id.as_str());
    assert_eq!(l["reason"], "lost");
    relay
        .wait_health("held peer dropped", |h| h["peers"] == 1)
        .await;

    // Coming back now is not a resume of the held session.
    let mut back = relay.connect().await;
    back.send_json(json!({"type": "join", "room": room, "resume": tok}))
        .await;
    let m = back.recv().await;
    if m["type"] == "welcome" {
        assert_eq!(m["resumed"], false, "the held session was dropped: {m}");
    } else {
        assert_eq!(m["code"], "resume-failed", "{m}");
    }
}

#[tokio::test]
async fn a_newcomer_whose_arrival_overflows_a_held_queue_gets_its_welcome_first() {
    // The held peer's queue is full (64): the newcomer's `peer-joined` overflows it and
    // ends the hold. The newcomer must hear its `welcome` first, without the dropped
    // peer in it, and no `peer-left` for a peer it was never told of.
    let relay = Relay::start(&["--resume-grace", "30s"]).await;
    let room = room("q-newcomer");
    let (mut stayer, leaver_id, _) = held_with_a_full_queue(&relay, &room).await;

    let mut newcomer = relay.connect().await;
    newcomer
        .send_json(json!({"type": "join", "room": room}))
        .await;
    let first = newcomer.recv().await;
    assert_eq!(first["type"], "welcome", "first after the join: {first}");
    let listed: Vec<&str> = first["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&leaver_id.as_str()), "{first}");
    assert_eq!(listed.len(), 1, "the stayer only: {first}");
    newcomer.ping_pong().await;
    newcomer.assert_quiet(Duration::from_millis(300)).await;
    let (l, _) = stayer.recv_until("peer-left", Duration::from_secs(5)).await;
    assert_eq!(l["peerId"], leaver_id.as_str());
}

#[tokio::test]
async fn queue_overflow_by_bytes_ends_the_hold() {
    let relay = Relay::start(&["--resume-grace", "30s"]).await;
    let room = room("qbytes");
    let (mut stayer, _, leaver, leaver_id, tok) = pair(&relay, &room).await;
    leaver.reset_abruptly();
    relay.wait_connections(1).await;
    let chunk = "x".repeat(60 * 1024);

    // 3 × 60 KiB fits in 256 KiB: still held.
    for n in 0..3 {
        stayer
            .send_json(json!({"type": "signal", "to": leaver_id, "data": format!("{n}{chunk}")}))
            .await;
    }
    stayer.ping_pong().await;
    // 2 more (300 KiB in all) overflow it.
    let started = Instant::now();
    for n in 3..5 {
        stayer
            .send_json(json!({"type": "signal", "to": leaver_id, "data": format!("{n}{chunk}")}))
            .await;
    }
    let (l, _) = stayer.recv_until("peer-left", Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(6));
    assert_eq!(l["peerId"], leaver_id.as_str());
    assert_eq!(l["reason"], "lost");
    let _ = tok;
}

#[tokio::test]
async fn queued_bytes_below_the_bound_are_delivered() {
    let relay = Relay::start(&["--resume-grace", "10s"]).await;
    let room = room("qbytes-ok");
    let (mut stayer, _, leaver, leaver_id, tok) = pair(&relay, &room).await;
    leaver.reset_abruptly();
    relay.wait_connections(1).await;
    let chunk = "y".repeat(60 * 1024);
    for n in 0..3 {
        stayer
            .send_json(json!({"type": "signal", "to": leaver_id, "data": format!("{n}{chunk}")}))
            .await;
    }
    stayer.ping_pong().await;
    let mut back = relay.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": tok}))
        .await;
    assert_eq!(w["resumed"], true);
    for n in 0..3 {
        let m = back.expect("signal").await;
        assert_eq!(m["data"].as_str().unwrap(), format!("{n}{chunk}"));
    }
    stayer.assert_quiet(Duration::from_millis(200)).await;
}

/// The SDK closes a connection it stopped hearing from with `RESUMING` before it
/// resumes on a new one: the close frame must not count as leaving.
#[tokio::test]
async fn a_close_that_says_resuming_holds_the_peer_for_its_resume() {
    let relay = Relay::start(&["--resume-grace", "10s"]).await;
    let room = room("resuming");
    let (mut stayer, _, leaver, leaver_id, tok) = pair(&relay, &room).await;
    leaver
        .close_with(meshwire_protocol::close_code::RESUMING)
        .await;
    relay.wait_connections(1).await;
    stayer.assert_quiet(Duration::from_millis(500)).await;
    assert_eq!(relay.health().await["peers"], 2, "held, not gone");

    let mut back = relay.connect().await;
    let w = back
        .join_with(json!({"type": "join", "room": room, "resume": tok}))
        .await;
    assert_eq!(w["peerId"], leaver_id.as_str(), "{w}");
    assert_eq!(w["resumed"], true, "{w}");
    stayer.assert_quiet(Duration::from_millis(300)).await;

    // Any other close code is still a leave.
    back.close_with(4001).await;
    let l = stayer.expect("peer-left").await;
    assert_eq!(l["reason"], "left", "{l}");
}
