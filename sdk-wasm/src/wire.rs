//! The relay protocol (`meshwire_protocol`, docs/protocol.md) as JavaScript values:
//! client frames are built as objects and `JSON.stringify`d, relay frames are
//! `JSON.parse`d and read field by field. Peer signals (`signal.data`) likewise.
//!
//! Why not serde: deserialising the internally tagged `ServerMessage` buffers every
//! frame into serde's `Content` tree, and with serde-wasm-bindgen that machinery was
//! the largest part of the wasm (docs/benchmarks.md). The protocol crate stays the
//! contract: names come from its types where it has them (`ErrorCode`, `Source`,
//! `SdpKind`), and browser tests (`wire_*` in tests/browser.rs) check these readers and
//! writers against its serde types both ways. Fields the SDK does not use (`room`,
//! `ref`, the `limits` other than `pingIntervalMs`) are not checked.
//!
//! Public (and hidden from the docs) only for those tests; it is not part of the SDK's
//! API.

use crate::js::{self, get, get_bool, get_f64, get_string, object, set};
use crate::prelude::*;
use js_sys::Array;
use meshwire_protocol::peer::{MediaInfo, SdpKind, Source};
use meshwire_protocol::ErrorCode;
use wasm_bindgen::{JsCast, JsValue};

/// A relay → client message, with the parts the SDK uses.
pub enum Frame {
    /// `welcome`.
    Welcome {
        /// `peerId`.
        peer_id: String,
        /// `resumeToken`.
        resume_token: String,
        /// `resumed` (false when absent).
        resumed: bool,
        /// `PeerInfo[]` as sent.
        peers: Array,
        /// `iceServers` as sent.
        ice_servers: JsValue,
        /// `limits.pingIntervalMs` (15 s if absent): paces the SDK's liveness check.
        ping_interval_ms: f64,
        /// `limits.rateLimit` and `limits.rateBurst` (0 if absent: no limit): the
        /// SDK keeps under them (`room::Pace`).
        rate_limit: f64,
        rate_burst: f64,
    },
    /// `peer-joined`.
    PeerJoined {
        /// The `PeerInfo` as sent.
        peer: JsValue,
        /// Its `id`.
        id: String,
    },
    /// `peer-left`.
    PeerLeft {
        /// `peerId`.
        peer_id: String,
        /// `"left"` or `"lost"`.
        reason: &'static str,
    },
    /// `signal`.
    Signal {
        /// The sender.
        from: String,
        /// The payload as sent (a peer signal, see [`decode_signal`]).
        data: JsValue,
    },
    /// `broadcast`.
    Broadcast {
        /// The sender.
        from: String,
        /// The payload as sent.
        data: JsValue,
    },
    /// `error`.
    Error {
        /// One of [`ErrorCode`]'s spellings (`"internal"` for a code this SDK does not
        /// know, as docs/protocol.md asks of clients).
        code: &'static str,
        /// For humans.
        message: String,
    },
    /// `shutdown`.
    Shutdown {
        /// `reconnectInMs`.
        reconnect_in_ms: f64,
    },
    /// `pong`.
    Pong,
}

