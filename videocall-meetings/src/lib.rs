//! Meetings, participants, users and login sessions of videocall, and the rules over them.
//!
//! A [`Store`] is opened from a URL: `postgres://…` for a cluster of nodes, `sqlite://path` for
//! one node (the embedded default; the file's directory is created). The same queries run on
//! both through sqlx's Any driver; the schema (`migrations/`) uses only TEXT and BIGINT columns so
//! that both backends read it alike, and it is applied on open.
//!
//! Every rule of the meeting API lives here, once: who may change a meeting (its owner or an
//! admitted host), what a join returns (admitted, waiting, refused), and the participant cap,
//! which holds under concurrency because every write transaction starts by touching the
//! meeting's row ([`Store`]'s `lock_meeting`): PostgreSQL then holds that row's lock, SQLite its
//! write lock, until the transaction ends, so joins to one meeting count and insert one at a time.
//!
//! The store also answers the relays' token-less joins ([`videocall_auth::MeetingGate`]).

mod error;
mod gate;
mod meetings;
mod model;
mod participants;
mod users;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tracing::info;

pub use error::{MeetingError, StoreError};
pub use model::{
    Access, AdmitAll, Joined, LoginSession, Meeting, MeetingState, NewMeeting, Participant,
    ParticipantStatus, Role, SettingsPatch, User,
};

/// Largest `max_participants` a meeting may have.
pub const MAX_PARTICIPANTS_LIMIT: i64 = 1000;
/// Default `max_participants` of a new meeting.
pub const DEFAULT_MAX_PARTICIPANTS: i64 = 100;
/// People who may wait in one meeting's waiting room; more joins are refused (and counted by
/// the caller) so a crowd of joiners cannot grow the list without bound.
pub const MAX_WAITING: i64 = 500;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 100;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (`postgres://`, `postgresql://`).
    Postgres,
    /// SQLite (`sqlite:`), a file on this node.
    Sqlite,
}

/// How a store behaves.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// A plain join to an unknown meeting id creates it as an open meeting (single node, `make
    /// run`); when false, unknown meetings are not found and meetings are made through the API.
    pub allow_open: bool,
    /// Connections in the pool.
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            allow_open: true,
            max_connections: 8,
        }
    }
}

/// The meetings database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    config: StoreConfig,
}

impl Store {
    /// Connects to `url`, applies the migrations, and returns the store. An unreachable or
    /// wrong database is one [`StoreError`] naming the URL (without its password).
    pub async fn open(url: &str, config: StoreConfig) -> Result<Self, StoreError> {
        install_default_drivers();
        let shown = redact(url);
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            create_sqlite_dir(url).map_err(|e| StoreError::Unreachable {
                url: shown.clone(),
                reason: format!("cannot create its directory: {e}"),
            })?;
            Backend::Sqlite
        } else {
            return Err(StoreError::UnsupportedUrl(shown));
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(config.max_connections.max(1))
            .acquire_timeout(std::time::Duration::from_secs(30));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    // WAL: readers never wait for the writer. The busy timeout is how long a
                    // writer waits for another's transaction (joins to one meeting queue here).
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            });
        }
        let unreachable = |e: sqlx::Error| StoreError::Unreachable {
            url: shown.clone(),
            reason: e.to_string(),
        };
        // One direct connection first: the pool would retry a refused connection until its
        // acquire timeout, and a wrong URL should fail the start at once, with the reason.
        let probe = tokio_timeout(AnyConnection::connect(url)).await;
        probe
            .map_err(&unreachable)?
            .close()
            .await
            .map_err(&unreachable)?;
        let pool = options.connect(url).await.map_err(&unreachable)?;
        let migrator = match backend {
            Backend::Postgres | Backend::Sqlite => migrations(),
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration {
                url: shown.clone(),
                reason: e.to_string(),
            })?;
        info!(url = %shown, ?backend, "meeting store ready");
        Ok(Self {
            pool,
            backend,
            config,
        })
    }

    /// `sqlite://<dir>/meetings.db?mode=rwc`: the embedded default in a data directory.
    pub fn sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("meetings.db").display()
        )
    }

    /// The database this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether unknown meetings are created open on a plain join.
    pub fn allows_open(&self) -> bool {
        self.config.allow_open
    }

    /// Closes the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// `connect` bounded by [`CONNECT_TIMEOUT`] (a firewalled host would otherwise hang the start).
async fn tokio_timeout<T>(
    connect: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut))
}

/// How long opening the store waits for the database to answer.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The schema, embedded in the binary (one set serves both backends).
fn migrations() -> sqlx::migrate::Migrator {
    use std::borrow::Cow;

    use sqlx::migrate::{Migration, MigrationType, Migrator};
    let mut migrator = Migrator {
        migrations: Cow::Owned(vec![Migration::new(
            1,
            Cow::Borrowed("meetings"),
            MigrationType::Simple,
            Cow::Borrowed(include_str!("../migrations/0001_meetings.sql")),
            false,
        )]),
        ..Migrator::DEFAULT
    };
    // Two nodes starting at once on one PostgreSQL: the migrator's advisory lock serialises them.
    migrator.set_locking(true);
    migrator
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Creates the directory of a `sqlite:` URL's file, so a fresh data directory just works.
fn create_sqlite_dir(url: &str) -> std::io::Result<()> {
    let path = url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    match Path::new(path).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir),
        _ => Ok(()),
    }
}

/// Now, in Unix milliseconds (the schema's time unit).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `bytes` random bytes as lowercase hex (ids of guests, meetings and login sessions).
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the OS random source is available");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_but_keeps_user_host_and_database() {
        assert_eq!(
            redact("postgres://app:s3cret@db.example:5432/meet?sslmode=disable"),
            "postgres://app:***@db.example:5432/meet?sslmode=disable"
        );
        assert_eq!(
            redact("postgres://db.example/meet"),
            "postgres://db.example/meet"
        );
        assert_eq!(redact("sqlite://data/m.db"), "sqlite://data/m.db");
    }
}
