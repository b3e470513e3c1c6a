//! Identity and delivery: relay-assigned peer ids, `from` stamped by the relay,
//! payloads forwarded byte for byte, and room isolation of signal and broadcast.

mod common;

use common::*;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::collections::HashSet;

/// The raw `data` of a relay message, exactly as the relay wrote it.
fn raw_data(text: &str) -> String {
    #[derive(Deserialize)]
    struct WithData<'a> {
        #[serde(borrow)]
        data: &'a RawValue,
    }
    let parsed: WithData<'_> =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("no data in {text}: {e}"));
    parsed.data.get().to_owned()
}

#[tokio::test]
async fn peer_ids_are_long_random_and_url_safe() {
    let relay = Relay::start(&[]).await;
    let mut seen = HashSet::new();
    for i in 0..20 {
        let mut c = relay.connect().await;
        // Each in its own room so none is reused.
        let w = c.join(&room(&format!("ids{i}"))).await;
        let id = peer_id(&w);
        assert!(
            is_valid_peer_id(&id),
            "peer id {id:?} is not ≥22 chars of [A-Za-z0-9_-]"
        );
        assert!(seen.insert(id.clone()), "peer id {id} given twice");
        c.close().await;
    }
    // Ids are not sequential: no two share a long common prefix.
    let ids: Vec<_> = seen.into_iter().collect();
    for a in &ids {
        for b in &ids {
            if a != b {
                let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
                assert!(common < 12, "ids {a} and {b} share a {common}-char prefix");
            }
        }
    }
}

#[tokio::test]
async fn join_cannot_choose_its_own_id() {
    let relay = Relay::start(&[]).await;
    let room = room("choose");
    let mut c = relay.connect().await;
    let w = c
        .join_with(
            json!({"type": "join", "room": room, "peerId": "mine", "id": "mine", "from": "mine"}),
        )
        .await;
    assert_ne!(w["peerId"], "mine");
    assert!(is_valid_peer_id(&peer_id(&w)));
}

#[tokio::test]
async fn signal_is_delivered_with_relay_stamped_from() {
    let relay = Relay::start(&[]).await;
    let room = room("sig");
    let (mut c, ids) = joined(&relay, &room, 3).await;

    c[0].send_json(
        json!({"type": "signal", "to": ids[1], "data": {"sdp": "offer"}, "from": ids[2]}),
    )
    .await;
    let s = c[1].expect("signal").await;
    assert_eq!(
        s["from"],
        ids[0].as_str(),
        "relay must stamp the real sender, ignoring the spoofed from: {s}"
    );
    assert_eq!(s["data"], json!({"sdp": "offer"}));
    // Only the addressee gets it, and the sender gets no echo.
    c[2].ping_pong().await;
    c[0].ping_pong().await;

    // Spoofing with a made-up id too.
    c[2].send_json(json!({"type": "broadcast", "data": "hi", "from": "ADMIN"}))
        .await;
    for i in [0, 1] {
        let b = c[i].expect("broadcast").await;
        assert_eq!(b["from"], ids[2].as_str(), "{b}");
        assert_eq!(b["data"], "hi");
    }
}

