//! CPU and memory of processes and of the machine, from Linux's /proc as the `procfs` crate
//! parses it.

use std::time::Instant;

use procfs::CurrentSI;
use procfs::process::Process;

/// `pid` ("self" or a number) as a process, if it is still there.
fn process(pid: &str) -> Option<Process> {
    match pid {
        "self" => Process::myself().ok(),
        pid => Process::new(pid.parse().ok()?).ok(),
    }
}

/// CPU ticks (utime + stime) of `pid` (or "self"), if it is still there.
pub fn ticks(pid: &str) -> Option<u64> {
    let stat = process(pid)?.stat().ok()?;
    Some(stat.utime + stat.stime)
}

/// Busy and total ticks of the whole machine (all CPUs), from /proc/stat.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let cpu = procfs::KernelStats::current().ok()?.total;
    let (iowait, irq, softirq, steal) = (
        cpu.iowait.unwrap_or(0),
        cpu.irq.unwrap_or(0),
        cpu.softirq.unwrap_or(0),
        cpu.steal.unwrap_or(0),
    );
    // Guest time is inside user time already.
    let total = cpu.user + cpu.nice + cpu.system + cpu.idle + iowait + irq + softirq + steal;
    Some((total - cpu.idle - iowait, total))
}

/// utime + stime of `pid` (or "self"), in seconds, and its resident set in bytes.
pub fn sample(pid: &str) -> Option<(f64, u64)> {
    let process = process(pid)?;
    let stat = process.stat().ok()?;
    let rss_kib = process.status().ok()?.vmrss.unwrap_or(0);
    let ticks = (stat.utime + stat.stime) as f64;
    Some((ticks / procfs::ticks_per_second() as f64, rss_kib * 1024))
}

/// CPU use of a process between two points in time.
#[derive(Debug)]
pub struct CpuMeter {
    pid: String,
    start: Option<(Instant, f64)>,
}

impl CpuMeter {
    /// Starts measuring `pid` (or "self") now.
    pub fn new(pid: impl Into<String>) -> Self {
        let pid = pid.into();
        let start = sample(&pid).map(|(cpu, _)| (Instant::now(), cpu));
        Self { pid, start }
    }

    /// Percent of one core since creation, and the current RSS.
    pub fn read(&self) -> Option<(f64, u64)> {
        let (t0, cpu0) = self.start?;
        let (cpu, rss) = sample(&self.pid)?;
        let wall = t0.elapsed().as_secs_f64().max(1e-6);
        Some(((cpu - cpu0) / wall * 100.0, rss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_has_a_cpu_time_and_memory() {
        let (cpu, rss) = sample("self").expect("/proc/self is readable");
        assert!(cpu >= 0.0);
        assert!(rss > 0);
        assert!(CpuMeter::new("self").read().is_some());
        assert!(sample("999999999").is_none());
    }

    #[test]
    fn this_process_and_the_machine_have_cpu_ticks() {
        assert!(ticks(&std::process::id().to_string()).is_some());
        let (busy, total) = machine_ticks().expect("/proc/stat is readable");
        assert!(busy <= total && total > 0);
        assert!(ticks(&u32::MAX.to_string()).is_none());
    }
}
