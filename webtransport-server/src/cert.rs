//! The server's TLS identity: from PEM files, or a generated development certificate that
//! browsers accept by hash (`serverCertificateHashes`: ECDSA P-256, valid at most 14 days).

use anyhow::Context;
use wtransport::Identity;

use crate::WtArgs;

/// Loads `--cert`/`--key`, or generates a development certificate for localhost.
pub async fn identity(args: &WtArgs) -> anyhow::Result<Identity> {
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => Identity::load_pemfiles(cert, key).await.with_context(|| {
            format!(
                "cannot load certificate {} and key {}",
                cert.display(),
                key.display()
            )
        }),
        _ => dev_identity(DEV_CERT_NAMES, args.dev_cert_days),
    }
}

/// Names of the development certificate when no others are given.
pub const DEV_CERT_NAMES: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// A development certificate (ECDSA P-256, self-signed) for `names`, valid `days` from now.
/// Browsers accept it through `serverCertificateHashes` when `days` is at most 14.
pub fn dev_identity<S: AsRef<str>>(names: &[S], days: u32) -> anyhow::Result<Identity> {
    Identity::self_signed_builder()
        .subject_alt_names(names.iter().map(AsRef::as_ref))
        .from_now_utc()
        .validity_days(days)
        .build()
        .context("cannot generate a development certificate")
}

/// SHA-256 of the leaf certificate's DER: what a page passes in `serverCertificateHashes`.
pub fn certificate_hash(identity: &Identity) -> [u8; 32] {
    let leaf = &identity.certificate_chain().as_slice()[0];
    *leaf.hash().as_ref()
}

/// Lower-case hex of a hash, for logs and the CLI's `--cert-hash`.
pub fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
