//! `videocall-dev-cert`: writes a development certificate for WebTransport into a directory
//! (`cert.pem`, `key.pem`), unless one that stays valid long enough is already there.
//!
//! The compose stack runs it once before the relays start, into a volume both share: the
//! WebTransport server serves the certificate, `actix-api` reads it to tell browsers its hash
//! (`serverCertificateHashes` accepts self-signed ECDSA P-256 certificates valid ≤ 14 days).
//! Keeping a valid one means a restart does not change the hash pages already pinned.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use videocall_service::cert;

/// Writes a WebTransport development certificate (ECDSA P-256, self-signed) into a directory.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Config {
    /// Directory for cert.pem, key.pem and expires (Unix time the certificate ends).
    #[arg(long, env = "DEV_CERT_DIR")]
    out_dir: PathBuf,
    /// Validity in days (browsers accept at most 14).
    #[arg(long, env = "DEV_CERT_DAYS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=14))]
    days: u32,
    /// A certificate that ends within this many days is replaced.
    #[arg(long, env = "DEV_CERT_RENEW_DAYS", default_value_t = 2)]
    renew_days: u32,
    /// Names and addresses the certificate is for (repeatable; env: comma-separated).
    #[arg(long = "name", env = "DEV_CERT_NAMES", value_delimiter = ',', default_values_t = cert::DEV_CERT_NAMES.iter().map(|n| n.to_string()))]
    names: Vec<String>,
}

const DAY: Duration = Duration::from_secs(24 * 3600);

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("cannot start a runtime")?;
    runtime.block_on(run(&config))
}

async fn run(config: &Config) -> anyhow::Result<()> {
    let cert_path = config.out_dir.join("cert.pem");
    let key_path = config.out_dir.join("key.pem");
    let expires_path = config.out_dir.join("expires");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;

    if let Some(expires) = read_expiry(&expires_path)
        && key_path.is_file()
        && expires > now + DAY * config.renew_days
    {
        let hash = cert::certificate_file_hash(&cert_path).await?;
        println!(
            "keeping {} (valid {} more hours), SHA-256 {}",
            cert_path.display(),
            (expires - now).as_secs() / 3600,
            cert::hex(&hash)
        );
        return Ok(());
    }

    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("cannot create {}", config.out_dir.display()))?;
    let identity = cert::dev_identity(&config.names, config.days)?;
    // Key first (readable by its owner only): a reader that sees the new certificate must
    // find its key.
    write_private(&key_path, identity.private_key().to_secret_pem().as_bytes())
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    cert::store_certificate_chain(identity.certificate_chain(), &cert_path)
        .with_context(|| format!("cannot write {}", cert_path.display()))?;
    let expires = now + DAY * config.days;
    std::fs::write(&expires_path, format!("{}\n", expires.as_secs()))
        .with_context(|| format!("cannot write {}", expires_path.display()))?;
    println!(
        "wrote {} for {} (valid {} days), SHA-256 {}",
        cert_path.display(),
        config.names.join(", "),
        config.days,
        cert::hex(&cert::certificate_hash(&identity))
    );
    Ok(())
}

/// Writes `bytes` to `path`, created (or truncated) with mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode through open: narrow it too.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

/// The Unix time in `path`, if it holds one.
fn read_expiry(path: &Path) -> Option<Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    text.trim().parse().ok().map(Duration::from_secs)
}
