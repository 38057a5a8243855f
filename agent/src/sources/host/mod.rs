//! Host metrics: CPU, load, memory, paging, filesystems, disks, network
//! interfaces, process counts, uptime, chosen processes and the agent's own
//! process, named by the OpenTelemetry semantic conventions exactly as the
//! OpenTelemetry Collector's hostmetrics receiver names them.
//!
//! [`HostCollector`] owns everything that must persist between collections:
//! the previous CPU ticks (for `system.cpu.utilization`), the last reported
//! counter values (so a counter never goes down), the parsed mount table,
//! interned device names and one reusable read buffer. [`HostCollector::collect`]
//! reads the kernel's figures once per family and returns a [`Collection`]:
//! the metrics it could read plus one [`ScrapeError`] per family it could
//! not, so one unreadable file never costs the other metrics.
//!
//! Sources, chosen for cost and for consistency (each family comes from one
//! read, so its states describe one instant and add up): on Linux, `/proc`
//! through the `procfs` crate's parsers (CPU time per state, memory by
//! state, disk statistics, network counters with drops, process stat),
//! `statvfs` through `rustix` for filesystems, inodes included, and small
//! scanners where procfs falls short (process states, the mount table,
//! swaps, vmstat: see their modules); `sysinfo` for the load average,
//! uptime and boot time. Elsewhere only the `sysinfo` figures are
//! reported and the other families report
//! [`ScrapeError::Unsupported`]. No counter is ever derived from a
//! percentage: utilizations are ratios of kernel counters or sizes.
//!
//! ```no_run
//! use tocsin_agent::sources::host::{HostCollector, HostMetricsConfig};
//!
//! let settings = HostMetricsConfig::default()
//!     .validate()
//!     .map_err(|errors| format!("{errors:?}"))?;
//! let mut host = HostCollector::new(settings);
//! let collection = host.collect(); // every interval
//! for metric in &collection.metrics {
//!     println!("{} {} points", metric.name(), metric.points.len());
//! }
//! for error in &collection.errors {
//!     eprintln!("{error}");
//! }
//! # Ok::<(), String>(())
//! ```

// Outside Linux only the sysinfo families run, which leaves the /proc
// helpers unused there.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

pub mod config;
pub mod model;

#[cfg(target_os = "linux")]
mod cpu;
#[cfg(target_os = "linux")]
mod disk;
#[cfg(target_os = "linux")]
mod filesystem;
#[cfg(target_os = "linux")]
mod memory;
#[cfg(target_os = "linux")]
mod network;
#[cfg(target_os = "linux")]
mod process;
#[cfg(target_os = "linux")]
mod processes;
mod system;

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests;

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use config::{HostMetrics, HostMetricsConfig, HostMetricsConfigError, Scraper};
pub use model::{Attribute, AttributeValue, DataPoint, Descriptor, Metric, MetricKind, Value};

/// The largest `/proc` file the agent reads whole. `/proc/self/mounts` on a
/// container host with thousands of mounts is the largest in practice
/// (about 150 bytes a mount).
const MAX_PROC_FILE: u64 = 8 << 20;

/// At most this many devices (mounts, disks, interfaces) per family are
/// reported; a host past that is misconfigured or under attack, and its
/// series would swamp the collector.
const MAX_DEVICES: usize = 1024;

/// What one collection read.
#[derive(Debug)]
pub struct Collection {
    /// When the collection started; every point carries this timestamp.
    pub time: SystemTime,
    /// The metrics read, in scraper order.
    pub metrics: Vec<Metric>,
    /// What could not be read; each error costs only its own family.
    pub errors: Vec<ScrapeError>,
}

/// Why a family of metrics (or part of it) is missing from a collection.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// A kernel file could not be read.
    #[error("{scraper}: cannot read {path}: {source}")]
    Read {
        /// The scraper (`cpu`, `process`, …).
        scraper: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A kernel file did not have the expected format.
    #[error("{scraper}: cannot parse {path}: {message}")]
    Parse {
        /// The scraper.
        scraper: &'static str,
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A kernel file was larger than the agent reads.
    #[error("{scraper}: {path} is larger than {limit} bytes; not read")]
    TooLarge {
        /// The scraper.
        scraper: &'static str,
        /// The file.
        path: String,
        /// The limit.
        limit: u64,
    },
    /// `statvfs` failed on a mount point.
    #[error("filesystem: statvfs({mount_point}) failed: {source}")]
    Statvfs {
        /// The mount point.
        mount_point: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `statvfs` on a mount did not return in time; the mount is skipped
    /// until it does.
    #[error(
        "filesystem: statvfs({mount_point}) did not return within {timeout:?}; \
         skipping it until it does ({hung} mount(s) hung)"
    )]
    Hung {
        /// The mount point.
        mount_point: String,
        /// How long the agent waited.
        timeout: Duration,
        /// How many mounts are hung now.
        hung: usize,
    },
    /// More devices or processes than the agent reports.
    #[error("{scraper}: {seen} {what} found, only the first {limit} reported")]
    Truncated {
        /// The scraper.
        scraper: &'static str,
        /// What was counted (`mounts`, `processes`).
        what: &'static str,
        /// How many there were.
        seen: usize,
        /// How many were reported.
        limit: usize,
    },
    /// The figure is not available on this operating system.
    #[error("{scraper}: not supported on this operating system")]
    Unsupported {
        /// The scraper.
        scraper: &'static str,
    },
}

