//! CPU and memory of processes, from /proc (Linux).

use std::time::Instant;

/// CPU ticks (utime + stime) of `pid` (or "self"), if it is still there.
pub fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based in proc(5)).
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Busy and total ticks of the whole machine (all CPUs), from /proc/stat.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3)? + values.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// utime + stime of `pid` (or "self"), in seconds, and its resident set in bytes.
pub fn sample(pid: &str) -> Option<(f64, u64)> {
    let ticks = ticks(pid)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    // Linux's USER_HZ is 100 on every platform we run on.
    Some((ticks as f64 / 100.0, rss_kb * 1024))
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
