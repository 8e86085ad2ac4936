//! A process's CPU time from `/proc/<pid>/stat` (utime + stime), as % of one core over a
//! window of wall-clock time.

use std::time::Instant;

use anyhow::{Context, Result, anyhow};

/// User plus system CPU time in clock ticks, from the text of `/proc/<pid>/stat`. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted after its
/// last `)`: state is field 3, utime 14, stime 15.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second of the CPU times in `/proc` (USER_HZ).
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf reads a constant of the running system; it has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// The CPU time `pid` used so far, in ticks.
fn read_ticks(pid: i32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    cpu_ticks(&stat).ok_or_else(|| anyhow!("{path} is not in the expected format: {stat}"))
}

/// The CPU time `pids` used so far together, in seconds.
pub fn cpu_seconds(pids: &[i32]) -> Result<f64> {
    let mut ticks = 0;
    for &pid in pids {
        ticks += read_ticks(pid)?;
    }
    Ok(ticks as f64 / ticks_per_second())
}

/// CPU use of one process from a starting point.
pub struct CpuWindow {
    pid: i32,
    ticks: u64,
    at: Instant,
}

impl CpuWindow {
    /// Starts measuring `pid` now.
    pub fn start(pid: i32) -> Result<CpuWindow> {
        Ok(CpuWindow { pid, ticks: read_ticks(pid)?, at: Instant::now() })
    }

    /// The CPU time used since the start, as % of one core (100 = one core busy).
    pub fn percent_of_one_core(&self) -> Result<f64> {
        let used = read_ticks(self.pid)?.saturating_sub(self.ticks) as f64 / ticks_per_second();
        Ok(percent(used, self.at.elapsed().as_secs_f64()))
    }
}

/// `cpu_seconds` used over `wall_seconds`, as % of one core.
pub fn percent(cpu_seconds: f64, wall_seconds: f64) -> f64 {
    if wall_seconds <= 0.0 { 0.0 } else { 100.0 * cpu_seconds / wall_seconds }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_after_the_command_name_even_with_spaces_and_parentheses() {
        let stat = "4242 (kudu (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 700 55 3 4 20 0 9 0 100 0 0";
        assert_eq!(cpu_ticks(stat), Some(755));
        let plain = "1 (kudu) R 0 1 1 0 -1 0 0 0 0 0 12 30 0 0 20 0 1 0 5 0 0";
        assert_eq!(cpu_ticks(plain), Some(42));
        assert_eq!(cpu_ticks("1 (kudu) R 0 1"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
        assert_eq!(cpu_ticks("1 (kudu) R 0 1 1 0 -1 0 0 0 0 0 x 30"), None);
    }

    #[test]
    fn percent_of_one_core() {
        assert!((percent(3.0, 30.0) - 10.0).abs() < 1e-9);
        assert!((percent(60.0, 30.0) - 200.0).abs() < 1e-9);
        assert_eq!(percent(1.0, 0.0), 0.0);
    }

    #[test]
    fn this_process_can_be_measured() {
        let window = CpuWindow::start(std::process::id() as i32).expect("own stat");
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        let p = window.percent_of_one_core().expect("measured");
        assert!(p >= 0.0, "{p}");
    }
}
