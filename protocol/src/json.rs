//! The relay's decoder: one pass over a text frame into a [`ClientMessage`] that borrows
//! from the frame, with the opaque payloads kept as [`Raw`] slices of it so they can be
//! forwarded without being parsed into a tree and printed again.
//!
//! The frame is first read into a flat struct of every field any message may have,
//! then checked against its `type`. Frames of the usual shape are read by a validating
//! scanner of our own (`fast`); anything else, and every error, by serde: its
//! internally tagged enums buffer their input, which `RawValue` cannot be read from, so
//! it too reads the flat struct.

use crate::{ClientMessage, ErrorCode, Join, MAX_META_BYTES, MAX_NAME_LEN};
use serde::Deserialize;
pub use serde_json::value::RawValue;
use std::borrow::Cow;

mod fast;

/// A JSON value exactly as the client wrote it (checked against the JSON grammar, never
/// parsed into a tree), borrowed from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raw<'a>(&'a str);

impl<'a> Raw<'a> {
    /// JSON `null`.
    pub const NULL: Raw<'static> = Raw("null");

    /// The JSON text.
    pub fn get(self) -> &'a str {
        self.0
    }

    /// An owned copy, for keeping beyond the frame (a member's `meta`).
    pub fn to_boxed(self) -> Option<Box<RawValue>> {
        RawValue::from_string(self.0.to_owned()).ok()
    }
}

impl<'a> From<&'a RawValue> for Raw<'a> {
    fn from(raw: &'a RawValue) -> Self {
        Raw(raw.get())
    }
}

/// A decoded client frame. `id` is kept raw (a JSON number or string, as sent) so the
/// relay can echo it as `ref` exactly.
#[derive(Debug)]
pub struct Inbound<'a> {
    /// The client's `id`, if it sent one.
    pub id: Option<Raw<'a>>,
    /// The message.
    pub message: ClientMessage<'a, Raw<'a>>,
}

/// Why a frame could not be decoded. `id` is the frame's `id` when it could be read,
/// so the error reply can carry it as `ref`.
#[derive(Debug)]
pub struct DecodeError<'a> {
    /// [`ErrorCode::BadMessage`] or [`ErrorCode::TooLarge`].
    pub code: ErrorCode,
    /// What was wrong, for the client's developer.
    pub message: Cow<'static, str>,
    /// The frame's `id`, if readable.
    pub id: Option<Raw<'a>>,
}

/// Every field any client message may have.
#[derive(Default)]
struct Flat<'a> {
    kind: Option<Cow<'a, str>>,
    id: Option<Raw<'a>>,
    to: Option<Cow<'a, str>>,
    data: Option<Raw<'a>>,
    room: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    meta: Option<Raw<'a>>,
    token: Option<Cow<'a, str>>,
    resume: Option<Cow<'a, str>>,
}

/// [`Flat`] as serde reads it.
#[derive(Deserialize)]
struct SerdeFlat<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    to: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    room: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    meta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    token: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    resume: Option<Cow<'a, str>>,
}

impl<'a> From<SerdeFlat<'a>> for Flat<'a> {
    fn from(f: SerdeFlat<'a>) -> Self {
        Flat {
            kind: f.kind,
            id: f.id.map(Raw::from),
            to: f.to,
            data: f.data.map(Raw::from),
            room: f.room,
            name: f.name,
            meta: f.meta.map(Raw::from),
            token: f.token,
            resume: f.resume,
        }
    }
}

/// JSON `null`, used for a `signal`/`broadcast` without `data`.
fn null<'a>() -> Raw<'a> {
    Raw::NULL
}

fn bad(message: impl Into<Cow<'static, str>>, id: Option<Raw<'_>>) -> DecodeError<'_> {
    DecodeError {
        code: ErrorCode::BadMessage,
        message: message.into(),
        id,
    }
}

