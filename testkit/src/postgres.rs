//! A throwaway PostgreSQL cluster of the test's own: `initdb` in a temporary directory, started
//! on a free port with its unix socket in that directory, one database created; stopped and
//! removed on drop. Debian's `postgresql` package provides the binaries (`make test` installs it:
//! `scripts/ensure-deps.sh postgres`). When it cannot start, the test fails and says why: the
//! PostgreSQL tests are never skipped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A running cluster with one database, removed on drop.
#[derive(Debug)]
pub struct Postgres {
    /// Its TCP port (on 127.0.0.1).
    pub port: u16,
    /// `postgres://postgres@127.0.0.1:PORT/videocall`.
    pub url: String,
    bin: PathBuf,
    dir: PathBuf,
}

/// PostgreSQL's server binaries: the newest `/usr/lib/postgresql/*/bin` holding `initdb`.
fn bin_dir() -> PathBuf {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    dirs.sort();
    match dirs.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): \
             run `scripts/ensure-deps.sh postgres` (make test does)"
        ),
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Postgres {
    /// Starts a fresh cluster and creates database `videocall` in it. Panics with the reason
    /// (and PostgreSQL's log) when it cannot.
    pub fn start() -> Self {
        let bin = bin_dir();
        let port = crate::free_tcp_port();
        let dir = std::env::temp_dir().join(format!(
            "videocall-pg-{}-{port}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let pg = Self {
            port,
            url: format!("postgres://postgres@127.0.0.1:{port}/videocall"),
            bin,
            dir,
        };
        if running_as_root() {
            // PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user
            // (created by Debian's package).
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.dir)
                .output();
            check("chown the cluster directory to postgres", chown, &pg.dir);
        }
        let data = pg.dir.join("data");
        let log = pg.dir.join("postgres.log");
        pg.run(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "-A".as_ref(),
                "trust".as_ref(),
                "-E".as_ref(),
                "UTF8".as_ref(),
                "--no-sync".as_ref(),
            ],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            pg.dir.display()
        );
        // `pg_ctl -w` returns once the server accepts connections (its own readiness check).
        pg.run(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                options.as_ref(),
                "start".as_ref(),
            ],
        );
        let port_text = port.to_string();
        pg.run(
            "createdb",
            &[
                "-h".as_ref(),
                pg.dir.as_os_str(),
                "-p".as_ref(),
                port_text.as_ref(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "videocall".as_ref(),
            ],
        );
        eprintln!(
            "[testkit] PostgreSQL ({}) started: {} (data in {})",
            pg.bin.display(),
            pg.url,
            pg.dir.display()
        );
        pg
    }

    /// Runs PostgreSQL tool `tool` (as user `postgres` when we are root); panics on failure.
    fn run(&self, tool: &str, args: &[&std::ffi::OsStr]) {
        let path = self.bin.join(tool);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(&self.dir);
        check(&format!("{tool} {args:?}"), command.output(), &self.dir);
    }
}

fn check(what: &str, result: std::io::Result<Output>, dir: &Path) {
    let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
    match result {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "PostgreSQL could not start: `{what}` failed ({}):\n{}{}\n{log}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!("PostgreSQL could not start: cannot run `{what}`: {e}"),
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let path = self.bin.join("pg_ctl");
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let _ = command
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .current_dir(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The database of one test, on either backend the meeting store supports; removed on drop.
#[derive(Debug)]
pub enum TestDatabase {
    /// A throwaway PostgreSQL cluster.
    Postgres(Postgres),
    /// An SQLite file in a temporary directory (not created yet: the store creates it).
    Sqlite(PathBuf),
}

impl TestDatabase {
    /// A fresh PostgreSQL cluster (see [`Postgres::start`]).
    pub fn postgres() -> Self {
        Self::Postgres(Postgres::start())
    }

    /// A path for a fresh SQLite file, in a directory that does not exist yet.
    pub fn sqlite() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::Sqlite(std::env::temp_dir().join(format!(
            "videocall-sqlite-{}-{n}-{}",
            std::process::id(),
            crate::free_tcp_port()
        )))
    }

    /// Its URL (`DATABASE_URL`).
    pub fn url(&self) -> String {
        match self {
            Self::Postgres(pg) => pg.url.clone(),
            Self::Sqlite(dir) => format!("sqlite://{}/data/meetings.db?mode=rwc", dir.display()),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Self::Sqlite(dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
