//! Camera, microphone and screen, with graceful degradation: a denied or missing device is a
//! notice, and the meeting goes on without it.

use js_sys::{Array, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{DisplayMediaStreamConstraints, MediaStream, MediaStreamConstraints};

use crate::transport::{await_promise, js_error};

/// One input or output device.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Device {
    pub(crate) id: String,
    pub(crate) label: String,
}

/// Devices by kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct DeviceList {
    pub(crate) cameras: Vec<Device>,
    pub(crate) microphones: Vec<Device>,
    pub(crate) speakers: Vec<Device>,
}

fn constraint(device: Option<&str>) -> JsValue {
    match device {
        Some(id) if !id.is_empty() => {
            let c = js_sys::Object::new();
            let exact = js_sys::Object::new();
            let _ = Reflect::set(&exact, &"exact".into(), &id.into());
            let _ = Reflect::set(&c, &"deviceId".into(), &exact);
            c.into()
        }
        _ => JsValue::TRUE,
    }
}

/// Asks for camera and microphone; falls back to whichever works. Returns the stream (possibly
/// without tracks) and notices for what is missing.
pub(crate) async fn open_camera_and_mic(
    camera: Option<&str>,
    microphone: Option<&str>,
) -> (Option<MediaStream>, Vec<String>) {
    let mut notices = Vec::new();
    for (video, audio) in [(true, true), (false, true), (true, false)] {
        match user_media(
            video.then(|| constraint(camera)),
            audio.then(|| constraint(microphone)),
        )
        .await
        {
            Ok(stream) => {
                if !video {
                    notices.push(
                        "No camera available (or permission denied): joining without video."
                            .to_owned(),
                    );
                }
                if !audio {
                    notices.push(
                        "No microphone available (or permission denied): joining without audio."
                            .to_owned(),
                    );
                }
                return (Some(stream), notices);
            }
            Err(e) => {
                if video && audio {
                    notices.push(format!("Camera and microphone unavailable together: {e}"));
                }
            }
        }
    }
    notices.push(
        "No camera or microphone could be opened: you can still join to watch and listen."
            .to_owned(),
    );
    (None, notices)
}

async fn user_media(video: Option<JsValue>, audio: Option<JsValue>) -> Result<MediaStream, String> {
    let window = web_sys::window().ok_or("no window")?;
    let devices = window
        .navigator()
        .media_devices()
        .map_err(|_| "this page cannot use media devices (not a secure context?)".to_owned())?;
    let constraints = MediaStreamConstraints::new();
    constraints.set_video(&video.unwrap_or(JsValue::FALSE));
    constraints.set_audio(&audio.unwrap_or(JsValue::FALSE));
    let promise = devices
        .get_user_media_with_constraints(&constraints)
        .map_err(|e| js_error(&e))?;
    Ok(await_promise(promise).await?.unchecked_into())
}

pub(crate) use crate::state::DeviceKind;

/// Opens the camera or microphone `id` alone (a mid-call switch).
pub(crate) async fn open_device(kind: DeviceKind, id: &str) -> Result<MediaStream, String> {
    match kind {
        DeviceKind::Camera => user_media(Some(constraint(Some(id))), None).await,
        DeviceKind::Microphone => user_media(None, Some(constraint(Some(id)))).await,
        DeviceKind::Speaker => Err("a speaker is not opened, it is chosen".to_owned()),
    }
}

/// Asks the user for a screen to share.
pub(crate) async fn open_screen() -> Result<MediaStream, String> {
    let window = web_sys::window().ok_or("no window")?;
    let devices = window
        .navigator()
        .media_devices()
        .map_err(|e| js_error(&e))?;
    let constraints = DisplayMediaStreamConstraints::new();
    constraints.set_video(&JsValue::TRUE);
    constraints.set_audio(&JsValue::FALSE);
    let promise = devices
        .get_display_media_with_constraints(&constraints)
        .map_err(|e| js_error(&e))?;
    Ok(await_promise(promise).await?.unchecked_into())
}

/// Lists devices (labels are only known after permission was granted).
pub(crate) async fn list_devices() -> DeviceList {
    let mut list = DeviceList::default();
    let Some(devices) = web_sys::window().and_then(|w| w.navigator().media_devices().ok()) else {
        return list;
    };
    let Ok(promise) = devices.enumerate_devices() else {
        return list;
    };
    let Ok(all) = await_promise(promise).await else {
        return list;
    };
    for info in Array::from(&all).iter() {
        let get = |key: &str| {
            Reflect::get(&info, &key.into())
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_default()
        };
        let device = Device {
            id: get("deviceId"),
            label: get("label"),
        };
        match get("kind").as_str() {
            "videoinput" => list.cameras.push(device),
            "audioinput" => list.microphones.push(device),
            "audiooutput" => list.speakers.push(device),
            _ => {}
        }
    }
    list
}
