//! The machine a benchmark ran on, for reports: kernel (`uname -a`), CPU model,
//! cores, memory, and the disk and filesystem holding the data directory. Read from
//! /proc and /sys; anything unreadable is reported as unknown, never an error.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// The disk and filesystem holding a directory.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DiskInfo {
    pub dir: PathBuf,
    /// Block device name (`vda`, `nvme0n1`), the whole disk for a partition.
    pub device: String,
    pub model: Option<String>,
    pub size_bytes: Option<u64>,
    pub rotational: Option<bool>,
    pub mount_point: String,
    pub fs_type: String,
    pub mount_options: String,
}

/// What a report says about the machine.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Machine {
    pub uname: String,
    pub cpu_model: String,
    /// Cores this process may run on.
    pub cores: usize,
    pub memory_bytes: u64,
    pub disk: Option<DiskInfo>,
}

impl Machine {
    /// Describes this machine, and the disk of `data_dir` when given.
    pub fn describe(data_dir: Option<&Path>) -> Machine {
        let uname = Command::new("uname")
            .arg("-a")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .or_else(|| read("/proc/version"))
            .unwrap_or_else(|| "unknown".into());
        let cpu_model = read("/proc/cpuinfo")
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_bytes = read("/proc/meminfo")
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        Machine {
            uname,
            cpu_model,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes,
            disk: data_dir.map(disk_of),
        }
    }

    /// Markdown lines for a report.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "- kernel: `{}`\n- CPU: {}, {} core(s) available\n- memory: {:.1} GiB\n",
            self.uname,
            self.cpu_model,
            self.cores,
            self.memory_bytes as f64 / (1u64 << 30) as f64
        );
        if let Some(d) = &self.disk {
            s.push_str(&format!(
                "- data dir `{}`: device `{}`{}{}{}, {} mounted at `{}` ({})\n",
                d.dir.display(),
                d.device,
                d.model
                    .as_deref()
                    .map_or(String::new(), |m| format!(" ({m})")),
                d.size_bytes.map_or(String::new(), |b| format!(
                    ", {:.0} GiB",
                    b as f64 / (1u64 << 30) as f64
                )),
                match d.rotational {
                    Some(true) => ", rotational",
                    Some(false) => ", non-rotational",
                    None => "",
                },
                d.fs_type,
                d.mount_point,
                d.mount_options
            ));
        }
        s
    }

    /// JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "uname": self.uname,
            "cpu_model": self.cpu_model,
            "cores": self.cores,
            "memory_bytes": self.memory_bytes,
            "disk": self.disk.as_ref().map(|d| json!({
                "dir": d.dir.display().to_string(),
                "device": d.device,
                "model": d.model,
                "size_bytes": d.size_bytes,
                "rotational": d.rotational,
                "mount_point": d.mount_point,
                "fs_type": d.fs_type,
                "mount_options": d.mount_options,
            })),
        })
    }
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The mount whose mount point is the longest prefix of `path`, from /proc/mounts
/// text: (mount point, fs type, options).
pub fn mount_of(mounts: &str, path: &Path) -> Option<(String, String, String)> {
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4).then(|| (f[1].replace("\\040", " "), f[2], f[3]))
        })
        .filter(|(mp, _, _)| path.starts_with(mp))
        .max_by_key(|(mp, _, _)| mp.len())
        .map(|(mp, fs, opts)| (mp, fs.to_string(), opts.to_string()))
}

fn disk_of(dir: &Path) -> DiskInfo {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut info = DiskInfo {
        dir: dir.clone(),
        device: "unknown".into(),
        ..DiskInfo::default()
    };
    if let Some((mp, fs, opts)) = read("/proc/mounts").and_then(|m| mount_of(&m, &dir)) {
        info.mount_point = mp;
        info.fs_type = fs;
        info.mount_options = opts;
    }
    let Ok(meta) = std::fs::metadata(&dir) else {
        return info;
    };
    let dev = meta.dev();
    let sys = PathBuf::from(format!(
        "/sys/dev/block/{}:{}",
        libc::major(dev),
        libc::minor(dev)
    ));
    let Ok(mut disk) = sys.canonicalize() else {
        return info;
    };
    // A partition's sysfs directory sits inside its disk's.
    if disk.join("partition").exists() {
        if let Some(parent) = disk.parent() {
            disk = parent.to_path_buf();
        }
    }
    if let Some(name) = disk.file_name() {
        info.device = name.to_string_lossy().into_owned();
    }
    info.model = read(disk.join("device/model"))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    info.size_bytes = read(disk.join("size"))
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(|sectors| sectors * 512);
    info.rotational = read(disk.join("queue/rotational")).map(|r| r.trim() == "1");
    info
}

/// Today's date in UTC, `YYYY-MM-DD`.
pub fn today_utc() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_413), (2025, 11, 21));
        assert_eq!(today_utc().len(), 10);
    }

    #[test]
    fn longest_mount_prefix_wins() {
        let mounts = "/dev/vda / ext4 rw,relatime 0 0\n\
                      tmpfs /tmp tmpfs rw 0 0\n\
                      /dev/vdb /tmpfoo xfs rw 0 0\n";
        let m = mount_of(mounts, Path::new("/tmp/x")).unwrap();
        assert_eq!((m.0.as_str(), m.1.as_str()), ("/tmp", "tmpfs"));
        let m = mount_of(mounts, Path::new("/tmpfoo/y")).unwrap();
        assert_eq!(m.1, "xfs");
        let m = mount_of(mounts, Path::new("/home")).unwrap();
        assert_eq!((m.0.as_str(), m.2.as_str()), ("/", "rw,relatime"));
    }

    #[test]
    fn describes_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        let m = Machine::describe(Some(dir.path()));
        assert!(m.cores >= 1);
        assert!(m.memory_bytes > 0);
        let text = m.markdown();
        assert!(
            text.contains("kernel") && text.contains("data dir"),
            "{text}"
        );
    }
}
