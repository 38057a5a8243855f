//! Per-process metrics for configured process names, and for the agent's
//! own process: `process.cpu.time` (user, system), `process.memory.usage`
//! (resident), `process.memory.virtual`, `process.threads`, and for the
//! agent itself `process.open_file_descriptors`.
//!
//! Names and units are the hostmetrics receiver's. One difference: the
//! receiver puts `process.pid` and `process.executable.name` on a resource
//! per process; here they are point attributes, because the agent sends
//! one resource (the host) and the collector turns point attributes into
//! labels, so each process still gets its own series. The executable name
//! reported is the configured name that matched (stable across restarts),
//! and the agent's own is its executable's file name.
//!
//! Cost: configured processes are found by the same walk of `/proc` that
//! counts processes by status (see `processes`), which reads each
//! process's name anyway; sysinfo's process table would be a second walk
//! that also reads more per process and keeps every process in memory.
//! The agent's own figures are one read of `/proc/self/stat` and one
//! listing of `/proc/self/fd`. Each reported process costs one read of
//! its `/proc/<pid>/stat`, which gives every figure at once. The number
//! reported is capped (`max_processes`), in pid order.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use procfs::FromRead;
use procfs::process::Stat;

use super::config::HostMetrics;
use super::model::{Attribute, Descriptor, MetricBuilder, MetricKind};
use super::{Collection, ScrapeError, parse_error, read_proc};

