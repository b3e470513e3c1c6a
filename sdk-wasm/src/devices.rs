//! Media devices: `listDevices()` (`enumerateDevices`), and the constraints
//! `switchDevice` asks `getUserMedia` for. Swapping the track itself is the room's
//! (`room.rs`, `switch_device`): the slot's sender gets the new track through
//! `replaceTrack`, so nothing is renegotiated. `devices-changed` comes from the
//! `devicechange` event (<https://w3c.github.io/mediacapture-main/#event-mediadevices-devicechange>),
//! listened to only once someone subscribes.

use crate::error::{Code, Error};
use crate::js;
use crate::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// `navigator.mediaDevices.enumerateDevices()` (labels are empty until the page has
/// had a permission, by specification).
pub fn list() -> crate::Task<'static, Result<js_sys::Array, Error>> {
    Box::pin(async {
        let devices = crate::media::media_devices()?;
        let promise = devices
            .enumerate_devices()
            .map_err(|e| Error::js(Code::MediaFailed, "enumerateDevices", &e))?;
        let list = JsFuture::from(promise)
            .await
            .map_err(|e| Error::js(Code::MediaFailed, "enumerateDevices", &e))?;
        Ok(list.unchecked_into())
    })
}

/// Which local track a device kind feeds: `"audio"` or `"video"`.
pub fn track_kind(kind: &str) -> Result<&'static str, Error> {
    match kind {
        "audioinput" => Ok("audio"),
        "videoinput" => Ok("video"),
        _ => Err(Error::new(
            Code::InvalidArgument,
            js::cat(&[
                "switchDevice() takes \"audioinput\" or \"videoinput\", not ",
                &js::quote(kind),
            ]),
        )),
    }
}

/// `previous` constraints (an object, or `true`/absent) with `deviceId: { exact: id }`
/// (a copy: `{ ...previous, deviceId }` in the snippet, `events.rs`).
pub fn with_device(previous: &JsValue, device_id: &str) -> JsValue {
    crate::events::with_device(previous, device_id)
}
