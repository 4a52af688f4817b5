//! What the process and its disk did: resident memory, open files, CPU time, and the
//! block device's request counters. Reads `/proc` and `/sys` with std (blocking, but
//! tiny), so call it between measured phases, never inside a hot loop.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

/// Resident set size of this process, from `/proc/self/statm`.
pub fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * page_bytes()
}

fn page_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

/// Number of open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// User plus system CPU time of the whole process so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises the soft open-files limit to the hard limit; returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Counters of the block device holding a directory (`/proc/diskstats`). The device
/// is shared with everything else on the machine, so deltas are indicative only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskCounters {
    pub writes: u64,
    pub sectors_written: u64,
    pub reads: u64,
    pub sectors_read: u64,
    pub flushes: u64,
    pub discards: u64,
}

impl DiskCounters {
    /// Counters of the device that holds `dir` (its whole disk when it is a
    /// partition); zero when they cannot be read.
    pub fn of_dir(dir: &Path) -> Self {
        let Ok(meta) = std::fs::metadata(dir) else {
            return Self::default();
        };
        let dev = meta.dev();
        let (major, minor) = (libc::major(dev), libc::minor(dev));
        let text = std::fs::read_to_string("/proc/diskstats").unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 14 {
                continue;
            }
            if f[0].parse() != Ok(major) || f[1].parse() != Ok(minor) {
                continue;
            }
            let n = |i: usize| f.get(i).and_then(|s| s.parse().ok()).unwrap_or(0u64);
            return DiskCounters {
                reads: n(3),
                sectors_read: n(5),
                writes: n(7),
                sectors_written: n(9),
                discards: n(14),
                flushes: n(18),
            };
        }
        Self::default()
    }

    /// `self - earlier`, per field.
    pub fn since(&self, earlier: &DiskCounters) -> DiskCounters {
        DiskCounters {
            writes: self.writes.saturating_sub(earlier.writes),
            sectors_written: self.sectors_written.saturating_sub(earlier.sectors_written),
            reads: self.reads.saturating_sub(earlier.reads),
            sectors_read: self.sectors_read.saturating_sub(earlier.sectors_read),
            flushes: self.flushes.saturating_sub(earlier.flushes),
            discards: self.discards.saturating_sub(earlier.discards),
        }
    }

    /// Average device write size in KiB (0 when nothing was written).
    pub fn avg_write_kib(&self) -> f64 {
        if self.writes == 0 {
            return 0.0;
        }
        self.sectors_written as f64 * 512.0 / 1024.0 / self.writes as f64
    }
}

/// How long the device must issue no discard before a run starts.
pub const SETTLE_QUIET_MS: u64 = 500;
/// Longest wait for the device to settle.
pub const SETTLE_MAX_MS: u64 = 10_000;

/// `settle_disk` with the default quiet time and limit.
pub fn settle(dir: &Path) -> Duration {
    settle_disk(
        dir,
        Duration::from_millis(SETTLE_QUIET_MS),
        Duration::from_millis(SETTLE_MAX_MS),
    )
}

/// Waits until the device holding `dir` has issued no discard for `quiet`, at most
/// `max`; returns how long it waited. Deleting a benchmark's files (preallocated
/// segments, on a filesystem mounted with `discard`) makes the device trim them
/// for a while, and a run measured meanwhile would pay for the previous one.
pub fn settle_disk(dir: &Path, quiet: Duration, max: Duration) -> Duration {
    let start = std::time::Instant::now();
    let step = Duration::from_millis(100);
    let mut last = DiskCounters::of_dir(dir).discards;
    let mut quiet_since = std::time::Instant::now();
    while start.elapsed() < max {
        std::thread::sleep(step);
        let now = DiskCounters::of_dir(dir).discards;
        if now != last {
            last = now;
            quiet_since = std::time::Instant::now();
        } else if quiet_since.elapsed() >= quiet {
            break;
        }
    }
    start.elapsed()
}

/// Microseconds that some task of the machine was stalled on `resource` ("cpu",
/// "io"), from pressure stall information; 0 when the kernel has none.
pub fn pressure_stall_us(resource: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/pressure/{resource}")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("some "))
        .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Process CPU time, device counters and machine-wide stall time at one instant, to
/// diff against a later one.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub cpu: Duration,
    pub disk: DiskCounters,
    pub cpu_stall_us: u64,
    pub io_stall_us: u64,
}

impl Snapshot {
    /// Takes a snapshot for the device holding `dir`.
    pub fn take(dir: &Path) -> Self {
        Snapshot {
            cpu: cpu_time(),
            disk: DiskCounters::of_dir(dir),
            cpu_stall_us: pressure_stall_us("cpu"),
            io_stall_us: pressure_stall_us("io"),
        }
    }
}

/// What happened between two snapshots over `wall`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Process CPU time / wall time, in percent of one core.
    pub cpu_pct: f64,
    pub disk: DiskCounters,
    pub wall: Duration,
    /// Share of the time some task of the machine waited for a CPU (PSI), percent:
    /// how contended the machine was, by this run or by anything else.
    pub cpu_pressure_pct: f64,
    /// Share of the time some task waited for I/O (PSI), percent.
    pub io_pressure_pct: f64,
}

impl Usage {
    /// The usage between `a` and `b`, `wall` apart.
    pub fn between(a: &Snapshot, b: &Snapshot, wall: Duration) -> Self {
        let cpu = b.cpu.saturating_sub(a.cpu);
        let secs = wall.as_secs_f64();
        let pct = |us: u64| {
            if secs > 0.0 {
                us as f64 / 1e6 / secs * 100.0
            } else {
                0.0
            }
        };
        Usage {
            cpu_pct: if secs > 0.0 {
                cpu.as_secs_f64() / secs * 100.0
            } else {
                0.0
            },
            disk: b.disk.since(&a.disk),
            wall,
            cpu_pressure_pct: pct(b.cpu_stall_us.saturating_sub(a.cpu_stall_us)),
            io_pressure_pct: pct(b.io_stall_us.saturating_sub(a.io_stall_us)),
        }
    }

    /// Megabytes written to the device per second.
    pub fn device_write_mb_per_s(&self) -> f64 {
        let s = self.wall.as_secs_f64();
        if s > 0.0 {
            self.disk.sectors_written as f64 * 512.0 / 1e6 / s
        } else {
            0.0
        }
    }

    /// Device flushes per second.
    pub fn flushes_per_s(&self) -> f64 {
        let s = self.wall.as_secs_f64();
        if s > 0.0 {
            self.disk.flushes as f64 / s
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_counters_are_plausible() {
        assert!(rss_bytes() > 0);
        assert!(open_fds() >= 3);
        let before = cpu_time();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_time() >= before);
    }
}
