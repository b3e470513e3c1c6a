//! How busy a core was: the load generator's own (near 100%, the measured rate is a
//! lower bound of the server's, not the server's limit) and the server's (its cost per
//! message, comparable between servers whatever limits the rate).

/// The CPU this process is pinned to, if its affinity is exactly one CPU.
fn pinned_cpu() -> Option<usize> {
    // SAFETY: `set` is a plain bit set that sched_getaffinity fills; CPU_ISSET and
    // CPU_COUNT only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0
            || libc::CPU_COUNT(&set) != 1
        {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize).find(|&cpu| libc::CPU_ISSET(cpu, &set))
    }
}

/// (busy, total) jiffies of one CPU from /proc/stat; idle and iowait count as not busy.
fn jiffies(cpu: usize) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let label = format!("cpu{cpu}");
    let line = stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some(label.as_str()))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

/// A reading of the pinned core's counters, to compare with a later one.
pub struct CoreSample {
    cpu: usize,
    busy: u64,
    total: u64,
}

impl CoreSample {
    /// `None` unless the process is pinned to one CPU (e.g. `taskset -c 1`).
    pub fn now() -> Option<Self> {
        Self::of(pinned_cpu()?)
    }

    /// A reading of CPU `cpu` (another process's pinned core, say).
    pub fn of(cpu: usize) -> Option<Self> {
        let (busy, total) = jiffies(cpu)?;
        Some(Self { cpu, busy, total })
    }

    /// Busy share of the core since `self`, in percent (everything that ran there:
    /// this process, and the kernel's network processing on its behalf).
    pub fn busy_percent_since(&self) -> Option<f64> {
        let (busy, total) = jiffies(self.cpu)?;
        let elapsed = total.checked_sub(self.total).filter(|&t| t > 0)?;
        Some(100.0 * busy.saturating_sub(self.busy) as f64 / elapsed as f64)
    }
}