/// Reads host metrics on demand; keep one per agent and call
/// [`collect`](Self::collect) every interval.
pub struct HostCollector {
    settings: HostMetrics,
    /// Boot time, read once: the kernel derives it from the wall clock,
    /// so re-reading it would move the start time of every cumulative
    /// series whenever NTP slews the clock.
    boot_time: SystemTime,
    buf: Vec<u8>,
    names: Interner,
    #[cfg(target_os = "linux")]
    linux: LinuxState,
}

#[cfg(target_os = "linux")]
#[derive(Default)]
struct LinuxState {
    cpu: cpu::CpuState,
    filesystem: filesystem::FilesystemState,
    counters: CounterGuard,
    process: process::ProcessState,
    walk: processes::Walk,
}

impl HostCollector {
    /// A collector for `settings`. Reads nothing but the boot time.
    pub fn new(settings: HostMetrics) -> Self {
        let boot_time = match sysinfo::System::boot_time() {
            Ok(secs) => SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            // Without a boot time, the first observation is the start of
            // every cumulative series, which OTLP allows.
            Err(_) => SystemTime::now(),
        };
        HostCollector {
            #[cfg(target_os = "linux")]
            linux: LinuxState {
                process: process::ProcessState::new(&settings),
                ..LinuxState::default()
            },
            settings,
            boot_time,
            buf: Vec::with_capacity(16 << 10),
            names: Interner::default(),
        }
    }

    /// The start time of system counters.
    pub fn boot_time(&self) -> SystemTime {
        self.boot_time
    }

    /// Reads every enabled family once.
    pub fn collect(&mut self) -> Collection {
        let time = SystemTime::now();
        let mut c = Collection {
            time,
            metrics: Vec::with_capacity(40),
            errors: Vec::new(),
        };
        let s = &self.settings;
        let boot = self.boot_time;

        if s.enabled(Scraper::Load) {
            system::load(time, &mut c);
        }
        if s.enabled(Scraper::System) {
            system::uptime(time, &mut c);
        }
        #[cfg(target_os = "linux")]
        {
            let l = &mut self.linux;
            let buf = &mut self.buf;
            let names = &mut self.names;
            let processes_on = s.enabled(Scraper::Processes);
            let stat = if s.enabled(Scraper::Cpu) || processes_on {
                cpu::read_stat(buf, &mut c)
            } else {
                None
            };
            if let (true, Some(stat)) = (s.enabled(Scraper::Cpu), &stat) {
                l.cpu.record(stat, time, boot, &mut c.metrics);
            }
            // One walk of /proc serves both the status counts and the
            // configured processes.
            let walked = (processes_on || !l.process.names.is_empty())
                && match l.walk.run(&l.process.names, l.process.skip_pid(s)) {
                    Ok(()) => true,
                    Err(e) => {
                        c.errors.push(e);
                        false
                    }
                };
            if processes_on && walked {
                processes::record(stat.as_ref(), &l.walk, time, boot, &mut c);
            }
            if s.enabled(Scraper::Memory) {
                memory::record_memory(buf, time, boot, &mut c);
            }
            if s.enabled(Scraper::Paging) {
                memory::record_paging(buf, names, &mut l.counters, time, boot, &mut c);
            }
            if s.enabled(Scraper::Filesystem) {
                l.filesystem
                    .record(&s.filesystem, buf, names, time, boot, &mut c);
            }
            if s.enabled(Scraper::Disk) {
                disk::record(&s.disk, buf, names, &mut l.counters, time, boot, &mut c);
            }
            if s.enabled(Scraper::Network) {
                network::record(&s.network, buf, names, &mut l.counters, time, boot, &mut c);
            }
            l.process
                .record(s, &l.walk.matches, buf, time, boot, &mut c);
        }
        #[cfg(not(target_os = "linux"))]
        for scraper in [
            Scraper::Cpu,
            Scraper::Memory,
            Scraper::Paging,
            Scraper::Filesystem,
            Scraper::Disk,
            Scraper::Network,
            Scraper::Processes,
        ] {
            if s.enabled(scraper) {
                c.errors.push(ScrapeError::Unsupported {
                    scraper: scraper.as_str(),
                });
            }
        }
        if !s.disabled.is_empty() {
            c.metrics.retain(|m| s.metric_enabled(m.name()));
        }
        self.names.trim();
        #[cfg(target_os = "linux")]
        self.linux.counters.sweep();
        c
    }
}