/// Decode one text frame from a client.
///
/// Unknown fields are ignored (so a client may add its own, and a `from` it sets is
/// simply dropped); a missing `data` counts as `null`.
pub fn decode_client(text: &str) -> Result<Inbound<'_>, DecodeError<'_>> {
    let flat = match fast::flat(text) {
        Some(flat) => flat,
        None => serde_json::from_str::<SerdeFlat<'_>>(text)
            .map_err(|e| {
                let msg = if e.classify() == serde_json::error::Category::Data {
                    format!("a field has the wrong type: {e}")
                } else {
                    format!("not a JSON object: {e}")
                };
                bad(msg, None)
            })?
            .into(),
    };
    let id = match flat.id {
        Some(raw) if !is_number_or_string(raw) => {
            return Err(bad("`id` must be a number or a string", None))
        }
        other => other,
    };
    let Some(kind) = flat.kind else {
        return Err(bad("missing `type`", id));
    };
    let message = match kind.as_ref() {
        "signal" => ClientMessage::Signal {
            to: flat
                .to
                .ok_or_else(|| bad("`signal` needs `to` (a peer id)", id))?,
            data: flat.data.unwrap_or_else(null),
        },
        "broadcast" => ClientMessage::Broadcast {
            data: flat.data.unwrap_or_else(null),
        },
        "join" => {
            let room = flat
                .room
                .ok_or_else(|| bad("`join` needs `room` (a string)", id))?;
            if let Some(name) = &flat.name {
                if name.len() > MAX_NAME_LEN {
                    return Err(DecodeError {
                        code: ErrorCode::TooLarge,
                        message: Cow::Borrowed("`name` is longer than 128 bytes"),
                        id,
                    });
                }
            }
            if let Some(meta) = flat.meta {
                if !meta.get().starts_with('{') {
                    return Err(bad("`meta` must be a JSON object", id));
                }
                if meta.get().len() > MAX_META_BYTES {
                    return Err(DecodeError {
                        code: ErrorCode::TooLarge,
                        message: Cow::Borrowed("`meta` is larger than 2048 bytes of JSON"),
                        id,
                    });
                }
            }
            ClientMessage::Join(Join {
                room,
                name: flat.name,
                meta: flat.meta,
                token: flat.token,
                resume: flat.resume,
            })
        }
        "leave" => ClientMessage::Leave,
        "ping" => ClientMessage::Ping,
        other => {
            let shown: String = other.chars().take(32).collect();
            return Err(bad(
                format!("unknown message type {shown:?}; expected join, signal, broadcast, leave or ping"),
                id,
            ));
        }
    };
    Ok(Inbound { id, message })
}

