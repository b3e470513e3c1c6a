//! The relay never falls over on garbage: hundreds of random or hostile frames on one
//! connection get errors, and the relay keeps serving that connection and others.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

const KEYS: [&str; 12] = [
    "type", "id", "room", "to", "data", "name", "meta", "token", "resume", "from", "peerId", "ref",
];
const TYPES: [&str; 10] = [
    "join",
    "signal",
    "broadcast",
    "leave",
    "ping",
    "pong",
    "welcome",
    "error",
    "",
    "JOIN",
];

fn random_scalar(rng: &mut StdRng) -> String {
    match rng.random_range(0..12) {
        0 => "null".into(),
        1 => "true".into(),
        2 => format!("{}", rng.random::<i64>()),
        3 => "1e400".into(),
        4 => "-1e-400".into(),
        5 => "184467440737095516161844674407370955161".into(),
        6 => format!("{:?}", TYPES[rng.random_range(0..TYPES.len())]),
        7 => format!("{:?}", "x".repeat(rng.random_range(0..300))),
        8 => r#""\u0000\ud800\"\\""#.into(),
        9 => "-0.0".into(),
        10 => format!("{}", rng.random::<f64>()),
        _ => r#""room-1""#.into(),
    }
}

fn random_json(rng: &mut StdRng, depth: u32) -> String {
    if depth == 0 || rng.random_bool(0.4) {
        return random_scalar(rng);
    }
    if rng.random_bool(0.3) {
        let n = rng.random_range(0..5);
        let items: Vec<String> = (0..n).map(|_| random_json(rng, depth - 1)).collect();
        return format!("[{}]", items.join(","));
    }
    let n = rng.random_range(0..6);
    let mut fields: Vec<String> = (0..n)
        .map(|_| {
            format!(
                "{:?}:{}",
                KEYS[rng.random_range(0..KEYS.len())],
                random_json(rng, depth - 1)
            )
        })
        .collect();
    if rng.random_bool(0.7) {
        fields.push(format!(
            "\"type\":{:?}",
            TYPES[rng.random_range(0..TYPES.len())]
        ));
    }
    format!("{{{}}}", fields.join(","))
}

fn random_frame(rng: &mut StdRng, i: usize) -> Message {
    match i % 10 {
        0 => {
            let bytes: Vec<u8> = (0..rng.random_range(0..2000))
                .map(|_| rng.random())
                .collect();
            Message::text(String::from_utf8_lossy(&bytes).into_owned())
        }
        1 => Message::binary(
            (0..rng.random_range(0..500))
                .map(|_| rng.random::<u8>())
                .collect::<Vec<u8>>(),
        ),
        2 => {
            let depth = rng.random_range(100..20_000);
            Message::text(if rng.random_bool(0.5) {
                "[".repeat(depth)
            } else {
                r#"{"a":"#.repeat(depth)
            })
        }
        3 => {
            let depth = rng.random_range(100..5_000);
            Message::text(format!(
                r#"{{"type":"broadcast","data":{}1{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            ))
        }
        4 => Message::text(format!(r#"{{"type":"ping","id":{}}}"#, random_scalar(rng))),
        5 => {
            // A valid-looking message with a corrupted byte somewhere.
            let mut s = json!({"type": "signal", "to": "abc", "data": {"x": [1, 2, 3]}, "id": 1})
                .to_string()
                .into_bytes();
            let at = rng.random_range(0..s.len());
            let junk = b"{}[]\",:\\ 0";
            s[at] = junk[rng.random_range(0..junk.len())];
            Message::text(String::from_utf8_lossy(&s).into_owned())
        }
        _ => Message::text(random_json(rng, 5)),
    }
}

/// A relay reply must at least be a grammatical JSON object with a string `type`.
fn check_reply(text: &str) {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .unwrap_or_else(|e| panic!("relay sent invalid JSON ({e}): {text}"));
    assert!(
        text.starts_with('{') && text.contains("\"type\":\""),
        "not a protocol message: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_errors_and_the_relay_keeps_serving() {
    let relay = Relay::start(&["--rate-limit", "0"]).await;
    let room = room("fuzz");
    let (mut peers, ids) = joined(&relay, &room, 1).await;
    let mut c = relay.connect().await;
    let mut rng = StdRng::seed_from_u64(0x6d65_7368);
    let mut replies = 0;
    for i in 0..400 {
        let frame = random_frame(&mut rng, i);
        let shown = format!("{frame:?}").chars().take(200).collect::<String>();
        within(STEP, "sending a fuzz frame", c.ws.send(frame))
            .await
            .expect("send");
        // Everything the relay answers to the fuzz frame comes before its answer to
        // the next message: an unknown type whose error carries a unique `ref`.
        let marker = format!("sync-{i}");
        c.send_json(json!({"type": "sync", "id": marker})).await;
        loop {
            let text = match c.recv_text_within(STEP).await {
                Some(t) => t,
                None => panic!("no answer after fuzz frame #{i}: {shown}"),
            };
            check_reply(&text);
            if text.contains(&format!(r#""ref":"{marker}""#)) {
                break;
            }
            replies += 1;
        }
    }
    assert!(
        replies >= 200,
        "most garbage frames should get an error, got {replies} replies"
    );

    // The fuzzed connection, the relay and other peers are all fine.
    c.ping_pong().await;
    assert_eq!(relay.health().await["status"], "ok");
    // Drain whatever the fuzzing caused for the other peer (joins/broadcasts), then use it.
    peers[0].send_json(json!({"type": "ping"})).await;
    peers[0].recv_until("pong", STEP).await;
    let mut fresh = relay.connect().await;
    let w = fresh.join(&room).await;
    fresh
        .send_json(json!({"type": "signal", "to": ids[0], "data": "still works"}))
        .await;
    let (s, _) = peers[0].recv_until("signal", STEP).await;
    assert_eq!(s["from"], w["peerId"]);
    assert_eq!(s["data"], "still works");
}

#[tokio::test]
async fn invalid_utf8_text_frame_does_not_hurt_the_relay() {
    let relay = Relay::start(&[]).await;
    let mut bystander = relay.connect().await;
    let mut c = relay.connect().await;
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    c.ws.send(Message::Frame(frame))
        .await
        .expect("send raw frame");
    // Either refused as a message, or the connection is closed (1007): both fine.
    match c.ws.next().await {
        Some(Ok(Message::Text(t))) => {
            let m = parse_server(t.as_str());
            assert_eq!(m["code"], "bad-message", "{m}");
            c.ping_pong().await;
        }
        Some(Ok(Message::Close(Some(f)))) => assert_eq!(u16::from(f.code), 1007, "{f:?}"),
        other => panic!("unexpected answer to invalid UTF-8: {other:?}"),
    }
    bystander.ping_pong().await;
    assert_eq!(relay.health().await["status"], "ok");
}
