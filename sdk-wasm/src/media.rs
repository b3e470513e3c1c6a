//! Local media: microphone, camera and screen, and what each outgoing slot carries.
//!
//! Every peer connection has at most one sender per [`Slot`]. Muting the microphone
//! sets `track.enabled = false`; turning the camera off stops the camera track (the
//! device light goes off) and sends nothing in its slot (`replaceTrack(null)`), so
//! turning it on again is a `replaceTrack` with no renegotiation. A screen share
//! either takes over the camera slot (`replaceTrack`, no renegotiation) or gets a slot
//! of its own (a new transceiver, renegotiated by perfect negotiation).
//!
//! Beware: web-sys binds the JavaScript `clone()` of `MediaStream` and
//! `MediaStreamTrack` as inherent methods, so `track.clone()` makes a *new* track.
//! This crate writes `Clone::clone(&track)` for another handle to the same one.

use crate::error::{Code, Error};
use crate::prelude::*;
use meshwire_protocol::peer::Source;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{MediaStream, MediaStreamTrack};

/// An outgoing sender position on every peer connection.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The microphone's audio.
    Audio,
    /// The camera's video, or the screen when it replaces the camera.
    Video,
    /// A screen shared beside the camera (`replaceCamera: false`).
    Screen,
}

impl Slot {
    /// Every slot, in index order (`slot as usize`).
    pub const ALL: [Slot; 3] = [Slot::Audio, Slot::Video, Slot::Screen];
}

/// A screen share in progress.
pub struct Screen {
    pub stream: MediaStream,
    pub track: MediaStreamTrack,
    /// It is sent in the camera's slot.
    pub replaces_camera: bool,
}

/// The local media state.
#[derive(Default)]
pub struct Local {
    /// `room.localStream`: microphone and camera tracks.
    pub stream: Option<MediaStream>,
    pub mic: Option<MediaStreamTrack>,
    pub camera: Option<MediaStreamTrack>,
    /// Whether media with video was asked for (so the camera slot exists even while the
    /// camera is off).
    pub wants_video: bool,
    pub camera_constraints: JsValue,
    pub screen: Option<Screen>,
}

impl Local {
    /// What each slot should send now (slots with nothing to send are left out).
    pub fn outgoing(&self) -> Vec<(Slot, MediaStreamTrack, MediaStream)> {
        let mut out = Vec::new();
        if let (Some(stream), Some(mic)) = (&self.stream, &self.mic) {
            out.push((Slot::Audio, Clone::clone(mic), Clone::clone(stream)));
        }
        if let (Some(stream), Some(track)) = (&self.stream, self.video_track()) {
            out.push((Slot::Video, track, Clone::clone(stream)));
        }
        if let Some(s) = self.screen.as_ref().filter(|s| !s.replaces_camera) {
            out.push((
                Slot::Screen,
                Clone::clone(&s.track),
                Clone::clone(&s.stream),
            ));
        }
        out
    }

    /// What the video slot sends now: the screen when it replaces the camera, else the
    /// camera (None while the camera is off).
    pub fn video_track(&self) -> Option<MediaStreamTrack> {
        match &self.screen {
            Some(s) if s.replaces_camera => Some(Clone::clone(&s.track)),
            _ => self.camera.clone(),
        }
    }

    /// The source and mute state a slot announces.
    pub fn describe(&self, slot: Slot) -> (Source, bool) {
        match slot {
            Slot::Audio => (
                Source::Microphone,
                !self.mic.as_ref().is_some_and(MediaStreamTrack::enabled),
            ),
            Slot::Video => match &self.screen {
                Some(s) if s.replaces_camera => (Source::Screen, false),
                _ => (Source::Camera, self.camera.is_none()),
            },
            Slot::Screen => (Source::Screen, false),
        }
    }

    /// Stops every local track.
    pub fn stop_all(&mut self) {
        for t in [self.mic.take(), self.camera.take()].into_iter().flatten() {
            t.stop();
        }
        if let Some(s) = self.screen.take() {
            s.track.stop();
            stop_tracks(&s.stream);
        }
        self.stream = None;
    }
}

pub fn media_devices() -> Result<web_sys::MediaDevices, Error> {
    // Through `globalThis` rather than `web_sys::window()`, which brings js-sys's
    // four-way global object lookup into the wasm.
    let navigator = crate::js::global("navigator");
    if !navigator.is_object() {
        return Err(Error::new(
            Code::Unsupported,
            "no navigator: media needs a browser page",
        ));
    }
    let devices = crate::js::get(&navigator, "mediaDevices");
    if !devices.is_object() {
        return Err(Error::new(
            Code::Unsupported,
            "navigator.mediaDevices is missing: the page must be served over https (or localhost)",
        ));
    }
    Ok(devices.unchecked_into())
}

/// The message of a `getUserMedia` that no device could satisfy (`OverconstrainedError`).
pub const NO_MATCH: &str =
    "no device matches the constraints (a deviceId that is not there?): use one from listDevices()";

/// `getUserMedia(constraints)`, with an error that says what to do (boxed: it has
/// several callers, see `crate::Task`).
pub fn get_user_media(constraints: &JsValue) -> crate::Task<'static, Result<MediaStream, Error>> {
    let constraints = constraints.clone();
    Box::pin(async move { get_user_media_now(&constraints).await })
}

async fn get_user_media_now(constraints: &JsValue) -> Result<MediaStream, Error> {
    let constraints: web_sys::MediaStreamConstraints = constraints.clone().unchecked_into();
    let promise = media_devices()?
        .get_user_media_with_constraints(&constraints)
        .map_err(|e| Error::js(Code::MediaFailed, "getUserMedia", &e))?;
    let stream = JsFuture::from(promise).await.map_err(|e| {
        // Its `message` is often empty; what it means is that no device matched.
        if crate::js::get_string(&e, "name").as_deref() == Some("OverconstrainedError") {
            return Error::new(Code::MediaFailed, NO_MATCH);
        }
        Error::js(
            Code::MediaFailed,
            "camera/microphone unavailable (permission denied, no device, or in use by another app)",
            &e,
        )
    })?;
    // The promise resolves with a MediaStream by specification.
    Ok(stream.unchecked_into())
}

/// `getDisplayMedia({video: true, audio})`.
pub async fn get_display_media(audio: bool) -> Result<MediaStream, Error> {
    let constraints: web_sys::DisplayMediaStreamConstraints = crate::js::object(&[
        ("video", JsValue::TRUE),
        ("audio", JsValue::from_bool(audio)),
    ])
    .unchecked_into();
    let promise = media_devices()?
        .get_display_media_with_constraints(&constraints)
        .map_err(|e| Error::js(Code::MediaFailed, "getDisplayMedia", &e))?;
    let stream = JsFuture::from(promise).await.map_err(|e| {
        Error::js(
            Code::MediaFailed,
            "screen share was cancelled or is not allowed",
            &e,
        )
    })?;
    Ok(stream.unchecked_into())
}

/// Stops every track of `stream` (a screen share's audio too).
pub fn stop_tracks(stream: &MediaStream) {
    for t in stream.get_tracks().iter() {
        t.unchecked_into::<MediaStreamTrack>().stop();
    }
}

/// The first track of `kind` in `stream`.
pub fn first_track(stream: &MediaStream, kind: &str) -> Option<MediaStreamTrack> {
    // `getTracks` filtered, rather than `getAudioTracks`/`getVideoTracks`: one import.
    stream
        .get_tracks()
        .iter()
        .find(|t| crate::js::get_string(t, "kind").as_deref() == Some(kind))
        .map(JsCast::unchecked_into)
}
