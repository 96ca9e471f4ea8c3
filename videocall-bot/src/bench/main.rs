//! `videocall-bench`: what `make bench` runs. For each scenario of the issue it starts fresh
//! release nodes (a single all-in-one node, or two nodes on `nats-server`), runs
//! `videocall-bot` against them, and from the bot's JSON reports regenerates the table and goal
//! check of `docs/PERFORMANCE.md`, `docs/perf-latency.svg` and `docs/perf-results.json`.
//!
//! Every started process is killed when its scenario ends, when the runner is interrupted
//! (Ctrl-C, SIGTERM) or fails; every wait has a deadline.

mod goals;
mod plot;
mod process;
mod report;
mod scenario;
mod soak;
mod soak_plot;

use procfs::Current;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use crate::process::{
    ReadyOn, Service, free_tcp_port, free_udp_port, run_bot, start_service, wait_quiet,
};
use crate::report::{Figures, Machine, Row};
use crate::scenario::{CAPACITY_STEPS, Scenario, Topology};

/// Runs the benchmark scenarios and regenerates docs/PERFORMANCE.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Directory holding the release `actix-api` and `videocall-bot` (default: this binary's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// The `nats-server` to start for (e).
    #[arg(long, default_value = "nats-server")]
    nats_server: PathBuf,
    /// Where PERFORMANCE.md, perf-latency.svg and perf-results.json are written.
    #[arg(long, default_value = "docs")]
    out_dir: PathBuf,
    /// Where the bot's reports and the servers' logs go (default: <bin-dir>/bench).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Seconds of media per run.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Only scenarios whose id starts with one of these (e.g. `b`, `60-ws`, `a`); all if unset.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The (a) steps stop once the bench has run this long (the large meetings follow them).
    #[arg(long, default_value_t = 600)]
    budget_secs: u64,
    /// Do not rewrite the files in --out-dir (a trial run).
    #[arg(long)]
    no_write: bool,
    /// Run the soak instead of the scenarios (`make soak`): this many minutes of 10 meetings ×
    /// 5 participants with churn on one node; writes soak.json and soak.svg in --out-dir and
    /// fails unless RSS stays flat and the delivered rate holds.
    #[arg(long)]
    soak_minutes: Option<f64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stopped_by = tokio::select! {
        result = run(&args) => return result,
        _ = tokio::signal::ctrl_c() => ("interrupted", 130),
        _ = terminate.recv() => ("terminated", 143),
    };
    // The run future is dropped by now, and with it every child handle: each child was killed.
    eprintln!("[bench] {}: every started process was killed", stopped_by.0);
    std::process::exit(stopped_by.1);
}

