//! Active speaker (`speaking` events): one WebAudio `AnalyserNode` per audio track (our
//! microphone and every remote peer's), sampled every [`TICK_MS`] while someone
//! listens to `speaking`, with hysteresis so a word's pauses do not flicker.
//!
//! The `AudioContext` is created only once there is audio to measure and someone
//! listens, and closed when nobody listens any more or the room is left. Browsers start
//! a context created without a user gesture suspended (autoplay policy); the SDK calls
//! `resume()` when it creates the context and, while the context stays suspended,
//! again from the user's next click, tap or key press (listeners on `window`, removed
//! once it runs or closes): a room joined on page load, before any gesture, would
//! otherwise never detect a speaker (Firefox's default policy; tested there).
//!
//! Level: the peak of the analyser's time-domain window (`getFloatTimeDomainData`,
//! `fftSize` 2048 samples ≈ 43 ms at 48 kHz), in [0, 1]. A peak above 0.05 starts
//! speaking; speaking ends after 10 samples in a row (1 s) below 0.02.
//!
//! Chrome feeds a remote WebRTC track to WebAudio only while a media element plays it
//! (<https://crbug.com/933677>): each remote meter has a muted `<audio>`, never attached
//! to the page.
//!
//! The analysers are JavaScript (the `Speaking` class in `events.rs`' snippet): every
//! step is a WebAudio call, which from wasm costs an import and a shim each.

/// Sampling period of the levels.
pub const TICK_MS: u32 = 100;

/// The analysers of a room; nothing exists in JavaScript until the first tick.
#[derive(Default)]
pub struct Speaking(Option<crate::events::Speaking>);

impl Drop for Speaking {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Speaking {
    /// Measures `tracks` (audio tracks; `peers[i]` is the id of the peer of `tracks[i]`,
    /// our microphone under our own id `me`), adding analysers for new tracks and
    /// dropping those of tracks that went (or ended). Returns the changes as `speaking`
    /// payloads (`{ peerId, speaking }`). A peer whose track went while speaking is
    /// reported as not speaking.
    pub fn tick(
        &mut self,
        me: &str,
        peers: &js_sys::Array,
        tracks: &js_sys::Array,
    ) -> js_sys::Array {
        self.0
            .get_or_insert_with(crate::events::Speaking::new)
            .tick(me, peers, tracks)
    }

    /// Drops every analyser and closes the context.
    pub fn stop(&mut self) {
        if let Some(s) = &self.0 {
            s.stop();
        }
    }

    /// Whether an `AudioContext` exists (tests and docs: none until audio exists).
    pub fn has_context(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.has_context())
    }
}
