//! Rooms: creation on first join, removal when empty, room-name validation, capacity,
//! one room per connection, and what needs a join first.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn first_join_creates_the_room_and_welcome_is_complete() {
    let relay = Relay::start(&[
        "--ping-interval",
        "7s",
        "--ping-timeout",
        "21s",
        "--resume-grace",
        "3s",
    ])
    .await;
    let room = room("create");
    let before = relay.health().await;
    assert_eq!(before["rooms"], 0, "{before}");
    assert_eq!(before["peers"], 0, "{before}");

    let mut a = relay.connect().await;
    let w = a.join(&room).await;
    assert_eq!(w["room"], room.as_str());
    assert!(is_valid_peer_id(&peer_id(&w)), "peer id {w}");
    assert_eq!(
        w["peers"],
        json!([]),
        "first joiner sees an empty room: {w}"
    );
    assert_eq!(w["resumed"], false, "{w}");
    assert!(
        w["resumeToken"].as_str().is_some_and(|t| !t.is_empty()),
        "{w}"
    );
    assert!(w["iceServers"].is_array(), "{w}");
    let limits = &w["limits"];
    assert_eq!(limits["maxMessageBytes"], 65536, "{w}");
    assert_eq!(limits["rateLimit"], 50, "{w}");
    assert_eq!(limits["rateBurst"], 200, "{w}");
    assert_eq!(limits["roomCapacity"], 16, "{w}");
    assert_eq!(limits["resumeGraceMs"], 3000, "{w}");
    assert_eq!(limits["pingIntervalMs"], 7000, "{w}");

    relay
        .wait_health("one room with one peer", |h| {
            h["rooms"] == 1 && h["peers"] == 1
        })
        .await;
}

