//! The meeting's control bar.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(crate) struct ControlsProps {
    pub(crate) mic_on: bool,
    pub(crate) camera_on: bool,
    pub(crate) sharing: bool,
    pub(crate) on_mic: Callback<()>,
    pub(crate) on_camera: Callback<()>,
    pub(crate) on_share: Callback<()>,
    pub(crate) on_diagnostics: Callback<()>,
    pub(crate) on_leave: Callback<()>,
}

#[function_component(Controls)]
pub(crate) fn controls(p: &ControlsProps) -> Html {
    let click = |cb: &Callback<()>| {
        let cb = cb.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    html! {
        <nav class="controls">
            <button id="toggle-mic" class={classes!((!p.mic_on).then_some("off"))} onclick={click(&p.on_mic)}>
                { if p.mic_on { "Mute" } else { "Unmute" } }
            </button>
            <button id="toggle-camera" class={classes!((!p.camera_on).then_some("off"))} onclick={click(&p.on_camera)}>
                { if p.camera_on { "Stop video" } else { "Start video" } }
            </button>
            <button id="toggle-screen" class={classes!(p.sharing.then_some("active"))} onclick={click(&p.on_share)}>
                { if p.sharing { "Stop sharing" } else { "Share screen" } }
            </button>
            <button id="toggle-diagnostics" class="secondary" onclick={click(&p.on_diagnostics)}>{"Diagnostics"}</button>
            <button id="leave" class="danger" onclick={click(&p.on_leave)}>{"Leave"}</button>
        </nav>
    }
}
