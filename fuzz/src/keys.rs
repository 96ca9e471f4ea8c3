//! Two fixed RSA-2048 identities (PKCS#8 DER in `keys/`, made with `openssl genpkey`): parsing
//! them is fast, generating keys inside a fuzz run is not, and fixed keys keep runs reproducible.

use std::sync::OnceLock;

use videocall_client::e2ee::Identity;

const DER: [&[u8]; 2] = [
    include_bytes!("../keys/a.pk8.der"),
    include_bytes!("../keys/b.pk8.der"),
];

/// Identity `n` (0 or 1), with its private key.
pub fn identity(n: usize) -> &'static Identity {
    static KEYS: OnceLock<[Identity; 2]> = OnceLock::new();
    &KEYS.get_or_init(|| {
        DER.map(|der| Identity::from_pkcs8_der(der).expect("the checked-in keys are valid"))
    })[n % 2]
}
