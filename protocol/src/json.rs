//! The relay's decoder: one pass over a text frame into a [`ClientMessage`] that borrows
//! from the frame, with the opaque payloads kept as [`RawValue`] so they can be
//! forwarded without being parsed into a tree and printed again.
//!
//! serde's internally tagged enums buffer their input, which `RawValue` cannot be read
//! from, so the frame is first read into a flat struct of every field any message may
//! have, then checked against its `type`.

use crate::{ClientMessage, ErrorCode, Join, MAX_META_BYTES, MAX_NAME_LEN};
use serde::Deserialize;
pub use serde_json::value::RawValue;
use std::borrow::Cow;

/// A decoded client frame. `id` is kept raw (a JSON number or string, as sent) so the
/// relay can echo it as `ref` exactly.
#[derive(Debug)]
pub struct Inbound<'a> {
    /// The client's `id`, if it sent one.
    pub id: Option<&'a RawValue>,
    /// The message.
    pub message: ClientMessage<'a, &'a RawValue>,
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
    pub id: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Flat<'a> {
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

/// JSON `null`, used for a `signal`/`broadcast` without `data`.
fn null<'a>() -> &'a RawValue {
    RawValue::NULL
}

fn bad(message: impl Into<Cow<'static, str>>, id: Option<&RawValue>) -> DecodeError<'_> {
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
    let flat: Flat<'_> = serde_json::from_str(text).map_err(|e| {
        let msg = if e.classify() == serde_json::error::Category::Data {
            format!("a field has the wrong type: {e}")
        } else {
            format!("not a JSON object: {e}")
        };
        bad(msg, None)
    })?;
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

fn is_number_or_string(raw: &RawValue) -> bool {
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

    #[test]
    fn missing_data_is_null() {
        match decode_client(r#"{"type":"broadcast"}"#).unwrap().message {
            ClientMessage::Broadcast { data } => assert_eq!(data.get(), "null"),
            other => panic!("decoded as {other:?}"),
        }
    }
}
