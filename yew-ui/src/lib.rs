//! The videocall browser app.
//!
//! `state` (the page's reducer) builds and is tested natively; everything that touches the
//! browser (Yew components, WebCodecs, WebTransport, WebSocket) builds only for `wasm32`.

pub mod api;
pub mod state;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod client;
#[cfg(target_arch = "wasm32")]
mod components;
#[cfg(target_arch = "wasm32")]
mod e2ee;
#[cfg(all(target_arch = "wasm32", feature = "bench"))]
mod e2ee_bench;
#[cfg(target_arch = "wasm32")]
mod media;
#[cfg(target_arch = "wasm32")]
mod pages;
#[cfg(target_arch = "wasm32")]
mod transport;

/// Entry point called by the page's loader script.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen::prelude::wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    #[cfg(feature = "bench")]
    e2ee_bench::install();
    yew::Renderer::<app::App>::new().render();
}
