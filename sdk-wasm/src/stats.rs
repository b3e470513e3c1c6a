//! Connection stats (`room.getStats()`) and quality (`quality` events), read from
//! `RTCPeerConnection.getStats()` (<https://w3c.github.io/webrtc-stats/>). Rates need
//! two reports: each call keeps the counters of the previous one per peer, so the first
//! call after a peer connects reports rates and loss of 0.
//!
//! - `rttMs`: the selected candidate pair's `currentRoundTripTime` (STUN consent checks,
//!   so it exists with or without media);
//! - `bitrateIn` / `bitrateOut`: bits per second over the pair (media and data);
//! - `packetLoss`: lost / (lost + received) over every inbound RTP stream since the
//!   previous report, 0..1 (0 without media);
//! - `jitterMs`: the highest inbound RTP `jitter`;
//! - `candidateType`: `relay` if either end of the selected pair is a TURN relay, else
//!   the local candidate's type.
//!
//! Quality thresholds ([`quality`]): `lost` when the connection is not `connected` or
//! has no selected pair; `excellent` when RTT < 150 ms, loss < 1 % and jitter < 20 ms;
//! `good` when RTT < 300 ms, loss < 3 % and jitter < 50 ms; else `poor`.

use crate::js;
use wasm_bindgen::JsValue;

/// How often `quality` is polled while someone listens to it.
pub const QUALITY_POLL_MS: u32 = 2_000;

/// The counters of a peer's previous report.
#[derive(Clone, Default)]
pub struct Counters {
    /// `Date.now()`-like report time (the stats `timestamp`, ms).
    pub at: f64,
    pub sent: f64,
    pub received: f64,
    pub packets_lost: f64,
    pub packets_received: f64,
}

/// One peer's stats.
pub struct Sample {
    pub rtt_ms: f64,
    pub bitrate_in: f64,
    pub bitrate_out: f64,
    pub packet_loss: f64,
    pub jitter_ms: f64,
    pub candidate_type: String,
    pub quality: &'static str,
}

/// Reads `report` (an `RTCStatsReport`) of a connection in `state`, against the
/// previous counters; returns the sample and the new counters.
pub fn read(report: &JsValue, state: &str, prev: Option<&Counters>) -> (Sample, Counters) {
    let mut stats = Vec::new();
    if let Ok(Some(iter)) = js_sys::try_iter(report) {
        for entry in iter.flatten() {
            stats.push(js_sys::Reflect::get_u32(&entry, 1).unwrap_or(JsValue::UNDEFINED));
        }
    }
    let by_id = |id: &JsValue| stats.iter().find(|s| js::get(s, "id") == *id).cloned();
    let kind = |s: &JsValue| js::get_string(s, "type").unwrap_or_default();
    let num = |s: &JsValue, key: &str| js::get_f64(s, key).unwrap_or(0.0);

    // The selected pair: through the transport, else the nominated succeeded pair.
    let pair = stats
        .iter()
        .filter(|s| kind(s) == "transport")
        .find_map(|t| by_id(&js::get(t, "selectedCandidatePairId")))
        .or_else(|| {
            stats
                .iter()
                .find(|s| {
                    kind(s) == "candidate-pair"
                        && js::get_bool(s, "nominated") == Some(true)
                        && js::get_string(s, "state").as_deref() == Some("succeeded")
                })
                .cloned()
        });
    let mut now = Counters::default();
    let mut jitter = 0f64;
    for s in stats.iter().filter(|s| kind(s) == "inbound-rtp") {
        now.packets_lost += num(s, "packetsLost").max(0.0);
        now.packets_received += num(s, "packetsReceived");
        jitter = jitter.max(num(s, "jitter"));
    }
    let (mut rtt_ms, mut candidate_type) = (0.0, String::new());
    if let Some(p) = &pair {
        rtt_ms = num(p, "currentRoundTripTime") * 1000.0;
        now.at = num(p, "timestamp");
        now.sent = num(p, "bytesSent");
        now.received = num(p, "bytesReceived");
        let end = |key| {
            by_id(&js::get(p, key))
                .and_then(|c| js::get_string(&c, "candidateType"))
                .unwrap_or_default()
        };
        let (local, remote) = (end("localCandidateId"), end("remoteCandidateId"));
        candidate_type = if local == "relay" || remote == "relay" {
            String::from("relay")
        } else {
            local
        };
    }
    let (mut bitrate_in, mut bitrate_out, mut packet_loss) = (0.0, 0.0, 0.0);
    if let Some(prev) = prev {
        let secs = (now.at - prev.at) / 1000.0;
        if secs > 0.0 {
            bitrate_in = ((now.received - prev.received).max(0.0) * 8.0 / secs).round();
            bitrate_out = ((now.sent - prev.sent).max(0.0) * 8.0 / secs).round();
        }
        let lost = (now.packets_lost - prev.packets_lost).max(0.0);
        let got = (now.packets_received - prev.packets_received).max(0.0);
        if lost + got > 0.0 {
            packet_loss = lost / (lost + got);
        }
    }
    let mut sample = Sample {
        rtt_ms,
        bitrate_in,
        bitrate_out,
        packet_loss,
        jitter_ms: jitter * 1000.0,
        candidate_type,
        quality: "lost",
    };
    sample.quality = quality(state == "connected" && pair.is_some(), &sample);
    (sample, now)
}