fn is_number_or_string(raw: Raw<'_>) -> bool {
    matches!(
        raw.get().as_bytes().first(),
        Some(b'"' | b'-' | b'0'..=b'9')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_keeps_payload_bytes() {
        let frame =
            r#"{"type":"signal","to":"p1","data":{"sdp": "v=0\r\n", "x":[1, 2]},"from":"spoof"}"#;
        let inbound = decode_client(frame).unwrap();
        match inbound.message {
            ClientMessage::Signal { to, data } => {
                assert_eq!(to, "p1");
                assert_eq!(data.get(), r#"{"sdp": "v=0\r\n", "x":[1, 2]}"#);
            }
            other => panic!("decoded as {other:?}"),
        }
    }

    #[test]
    fn errors_carry_the_id() {
        let err = decode_client(r#"{"type":"signal","id":"r1"}"#).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadMessage);
        assert_eq!(err.id.unwrap().get(), r#""r1""#);
        let err = decode_client(r#"{"type":"nope","id":7}"#).unwrap_err();
        assert!(err.message.contains("nope"), "{}", err.message);
        assert_eq!(err.id.unwrap().get(), "7");
    }

    #[test]
    fn rejects_what_is_not_a_message() {
        for frame in [
            "",
            "null",
            "[]",
            "\"join\"",
            "{",
            r#"{"room":"a"}"#,
            r#"{"type":5}"#,
            r#"{"type":"join"}"#,
            r#"{"type":"join","room":7}"#,
            r#"{"type":"join","room":"a","meta":[1]}"#,
            r#"{"type":"ping","id":{"a":1}}"#,
            r#"{"type":"ping","type":"ping"}"#,
        ] {
            let err = decode_client(frame).expect_err(frame);
            assert_eq!(err.code, ErrorCode::BadMessage, "{frame}");
        }
    }

    #[test]
    fn oversized_meta_and_name_are_too_large() {
        let meta = format!(
            r#"{{"type":"join","room":"a","meta":{{"k":"{}"}}}}"#,
            "x".repeat(3000)
        );
        assert_eq!(decode_client(&meta).unwrap_err().code, ErrorCode::TooLarge);
        let name = format!(
            r#"{{"type":"join","room":"a","name":"{}"}}"#,
            "n".repeat(200)
        );
        assert_eq!(decode_client(&name).unwrap_err().code, ErrorCode::TooLarge);
    }

    /// The fields as one comparable value.
    fn fields(f: &Flat<'_>) -> [Option<String>; 9] {
        let s = |c: &Option<Cow<'_, str>>| c.as_ref().map(|c| c.to_string());
        let r = |r: &Option<Raw<'_>>| r.map(|r| r.get().to_owned());
        [
            s(&f.kind),
            r(&f.id),
            s(&f.to),
            r(&f.data),
            s(&f.room),
            s(&f.name),
            r(&f.meta),
            s(&f.token),
            s(&f.resume),
        ]
    }

    /// Whenever the fast path answers, serde reads the frame and reads the same.
    fn agrees(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Some(fast) = fast::flat(text) {
            let serde = serde_json::from_str::<SerdeFlat<'_>>(text);
            proptest::prop_assert!(serde.is_ok(), "fast accepted what serde refuses: {text}");
            if let Ok(serde) = serde {
                proptest::prop_assert_eq!(fields(&fast), fields(&serde.into()), "{}", text);
            }
        }
        Ok(())
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            "(\\PC|[\"\\\\\n\t\u{1}]){0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("type".to_owned()),
                        Just("to".to_owned()),
                        Just("data".to_owned()),
                        Just("id".to_owned()),
                        Just("meta".to_owned()),
                        "[a-z\"]{0,4}"
                    ],
                    inner,
                    0..5
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_path_agrees_with_serde_on_json(value in json_value(), pretty: bool) {
            // As a whole frame, and as the payload of the usual signal.
            let signal = serde_json::json!({"type": "signal", "to": "p", "data": &value});
            for value in [value, signal] {
                let text = if pretty {
                    serde_json::to_string_pretty(&value).unwrap()
                } else {
                    value.to_string()
                };
                agrees(&text)?;
            }
        }

        #[test]
        fn fast_path_agrees_with_serde_on_damaged_json(
            value in json_value(),
            edits in proptest::collection::vec((0usize..400, 0usize..3, proptest::sample::select(
                vec!['{', '}', '[', ']', '"', ',', ':', '\\', ' ', '0', '-', '.', 'e', 'n', 'u', 'l', 't', '\n', '\u{7}']
            )), 1..4),
        ) {
            let frame = serde_json::json!({"type": "signal", "to": "p", "data": value});
            let mut text: Vec<char> = frame.to_string().chars().collect();
            for (at, op, c) in edits {
                let at = at % (text.len() + 1);
                match op {
                    0 => text.insert(at, c),
                    1 if at < text.len() => { text.remove(at); }
                    _ if at < text.len() => text[at] = c,
                    _ => {}
                }
            }
            agrees(&text.into_iter().collect::<String>())?;
        }

        #[test]
        fn fast_path_agrees_with_serde_on_json_like_noise(noise in "[{}\\[\\]\",:0-9a-z\\\\ .eE+-]{0,40}") {
            agrees(&noise)?;
            agrees(&format!(r#"{{"type":"signal","to":"p","data":{noise}}}"#))?;
            agrees(&format!(r#"{{"data":"{noise}"}}"#))?;
        }
    }

    #[test]
    fn missing_data_is_null() {
        match decode_client(r#"{"type":"broadcast"}"#).unwrap().message {
            ClientMessage::Broadcast { data } => assert_eq!(data.get(), "null"),
            other => panic!("decoded as {other:?}"),
        }
    }
}
