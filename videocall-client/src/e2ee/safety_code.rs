//! The safety code: a number people compare out of band to detect a relay that substituted a
//! key or added a key holder.
//!
//! SHA-256 over a canonical encoding of the sorted set of every key holder's identity, ourselves
//! included: (user id, RSA public key DER, Ed25519 signing key). It is shown as 60 decimal
//! digits (12 groups of 5, ≈ 199 bits), so finding a second set with the same code takes about
//! 2^199 hashes. Everyone who wraps for the same holders with the same keys sees the same code;
//! any holder added, removed or substituted changes it.

use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"videocall-e2ee-v2 safety code";

/// Digits shown.
pub const SAFETY_CODE_DIGITS: usize = 60;

/// The SHA-256 commitment to the key holders, `Display`ed as 12 groups of 5 digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafetyCode {
    digest: [u8; 32],
}

impl SafetyCode {
    /// The code of a set of (user id, identity) entries, in any order, duplicates ignored. The
    /// identity is the canonical encoding of the holder's public keys.
    pub fn compute<'a>(entries: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Self {
        // Length-prefixed so that no two different sets encode alike.
        let mut encoded: Vec<Vec<u8>> = entries
            .into_iter()
            .map(|(user, key)| {
                let mut e = Vec::with_capacity(8 + user.len() + key.len());
                e.extend_from_slice(&(user.len() as u32).to_be_bytes());
                e.extend_from_slice(user.as_bytes());
                e.extend_from_slice(&(key.len() as u32).to_be_bytes());
                e.extend_from_slice(key);
                e
            })
            .collect();
        encoded.sort();
        encoded.dedup();
        let mut hash = Sha256::new();
        hash.update(DOMAIN);
        hash.update((encoded.len() as u32).to_be_bytes());
        for entry in &encoded {
            hash.update(entry);
        }
        Self {
            digest: hash.finalize().into(),
        }
    }

    /// The full SHA-256 digest.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The [`SAFETY_CODE_DIGITS`] decimal digits: the digest as a 256-bit number modulo
    /// 10^60 (the bias of the reduction is below 2^-56).
    pub fn digits(&self) -> [u8; SAFETY_CODE_DIGITS] {
        let mut number = self.digest;
        let mut digits = [0; SAFETY_CODE_DIGITS];
        for digit in digits.iter_mut().rev() {
            // Long division of the big-endian number by 10.
            let mut remainder = 0u32;
            for byte in number.iter_mut() {
                let value = (remainder << 8) | u32::from(*byte);
                *byte = (value / 10) as u8;
                remainder = value % 10;
            }
            *digit = remainder as u8;
        }
        digits
    }
}

impl std::fmt::Display for SafetyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, group) in self.digits().chunks(5).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            for d in group {
                write!(f, "{d}")?;
            }
        }
        Ok(())
    }
}

/// Hex of the first 16 bytes of SHA-256 over `identity`, in groups of 4 digits.
pub(crate) fn fingerprint(identity: &[u8]) -> String {
    let digest = Sha256::digest(identity);
    let hex: Vec<String> = digest[..16]
        .chunks(2)
        .map(|c| format!("{:02x}{:02x}", c[0], c[1]))
        .collect();
    hex.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_ignores_order_and_duplicates() {
        let a = SafetyCode::compute([("alice", &b"ka"[..]), ("bob", b"kb")]);
        let b = SafetyCode::compute([("bob", &b"kb"[..]), ("alice", b"ka"), ("bob", b"kb")]);
        assert_eq!(a, b);
    }

    #[test]
    fn another_key_or_user_changes_the_code() {
        let base = SafetyCode::compute([("alice", &b"ka"[..]), ("bob", b"kb")]);
        assert_ne!(
            base,
            SafetyCode::compute([("alice", &b"ka"[..]), ("bob", b"kX")])
        );
        assert_ne!(
            base,
            SafetyCode::compute([("alice", &b"ka"[..]), ("bobby", b"kb")])
        );
        // Length prefixes: moving a byte between user id and key is another set.
        assert_ne!(
            SafetyCode::compute([("ab", &b"c"[..])]),
            SafetyCode::compute([("a", &b"bc"[..])])
        );
    }

    #[test]
    fn the_code_shows_as_twelve_groups_of_five_digits() {
        let text = SafetyCode::compute([("alice", &b"ka"[..])]).to_string();
        let groups: Vec<&str> = text.split(' ').collect();
        assert_eq!(groups.len(), 12, "{text}");
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
        );
    }

    #[test]
    fn the_digits_are_the_digest_modulo_ten_to_the_sixtieth() {
        let mut code = SafetyCode::compute([("alice", &b"ka"[..])]);
        code.digest = [0; 32];
        code.digest[31] = 255;
        code.digest[30] = 1;
        let text: String = code.digits().iter().map(|d| char::from(b'0' + d)).collect();
        assert_eq!(text, format!("{:060}", 511));
        code.digest = [0xff; 32];
        // 2^256 - 1 = 115792089237316195423570985008687907853269984665640564039457584007913129639935
        let text: String = code.digits().iter().map(|d| char::from(b'0' + d)).collect();
        assert_eq!(
            text,
            "237316195423570985008687907853269984665640564039457584007913129639935"[9..]
        );
    }
}