#[tokio::test]
async fn welcome_lists_existing_peers_with_name_and_meta() {
    let relay = Relay::start(&[]).await;
    let room = room("list");
    let mut a = relay.connect().await;
    let wa = a
        .join_with(json!({"type": "join", "room": room, "name": "alice", "meta": {"color": "red", "n": [1, 2]}}))
        .await;
    let a_id = peer_id(&wa);

    let mut b = relay.connect().await;
    let wb = b.join_named(&room, "bob").await;
    let b_id = peer_id(&wb);
    assert_ne!(a_id, b_id);
    let peers = wb["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 1, "{wb}");
    assert_eq!(peers[0]["id"], a_id.as_str());
    assert_eq!(peers[0]["name"], "alice");
    assert_eq!(peers[0]["meta"], json!({"color": "red", "n": [1, 2]}));
    assert!(
        peers[0].get("userId").is_none(),
        "no userId without auth: {wb}"
    );

    let joined = a.expect("peer-joined").await;
    assert_eq!(joined["peer"]["id"], b_id.as_str());
    assert_eq!(joined["peer"]["name"], "bob");
}

#[tokio::test]
async fn room_is_gone_when_the_last_peer_leaves() {
    let relay = Relay::start(&["--admin-token", "adm"]).await;
    let room = room("gone");
    let (mut clients, _) = joined(&relay, &room, 2).await;
    relay
        .wait_health("1 room, 2 peers", |h| h["rooms"] == 1 && h["peers"] == 2)
        .await;

    clients[0].send_json(json!({"type": "leave"})).await;
    clients[1].expect("peer-left").await;
    relay
        .wait_health("1 room, 1 peer", |h| h["rooms"] == 1 && h["peers"] == 1)
        .await;
    clients[1].send_json(json!({"type": "leave"})).await;
    relay
        .wait_health("no rooms", |h| h["rooms"] == 0 && h["peers"] == 0)
        .await;

    let listed = relay
        .get_with("/api/rooms", &[("Authorization", "Bearer adm")])
        .await;
    assert_eq!(listed.status, 200);
    assert!(
        !listed.body.contains(&room),
        "empty room still listed: {}",
        listed.body
    );
    let one = relay
        .get_with(
            &format!("/api/rooms/{room}"),
            &[("Authorization", "Bearer adm")],
        )
        .await;
    assert_eq!(one.status, 404, "an empty room must be gone: {}", one.body);

    // Joining again creates it afresh: the new first joiner sees nobody.
    let mut c = relay.connect().await;
    let w = c.join(&room).await;
    assert_eq!(w["peers"], json!([]));
}

#[tokio::test]
async fn invalid_room_names_are_refused() {
    let relay = Relay::start(&[]).await;
    let mut c = relay.connect().await;
    let too_long = "a".repeat(65);
    for (i, bad) in [
        "",
        too_long.as_str(),
        "a b",
        "room/1",
        "caf\u{e9}",
        "x?y",
        "a\u{0}b",
        "#lobby",
    ]
    .into_iter()
    .enumerate()
    {
        c.send_json(json!({"type": "join", "room": bad, "id": i}))
            .await;
        let e = c.expect_error("invalid-room").await;
        assert_eq!(e["ref"], i, "ref for {bad:?}: {e}");
    }
    // Still usable, and a 64-character name using every allowed character class works.
    let longest = format!("{}_.:-{}", "A".repeat(30), "z9".repeat(15));
    assert_eq!(longest.len(), 64);
    let w = c.join(&longest).await;
    assert_eq!(w["room"], longest.as_str());
}

#[tokio::test]
async fn room_capacity_is_enforced() {
    let relay = Relay::start(&["--room-capacity", "2"]).await;
    let room = room("cap");
    let (mut clients, _) = joined(&relay, &room, 2).await;

    let mut third = relay.connect().await;
    third
        .send_json(json!({"type": "join", "room": room, "id": "j3"}))
        .await;
    let e = third.expect_error("room-full").await;
    assert_eq!(e["ref"], "j3");
    // The members saw nobody join.
    clients[0].ping_pong().await;
    clients[1].ping_pong().await;

    // Another room is unaffected, and the refused client may still join elsewhere.
    let w = third.join(&format!("{room}-other")).await;
    assert_eq!(w["peers"], json!([]));
    third.send_json(json!({"type": "leave"})).await;

    // Once a member leaves there is room again.
    clients[1].send_json(json!({"type": "leave"})).await;
    clients[0].expect("peer-left").await;
    let w = third.join(&room).await;
    assert_eq!(w["peers"].as_array().unwrap().len(), 1, "{w}");
}

#[tokio::test]
async fn one_room_per_connection_and_leave_allows_another() {
    let relay = Relay::start(&[]).await;
    let room1 = room("one");
    let room2 = room("two");
    let (mut others, other_ids) = joined(&relay, &room1, 1).await;
    let mut a = relay.connect().await;
    let w = a.join(&room1).await;
    let a_id = peer_id(&w);
    others[0].expect("peer-joined").await;

    a.send_json(json!({"type": "join", "room": room2, "id": 42}))
        .await;
    let e = a.expect_error("already-joined").await;
    assert_eq!(e["ref"], 42);
    a.send_json(json!({"type": "join", "room": room1, "id": 43}))
        .await;
    let e = a.expect_error("already-joined").await;
    assert_eq!(e["ref"], 43);

    // Still a member of room1: a signal reaches it.
    others[0]
        .send_json(json!({"type": "signal", "to": a_id, "data": "still here?"}))
        .await;
    let s = a.expect("signal").await;
    assert_eq!(s["from"], other_ids[0].as_str());
    assert_eq!(s["data"], "still here?");

    a.send_json(json!({"type": "leave"})).await;
    let left = others[0].expect("peer-left").await;
    assert_eq!(left["peerId"], a_id.as_str());
    assert_eq!(left["reason"], "left");

    let w2 = a.join(&room2).await;
    assert_eq!(w2["room"], room2.as_str());
    assert_eq!(w2["peers"], json!([]));
    // Nothing of room2 reaches room1.
    others[0].ping_pong().await;
}

#[tokio::test]
async fn signal_broadcast_leave_need_a_join() {
    let relay = Relay::start(&[]).await;
    let mut c = relay.connect().await;
    c.send_json(json!({"type": "signal", "to": "AAAAAAAAAAAAAAAAAAAAAAAA", "data": 1, "id": 1}))
        .await;
    assert_eq!(c.expect_error("not-joined").await["ref"], 1);
    c.send_json(json!({"type": "broadcast", "data": 1, "id": "b"}))
        .await;
    assert_eq!(c.expect_error("not-joined").await["ref"], "b");
    c.send_json(json!({"type": "leave", "id": 3})).await;
    assert_eq!(c.expect_error("not-joined").await["ref"], 3);
    // ping needs no join
    c.ping_pong().await;

    // After leaving, the same applies again.
    let room = room("nj");
    c.join(&room).await;
    c.send_json(json!({"type": "leave"})).await;
    c.send_json(json!({"type": "broadcast", "data": 1, "id": 4}))
        .await;
    assert_eq!(c.expect_error("not-joined").await["ref"], 4);
}
