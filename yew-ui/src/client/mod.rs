//! The driver of a meeting page: it carries out what the reducer decided and reports what
//! happened as [`Action`]s. It keeps no page state of its own (who is there, what is pinned,
//! what is muted all live in [`MeetingState`](crate::state::MeetingState)).
//!
//! - [`pump`]: one task owning the sans-IO `videocall_client::Session`, fed by the transport,
//!   a timer and the page, like the native driver;
//! - [`media`]: encoders, and decoders keyed by `StreamKey`;
//! - [`endpoints`]: where the relay is, and the connection attempts.

mod endpoints;
mod media;
mod pump;

use futures_channel::mpsc::{self, UnboundedSender};
use videocall_client::{ClientConfig, Command, Subscription};
use videocall_types::{MeetingId, UserId};
use wasm_bindgen_futures::spawn_local;
use web_sys::MediaStream;
use yew::Callback;

use crate::state::{Action, DeviceKind, MediaIntent};
use pump::{Input, Pump};

/// A handle to the running meeting; dropping it leaves.
pub(crate) struct MeetingClient {
    inputs: UnboundedSender<Input>,
}

impl MeetingClient {
    /// Joins `meeting` as `user`, publishing `local` (camera and microphone, if any) as `want`
    /// says; with `token` (a room token from the meeting API) in the lobby URL.
    pub(crate) fn start(
        user: &str,
        meeting: &str,
        token: Option<String>,
        local: Option<MediaStream>,
        want: MediaIntent,
        dispatch: Callback<Action>,
    ) -> Result<Self, String> {
        let user = UserId::new(user).map_err(|e| e.to_string())?;
        let meeting = MeetingId::new(meeting).map_err(|e| e.to_string())?;
        let (inputs, receiver) = mpsc::unbounded();
        let pump = Pump::new(
            ClientConfig::new(user, meeting),
            token,
            local,
            want,
            dispatch,
            inputs.clone(),
        );
        spawn_local(pump.run(receiver));
        Ok(Self { inputs })
    }

    /// Our microphone, camera and screen as the reducer has them now.
    pub(crate) fn set_media(&self, want: MediaIntent) {
        self.send(Input::Media(want));
    }

    /// Receives the video the reducer chose.
    pub(crate) fn set_subscription(&self, subscription: Subscription) {
        self.send(Input::Subscription(subscription));
    }

    /// Chat, raise or lower our hand, react, or (hosts) lower someone's hand.
    pub(crate) fn command(&self, command: Command) {
        self.send(Input::Command(command));
    }

    /// Switches to camera, microphone or speaker `id` without leaving.
    pub(crate) fn use_device(&self, kind: DeviceKind, id: String) {
        self.send(Input::UseDevice(kind, id));
    }

    /// Tries to join again after a failure.
    pub(crate) fn retry(&self) {
        self.send(Input::Retry);
    }

    fn send(&self, input: Input) {
        // The pump only ends after `Leave`, which only `drop` sends.
        let _ = self.inputs.unbounded_send(input);
    }
}

impl Drop for MeetingClient {
    fn drop(&mut self) {
        self.send(Input::Leave);
    }
}