/// What the scenarios run against.
struct Setup {
    bot: PathBuf,
    relay: PathBuf,
    nats: PathBuf,
    work: PathBuf,
    duration: Duration,
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the runner has a directory")?
            .to_owned(),
    };
    let work = args.work_dir.clone().unwrap_or(bin_dir.join("bench"));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let setup = Setup {
        bot: bin_dir.join("videocall-bot"),
        relay: bin_dir.join("actix-api"),
        nats: args.nats_server.clone(),
        work,
        duration: Duration::from_secs(args.duration_secs.max(3)),
    };
    for bin in [&setup.bot, &setup.relay] {
        anyhow::ensure!(
            bin.is_file(),
            "{} is not built (cargo build --release -p actix-api -p videocall-bot)",
            bin.display()
        );
    }
    if let Some(minutes) = args.soak_minutes {
        let out_dir = (!args.no_write).then_some(args.out_dir.as_path());
        return soak::run(&setup, minutes, out_dir).await;
    }
    let selected = |s: &Scenario| {
        args.only.is_empty()
            || args
                .only
                .iter()
                .any(|o| s.id.starts_with(o.as_str()) || o.len() == 1 && s.group.to_string() == *o)
    };
    let machine = machine();
    let started = Instant::now();
    let load_start = load_average();
    eprintln!(
        "[bench] {} × {}, load average {:.2}; {} s of media per run",
        machine.cpus,
        machine.cpu_model,
        load_start,
        setup.duration.as_secs()
    );

    let fixed: Vec<Scenario> = scenario::fixed().into_iter().filter(selected).collect();
    let large: Vec<Scenario> = scenario::large().into_iter().filter(selected).collect();
    let run_capacity = selected(&scenario::capacity_step(CAPACITY_STEPS[0]));
    let count = fixed.len() + large.len();
    let mut rows = Vec::new();
    let announce = |i: usize, s: &Scenario| {
        eprintln!(
            "\n[bench {}/{count}{}] {} — ({}) {} over {}, {} participants",
            i + 1,
            if run_capacity { " + (a) steps" } else { "" },
            s.id,
            s.group,
            s.title,
            s.transport,
            s.participants()
        );
    };
    for (i, s) in fixed.iter().enumerate() {
        announce(i, s);
        rows.push(run_scenario(&setup, s).await);
        summarize(rows.last().expect("just pushed"));
    }
    if run_capacity {
        for &meetings in CAPACITY_STEPS {
            if started.elapsed() > Duration::from_secs(args.budget_secs) {
                eprintln!(
                    "[bench] (a) stops before {meetings} meetings: the bench has used its {} s budget",
                    args.budget_secs
                );
                break;
            }
            let s = scenario::capacity_step(meetings);
            eprintln!(
                "\n[bench (a)] {} — {} participants",
                s.title,
                s.participants()
            );
            let row = run_scenario(&setup, &s).await;
            summarize(&row);
            let stop = match row.figures() {
                Some(f) => f.p99 > 50.0 || f.loss > 1.0,
                None => true,
            };
            rows.push(row);
            if stop {
                eprintln!("[bench] (a) stops: p99 > 50 ms, loss > 1 % or a failed run");
                break;
            }
        }
    }
    for (i, s) in large.iter().enumerate() {
        announce(fixed.len() + i, s);
        rows.push(run_scenario(&setup, s).await);
        summarize(rows.last().expect("just pushed"));
    }

    let wall = started.elapsed().as_secs_f64();
    let generated = report::generated(
        &machine,
        &rows,
        setup.duration.as_secs_f64(),
        wall,
        (load_start, load_average()),
    );
    println!("\n{}", report::table(&rows));
    for g in goals::goals(&rows) {
        println!(
            "{:<9} {} — {}",
            match g.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "-",
            },
            g.what,
            g.measured
        );
    }
    if args.no_write {
        eprintln!(
            "[bench] --no-write: {} left as it was",
            args.out_dir.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&args.out_dir)?;
    let doc = args.out_dir.join("PERFORMANCE.md");
    let existing = std::fs::read_to_string(&doc).unwrap_or_default();
    std::fs::write(&doc, report::splice(&existing, &generated))?;
    std::fs::write(args.out_dir.join("perf-latency.svg"), plot::svg(&rows)?)?;
    let results: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let report =
                std::fs::read_to_string(setup.work.join(format!("{}.json", r.scenario.id)))
                    .ok()
                    .and_then(|t| videocall_bot::report::BotReport::from_json(&t).ok());
            serde_json::json!({
                "id": r.scenario.id,
                "scenario": r.scenario.title,
                "load_average_before": r.load_before,
                "error": r.outcome.as_ref().err(),
                "report": report,
            })
        })
        .collect();
    std::fs::write(
        args.out_dir.join("perf-results.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    eprintln!(
        "[bench] wrote {}, perf-latency.svg and perf-results.json in {:.1} min",
        doc.display(),
        wall / 60.0
    );
    Ok(())
}

fn summarize(row: &Row) {
    match &row.outcome {
        Ok(f) => eprintln!(
            "[bench] {}: {:.0}/{:.0} frames/s, loss {:.2} %, p99 {:.2} ms, relay {:.0} %, bot {:.0} %",
            row.scenario.id, f.delivered_fps, f.expected_fps, f.loss, f.p99, f.relay_cpu, f.bot_cpu
        ),
        Err(e) => eprintln!("[bench] {}: failed: {e}", row.scenario.id),
    }
}

/// Starts the scenario's nodes, runs the bot, stops the nodes.
async fn run_scenario(setup: &Setup, s: &Scenario) -> Row {
    if !wait_quiet(Duration::from_secs(15)).await {
        eprintln!(
            "[bench] the machine is busy (not the bench): {} runs anyway",
            s.id
        );
    }
    let load_before = load_average();
    let outcome = run_on_nodes(setup, s).await.map_err(|e| format!("{e:#}"));
    Row {
        scenario: s.clone(),
        load_before,
        outcome,
    }
}