/// Reads one relay frame; the error names what was wrong, for a warning.
pub fn decode(text: &JsValue) -> Result<Frame, &'static str> {
    let v = js::parse(text).map_err(|_| "not JSON")?;
    if !v.is_object() {
        return Err("not an object");
    }
    let kind = string(&v, "type")?;
    Ok(match kind.as_str() {
        "welcome" => {
            let peers = get(&v, "peers");
            if !Array::is_array(&peers) {
                return Err("peers");
            }
            let limits = get(&v, "limits");
            Frame::Welcome {
                peer_id: string(&v, "peerId")?,
                resume_token: string(&v, "resumeToken")?,
                resumed: get_bool(&v, "resumed").unwrap_or(false),
                peers: peers.into(),
                ice_servers: get(&v, "iceServers"),
                ping_interval_ms: get_f64(&limits, "pingIntervalMs")
                    .filter(|ms| *ms > 0.0)
                    .unwrap_or(15_000.0),
                rate_limit: get_f64(&limits, "rateLimit").unwrap_or(0.0),
                rate_burst: get_f64(&limits, "rateBurst").unwrap_or(0.0),
            }
        }
        "peer-joined" => {
            let peer = get(&v, "peer");
            let id = string(&peer, "id")?;
            Frame::PeerJoined { peer, id }
        }
        "peer-left" => Frame::PeerLeft {
            peer_id: string(&v, "peerId")?,
            reason: match get_string(&v, "reason").as_deref() {
                Some("left") => "left",
                Some("lost") => "lost",
                _ => return Err("reason"),
            },
        },
        "signal" => Frame::Signal {
            from: string(&v, "from")?,
            data: data(&v)?,
        },
        "broadcast" => Frame::Broadcast {
            from: string(&v, "from")?,
            data: data(&v)?,
        },
        "error" => Frame::Error {
            code: error_code(&string(&v, "code")?),
            message: string(&v, "message")?,
        },
        "shutdown" => Frame::Shutdown {
            reconnect_in_ms: get_f64(&v, "reconnectInMs").ok_or("reconnectInMs")?,
        },
        "pong" => Frame::Pong,
        _ => return Err("unknown type"),
    })
}

fn string(v: &JsValue, key: &'static str) -> Result<String, &'static str> {
    get_string(v, key).ok_or(key)
}

fn data(v: &JsValue) -> Result<JsValue, &'static str> {
    let data = get(v, "data");
    if data.is_undefined() {
        return Err("data");
    }
    Ok(data)
}

/// The relay's error code as one of [`ErrorCode`]'s spellings; a code from a newer
/// relay is `internal` (the users' error codes are a closed list, docs/sdk.md).
fn error_code(code: &str) -> &'static str {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .find(|c| *c == code)
        .unwrap_or(ErrorCode::Internal.as_str())
}

// ---- client frames -------------------------------------------------------------------

/// `join`.
pub fn join(
    room: &str,
    name: Option<&str>,
    token: Option<&str>,
    resume: Option<&str>,
    meta: &JsValue,
) -> String {
    let o = object(&[("type", "join".into()), ("room", room.into())]);
    for (key, value) in [("name", name), ("token", token), ("resume", resume)] {
        if let Some(value) = value {
            set(&o, key, &value.into());
        }
    }
    if meta.is_object() {
        set(&o, "meta", meta);
    }
    js::stringify(&o).unwrap_or_default()
}

/// `signal` carrying `data` (a peer signal, see [`Signal`]) to `to`.
pub fn signal(to: &str, data: &JsValue) -> Option<String> {
    js::stringify(&object(&[
        ("type", "signal".into()),
        ("to", to.into()),
        ("data", data.clone()),
    ]))
}

/// `broadcast` of the app's JSON value; `None` if it does not stringify.
pub fn broadcast(data: &JsValue) -> Option<String> {
    js::stringify(&object(&[
        ("type", "broadcast".into()),
        ("data", data.clone()),
    ]))
}

/// `leave`.
pub const LEAVE: &str = r#"{"type":"leave"}"#;

/// `ping` (answered by `pong`): the SDK's liveness probe on a quiet connection.
pub const PING: &str = r#"{"type":"ping"}"#;

// ---- peer signals (`meshwire_protocol::peer::PeerSignal`) ----------------------------

/// A peer signal as received, checked and in the shapes the browser takes.
pub struct Signal {
    /// The sender's track labels (replace any earlier list).
    pub media: Option<Vec<MediaInfo>>,
    /// An offer or answer: its kind, and an `RTCSessionDescriptionInit`.
    pub description: Option<(SdpKind, JsValue)>,
    /// `seq`: an offer's number on its connection, or the number of the offer an answer
    /// answers (0 if absent: a peer that does not number its offers).
    pub seq: u32,
    /// The description's SDP session id (`events::sdp_session`), filled in by the
    /// room when it routes the signal ("" without a description).
    pub session: String,
    /// An `RTCIceCandidateInit`.
    pub candidate: Option<JsValue>,
}

