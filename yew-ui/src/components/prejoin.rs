//! Before joining: camera preview, microphone level, device pickers, mic/camera toggles and the
//! Connect button.

use web_sys::{HtmlSelectElement, MediaStream};
use yew::prelude::*;

use crate::components::self_view::SelfView;
use crate::media::devices::{Device, DeviceList};

#[derive(Properties, PartialEq)]
pub(crate) struct PreJoinProps {
    pub(crate) meeting: String,
    pub(crate) user: String,
    pub(crate) stream: Option<MediaStream>,
    pub(crate) devices: DeviceList,
    pub(crate) level: f32,
    pub(crate) mic_on: bool,
    pub(crate) camera_on: bool,
    pub(crate) notices: Vec<String>,
    pub(crate) connecting: bool,
    pub(crate) opening: bool,
    pub(crate) on_camera: Callback<String>,
    pub(crate) on_microphone: Callback<String>,
    /// The speaker chosen (applied once joined, where the browser can choose one).
    pub(crate) on_speaker: Callback<String>,
    pub(crate) on_toggle_mic: Callback<()>,
    pub(crate) on_toggle_camera: Callback<()>,
    pub(crate) on_connect: Callback<()>,
}

fn picker(
    id: &'static str,
    label: &'static str,
    devices: &[Device],
    on_change: Option<Callback<String>>,
) -> Html {
    let onchange = on_change.map(|cb| {
        Callback::from(move |e: Event| {
            cb.emit(e.target_unchecked_into::<HtmlSelectElement>().value())
        })
    });
    html! {
        <label>{label}
            <select {id} {onchange} disabled={devices.is_empty()}>
                if devices.is_empty() { <option>{"none found"}</option> }
                { for devices.iter().enumerate().map(|(i, d)| html! {
                    <option value={d.id.clone()}>{ if d.label.is_empty() { format!("{label} {}", i + 1) } else { d.label.clone() } }</option>
                }) }
            </select>
        </label>
    }
}

#[function_component(PreJoin)]
pub(crate) fn prejoin(p: &PreJoinProps) -> Html {
    let click = |cb: &Callback<()>| {
        let cb = cb.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    // Map RMS (0..~0.3) onto the meter's width.
    let level = ((p.level * 300.0).min(100.0)) as u32;
    html! {
        <main class="prejoin">
            <section class="preview">
                if p.camera_on && p.stream.is_some() {
                    <SelfView stream={p.stream.clone()} />
                } else {
                    <div class="preview-off">{"Camera off"}</div>
                }
                <div class="meter" title="microphone level"><div id="mic-level" style={format!("width: {level}%")} /></div>
            </section>
            <section class="card">
                <h1>{format!("Join {}", p.meeting)}</h1>
                <p class="muted">{format!("as {}", p.user)}</p>
                { for p.notices.iter().map(|n| html! { <p class="notice">{n.clone()}</p> }) }
                {picker("camera-select", "Camera", &p.devices.cameras, Some(p.on_camera.clone()))}
                {picker("microphone-select", "Microphone", &p.devices.microphones, Some(p.on_microphone.clone()))}
                {picker("speaker-select", "Speaker", &p.devices.speakers, Some(p.on_speaker.clone()))}
                <div class="row">
                    <button class={classes!("secondary", (!p.mic_on).then_some("off"))} id="prejoin-mic" onclick={click(&p.on_toggle_mic)}>
                        { if p.mic_on { "Mic on" } else { "Mic off" } }
                    </button>
                    <button class={classes!("secondary", (!p.camera_on).then_some("off"))} id="prejoin-camera" onclick={click(&p.on_toggle_camera)}>
                        { if p.camera_on { "Camera on" } else { "Camera off" } }
                    </button>
                </div>
                <button id="connect" disabled={p.connecting || p.opening} onclick={click(&p.on_connect)}>
                    { if p.connecting { "Connecting…" } else if p.opening { "Opening camera…" } else { "Connect" } }
                </button>
            </section>
        </main>
    }
}
