//! Switch camera, microphone and speaker without leaving the call. The lists are the devices the
//! page found before joining; a pick goes to the driver, and the reducer records what it switched
//! to (`devices_in_use`, shown as the selected option and as `data-*` attributes for tests).

use wasm_bindgen::JsCast;
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::media::devices::{Device, DeviceList};
use crate::state::{DeviceKind, DevicesInUse};

#[derive(Properties, PartialEq)]
pub(crate) struct DevicePanelProps {
    pub(crate) devices: DeviceList,
    pub(crate) in_use: DevicesInUse,
    pub(crate) on_pick: Callback<(DeviceKind, String)>,
    pub(crate) on_close: Callback<()>,
}

/// One `<select>` of `devices`, `current` selected; a change picks that device.
fn picker(
    kind: DeviceKind,
    label: &'static str,
    devices: &[Device],
    current: Option<&str>,
    on_pick: &Callback<(DeviceKind, String)>,
) -> Html {
    let id = format!("call-{}-select", kind.noun());
    let onchange = {
        let on_pick = on_pick.clone();
        Callback::from(move |e: Event| {
            if let Some(select) = e
                .target()
                .and_then(|t| t.dyn_into::<HtmlSelectElement>().ok())
                && !select.value().is_empty()
            {
                on_pick.emit((kind, select.value()));
            }
        })
    };
    html! {
        <label>{label}
            <select {id} {onchange} disabled={devices.is_empty()}>
                <option value="" selected={current.is_none()} disabled=true>{"as chosen before joining"}</option>
                { for devices.iter().enumerate().map(|(i, d)| html! {
                    <option value={d.id.clone()} selected={current == Some(d.id.as_str())}>
                        { if d.label.is_empty() { format!("{label} {}", i + 1) } else { d.label.clone() } }
                    </option>
                }) }
            </select>
        </label>
    }
}

#[function_component(DevicePanel)]
pub(crate) fn device_panel(p: &DevicePanelProps) -> Html {
    let close = {
        let cb = p.on_close.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    let u = &p.in_use;
    html! {
        <aside class="devices-panel" id="devices-panel" aria-label="Devices"
            data-camera={u.camera.clone()} data-microphone={u.microphone.clone()} data-speaker={u.speaker.clone()}>
            <h2>{"Devices"}</h2>
            {picker(DeviceKind::Camera, "Camera", &p.devices.cameras, u.camera.as_deref(), &p.on_pick)}
            {picker(DeviceKind::Microphone, "Microphone", &p.devices.microphones, u.microphone.as_deref(), &p.on_pick)}
            {picker(DeviceKind::Speaker, "Speaker", &p.devices.speakers, u.speaker.as_deref(), &p.on_pick)}
            <button class="secondary" id="devices-close" onclick={close}>{"Close"}</button>
        </aside>
    }
}