/// Reads a peer signal; the error names the field that was wrong.
pub fn decode_signal(data: &JsValue) -> Result<Signal, &'static str> {
    if !data.is_object() {
        return Err("not an object");
    }
    let media = match present(data, "media") {
        None => None,
        Some(list) if Array::is_array(&list) => {
            let mut media = Vec::new();
            for m in list.unchecked_ref::<Array>().iter() {
                media.push(MediaInfo {
                    mid: string(&m, "mid")?,
                    source: source(get_string(&m, "source").as_deref()).ok_or("source")?,
                    muted: get_bool(&m, "muted").unwrap_or(false),
                });
            }
            Some(media)
        }
        Some(_) => return Err("media"),
    };
    let description = match present(data, "description") {
        None => None,
        Some(d) => {
            let kind = get(&d, "type");
            let kind = match kind.as_string().as_deref() {
                Some("offer") => SdpKind::Offer,
                Some("answer") => SdpKind::Answer,
                Some("pranswer") => SdpKind::Pranswer,
                Some("rollback") => SdpKind::Rollback,
                _ => return Err("description.type"),
            };
            let sdp = get(&d, "sdp");
            if !sdp.is_string() {
                return Err("description.sdp");
            }
            let init = object(&[("type", get(&d, "type")), ("sdp", sdp)]);
            Some((kind, init))
        }
    };
    // `null` (end of candidates) is accepted and ignored.
    let candidate = match present(data, "candidate") {
        None => None,
        Some(c) => {
            if !get(&c, "candidate").is_string() {
                return Err("candidate.candidate");
            }
            let init = object(&[("candidate", get(&c, "candidate"))]);
            for key in ["sdpMid", "usernameFragment"] {
                if let Some(v) = present(&c, key) {
                    if !v.is_string() {
                        return Err("candidate");
                    }
                    set(&init, key, &v);
                }
            }
            if let Some(v) = present(&c, "sdpMLineIndex") {
                let index = v.as_f64().ok_or("candidate.sdpMLineIndex")?;
                if index != f64::from(index as u16) {
                    return Err("candidate.sdpMLineIndex");
                }
                set(&init, "sdpMLineIndex", &v);
            }
            Some(init)
        }
    };
    Ok(Signal {
        media,
        description,
        seq: get_f64(data, "seq").map_or(0, |n| n as u32),
        session: String::new(),
        candidate,
    })
}

/// `v[key]` unless it is `null` or `undefined`.
fn present(v: &JsValue, key: &str) -> Option<JsValue> {
    let value = get(v, key);
    (!value.is_null() && !value.is_undefined()).then_some(value)
}

fn source(name: Option<&str>) -> Option<Source> {
    [
        Source::Camera,
        Source::Microphone,
        Source::Screen,
        Source::ScreenAudio,
    ]
    .into_iter()
    .find(|s| Some(s.as_str()) == name)
}

/// `{ candidate }` from an `RTCIceCandidate` (its non-null init fields).
pub fn candidate_signal(candidate: &JsValue) -> JsValue {
    let init = object(&[]);
    for key in ["candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"] {
        if let Some(v) = present(candidate, key) {
            set(&init, key, &v);
        }
    }
    object(&[("candidate", init)])
}

/// `{ description, media }`.
pub fn description_signal(kind: &str, sdp: JsValue, seq: u32, media: &[MediaInfo]) -> JsValue {
    object(&[
        (
            "description",
            object(&[("type", kind.into()), ("sdp", sdp)]),
        ),
        ("seq", seq.into()),
        ("media", media_list(media)),
    ])
}

/// `{ media }`.
pub fn media_signal(media: &[MediaInfo]) -> JsValue {
    object(&[("media", media_list(media))])
}

fn media_list(media: &[MediaInfo]) -> JsValue {
    media
        .iter()
        .map(|m| {
            object(&[
                ("mid", JsValue::from_str(&m.mid)),
                ("source", m.source.as_str().into()),
                ("muted", m.muted.into()),
            ])
        })
        .collect::<Array>()
        .into()
}
