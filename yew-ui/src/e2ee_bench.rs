//! `window.videocallE2eeBench(frames)` (feature `bench`, off in the production bundle; `make
//! e2e` builds its UI with it for the perf test): measures, in this browser, WebCrypto key
//! generation, the wraps for 10 peers, an unwrap (WebCrypto and `rsa` in wasm), and seal + open
//! of 2 KB frames.

use bytes::Bytes;
use js_sys::{Object, Promise, Reflect, Uint8Array};
use videocall_client::e2ee::{E2ee, E2eeConfig, Identity, OsRng};
use videocall_types::{MediaPacket, MediaType, PacketType, PacketWrapper};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::e2ee::{decrypt, export, generate_pair};
use crate::media::now_ms;

/// Installs `window.videocallE2eeBench(frames) -> Promise<{...}>`.
pub(crate) fn install() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let bench = Closure::<dyn Fn(JsValue) -> Promise>::new(|frames: JsValue| {
        let frames = frames.as_f64().unwrap_or(1000.0).max(1.0) as u64;
        future_to_promise(async move { bench(frames).await.map(JsValue::from) })
    });
    let _ = Reflect::set(&window, &"videocallE2eeBench".into(), bench.as_ref());
    bench.forget();
}

/// Two participants keyed to each other, then `frames` 2 KB video frames sealed by one and
/// opened by the other.
async fn bench(frames: u64) -> Result<Object, JsValue> {
    let t = now_ms();
    let (_, alice_der) = generate_pkcs8().await?;
    let keygen_ms = now_ms() - t;
    let alice_id = Identity::from_pkcs8_der(&alice_der.to_vec()).map_err(|e| e.to_string())?;
    let (bob_pair, bob_der) = generate_pkcs8().await?;
    let bob_id = Identity::from_pkcs8_der(&bob_der.to_vec()).map_err(|e| e.to_string())?;

    let t = now_ms();
    for _ in 0..10 {
        bob_id
            .public_key()
            .wrap(&mut OsRng, &[7u8; 40])
            .map_err(|e| e.to_string())?;
    }
    let wrap_10_ms = now_ms() - t;
    let wrapped = bob_id
        .public_key()
        .wrap(&mut OsRng, &[7u8; 40])
        .map_err(|e| e.to_string())?;
    let t = now_ms();
    bob_id
        .unwrap(&mut OsRng, &wrapped)
        .map_err(|e| e.to_string())?;
    let unwrap_wasm_ms = now_ms() - t;
    let t = now_ms();
    let unwrapped = decrypt(&bob_pair, &wrapped).await?;
    let unwrap_webcrypto_ms = now_ms() - t;
    if unwrapped != [7u8; 40] {
        return Err("WebCrypto unwrapped something else".into());
    }

    let mut alice = E2ee::with_identity(E2eeConfig::default(), "alice", alice_id, OsRng);
    let mut bob = E2ee::with_identity(E2eeConfig::default(), "bob", bob_id, OsRng);
    alice.handle_joined(1);
    bob.handle_joined(2);
    alice.handle_peer_joined(2, "bob");
    bob.handle_peer_joined(1, "alice");
    // Exchange key packets until both are quiet.
    for _ in 0..4 {
        while let Some(k) = alice.poll_transmit() {
            let _ = bob.handle_key_packet(&stamped(k.packet_type, k.data, 1, "alice"));
        }
        while let Some(k) = bob.poll_transmit() {
            let _ = alice.handle_key_packet(&stamped(k.packet_type, k.data, 2, "bob"));
        }
    }
    let media = MediaPacket {
        media_type: MediaType::Video as i32,
        frame_type: "delta".into(),
        data: Bytes::from(vec![0x5a; 2048]),
        ..Default::default()
    };
    let t = now_ms();
    let mut opened = 0u64;
    for _ in 0..frames {
        let envelope = alice.seal(&media).map_err(|e| e.to_string())?;
        if bob.open(1, &envelope).is_ok() {
            opened += 1;
        }
    }
    let seal_open_us = (now_ms() - t) * 1000.0 / frames as f64;
    let result = Object::new();
    for (key, value) in [
        ("keygen_ms", keygen_ms),
        ("wrap_10_peers_ms", wrap_10_ms),
        ("unwrap_webcrypto_ms", unwrap_webcrypto_ms),
        ("unwrap_wasm_ms", unwrap_wasm_ms),
        ("seal_open_2kb_us", seal_open_us),
        ("frames", frames as f64),
        ("opened", opened as f64),
    ] {
        Reflect::set(&result, &key.into(), &value.into())?;
    }
    Ok(result)
}

fn stamped(packet_type: PacketType, data: Bytes, session: u64, user: &str) -> PacketWrapper {
    PacketWrapper {
        packet_type: packet_type as i32,
        user_id: Bytes::copy_from_slice(user.as_bytes()),
        data,
        session_id: session,
    }
}

/// An extractable key pair's private key as PKCS#8 DER (for the bench's `rsa`-in-wasm side).
async fn generate_pkcs8() -> Result<(JsValue, Uint8Array), JsValue> {
    let pair = generate_pair(true).await?;
    let der = export(&pair, "privateKey", "pkcs8").await?;
    Ok((pair, der))
}