pub(crate) const PROCESS_CPU_TIME: Descriptor = Descriptor {
    name: "process.cpu.time",
    description: "Total CPU seconds broken down by different states.",
    unit: "s",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const PROCESS_MEMORY_USAGE: Descriptor = Descriptor {
    name: "process.memory.usage",
    description: "The amount of physical memory in use.",
    unit: "By",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const PROCESS_MEMORY_VIRTUAL: Descriptor = Descriptor {
    name: "process.memory.virtual",
    description: "Virtual memory size.",
    unit: "By",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const PROCESS_THREADS: Descriptor = Descriptor {
    name: "process.threads",
    description: "Process threads count.",
    unit: "{threads}",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const PROCESS_OPEN_FILE_DESCRIPTORS: Descriptor = Descriptor {
    name: "process.open_file_descriptors",
    description: "Number of file descriptors in use by the process.",
    unit: "{count}",
    kind: MetricKind::NonMonotonicSum,
};

/// Linux keeps this many bytes of a process name (`TASK_COMM_LEN` − 1).
const COMM_LEN: usize = 15;

pub(crate) struct ProcessState {
    /// Configured names, shared with every point that reports them.
    pub(crate) names: Vec<Arc<str>>,
    self_pid: i32,
    self_name: Arc<str>,
    ticks_per_second: u64,
    page_size: u64,
    /// (pid, name, whether it is the agent's own entry).
    targets: Vec<(i32, Arc<str>, bool)>,
}

impl Default for ProcessState {
    fn default() -> Self {
        Self::new(&HostMetrics::default())
    }
}

impl ProcessState {
    pub(crate) fn new(settings: &HostMetrics) -> Self {
        let self_name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tocsin-agent".to_owned());
        ProcessState {
            names: settings
                .process_names
                .iter()
                .map(|n| Arc::from(n.as_str()))
                .collect(),
            self_pid: i32::try_from(std::process::id()).unwrap_or(0),
            self_name: Arc::from(self_name),
            ticks_per_second: procfs::ticks_per_second().max(1),
            page_size: procfs::page_size(),
            targets: Vec::new(),
        }
    }

    /// The pid the `/proc` walk should not report as a configured process,
    /// because it is reported as the agent's own.
    pub(crate) fn skip_pid(&self, settings: &HostMetrics) -> Option<i32> {
        settings.agent_process.then_some(self.self_pid)
    }

    /// Reports the agent's own process (when configured) and `matches`,
    /// the configured processes the `/proc` walk found.
    pub(crate) fn record(
        &mut self,
        settings: &HostMetrics,
        matches: &[(i32, Arc<str>)],
        buf: &mut Vec<u8>,
        time: SystemTime,
        boot: SystemTime,
        c: &mut Collection,
    ) {
        self.targets.clear();
        if settings.agent_process {
            self.targets
                .push((self.self_pid, Arc::clone(&self.self_name), true));
        }
        let max = settings.max_processes;
        if matches.len() > max {
            c.errors.push(ScrapeError::Truncated {
                scraper: "process",
                what: "matching processes",
                seen: matches.len(),
                limit: max,
            });
        }
        self.targets.extend(
            matches
                .iter()
                .take(max)
                .map(|(pid, name)| (*pid, Arc::clone(name), false)),
        );
        if self.targets.is_empty() {
            return;
        }

        let mut cpu = MetricBuilder::new(PROCESS_CPU_TIME, time, boot);
        let mut rss = MetricBuilder::new(PROCESS_MEMORY_USAGE, time, boot);
        let mut vsz = MetricBuilder::new(PROCESS_MEMORY_VIRTUAL, time, boot);
        let mut threads = MetricBuilder::new(PROCESS_THREADS, time, boot);
        let mut fds = MetricBuilder::new(PROCESS_OPEN_FILE_DESCRIPTORS, time, boot);
        let tps = self.ticks_per_second;
        for (pid, name, own) in &self.targets {
            let path = if *own {
                "/proc/self/stat".to_owned()
            } else {
                format!("/proc/{pid}/stat")
            };
            if let Err(e) = read_proc("process", &path, buf) {
                // A configured process that exited since the listing is
                // not an error worth reporting; the agent's own is.
                if *own {
                    c.errors.push(e);
                }
                continue;
            }
            let stat = match Stat::from_read(&buf[..]) {
                Ok(s) => s,
                Err(e) => {
                    c.errors.push(parse_error("process", &path, e));
                    continue;
                }
            };
            let start = boot + Duration::from_millis(stat.starttime.saturating_mul(1000) / tps);
            let attrs = || {
                vec![
                    Attribute::int("process.pid", i64::from(*pid)),
                    Attribute::shared("process.executable.name", name),
                ]
            };
            let with_state = |state: &'static str| {
                let mut a = attrs();
                a.push(Attribute::fixed("state", state));
                a
            };
            cpu.push_with_start(
                start,
                super::Value::Double(stat.utime as f64 / tps as f64),
                with_state("user"),
            );
            cpu.push_with_start(
                start,
                super::Value::Double(stat.stime as f64 / tps as f64),
                with_state("system"),
            );
            rss.int(stat.rss.saturating_mul(self.page_size), attrs());
            vsz.int(stat.vsize, attrs());
            threads.int(u64::try_from(stat.num_threads).unwrap_or(0), attrs());
            if *own {
                match std::fs::read_dir("/proc/self/fd") {
                    // The listing's own descriptor is one of the entries.
                    Ok(dir) => fds.int(dir.count().saturating_sub(1) as u64, attrs()),
                    Err(source) => c.errors.push(ScrapeError::Read {
                        scraper: "process",
                        path: "/proc/self/fd".to_owned(),
                        source,
                    }),
                }
            }
        }
        for m in [cpu, rss, vsz, threads, fds] {
            m.finish(&mut c.metrics);
        }
    }
}

/// Whether the kernel's name of a process (`comm`, at most 15 bytes) is
/// the configured name: equal, or its 15-byte truncation.
pub(crate) fn name_matches(configured: &str, process_name: &str) -> bool {
    configured == process_name
        || (process_name.len() == COMM_LEN
            && configured.len() > COMM_LEN
            && configured.as_bytes().starts_with(process_name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_exactly_or_by_kernel_truncation() {
        assert!(name_matches("nginx", "nginx"));
        assert!(!name_matches("nginx", "nginx-debug"));
        assert!(!name_matches("nginx-debug", "nginx"));
        assert!(name_matches("prometheus-node-exporter", "prometheus-node"));
        assert!(!name_matches("prometheus-node-exporter", "prometheus-nod"));
    }

    #[test]
    fn parses_a_captured_stat_line() {
        let line = b"4242 (my (odd) app) S 1 4242 4242 0 -1 4194560 2000 0 3 0 \
            250 125 0 0 20 0 7 0 123456 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 \
            4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        let stat = match Stat::from_read(&line[..]) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(stat.comm, "my (odd) app");
        assert_eq!((stat.utime, stat.stime), (250, 125));
        assert_eq!(stat.num_threads, 7);
        assert_eq!(stat.starttime, 123456);
        assert_eq!((stat.vsize, stat.rss), (104857600, 2560));
    }
}
