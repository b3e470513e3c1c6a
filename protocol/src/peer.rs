//! What meshwire peers send each other inside `signal.data`: the relay never reads it,
//! but every meshwire client (the wasm SDK, or a peer written in another language)
//! speaks it. docs/protocol.md ("Peer signals") is the normative description.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// One `signal.data` payload. Any combination of fields may be present; a receiver
/// handles `media` first, then `description`, then `candidate`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PeerSignal {
    /// An offer or answer (`RTCSessionDescriptionInit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<SessionDescription>,
    /// With an offer, its number on this connection (1, 2, …; an offer sent again keeps
    /// its number); with an answer, the number of the offer it answers. Lets the
    /// offerer drop an answer to an earlier offer, and the answerer recognise an offer
    /// it has answered already. Absent from peers that do not number their offers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// A trickled ICE candidate (`RTCIceCandidateInit`). `null` (end of candidates) is
    /// accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<IceCandidate>,
    /// The sender's outgoing tracks as they are now (replaces any earlier list): which
    /// source each transceiver carries and whether it is muted. Sent together with (and
    /// handled before) the description that negotiates them, and again on every change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<Vec<MediaInfo>>,
}

/// `RTCSessionDescriptionInit`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SessionDescription {
    /// `"offer"` or `"answer"`.
    #[serde(rename = "type")]
    pub kind: SdpKind,
    /// The SDP.
    pub sdp: String,
}

/// `RTCSdpType` values a peer sends.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SdpKind {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
    /// A provisional answer.
    Pranswer,
    /// Undo the last description (perfect negotiation does this implicitly).
    Rollback,
}

/// `RTCIceCandidateInit`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` line (empty string = end of candidates for that generation).
    pub candidate: String,
    /// Media stream identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// Index of the m-line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// ICE username fragment of the candidate's generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// One outgoing track of the sender.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MediaInfo {
    /// The `mid` of the transceiver carrying it, the same on both ends once negotiated.
    /// It stays when the sender swaps the track it sends (`replaceTrack`), which is why
    /// the source is announced here and not inferred from the track.
    pub mid: String,
    /// What the track carries now.
    pub source: Source,
    /// Whether the sender muted it (`track.enabled = false`, or no track being sent).
    #[serde(default)]
    pub muted: bool,
}

/// What a media track carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A camera's video.
    Camera,
    /// A microphone's audio.
    Microphone,
    /// A shared screen, window or tab (video).
    Screen,
    /// A shared tab's audio.
    ScreenAudio,
}

impl Source {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Camera => "camera",
            Source::Microphone => "microphone",
            Source::Screen => "screen",
            Source::ScreenAudio => "screen-audio",
        }
    }
}
