//! The processes of a bench run: relay nodes, `nats-server` and the bot. Every child is killed
//! when its handle is dropped (also when the runner is interrupted), and every wait has a
//! deadline, so nothing outlives or hangs the bench.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use videocall_bot::proc::{machine_ticks, ticks};
use videocall_bot::report::BotReport;

/// How long a service may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running service; killed on drop.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) pid: u32,
    child: Child,
}

impl Service {
    /// Kills it and waits (a few seconds at most) until it is gone: a relay with a thousand
    /// sockets takes a moment to die, and the next run must not share the machine with it.
    pub(crate) async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// Waits until the machine is quiet (less than a fifth of one core busy over a quarter second),
/// at most `limit`: what a run leaves behind (closing sockets, freeing memory) must not land in
/// the next run's figures. Returns whether it got quiet.
pub(crate) async fn wait_quiet(limit: Duration) -> bool {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let deadline = tokio::time::Instant::now() + limit;
    let Some(mut last) = machine_ticks() else {
        return false;
    };
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(now) = machine_ticks() else {
            return false;
        };
        let busy = (now.0 - last.0) as f64 / (now.1 - last.1).max(1) as f64 * cpus;
        if busy < 0.2 {
            return true;
        }
        last = now;
    }
    false
}

/// Which output stream of a service prints its ready line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ReadyOn {
    Stdout,
    Stderr,
}

/// Starts `bin` with `args`, copies both its outputs to `log`, and returns once a line on
/// `ready_on` contains `ready`.
pub(crate) async fn start_service(
    bin: &Path,
    args: &[String],
    ready_on: ReadyOn,
    ready: &str,
    log: &Path,
) -> anyhow::Result<Service> {
    let mut child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = child.id().context("a child just started has a pid")?;
    let log = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?,
    ));
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let stdout = child.stdout.take().context("stdout is piped")?;
    let stderr = child.stderr.take().context("stderr is piped")?;
    let (watch_out, watch_err) = match ready_on {
        ReadyOn::Stdout => (Some((ready.to_owned(), ready_tx)), None),
        ReadyOn::Stderr => (None, Some((ready.to_owned(), ready_tx))),
    };
    tokio::spawn(copy_lines(stdout, log.clone(), watch_out));
    tokio::spawn(copy_lines(stderr, log, watch_err));
    let name = bin.display().to_string();
    tokio::select! {
        answer = ready_rx => answer.with_context(|| format!("{name} exited before it was ready"))?,
        () = tokio::time::sleep(READY_TIMEOUT) => anyhow::bail!("{name} not ready within {READY_TIMEOUT:?}"),
    }
    Ok(Service { pid, child })
}

type Log = std::sync::Arc<std::sync::Mutex<std::fs::File>>;

/// Copies lines to the log until the stream ends; fires `ready` at the first line containing
/// its text.
async fn copy_lines(
    stream: impl AsyncRead + Unpin,
    log: Log,
    mut ready: Option<(String, tokio::sync::oneshot::Sender<()>)>,
) {
    use std::io::Write;
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Ok(mut file) = log.lock() {
            let _ = writeln!(file, "{line}");
        }
        if ready
            .as_ref()
            .is_some_and(|(text, _)| line.contains(text.as_str()))
            && let Some((_, tx)) = ready.take()
        {
            let _ = tx.send(());
        }
    }
}

/// A TCP port that was free a moment ago.
pub(crate) fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A UDP port that was free a moment ago.
pub(crate) fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("[::]:0")?.local_addr()?.port())
}

/// CPU the rest of the machine used while a run measured: everything busy minus our processes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ForeignLoad {
    /// Percent of one core used by processes other than the bot and the servers.
    pub(crate) other_percent: f64,
    /// Percent of one core the whole machine was busy.
    pub(crate) busy_percent: f64,
}

async fn sample_foreign(
    pids: Vec<u32>,
    from: tokio::time::Instant,
    to: tokio::time::Instant,
) -> Option<ForeignLoad> {
    tokio::time::sleep_until(from).await;
    let ours0: u64 = pids.iter().filter_map(|p| ticks(&p.to_string())).sum();
    let (busy0, total0) = machine_ticks()?;
    tokio::time::sleep_until(to).await;
    let ours1: u64 = pids.iter().filter_map(|p| ticks(&p.to_string())).sum();
    let (busy1, total1) = machine_ticks()?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let total = (total1 - total0).max(1) as f64;
    // Shares of all CPUs' ticks, expressed in percent of one core.
    let busy_percent = (busy1 - busy0) as f64 / total * cpus * 100.0;
    let ours_percent = ours1.saturating_sub(ours0) as f64 / total * cpus * 100.0;
    Some(ForeignLoad {
        other_percent: (busy_percent - ours_percent).max(0.0),
        busy_percent,
    })
}

/// What one bot run produced.
#[derive(Debug)]
pub(crate) struct BotRun {
    pub(crate) report: BotReport,
    pub(crate) foreign: Option<ForeignLoad>,
}

/// Runs the bot with `args` (its stdout and stderr go to ours, so the progress shows), kills it
/// past `deadline`, and reads its JSON report from `json`. `window` is when it measures,
/// relative to its start; `server_pids` are sampled beside it to tell other load apart.
pub(crate) async fn run_bot(
    bin: &Path,
    args: &[String],
    json: &PathBuf,
    deadline: Duration,
    window: (Duration, Duration),
    server_pids: &[u32],
) -> anyhow::Result<BotRun> {
    let _ = std::fs::remove_file(json);
    let started = tokio::time::Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .arg("--json")
        .arg(json)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut pids = server_pids.to_vec();
    pids.extend(child.id());
    let sampler = tokio::spawn(sample_foreign(pids, started + window.0, started + window.1));
    let status = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(status) => status?,
        Err(_) => {
            let _ = child.kill().await;
            anyhow::bail!("the bot did not finish within {deadline:?}; killed");
        }
    };
    let foreign = sampler.await.ok().flatten();
    anyhow::ensure!(status.success(), "the bot exited with {status}");
    let text = std::fs::read_to_string(json)
        .with_context(|| format!("no report at {}", json.display()))?;
    Ok(BotRun {
        report: BotReport::from_json(&text).context("the bot's report does not parse")?,
        foreign,
    })
}
