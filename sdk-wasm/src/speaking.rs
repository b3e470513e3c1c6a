//! Active speaker (`speaking` events): one WebAudio `AnalyserNode` per audio track (our
//! microphone and every remote peer's), sampled every [`TICK_MS`] while someone
//! listens to `speaking`, with hysteresis so a word's pauses do not flicker.
//!
//! The `AudioContext` is created only once there is audio to measure and someone
//! listens, and closed when nobody listens any more or the room is left. Browsers start
//! a context created without a user gesture suspended (autoplay policy); the SDK calls
//! `resume()`, which succeeds once the page has had a gesture.
//!
//! Level: the peak of the analyser's time-domain window (`getFloatTimeDomainData`,
//! `fftSize` samples ≈ 43 ms at 48 kHz), in [0, 1].

use crate::js;
use js_sys::{Float32Array, Promise};
use wasm_bindgen::prelude::*;
use web_sys::{MediaStream, MediaStreamTrack};

/// Sampling period of the levels.
pub const TICK_MS: u32 = 100;
/// A peak above this starts speaking…
pub const ON_LEVEL: f32 = 0.05;
/// …and speaking ends after [`OFF_TICKS`] samples in a row below this.
pub const OFF_LEVEL: f32 = 0.02;
/// 1 s of quiet (10 × [`TICK_MS`]).
pub const OFF_TICKS: u32 = 10;
/// Samples per analysis window.
const FFT_SIZE: u32 = 2048;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = AudioContext)]
    type AudioCtx;
    #[wasm_bindgen(constructor, catch, js_class = AudioContext)]
    fn new() -> Result<AudioCtx, JsValue>;
    #[wasm_bindgen(method, catch, js_class = AudioContext, js_name = createMediaStreamSource)]
    fn create_source(this: &AudioCtx, stream: &MediaStream) -> Result<AudioNode, JsValue>;
    #[wasm_bindgen(method, catch, js_class = AudioContext, js_name = createAnalyser)]
    fn create_analyser(this: &AudioCtx) -> Result<AudioNode, JsValue>;
    #[wasm_bindgen(method, catch, js_class = AudioContext)]
    fn resume(this: &AudioCtx) -> Result<Promise, JsValue>;
    #[wasm_bindgen(method, catch, js_class = AudioContext)]
    fn close(this: &AudioCtx) -> Result<Promise, JsValue>;

    /// An `AudioNode` (a source or an analyser).
    type AudioNode;
    #[wasm_bindgen(method, catch)]
    fn connect(this: &AudioNode, to: &AudioNode) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(method, catch)]
    fn disconnect(this: &AudioNode) -> Result<(), JsValue>;
    #[wasm_bindgen(method, js_name = getFloatTimeDomainData)]
    fn get_float_time_domain_data(this: &AudioNode, into: &Float32Array);

    /// An `<audio>` element (`new Audio()`).
    #[wasm_bindgen(js_name = Audio)]
    type AudioElement;
    #[wasm_bindgen(constructor, catch, js_class = Audio)]
    fn new() -> Result<AudioElement, JsValue>;
    #[wasm_bindgen(method, catch, js_class = Audio)]
    fn play(this: &AudioElement) -> Result<Promise, JsValue>;
}

/// One measured track.
struct Meter {
    peer: String,
    track: MediaStreamTrack,
    source: AudioNode,
    analyser: AudioNode,
    samples: Float32Array,
    speaking: bool,
    quiet: u32,
    /// Chrome feeds a remote WebRTC track to WebAudio only while a media element plays
    /// it (<https://crbug.com/933677>): a muted `<audio>`, never attached to the page.
    sink: Option<AudioElement>,
}

impl Drop for Meter {
    fn drop(&mut self) {
        let _ = self.source.disconnect();
        if let Some(sink) = &self.sink {
            js::set(sink, "srcObject", &JsValue::NULL);
        }
    }
}

/// The analysers of a room.
#[derive(Default)]
pub struct Speaking {
    ctx: Option<AudioCtx>,
    meters: Vec<Meter>,
}