async fn run_on_nodes(setup: &Setup, s: &Scenario) -> anyhow::Result<Figures> {
    let log = |name: &str| setup.work.join(format!("{}-{name}.log", s.id));
    let mut services: Vec<Service> = Vec::new();
    let mut urls = Vec::new();
    let nodes = match s.topology {
        Topology::Single => {
            let (node, node_urls) = start_single_node(setup, &log("node")).await?;
            services.push(node);
            urls.extend(node_urls);
            1
        }
        Topology::Nats | Topology::Cluster => {
            let nodes = s.topology.nodes();
            let servers = if s.topology == Topology::Cluster {
                3
            } else {
                1
            };
            let ports: Vec<u16> = (0..servers)
                .map(|_| free_tcp_port())
                .collect::<Result<_, _>>()?;
            let route_ports: Vec<u16> = (0..servers)
                .map(|_| free_tcp_port())
                .collect::<Result<_, _>>()?;
            let mut nats = Vec::new();
            for (i, port) in ports.iter().enumerate() {
                let mut args = vec![
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port.to_string(),
                ];
                if servers > 1 {
                    let routes: Vec<String> = route_ports
                        .iter()
                        .enumerate()
                        .filter(|&(j, _)| j != i)
                        .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                        .collect();
                    args.extend([
                        "--cluster_name".into(),
                        "videocall-bench".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{}", route_ports[i]),
                        "--routes".into(),
                        routes.join(","),
                    ]);
                }
                let name = if servers > 1 {
                    format!("nats{i}")
                } else {
                    "nats".into()
                };
                nats.push(
                    start_service(
                        &setup.nats,
                        &args,
                        ReadyOn::Stderr,
                        "Server is ready",
                        &log(&name),
                    )
                    .await?,
                );
            }
            for n in 0..nodes {
                let http = free_tcp_port()?;
                let mut args = node_args(http);
                // Node n on server n: in the cluster a meeting spans every server and its routes.
                let port = ports[n % servers];
                args.extend(["--nats-url".into(), format!("nats://127.0.0.1:{port}")]);
                services.push(start_relay(setup, &args, &log(&format!("node{n}"))).await?);
                urls.extend(["--url".to_owned(), format!("http://127.0.0.1:{http}")]);
            }
            // The nats-servers last: the first `nodes` server pids are relays.
            services.extend(nats);
            nodes
        }
    };
    let ramp = s.ramp();
    let mut args = s.bot_args();
    args.extend(urls);
    args.extend([
        "--duration".into(),
        format!("{}ms", setup.duration.as_millis()),
        "--ramp".into(),
        format!("{}ms", ramp.as_millis()),
    ]);
    let pids: Vec<u32> = services.iter().map(|s| s.pid).collect();
    for pid in &pids {
        args.extend(["--server-pid".into(), pid.to_string()]);
    }
    let window = (
        ramp + Duration::from_secs(1),
        ramp + setup.duration.saturating_sub(Duration::from_millis(500)),
    );
    let deadline = ramp + setup.duration + Duration::from_secs(90);
    let json = setup.work.join(format!("{}.json", s.id));
    let run = run_bot(&setup.bot, &args, &json, deadline, window, &pids).await;
    for service in services {
        service.stop().await;
    }
    let run = run?;
    Ok(Figures::from_report(&run.report, nodes, run.foreign))
}

/// Starts one all-in-one node (`--webtransport`, in-process bus); returns it and the bot's
/// `--url` and `--wt-url` flags for it.
async fn start_single_node(setup: &Setup, log: &Path) -> anyhow::Result<(Service, Vec<String>)> {
    let (http, udp) = (free_tcp_port()?, free_udp_port()?);
    let args = node_args(http)
        .into_iter()
        .chain([
            "--webtransport".to_owned(),
            "--webtransport-listen".to_owned(),
            format!("[::]:{udp}"),
        ])
        .collect::<Vec<_>>();
    let node = start_relay(setup, &args, log).await?;
    let urls = vec![
        "--url".to_owned(),
        format!("http://127.0.0.1:{http}"),
        "--wt-url".to_owned(),
        format!("https://127.0.0.1:{udp}"),
    ];
    Ok((node, urls))
}

/// Flags every relay node of the bench gets.
fn node_args(http: u16) -> Vec<String> {
    vec![
        "--listen".into(),
        format!("127.0.0.1:{http}"),
        // (d) puts 1000 people in one meeting.
        "--max-sessions-per-meeting".into(),
        "2000".into(),
        // Every bot participant connects from 127.0.0.1.
        "--max-connections-per-ip".into(),
        "100000".into(),
    ]
}

async fn start_relay(setup: &Setup, args: &[String], log: &Path) -> anyhow::Result<Service> {
    start_service(&setup.relay, args, ReadyOn::Stdout, "Ctrl-C stops.", log).await
}

fn load_average() -> f64 {
    procfs::LoadAverage::current().map_or(f64::NAN, |l| f64::from(l.one))
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> Machine {
    let cpu_model = procfs::CpuInfo::current()
        .ok()
        .and_then(|info| info.model_name(0).map(str::to_owned))
        .unwrap_or_else(|| "unknown CPU".into());
    let memory_bytes = procfs::Meminfo::current().map_or(f64::NAN, |m| m.mem_total as f64);
    let status = command_output("git", &["status", "--porcelain", "--untracked-files=no"]);
    let dirty = !status.is_empty() && status != "unknown";
    Machine {
        cpu_model,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: memory_bytes / f64::from(1 << 30),
        kernel: procfs::sys::kernel::Version::current()
            .map(|v| format!("{}.{}.{}", v.major, v.minor, v.patch))
            .unwrap_or_default(),
        rustc: command_output("rustc", &["--version"]),
        commit: format!(
            "{}{}",
            command_output("git", &["rev-parse", "--short", "HEAD"]),
            if dirty { " + local changes" } else { "" }
        ),
        date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_and_its_load_are_read_from_proc() {
        let m = machine();
        assert!(m.cpus >= 1);
        assert!(m.memory_gib.is_finite() && m.memory_gib > 0.0, "{m:?}");
        assert!(m.kernel.split('.').count() == 3, "{m:?}");
        assert!(
            m.cpu_model != "unknown CPU" || cfg!(not(target_arch = "x86_64")),
            "{m:?}"
        );
        assert!(load_average() >= 0.0);
    }
}
