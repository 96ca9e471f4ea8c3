//! The server's TLS identity: from PEM files, or a generated development certificate that
//! browsers accept by hash (`serverCertificateHashes`: ECDSA P-256, valid at most 14 days).

use std::path::{Path, PathBuf};

use anyhow::Context;
use wtransport::Identity;
use wtransport::tls::CertificateChain;

/// Certificate flags of a WebTransport server.
#[derive(Debug, Clone, clap::Args)]
pub struct CertArgs {
    /// PEM certificate chain. Without `--cert`/`--key` a development certificate is generated
    /// (ECDSA P-256, valid `--dev-cert-days`), whose SHA-256 browsers accept through
    /// `serverCertificateHashes`.
    #[arg(long, env = "CERT_PATH", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, env = "KEY_PATH", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Validity of a generated development certificate, in days (browsers accept at most 14).
    #[arg(long, env = "DEV_CERT_DAYS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=14))]
    pub dev_cert_days: u32,
}

/// Loads `--cert`/`--key`, or generates a development certificate for localhost.
pub async fn identity(args: &CertArgs) -> anyhow::Result<Identity> {
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
    leaf_hash(identity.certificate_chain())
}

/// SHA-256 of the leaf certificate in the PEM file at `path` (a certificate another process
/// serves, whose hash pages should pin).
pub async fn certificate_file_hash(path: &Path) -> anyhow::Result<[u8; 32]> {
    let chain = CertificateChain::load_pemfile(path)
        .await
        .with_context(|| format!("cannot read certificate {}", path.display()))?;
    anyhow::ensure!(
        !chain.as_slice().is_empty(),
        "no certificate in {}",
        path.display()
    );
    Ok(leaf_hash(&chain))
}

/// Writes `chain` as PEM to `path` atomically: a temporary file beside it, synced, then renamed,
/// so a process reading `path` sees the old certificate or the whole new one, never part.
/// (wtransport's `store_pemfile` returns before its tokio writes reach the file.)
pub fn store_certificate_chain(chain: &CertificateChain, path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let pem: String = chain.as_slice().iter().map(|c| c.to_pem()).collect();
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// The hash of a chain's first certificate; callers make sure there is one.
fn leaf_hash(chain: &CertificateChain) -> [u8; 32] {
    *chain.as_slice()[0].hash().as_ref()
}

/// Lower-case hex of a hash, for logs and the CLI's `--cert-hash`.
pub fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stored_certificate_has_the_hash_of_the_identity_it_came_from() {
        let identity = dev_identity(DEV_CERT_NAMES, 3).expect("a certificate is generated");
        let path =
            std::env::temp_dir().join(format!("videocall-service-cert-{}.pem", std::process::id()));
        store_certificate_chain(identity.certificate_chain(), &path)
            .expect("the PEM file is written");
        let from_file = certificate_file_hash(&path).await;
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            from_file.expect("the PEM file is read"),
            certificate_hash(&identity)
        );
    }

    #[tokio::test]
    async fn a_file_without_a_certificate_is_an_error_not_a_panic() {
        let path = std::env::temp_dir().join(format!(
            "videocall-service-empty-{}.pem",
            std::process::id()
        ));
        std::fs::write(&path, "not a certificate\n").expect("the file is written");
        let result = certificate_file_hash(&path).await;
        let _ = std::fs::remove_file(&path);
        assert!(result.is_err());
    }

    #[test]
    fn hex_is_lower_case_and_two_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab]), "000fab");
    }
}