/// `excellent`, `good`, `poor` or `lost` (thresholds in the module doc).
pub fn quality(connected: bool, s: &Sample) -> &'static str {
    if !connected {
        "lost"
    } else if s.rtt_ms < 150.0 && s.packet_loss < 0.01 && s.jitter_ms < 20.0 {
        "excellent"
    } else if s.rtt_ms < 300.0 && s.packet_loss < 0.03 && s.jitter_ms < 50.0 {
        "good"
    } else {
        "poor"
    }
}

impl Sample {
    /// `PeerStats` for `peer`.
    pub fn to_js(&self, peer: &str) -> JsValue {
        let candidate = if self.candidate_type.is_empty() {
            JsValue::NULL
        } else {
            JsValue::from_str(&self.candidate_type)
        };
        js::object(&[
            ("peerId", JsValue::from_str(peer)),
            ("rttMs", JsValue::from_f64(self.rtt_ms)),
            ("bitrateIn", JsValue::from_f64(self.bitrate_in)),
            ("bitrateOut", JsValue::from_f64(self.bitrate_out)),
            ("packetLoss", JsValue::from_f64(self.packet_loss)),
            ("jitterMs", JsValue::from_f64(self.jitter_ms)),
            ("candidateType", candidate),
            ("quality", JsValue::from_str(self.quality)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rtt_ms: f64, packet_loss: f64, jitter_ms: f64) -> Sample {
        Sample {
            rtt_ms,
            bitrate_in: 0.0,
            bitrate_out: 0.0,
            packet_loss,
            jitter_ms,
            candidate_type: String::from("host"),
            quality: "lost",
        }
    }

    #[test]
    fn quality_thresholds_are_the_documented_ones() {
        assert_eq!(quality(true, &sample(20.0, 0.0, 1.0)), "excellent");
        assert_eq!(quality(true, &sample(149.0, 0.009, 19.0)), "excellent");
        assert_eq!(quality(true, &sample(150.0, 0.0, 0.0)), "good");
        assert_eq!(quality(true, &sample(10.0, 0.01, 0.0)), "good");
        assert_eq!(quality(true, &sample(10.0, 0.0, 20.0)), "good");
        assert_eq!(quality(true, &sample(299.0, 0.029, 49.0)), "good");
        assert_eq!(quality(true, &sample(300.0, 0.0, 0.0)), "poor");
        assert_eq!(quality(true, &sample(10.0, 0.03, 0.0)), "poor");
        assert_eq!(quality(true, &sample(10.0, 0.0, 50.0)), "poor");
        assert_eq!(quality(false, &sample(10.0, 0.0, 0.0)), "lost");
    }
}