/// Reads a whole `/proc` file into `buf` (cleared first), refusing files
/// above [`MAX_PROC_FILE`].
#[cfg(target_os = "linux")]
fn read_proc(scraper: &'static str, path: &str, buf: &mut Vec<u8>) -> Result<(), ScrapeError> {
    use std::io::Read;
    buf.clear();
    let read = std::fs::File::open(path).and_then(|f| f.take(MAX_PROC_FILE + 1).read_to_end(buf));
    match read {
        Ok(n) if n as u64 > MAX_PROC_FILE => Err(ScrapeError::TooLarge {
            scraper,
            path: path.to_owned(),
            limit: MAX_PROC_FILE,
        }),
        Ok(_) => Ok(()),
        Err(source) => Err(ScrapeError::Read {
            scraper,
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(target_os = "linux")]
fn parse_error(scraper: &'static str, path: &str, e: impl std::fmt::Display) -> ScrapeError {
    ScrapeError::Parse {
        scraper,
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Shares one `Arc<str>` per device or mount name across collections, so a
/// collection allocates no strings for names it has seen before. Bounded:
/// emptied when it holds more names than a sane host has, which only costs
/// re-allocating the live ones.
#[derive(Default)]
struct Interner {
    map: HashMap<Box<str>, Arc<str>>,
}

impl Interner {
    const MAX: usize = 8 * MAX_DEVICES;

    fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.map.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(name);
        self.map.insert(Box::from(name), Arc::clone(&shared));
        shared
    }

    fn trim(&mut self) {
        if self.map.len() > Self::MAX {
            self.map.clear();
        }
    }
}

/// Keeps reported counters monotonic. Some kernel counters step back
/// (per-CPU iowait is documented to; a driver reset zeroes interface
/// counters); reporting the raw value would make every `rate()` downstream
/// see a reset. A value below the last reported one is held at the last
/// one, so the series stays flat until the kernel catches up.
///
/// Bounded by the live devices: [`sweep`](Self::sweep), after each
/// collection, forgets counters that collection did not report (a removed
/// `veth`), so container churn does not grow it; a hard cap covers the
/// rest.
#[derive(Default)]
struct CounterGuard {
    /// Last reported value, and whether the current collection reported it.
    last: HashMap<(&'static str, Arc<str>, u8), (u64, bool)>,
}

impl CounterGuard {
    const MAX: usize = 16 * MAX_DEVICES;

    /// The value to report for the counter (`metric`, device, attribute
    /// index) whose kernel value is `value`.
    fn hold(&mut self, metric: &'static str, device: &Arc<str>, index: u8, value: u64) -> u64 {
        if self.last.len() >= Self::MAX {
            self.last.clear();
        }
        let slot = self
            .last
            .entry((metric, Arc::clone(device), index))
            .or_insert((value, true));
        *slot = (slot.0.max(value), true);
        slot.0
    }

    /// Forgets counters not reported since the last sweep.
    fn sweep(&mut self) {
        self.last.retain(|_, (_, seen)| std::mem::take(seen));
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn interner_shares_names_and_stays_bounded() {
        let mut names = Interner::default();
        let a = names.get("sda");
        let b = names.get("sda");
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..=Interner::MAX {
            names.get(&format!("dev{i}"));
        }
        names.trim();
        assert!(names.map.is_empty());
    }

    #[test]
    fn counter_guard_never_reports_a_step_back() {
        let mut guard = CounterGuard::default();
        let dev: Arc<str> = Arc::from("cpu0");
        assert_eq!(guard.hold("m", &dev, 0, 10), 10);
        assert_eq!(guard.hold("m", &dev, 0, 8), 10);
        assert_eq!(guard.hold("m", &dev, 0, 12), 12);
        // Another attribute index is another counter.
        assert_eq!(guard.hold("m", &dev, 1, 3), 3);
        guard.sweep();
        assert_eq!(guard.hold("m", &dev, 0, 9), 12, "still held after a sweep");
        guard.sweep();
        guard.sweep();
        // Counter 1 was not reported between two sweeps: forgotten, so a
        // device that comes back starts from its new value.
        assert_eq!(guard.hold("m", &dev, 1, 1), 1);
        assert_eq!(guard.last.len(), 1);
    }
}
