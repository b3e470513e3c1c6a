//! Connection stats (`room.getStats()`) and quality (`quality` events), read from
//! `RTCPeerConnection.getStats()` (<https://w3c.github.io/webrtc-stats/>). Rates need
//! two reports: each peer keeps the counters of recent calls, and a call compares with
//! the newest one at least 1 s older (else the oldest), so two calls close together (an
//! app's and the quality poll's) still measure over a second. The first call after a
//! peer connects reports rates and loss of 0.
//!
//! - `rttMs`: the selected candidate pair's `currentRoundTripTime` (STUN consent checks,
//!   so it exists with or without media);
//! - `bitrateIn` / `bitrateOut`: bits per second over the connection (media and data):
//!   the transport's bytes, else every candidate pair's, since the two ends may send
//!   on different pairs (Chromium with Firefox);
//! - `packetLoss`: lost / (lost + received) over every inbound RTP stream since that
//!   earlier report, 0..1 (0 without media);
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

/// The `PeerStats` in `holder` (a peer's object from `events::collect_stats`, which read
/// its report in JavaScript: property reads cost a call each from wasm), with its
/// `quality`.
pub fn finish(holder: &JsValue) -> JsValue {
    let stats = js::get(holder, "sample");
    let connected = js::get_bool(holder, "connected") == Some(true);
    let f = |key| js::get_f64(&stats, key).unwrap_or(0.0);
    let q = quality(connected, f("rttMs"), f("packetLoss"), f("jitterMs"));
    js::set(&stats, "quality", &JsValue::from_str(q));
    stats
}

/// `excellent`, `good`, `poor` or `lost` (thresholds in the module doc).
pub fn quality(connected: bool, rtt_ms: f64, packet_loss: f64, jitter_ms: f64) -> &'static str {
    if !connected {
        "lost"
    } else if rtt_ms < 150.0 && packet_loss < 0.01 && jitter_ms < 20.0 {
        "excellent"
    } else if rtt_ms < 300.0 && packet_loss < 0.03 && jitter_ms < 50.0 {
        "good"
    } else {
        "poor"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_thresholds_are_the_documented_ones() {
        assert_eq!(quality(true, 20.0, 0.0, 1.0), "excellent");
        assert_eq!(quality(true, 149.0, 0.009, 19.0), "excellent");
        assert_eq!(quality(true, 150.0, 0.0, 0.0), "good");
        assert_eq!(quality(true, 10.0, 0.01, 0.0), "good");
        assert_eq!(quality(true, 10.0, 0.0, 20.0), "good");
        assert_eq!(quality(true, 299.0, 0.029, 49.0), "good");
        assert_eq!(quality(true, 300.0, 0.0, 0.0), "poor");
        assert_eq!(quality(true, 10.0, 0.03, 0.0), "poor");
        assert_eq!(quality(true, 10.0, 0.0, 50.0), "poor");
        assert_eq!(quality(false, 10.0, 0.0, 0.0), "lost");
    }
}
