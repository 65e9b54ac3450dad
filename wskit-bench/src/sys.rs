//! Linux process facts read from `/proc`, and the few system tools the harness runs
//! (`taskset`, `prlimit`, `getconf`, `lscpu`), so that it needs no libc binding.

use std::fs;
use std::io;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times (`getconf CLK_TCK`; 100
/// if that fails, as on every common Linux build).
pub fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        command_output("getconf", &["CLK_TCK"])
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|&t| t > 0.0)
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system, all threads) of process `pid`, or of this process for `None`, in
/// seconds, from `/proc/PID/stat`.
///
/// # Errors
///
/// The process does not exist (any more), or its stat line is not understood.
pub fn cpu_seconds(pid: Option<u32>) -> io::Result<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = fs::read_to_string(path)?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other("no ')' in stat"))?;
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> io::Result<f64> {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<f64>().ok())
            .ok_or_else(|| io::Error::other(format!("no stat field {n}")))
    };
    Ok((field(14)? + field(15)?) / clock_ticks())
}

/// Time spent waiting on a run queue for a CPU (all threads) by process `pid`, or by this
/// process for `None`, in seconds, from `/proc/PID/task/*/schedstat`. A process that is
/// runnable but waits shows that something else on the machine competes for its core.
///
/// # Errors
///
/// The process does not exist (any more), or the kernel has no schedstats.
pub fn run_queue_wait_seconds(pid: Option<u32>) -> io::Result<f64> {
    let dir = match pid {
        Some(pid) => format!("/proc/{pid}/task"),
        None => "/proc/self/task".to_owned(),
    };
    let mut nanos = 0u64;
    for task in fs::read_dir(dir)? {
        // A thread may end between the listing and the read.
        let Ok(stat) = fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        nanos += stat
            .split_whitespace()
            .nth(1)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other("bad schedstat"))?;
    }
    Ok(nanos as f64 / 1e9)
}

/// Resident memory (`VmRSS`) of process `pid`, in KiB.
///
/// # Errors
///
/// The process does not exist, or has no `VmRSS` line.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS"))
}

/// The soft and hard limits on open files of this process (`u64::MAX` for unlimited).
pub fn nofile_limits() -> Option<(u64, u64)> {
    let limits = fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    Some((values.next()??, values.next()??))
}

/// Raise this process's soft limit on open files to the hard limit (with `prlimit`, if it is
/// lower), and return the soft limit in force. Children inherit it.
pub fn raise_nofile() -> u64 {
    let Some((soft, hard)) = nofile_limits() else {
        return 1024;
    };
    if soft >= hard {
        return soft;
    }
    let hard_arg = if hard == u64::MAX {
        "unlimited".to_owned()
    } else {
        hard.to_string()
    };
    let pid = std::process::id().to_string();
    let nofile = format!("--nofile={hard_arg}:{hard_arg}");
    let _ = Command::new("prlimit")
        .args(["--pid", &pid, &nofile])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    nofile_limits().map_or(soft, |(soft, _)| soft)
}

/// Whether `taskset` can pin a process to each of cores 0 and 1.
pub fn can_pin() -> bool {
    ["0", "1"].iter().all(|core| {
        Command::new("taskset")
            .args(["-c", core, "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// The number of online cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The CPU model (`lscpu`'s "Model name", else `/proc/cpuinfo`'s).
pub fn cpu_model() -> String {
    let from_lscpu = command_output("lscpu", &[]).and_then(|out| {
        out.lines()
            .find_map(|l| l.strip_prefix("Model name:"))
            .map(|m| m.trim().to_owned())
    });
    from_lscpu
        .or_else(|| {
            fs::read_to_string("/proc/cpuinfo").ok().and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// The kernel release (`/proc/sys/kernel/osrelease`).
pub fn kernel() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

/// `rustc --version`, if a rustc is on the path.
pub fn rustc_version() -> Option<String> {
    command_output("rustc", &["--version"]).map(|s| s.trim().to_owned())
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub fn today() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A command's standard output, if it ran and succeeded.
fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn own_process_facts() {
        assert!(cpu_seconds(None).unwrap() >= 0.0);
        assert!(run_queue_wait_seconds(None).unwrap() >= 0.0);
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        let (soft, hard) = nofile_limits().unwrap();
        assert!(soft <= hard);
    }
}
