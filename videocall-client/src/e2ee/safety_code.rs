//! The safety code: a short number people compare out of band to detect a key-substituting relay.
//!
//! SHA-256 over the sorted set of (user id, public key DER) of the meeting, ourselves included,
//! shown as 5 groups of 5 digits. Everyone who holds the same keys for the same people sees the
//! same code; a relay that hands someone a public key of its own changes that person's set, so
//! their code differs from everyone else's.

use sha2::{Digest, Sha256};

const DOMAIN: &[u8] = b"videocall-e2ee-v1 safety code";

/// 5 groups of 5 digits (about 83 bits), `Display`ed as `12345 67890 …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SafetyCode {
    groups: [u32; 5],
}

impl SafetyCode {
    /// The code of a set of (user id, public key DER) entries, in any order, duplicates ignored.
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
        let digest = hash.finalize();
        let mut groups = [0; 5];
        for (group, chunk) in groups.iter_mut().zip(digest.chunks_exact(6)) {
            let mut wide = [0; 8];
            wide[2..].copy_from_slice(chunk);
            // 2^48 mod 10^5 is tiny against 2^48: the bias is below 2^-30.
            *group = (u64::from_be_bytes(wide) % 100_000) as u32;
        }
        Self { groups }
    }

    /// The five groups, each below 100000.
    pub fn groups(&self) -> [u32; 5] {
        self.groups
    }
}

impl std::fmt::Display for SafetyCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e] = self.groups;
        write!(f, "{a:05} {b:05} {c:05} {d:05} {e:05}")
    }
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
    fn the_code_shows_as_five_groups_of_five_digits() {
        let text = SafetyCode::compute([("alice", &b"ka"[..])]).to_string();
        let groups: Vec<&str> = text.split(' ').collect();
        assert_eq!(groups.len(), 5, "{text}");
        assert!(
            groups
                .iter()
                .all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit()))
        );
    }
}
