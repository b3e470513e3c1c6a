//! Property tests: every message survives a JSON round trip, the relay's decoder agrees
//! with serde on what clients send, and no input makes the decoder panic.

use meshwire_protocol::json::decode_client;
use meshwire_protocol::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::borrow::Cow;

fn text() -> impl Strategy<Value = String> {
    // Includes quotes, backslashes, control characters and non-ASCII, all of which need
    // escaping in JSON.
    "[a-zA-Z0-9 _\"\\\\\u{0}-\u{1f}é漢🦊-]{0,24}"
}

fn cow() -> impl Strategy<Value = Cow<'static, str>> {
    text().prop_map(Cow::Owned)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(text(), json_value(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

fn message_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        any::<i64>().prop_map(MessageId::Number),
        text().prop_map(MessageId::Text)
    ]
}

fn client_message() -> impl Strategy<Value = ClientMessage<'static, Value>> {
    prop_oneof![
        (
            cow(),
            proptest::option::of(cow()),
            proptest::option::of(object()),
            proptest::option::of(cow()),
            proptest::option::of(cow())
        )
            .prop_map(
                |(room, name, meta, token, resume)| ClientMessage::Join(Join {
                    room,
                    name,
                    meta,
                    token,
                    resume
                })
            ),
        (cow(), json_value()).prop_map(|(to, data)| ClientMessage::Signal { to, data }),
        json_value().prop_map(|data| ClientMessage::Broadcast { data }),
        Just(ClientMessage::Leave),
        Just(ClientMessage::Ping),
    ]
}

fn peer_info() -> impl Strategy<Value = PeerInfo<'static, Value>> {
    (
        cow(),
        proptest::option::of(cow()),
        proptest::option::of(object()),
        proptest::option::of(cow()),
    )
        .prop_map(|(id, name, meta, user_id)| PeerInfo {
            id,
            name,
            meta,
            user_id,
        })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(ErrorCode::ALL.to_vec())
}

