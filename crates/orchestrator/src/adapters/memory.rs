//! The machine's memory, as Linux reports it in `/proc/meminfo`: `MemAvailable` (what can be used without
//! swapping, page cache that can be dropped included) over `MemTotal`.

use std::path::PathBuf;

/// Reads `/proc/meminfo`.
#[derive(Debug, Clone)]
pub struct SystemMemory {
    path: PathBuf,
}

impl Default for SystemMemory {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/proc/meminfo"),
        }
    }
}

impl SystemMemory {
    /// The fraction of RAM available now; `None` where there is no `/proc/meminfo` or it has no
    /// `MemAvailable` (the pressure check is then off).
    pub fn available(&self) -> Option<f64> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        available_fraction(&text)
    }
}

/// `MemAvailable / MemTotal` of a `/proc/meminfo` text.
fn available_fraction(meminfo: &str) -> Option<f64> {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    let (available, total) = (field("MemAvailable")?, field("MemTotal")?);
    (total > 0).then(|| available as f64 / total as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_is_read() {
        let text = "MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:    6000000 kB\n";
        assert_eq!(available_fraction(text), Some(0.25));
        assert_eq!(available_fraction("MemTotal: 100 kB\n"), None);
        assert!(
            SystemMemory::default()
                .available()
                .is_some_and(|f| (0.0..=1.0).contains(&f))
        );
    }
}
