//! E2EE costs: seal + open of a 2 KB frame, RSA-2048 key generation, sender-key wrap and unwrap.
//!
//! `cargo bench -p videocall-client --bench e2ee`

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::e2ee::{E2ee, E2eeConfig, Identity};
use videocall_types::{MediaPacket, MediaType, PacketWrapper};

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

/// Two members of a meeting holding each other's sender keys.
fn pair() -> (E2ee, E2ee) {
    let mut a = E2ee::with_identity(
        E2eeConfig::default(),
        "alice",
        Identity::generate(&mut rng(1), 2048).expect("valid size"),
        rng(2),
    );
    let mut b = E2ee::with_identity(
        E2eeConfig::default(),
        "bob",
        Identity::generate(&mut rng(3), 2048).expect("valid size"),
        rng(4),
    );
    a.handle_joined(1);
    b.handle_joined(2);
    a.handle_peer_joined(2, "bob");
    b.handle_peer_joined(1, "alice");
    // Public keys first, then the sender keys wrapped for them.
    for _ in 0..2 {
        deliver(&mut a, 1, "alice", &mut b);
        deliver(&mut b, 2, "bob", &mut a);
    }
    assert!(b.has_key_from(1));
    (a, b)
}

/// Hands everything `from` (session `session`, user `user`) wants to send to `to`.
fn deliver(from: &mut E2ee, session: u64, user: &'static str, to: &mut E2ee) {
    while let Some(k) = from.poll_transmit() {
        let wrapper = PacketWrapper {
            packet_type: k.packet_type as i32,
            user_id: Bytes::from_static(user.as_bytes()),
            data: k.data,
            session_id: session,
        };
        to.handle_key_packet(&wrapper).expect("valid key packet");
    }
}

fn seal_open(c: &mut Criterion) {
    let (mut a, mut b) = pair();
    let media = MediaPacket {
        media_type: MediaType::Video as i32,
        frame_type: "delta".into(),
        data: Bytes::from(vec![0x5a; 2048]),
        timestamp: 1.0,
        ..Default::default()
    };
    c.bench_function("seal+open 2 KB frame", |bench| {
        bench.iter(|| {
            let envelope = a.seal(black_box(&media)).expect("seals");
            b.open(1, &envelope).expect("opens")
        })
    });
    c.bench_function("seal 2 KB frame", |bench| {
        bench.iter(|| a.seal(black_box(&media)).expect("seals"))
    });
}

fn rsa(c: &mut Criterion) {
    let mut group = c.benchmark_group("rsa-2048");
    group.sample_size(10);
    let mut r = rng(5);
    group.bench_function("keygen", |bench| {
        bench.iter(|| Identity::generate(&mut r, 2048).expect("valid size"))
    });
    let identity = Identity::generate(&mut rng(6), 2048).expect("valid size");
    let public = identity.public_key();
    let secret = [7u8; 40];
    group.bench_function("wrap", |bench| {
        bench.iter(|| public.wrap(&mut r, black_box(&secret)).expect("wraps"))
    });
    let wrapped = public.wrap(&mut r, &secret).expect("wraps");
    group.bench_function("unwrap", |bench| {
        bench.iter(|| {
            identity
                .unwrap(&mut r, black_box(&wrapped))
                .expect("unwraps")
        })
    });
    group.finish();
}

criterion_group!(benches, seal_open, rsa);
criterion_main!(benches);