fn server_message() -> impl Strategy<Value = ServerMessage<'static, Value>> {
    let ice = (
        prop::collection::vec(text(), 1..3),
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(|(urls, username, credential)| IceServer {
            urls,
            username,
            credential,
        });
    let limits = (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(a, b, c, d, e, f)| Limits {
            max_message_bytes: a,
            rate_limit: b,
            rate_burst: c,
            room_capacity: d,
            resume_grace_ms: e,
            ping_interval_ms: f,
        });
    prop_oneof![
        (
            cow(),
            cow(),
            prop::collection::vec(peer_info(), 0..3),
            prop::collection::vec(ice, 0..3),
            cow(),
            any::<bool>(),
            limits
        )
            .prop_map(
                |(peer_id, room, peers, ice_servers, resume_token, resumed, limits)| {
                    ServerMessage::Welcome(Welcome {
                        peer_id,
                        room,
                        peers,
                        ice_servers,
                        resume_token,
                        resumed,
                        limits,
                    })
                }
            ),
        peer_info().prop_map(|peer| ServerMessage::PeerJoined { peer }),
        (
            cow(),
            prop_oneof![Just(LeaveReason::Left), Just(LeaveReason::Lost)]
        )
            .prop_map(|(peer_id, reason)| ServerMessage::PeerLeft { peer_id, reason }),
        (cow(), json_value()).prop_map(|(from, data)| ServerMessage::Signal { from, data }),
        (cow(), json_value()).prop_map(|(from, data)| ServerMessage::Broadcast { from, data }),
        (error_code(), cow(), proptest::option::of(message_id())).prop_map(
            |(code, message, reference)| {
                ServerMessage::Error {
                    code,
                    message,
                    reference,
                }
            }
        ),
        any::<u64>().prop_map(|reconnect_in_ms| ServerMessage::Shutdown { reconnect_in_ms }),
        Just(ServerMessage::Pong),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_messages_round_trip(id in proptest::option::of(message_id()), message in client_message()) {
        let frame = ClientFrame { id, message };
        let text = serde_json::to_string(&frame).unwrap();
        let back: ClientFrame<'_, Value> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, frame);
    }

    #[test]
    fn server_messages_round_trip(message in server_message()) {
        let text = serde_json::to_string(&message).unwrap();
        let back: ServerMessage<'_, Value> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, message);
    }

    /// What the relay's one-pass decoder reads is what serde reads, with payloads kept
    /// byte for byte (for messages within the relay's limits).
    #[test]
    fn decoder_agrees_with_serde(id in proptest::option::of(message_id()), message in client_message()) {
        let frame = ClientFrame { id: id.clone(), message };
        let text = serde_json::to_string(&frame).unwrap();
        let within_limits = match &frame.message {
            ClientMessage::Join(j) => {
                j.name.as_ref().is_none_or(|n| n.len() <= MAX_NAME_LEN)
                    && j.meta.as_ref().is_none_or(|m| m.to_string().len() <= MAX_META_BYTES)
            }
            _ => true,
        };
        prop_assume!(within_limits);
        let inbound = decode_client(&text).unwrap();
        let raw_id = inbound.id.map(|r| serde_json::from_str::<MessageId>(r.get()).unwrap());
        prop_assert_eq!(raw_id, id);
        let as_value = |raw: meshwire_protocol::json::Raw<'_>| serde_json::from_str::<Value>(raw.get()).unwrap();
        match (inbound.message, frame.message) {
            (ClientMessage::Signal { to, data }, ClientMessage::Signal { to: t2, data: d2 }) => {
                prop_assert_eq!(to, t2);
                prop_assert_eq!(as_value(data), d2);
            }
            (ClientMessage::Broadcast { data }, ClientMessage::Broadcast { data: d2 }) => {
                prop_assert_eq!(as_value(data), d2);
            }
            (ClientMessage::Join(a), ClientMessage::Join(b)) => {
                prop_assert_eq!(a.room, b.room);
                prop_assert_eq!(a.name, b.name);
                prop_assert_eq!(a.token, b.token);
                prop_assert_eq!(a.resume, b.resume);
                prop_assert_eq!(a.meta.map(as_value), b.meta);
            }
            (ClientMessage::Leave, ClientMessage::Leave) | (ClientMessage::Ping, ClientMessage::Ping) => {}
            (a, b) => prop_assert!(false, "decoded {:?} as {:?}", b, a),
        }
    }

    #[test]
    fn decoder_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_client(&text);
    }

    #[test]
    fn decoder_never_panics_on_json(value in json_value(), kind in prop::sample::select(vec!["join", "signal", "broadcast", "leave", "ping", "x"])) {
        // Arbitrary shapes, with and without a plausible `type`.
        let _ = decode_client(&value.to_string());
        if let Value::Object(mut map) = value {
            map.insert("type".into(), json!(kind));
            let _ = decode_client(&Value::Object(map).to_string());
        }
    }
}

/// Opaque payloads are skipped, not parsed, so nesting depth cannot exhaust the stack:
/// a deep `data` is kept as is (the frame size limit bounds it), and deep nesting in a
/// field the decoder does read is refused.
#[test]
fn decoder_survives_deep_nesting() {
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep = format!(r#"{{"type":"signal","to":"a","data":{nested}}}"#);
    match decode_client(&deep).unwrap().message {
        ClientMessage::Signal { data, .. } => assert_eq!(data.get().len(), nested.len()),
        other => panic!("decoded as {other:?}"),
    }
    let deep_room = format!(r#"{{"type":"join","room":{nested}}}"#);
    assert_eq!(
        decode_client(&deep_room).unwrap_err().code,
        ErrorCode::BadMessage
    );
}

#[test]
fn unknown_error_codes_are_tolerated() {
    let msg: ServerMessage<'_, Value> =
        serde_json::from_str(r#"{"type":"error","code":"brand-new-code","message":"m"}"#).unwrap();
    assert!(matches!(
        msg,
        ServerMessage::Error {
            code: ErrorCode::Unknown,
            ..
        }
    ));
}

#[test]
fn wire_spelling_matches_the_spec() {
    for code in ErrorCode::ALL {
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
    }
    let left: ServerMessage<'_, Value> = ServerMessage::PeerLeft {
        peer_id: "p".into(),
        reason: LeaveReason::Lost,
    };
    assert_eq!(
        serde_json::to_value(&left).unwrap(),
        json!({"type":"peer-left","peerId":"p","reason":"lost"})
    );
    let shutdown: ServerMessage<'_, Value> = ServerMessage::Shutdown { reconnect_in_ms: 5 };
    assert_eq!(
        serde_json::to_value(&shutdown).unwrap(),
        json!({"type":"shutdown","reconnectInMs":5})
    );
}
