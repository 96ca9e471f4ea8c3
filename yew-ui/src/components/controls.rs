//! The meeting's control bar. Toggle buttons say their state with `aria-pressed` and their
//! keyboard shortcut in `title` and `aria-keyshortcuts` ([`Shortcut`]).

use videocall_types::chat_limits::ALLOWED_EMOJI;
use yew::prelude::*;

use crate::state::Shortcut;

#[derive(Properties, PartialEq)]
pub(crate) struct ControlsProps {
    pub(crate) mic_on: bool,
    pub(crate) camera_on: bool,
    pub(crate) sharing: bool,
    pub(crate) hand_raised: bool,
    pub(crate) chat_open: bool,
    pub(crate) unread: u32,
    pub(crate) people_open: bool,
    pub(crate) devices_open: bool,
    /// How many are in the meeting, us included.
    pub(crate) people: usize,
    pub(crate) on_hand: Callback<()>,
    pub(crate) on_chat: Callback<()>,
    pub(crate) on_people: Callback<()>,
    pub(crate) on_react: Callback<String>,
    pub(crate) on_mic: Callback<()>,
    pub(crate) on_camera: Callback<()>,
    pub(crate) on_share: Callback<()>,
    pub(crate) on_diagnostics: Callback<()>,
    pub(crate) on_devices: Callback<()>,
    pub(crate) on_leave: Callback<()>,
}

#[function_component(Controls)]
pub(crate) fn controls(p: &ControlsProps) -> Html {
    let click = |cb: &Callback<()>| {
        let cb = cb.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    html! {
        <nav class="controls" aria-label="Meeting controls">
            // Pressed means muted: the name stays "Mute microphone" whatever the state.
            <button id="toggle-mic" class={classes!((!p.mic_on).then_some("off"))} onclick={click(&p.on_mic)}
                aria-label="Mute microphone" aria-pressed={(!p.mic_on).to_string()}
                title={Shortcut::Mic.title(if p.mic_on { "Mute" } else { "Unmute" })}
                aria-keyshortcuts={Shortcut::Mic.key()}>
                { if p.mic_on { "Mute" } else { "Unmute" } }
            </button>
            <button id="toggle-camera" class={classes!((!p.camera_on).then_some("off"))} onclick={click(&p.on_camera)}
                aria-label="Stop video" aria-pressed={(!p.camera_on).to_string()}
                title={Shortcut::Camera.title(if p.camera_on { "Stop video" } else { "Start video" })}
                aria-keyshortcuts={Shortcut::Camera.key()}>
                { if p.camera_on { "Stop video" } else { "Start video" } }
            </button>
            <button id="toggle-screen" class={classes!("share", p.sharing.then_some("active"))} onclick={click(&p.on_share)}
                aria-label="Share screen" aria-pressed={p.sharing.to_string()}>
                { if p.sharing { "Stop sharing" } else { "Share screen" } }
            </button>
            <button id="toggle-hand" class={classes!(p.hand_raised.then_some("active"))} onclick={click(&p.on_hand)}
                aria-label="Raise hand" aria-pressed={p.hand_raised.to_string()}
                title={Shortcut::Hand.title(if p.hand_raised { "Lower hand" } else { "Raise hand" })}
                aria-keyshortcuts={Shortcut::Hand.key()}>
                { if p.hand_raised { "Lower hand" } else { "Raise hand" } }
            </button>
            <span class="reactions" role="group" aria-label="React">
                { for ALLOWED_EMOJI.iter().map(|emoji| {
                    let on_react = p.on_react.clone();
                    let emoji = (*emoji).to_owned();
                    let onclick = { let emoji = emoji.clone(); Callback::from(move |_: MouseEvent| on_react.emit(emoji.clone())) };
                    html! { <button class="react secondary" data-emoji={emoji.clone()} title={format!("React {emoji}")}
                        aria-label={format!("React {emoji}")} {onclick}>{emoji}</button> }
                }) }
            </span>
            <button id="toggle-chat" class={classes!("secondary", p.chat_open.then_some("active"))} onclick={click(&p.on_chat)}
                aria-pressed={p.chat_open.to_string()} aria-controls="chat-panel"
                title={Shortcut::Chat.title("Chat")} aria-keyshortcuts={Shortcut::Chat.key()}>
                {"Chat"}
                if p.unread > 0 { <span id="chat-unread" class="unread" aria-label={format!("{} unread", p.unread)}>{p.unread}</span> }
            </button>
            <button id="toggle-people" class={classes!("secondary", p.people_open.then_some("active"))} onclick={click(&p.on_people)}
                aria-pressed={p.people_open.to_string()} aria-controls="people-panel"
                title={Shortcut::People.title("People")} aria-keyshortcuts={Shortcut::People.key()}>
                {format!("People ({})", p.people)}
            </button>
            <button id="toggle-devices" class={classes!("secondary", p.devices_open.then_some("active"))} onclick={click(&p.on_devices)}
                aria-pressed={p.devices_open.to_string()} aria-controls="devices-panel"
                title="Switch camera, microphone or speaker">{"Devices"}</button>
            <button id="toggle-diagnostics" class="secondary" onclick={click(&p.on_diagnostics)}>{"Diagnostics"}</button>
            <button id="leave" class="danger" onclick={click(&p.on_leave)}>{"Leave"}</button>
        </nav>
    }
}