impl Drop for Speaking {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Speaking {
    /// Measures the tracks in `audio` (peer id, track; our microphone under our own id),
    /// adding analysers for new tracks and dropping those of tracks that went. Returns
    /// the changes: `(peerId, speaking)`. A peer whose track went while speaking is
    /// reported as not speaking.
    pub fn tick(&mut self, me: &str, audio: &[(String, MediaStreamTrack)]) -> Vec<(String, bool)> {
        let mut changes = Vec::new();
        // Drop meters of tracks that went (or ended).
        self.meters.retain(|m| {
            let keep = js::get_string(&m.track, "readyState").as_deref() != Some("ended")
                && audio.iter().any(|(p, t)| *p == m.peer && same(t, &m.track));
            if !keep && m.speaking {
                changes.push((m.peer.clone(), false));
            }
            keep
        });
        for (peer, track) in audio {
            let known = self
                .meters
                .iter()
                .any(|m| m.peer == *peer && same(&m.track, track));
            if !known && js::get_string(track, "readyState").as_deref() == Some("live") {
                if let Some(m) = self.meter(peer, track, peer != me) {
                    self.meters.push(m);
                }
            }
        }
        for m in &mut self.meters {
            m.analyser.get_float_time_domain_data(&m.samples);
            let peak = m
                .samples
                .to_vec()
                .iter()
                .fold(0f32, |peak, s| peak.max(s.abs()));
            if peak > ON_LEVEL {
                m.quiet = 0;
                if !m.speaking {
                    m.speaking = true;
                    changes.push((m.peer.clone(), true));
                }
            } else if m.speaking {
                if peak < OFF_LEVEL {
                    m.quiet += 1;
                }
                if m.quiet >= OFF_TICKS {
                    m.speaking = false;
                    m.quiet = 0;
                    changes.push((m.peer.clone(), false));
                }
            }
        }
        changes
    }

    /// An analyser for `track`, creating the `AudioContext` on first use.
    fn meter(&mut self, peer: &str, track: &MediaStreamTrack, remote: bool) -> Option<Meter> {
        if self.ctx.is_none() {
            match AudioCtx::new() {
                Ok(ctx) => {
                    // Suspended without a user gesture; the promise settles once allowed.
                    let _ = ctx.resume();
                    self.ctx = Some(ctx);
                }
                Err(e) => {
                    js::warn(&js::cat(&[
                        "speaking detection needs WebAudio: ",
                        &crate::error::describe(&e),
                    ]));
                    return None;
                }
            }
        }
        let ctx = self.ctx.as_ref()?;
        let stream = MediaStream::new().ok()?;
        stream.add_track(track);
        let source = ctx.create_source(&stream).ok()?;
        let analyser = ctx.create_analyser().ok()?;
        js::set(&analyser, "fftSize", &FFT_SIZE.into());
        source.connect(&analyser).ok()?;
        let sink = if remote {
            AudioElement::new().ok().inspect(|sink| {
                js::set(sink, "muted", &JsValue::TRUE);
                js::set(sink, "srcObject", &stream);
                // Rejected only when autoplay is refused; the analyser then stays silent.
                let _ = sink.play();
            })
        } else {
            None
        };
        Some(Meter {
            sink,
            peer: peer.to_owned(),
            track: Clone::clone(track),
            source,
            analyser,
            samples: Float32Array::new_with_length(FFT_SIZE),
            speaking: false,
            quiet: 0,
        })
    }

    /// Drops every analyser and closes the context; returns who was speaking.
    pub fn stop(&mut self) -> Vec<String> {
        let speaking = self
            .meters
            .iter()
            .filter(|m| m.speaking)
            .map(|m| m.peer.clone())
            .collect();
        self.meters.clear();
        if let Some(ctx) = self.ctx.take() {
            // Rejects only for a context already closed.
            let _ = ctx.close();
        }
        speaking
    }

    /// Whether an `AudioContext` exists (tests and docs: none until audio exists).
    pub fn has_context(&self) -> bool {
        self.ctx.is_some()
    }
}

/// The same track (web-sys's `clone()` on a track would make a new one: compare handles).
fn same(a: &MediaStreamTrack, b: &MediaStreamTrack) -> bool {
    AsRef::<JsValue>::as_ref(a) == AsRef::<JsValue>::as_ref(b)
}