#[tokio::test]
async fn data_is_forwarded_byte_for_byte() {
    let relay = Relay::start(&[]).await;
    let room = room("bytes");
    let (mut c, ids) = joined(&relay, &room, 2).await;
    let payloads = [
        r#"{"z" : 1,   "a":[1 ,2,  3.50], "s":"v=0\r\no=- 46117 2 IN IP4 127.0.0.1\r\n", "u":"\u00e9\ud83d\ude00", "e":1E+2}"#,
        r#"  "string with  spaces"  "#.trim(),
        r#"[ ]"#,
        r#"-0.0000"#,
        r#"{"nested":{"deep":[{"x":null},true,false]},"dup":1,"dup":2}"#,
        "{\n\t\"tabs\" :\t\"and newlines\"\n}",
        r#""é 😀 ✓""#,
    ];
    for p in payloads {
        let frame = format!(r#"{{"type":"signal","to":"{}","data":{p}}}"#, ids[1]);
        c[0].send_text(frame).await;
        let text = c[1].recv_text().await;
        assert_eq!(parse_server(&text)["type"], "signal", "{text}");
        assert_eq!(raw_data(&text), p, "signal data altered; relay sent {text}");

        let frame = format!(r#"{{"data":{p},"type":"broadcast"}}"#);
        c[1].send_text(frame).await;
        let text = c[0].recv_text().await;
        assert_eq!(parse_server(&text)["type"], "broadcast", "{text}");
        assert_eq!(
            raw_data(&text),
            p,
            "broadcast data altered; relay sent {text}"
        );
    }
}

#[tokio::test]
async fn signal_only_reaches_peers_of_the_same_room() {
    let relay = Relay::start(&[]).await;
    let room_a = room("iso-a");
    let room_b = room("iso-b");
    let (mut a, a_ids) = joined(&relay, &room_a, 2).await;
    let (mut b, b_ids) = joined(&relay, &room_b, 1).await;

    // To a peer in another room: unknown-peer, nothing delivered.
    a[0].send_json(json!({"type": "signal", "to": b_ids[0], "data": "x", "id": 1}))
        .await;
    let other_room = a[0].expect_error("unknown-peer").await;
    assert_eq!(other_room["ref"], 1);
    // To an id that exists nowhere: the same error.
    let nowhere = "Q".repeat(b_ids[0].len());
    a[0].send_json(json!({"type": "signal", "to": nowhere, "data": "x", "id": 2}))
        .await;
    let missing = a[0].expect_error("unknown-peer").await;
    assert_eq!(missing["ref"], 2);
    assert_eq!(
        other_room["message"]
            .as_str()
            .unwrap()
            .replace(&b_ids[0], "<id>"),
        missing["message"]
            .as_str()
            .unwrap()
            .replace(&nowhere, "<id>"),
        "the error must not reveal whether the id exists in another room"
    );
    b[0].ping_pong().await;

    // Signalling oneself is not delivering to another peer of the room either way;
    // whatever the relay does, the other member must not get it.
    a[0].send_json(json!({"type": "signal", "to": "", "data": "x", "id": 3}))
        .await;
    let e = a[0].recv().await;
    assert_eq!(e["type"], "error", "{e}");
    assert_eq!(e["ref"], 3, "{e}");

    // Same-room still works.
    a[0].send_json(json!({"type": "signal", "to": a_ids[1], "data": "ok"}))
        .await;
    assert_eq!(a[1].expect("signal").await["data"], "ok");
    b[0].ping_pong().await;
}

#[tokio::test]
async fn broadcast_stays_in_the_room_and_is_not_echoed() {
    let relay = Relay::start(&[]).await;
    let room_a = room("bc-a");
    let room_b = room("bc-b");
    let (mut a, a_ids) = joined(&relay, &room_a, 3).await;
    let (mut b, _) = joined(&relay, &room_b, 2).await;

    a[0].send_json(json!({"type": "broadcast", "data": {"n": 1}}))
        .await;
    for i in [1, 2] {
        let m = a[i].expect("broadcast").await;
        assert_eq!(m["from"], a_ids[0].as_str());
        assert_eq!(m["data"], json!({"n": 1}));
    }
    // The broadcast has been fanned out; the sender and the other room got nothing.
    a[0].ping_pong().await;
    b[0].ping_pong().await;
    b[1].ping_pong().await;
}

#[tokio::test]
async fn messages_between_two_peers_keep_their_order() {
    let relay = Relay::start(&[]).await;
    let room = room("order");
    let (mut c, ids) = joined(&relay, &room, 2).await;
    for n in 0..100 {
        if n % 2 == 0 {
            c[0].send_json(json!({"type": "signal", "to": ids[1], "data": n}))
                .await;
        } else {
            c[0].send_json(json!({"type": "broadcast", "data": n}))
                .await;
        }
    }
    for n in 0..100 {
        let m = c[1].recv().await;
        assert_eq!(m["data"], n, "out of order: {m}");
        assert_eq!(m["type"], if n % 2 == 0 { "signal" } else { "broadcast" });
    }
}
