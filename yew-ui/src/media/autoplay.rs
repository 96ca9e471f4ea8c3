//! Autoplay: a browser may refuse to play a video element, or to run an `AudioContext`, until
//! the user has interacted with the page (Firefox refuses `play()` with `NotAllowedError` and
//! keeps a context suspended). We try at once and, when refused, again on the next click or key
//! press, instead of leaving a rejected promise unhandled and the meeting silent.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_events::EventListener;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{AudioContext, AudioContextState, HtmlVideoElement};

use super::log;
use crate::transport::js_error;

/// Plays `video` (muted: ours never needs sound), retrying on the next user gesture if the
/// browser refuses.
pub(crate) fn play_muted(video: &HtmlVideoElement) {
    video.set_muted(true);
    let first = video.play();
    let video = video.clone();
    spawn_local(async move {
        let Ok(promise) = first else { return };
        if let Err(e) = JsFuture::from(promise).await {
            log(&format!(
                "video playback waits for a click or key press ({})",
                js_error(&e)
            ));
            on_next_gesture(move || {
                if let Ok(promise) = video.play() {
                    spawn_local(async move {
                        let _ = JsFuture::from(promise).await;
                    });
                }
            });
        }
    });
}

/// Resumes `context` now, and once more on the next user gesture while it is not running (a
/// refused resume may stay pending rather than fail, so the state decides).
pub(crate) fn resume_audio(context: &AudioContext) {
    let _ = context.resume();
    if context.state() != AudioContextState::Running {
        let context = context.clone();
        on_next_gesture(move || {
            if context.state() == AudioContextState::Suspended {
                log("resuming audio after a user gesture");
                let _ = context.resume();
            }
        });
    }
}

/// What a user gesture runs.
type Gesture = Box<dyn FnOnce()>;

/// Runs `action` once, on the page's next pointer press or key press.
fn on_next_gesture(action: impl FnOnce() + 'static) {
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    let action: Rc<RefCell<Option<Gesture>>> = Rc::new(RefCell::new(Some(Box::new(action))));
    for event in ["pointerdown", "keydown"] {
        let action = action.clone();
        EventListener::once(&document, event, move |_| {
            if let Some(action) = action.borrow_mut().take() {
                action();
            }
        })
        .forget();
    }
}
