//! Configuration of the host-metrics source: which scrapers run, which
//! filesystems, disks and network interfaces they report, and which
//! processes get per-process metrics.
//!
//! [`HostMetricsConfig`] is what serde reads (unknown keys are errors, every
//! key has a default); [`HostMetricsConfig::validate`] turns it into
//! [`HostMetrics`], which holds compiled patterns and cannot be invalid, and
//! reports every problem at once with the field it is in.
//!
//! Defaults follow the OpenTelemetry Collector's hostmetrics receiver, with
//! two deliberate differences: the receiver's `process` scraper is replaced
//! by an explicit list of process names (reporting every process is a
//! cardinality and CPU cost no agent on every server should pay by default),
//! and the disk scraper skips `loop*` and `ram*` devices, which are not disks
//! (snap packages alone add a dozen loop devices to an Ubuntu host).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

/// One family of host metrics, named as the hostmetrics receiver names its
/// scrapers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scraper {
    /// `system.cpu.time`, `system.cpu.utilization`.
    Cpu,
    /// `system.cpu.load_average.{1m,5m,15m}`.
    Load,
    /// `system.memory.usage`, `system.memory.utilization`.
    Memory,
    /// `system.paging.usage`, `.utilization`, `.operations`, `.faults`.
    Paging,
    /// `system.filesystem.usage`, `.inodes.usage`, `.utilization`.
    Filesystem,
    /// `system.disk.*`.
    Disk,
    /// `system.network.*`.
    Network,
    /// `system.processes.count`, `system.processes.created`.
    Processes,
    /// `system.uptime`.
    System,
}

impl Scraper {
    /// Every scraper, in the order a collection runs them.
    pub const ALL: [Scraper; 9] = [
        Scraper::Cpu,
        Scraper::Load,
        Scraper::Memory,
        Scraper::Paging,
        Scraper::Filesystem,
        Scraper::Disk,
        Scraper::Network,
        Scraper::Processes,
        Scraper::System,
    ];

    /// The name used in configuration and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scraper::Cpu => "cpu",
            Scraper::Load => "load",
            Scraper::Memory => "memory",
            Scraper::Paging => "paging",
            Scraper::Filesystem => "filesystem",
            Scraper::Disk => "disk",
            Scraper::Network => "network",
            Scraper::Processes => "processes",
            Scraper::System => "system",
        }
    }
}

impl fmt::Display for Scraper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `host_metrics` block of the agent's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostMetricsConfig {
    /// Scrapers to run. Default: all of them (`cpu`, `load`, `memory`,
    /// `paging`, `filesystem`, `disk`, `network`, `processes`, `system`).
    /// An empty list turns host metrics off, except per-process ones.
    pub scrapers: Vec<Scraper>,
    /// Which filesystems `filesystem` reports.
    pub filesystem: FilesystemConfig,
    /// Which block devices `disk` reports. Default: all but `loop*` and
    /// `ram*`.
    pub disk: DeviceFilterConfig,
    /// Which interfaces `network` reports. Default: all, loopback included
    /// (as the hostmetrics receiver does; traffic to local sidecars is
    /// real traffic).
    pub network: DeviceFilterConfig,
    /// Per-process metrics.
    pub process: ProcessConfig,
    /// Metrics to switch off by name, in the hostmetrics receiver's form:
    /// `system.cpu.utilization: {enabled: false}`. Every metric is on by
    /// default (the receiver leaves the utilizations off; they are asked
    /// for here). Unknown names are errors.
    pub metrics: BTreeMap<String, MetricToggle>,
}

/// One entry of [`HostMetricsConfig::metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricToggle {
    /// Whether the metric is reported.
    pub enabled: bool,
}

/// Every metric the host source can report, by semantic-convention name.
pub const METRIC_NAMES: [&str; 33] = [
    "system.cpu.time",
    "system.cpu.utilization",
    "system.cpu.load_average.1m",
    "system.cpu.load_average.5m",
    "system.cpu.load_average.15m",
    "system.memory.usage",
    "system.memory.utilization",
    "system.paging.usage",
    "system.paging.utilization",
    "system.paging.operations",
    "system.paging.faults",
    "system.filesystem.usage",
    "system.filesystem.inodes.usage",
    "system.filesystem.utilization",
    "system.disk.io",
    "system.disk.operations",
    "system.disk.io_time",
    "system.disk.operation_time",
    "system.disk.weighted_io_time",
    "system.disk.pending_operations",
    "system.disk.merged",
    "system.network.io",
    "system.network.packets",
    "system.network.errors",
    "system.network.dropped",
    "system.processes.count",
    "system.processes.created",
    "system.uptime",
    "process.cpu.time",
    "process.memory.usage",
    "process.memory.virtual",
    "process.threads",
    "process.open_file_descriptors",
];

impl Default for HostMetricsConfig {
    fn default() -> Self {
        HostMetricsConfig {
            scrapers: Scraper::ALL.to_vec(),
            filesystem: FilesystemConfig::default(),
            disk: DeviceFilterConfig {
                include_devices: Vec::new(),
                exclude_devices: vec!["loop*".to_owned(), "ram*".to_owned()],
            },
            network: DeviceFilterConfig::default(),
            process: ProcessConfig::default(),
            metrics: BTreeMap::new(),
        }
    }
}

/// Filesystem selection. A mount is reported when its type and mount point
/// pass both the include list (empty: everything) and the exclude list.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesystemConfig {
    /// Report virtual filesystems too: those the kernel lists as `nodev` in
    /// `/proc/filesystems` (proc, sysfs, tmpfs, cgroup2, overlay, …).
    /// Default false, as in the hostmetrics receiver.
    pub include_virtual_filesystems: bool,
    /// Filesystem types to report, exactly as in `/proc/mounts` (`ext4`).
    pub include_fs_types: Vec<String>,
    /// Filesystem types never to report.
    pub exclude_fs_types: Vec<String>,
    /// Mount points to report, as glob patterns (`/srv/*`; `*` crosses `/`).
    pub include_mount_points: Vec<String>,
    /// Mount points never to report, as glob patterns
    /// (`/var/lib/docker/*`).
    pub exclude_mount_points: Vec<String>,
}

/// Device selection by name glob (`sd*`, `veth*`): a device is reported
/// when it matches an include pattern (or there are none) and no exclude
/// pattern.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeviceFilterConfig {
    /// Devices to report.
    pub include_devices: Vec<String>,
    /// Devices never to report.
    pub exclude_devices: Vec<String>,
}

/// Per-process metrics (`process.cpu.time`, `process.memory.usage`,
/// `process.memory.virtual`, `process.threads`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// Executable names to report, matched exactly against the process
    /// name (`nginx`, `postgres`). Linux keeps only the first 15 bytes of
    /// a name in the kernel, so a longer name matches on that prefix, as
    /// `pgrep` does. Empty (the default): no process list is read at all.
    pub names: Vec<String>,
    /// At most this many processes are reported per collection; the rest
    /// are counted in a collection error. Default 64, at most 4096.
    pub max_processes: usize,
    /// Report the agent's own process (default true).
    pub agent: bool,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            names: Vec::new(),
            max_processes: 64,
            agent: true,
        }
    }
}

/// The upper bound of [`ProcessConfig::max_processes`].
pub const MAX_PROCESSES_LIMIT: usize = 4096;

/// A problem in the `host_metrics` block; `field` is the path below it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostMetricsConfigError {
    /// A pattern that is not a valid glob.
    #[error("{field}: {pattern:?} is not a valid glob pattern: {message}")]
    InvalidGlob {
        /// Where the pattern is, e.g. `filesystem.exclude_mount_points[1]`.
        field: String,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        message: String,
    },
    /// A list entry given twice.
    #[error("{field}: {value:?} is listed twice")]
    Duplicate {
        /// The list.
        field: String,
        /// The repeated entry.
        value: String,
    },
    /// An empty string where a name is needed.
    #[error("{field}: empty name; give a process or filesystem type name")]
    Empty {
        /// Where the empty entry is.
        field: String,
    },
    /// A metric name the host source does not report.
    #[error("{field}: no host metric is named {name:?}; valid names are listed in METRIC_NAMES")]
    UnknownMetric {
        /// The key.
        field: String,
        /// The name given.
        name: String,
    },
    /// A number out of its range.
    #[error("{field}: {value} is out of range; valid: {min} to {max}")]
    OutOfRange {
        /// The field.
        field: String,
        /// The value given.
        value: usize,
        /// Smallest valid value.
        min: usize,
        /// Largest valid value.
        max: usize,
    },
}

/// Validated host-metrics settings.
#[derive(Debug, Clone)]
pub struct HostMetrics {
    pub(crate) scrapers: Vec<Scraper>,
    pub(crate) filesystem: FilesystemFilter,
    pub(crate) disk: DeviceFilter,
    pub(crate) network: DeviceFilter,
    pub(crate) process_names: Vec<String>,
    pub(crate) max_processes: usize,
    pub(crate) agent_process: bool,
    /// Names of metrics switched off.
    pub(crate) disabled: Vec<&'static str>,
}

impl HostMetrics {
    /// Whether `scraper` runs.
    pub fn enabled(&self, scraper: Scraper) -> bool {
        self.scrapers.contains(&scraper)
    }

    /// Whether the metric `name` is reported.
    pub fn metric_enabled(&self, name: &str) -> bool {
        !self.disabled.contains(&name)
    }
}

impl Default for HostMetrics {
    fn default() -> Self {
        match HostMetricsConfig::default().validate() {
            Ok(settings) => settings,
            // The default configuration is checked by a unit test; this arm
            // only keeps the function total.
            Err(_) => HostMetrics {
                scrapers: Scraper::ALL.to_vec(),
                filesystem: FilesystemFilter::default(),
                disk: DeviceFilter::default(),
                network: DeviceFilter::default(),
                process_names: Vec::new(),
                max_processes: 64,
                agent_process: true,
                disabled: Vec::new(),
            },
        }
    }
}

/// Compiled filesystem selection.
#[derive(Debug, Clone, Default)]
pub(crate) struct FilesystemFilter {
    pub(crate) include_virtual: bool,
    include_fs_types: Vec<String>,
    exclude_fs_types: Vec<String>,
    include_mount_points: Vec<glob::Pattern>,
    exclude_mount_points: Vec<glob::Pattern>,
}

impl FilesystemFilter {
    /// Whether a mount of type `fs_type` at `mount_point` passes the
    /// configured lists (virtual filesystems are decided by the caller,
    /// which knows the kernel's `nodev` list).
    pub(crate) fn includes(&self, fs_type: &str, mount_point: &str) -> bool {
        let type_ok = (self.include_fs_types.is_empty()
            || self.include_fs_types.iter().any(|t| t == fs_type))
            && !self.exclude_fs_types.iter().any(|t| t == fs_type);
        type_ok
            && passes(
                &self.include_mount_points,
                &self.exclude_mount_points,
                mount_point,
            )
    }

    /// Whether `fs_type` was asked for by name, which reports it even when
    /// the kernel calls it virtual (`include_fs_types: [tmpfs]`).
    pub(crate) fn names_type(&self, fs_type: &str) -> bool {
        self.include_fs_types.iter().any(|t| t == fs_type)
    }
}

/// Compiled device selection.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceFilter {
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
}

impl DeviceFilter {
    pub(crate) fn includes(&self, device: &str) -> bool {
        passes(&self.include, &self.exclude, device)
    }
}

fn passes(include: &[glob::Pattern], exclude: &[glob::Pattern], value: &str) -> bool {
    (include.is_empty() || include.iter().any(|p| p.matches(value)))
        && !exclude.iter().any(|p| p.matches(value))
}

impl HostMetricsConfig {
    /// Checks every field and returns the settings, or every problem found.
    pub fn validate(&self) -> Result<HostMetrics, Vec<HostMetricsConfigError>> {
        let mut errors = Vec::new();

        let mut scrapers = Vec::with_capacity(self.scrapers.len());
        for scraper in &self.scrapers {
            if scrapers.contains(scraper) {
                errors.push(HostMetricsConfigError::Duplicate {
                    field: "scrapers".to_owned(),
                    value: scraper.to_string(),
                });
            } else {
                scrapers.push(*scraper);
            }
        }

        let fs = &self.filesystem;
        names(
            &fs.include_fs_types,
            "filesystem.include_fs_types",
            &mut errors,
        );
        names(
            &fs.exclude_fs_types,
            "filesystem.exclude_fs_types",
            &mut errors,
        );
        let filesystem = FilesystemFilter {
            include_virtual: fs.include_virtual_filesystems,
            include_fs_types: fs.include_fs_types.clone(),
            exclude_fs_types: fs.exclude_fs_types.clone(),
            include_mount_points: globs(
                &fs.include_mount_points,
                "filesystem.include_mount_points",
                &mut errors,
            ),
            exclude_mount_points: globs(
                &fs.exclude_mount_points,
                "filesystem.exclude_mount_points",
                &mut errors,
            ),
        };
        let disk = device_filter(&self.disk, "disk", &mut errors);
        let network = device_filter(&self.network, "network", &mut errors);

        names(&self.process.names, "process.names", &mut errors);
        if !(1..=MAX_PROCESSES_LIMIT).contains(&self.process.max_processes) {
            errors.push(HostMetricsConfigError::OutOfRange {
                field: "process.max_processes".to_owned(),
                value: self.process.max_processes,
                min: 1,
                max: MAX_PROCESSES_LIMIT,
            });
        }

        let mut disabled = Vec::new();
        for (name, toggle) in &self.metrics {
            match METRIC_NAMES.iter().find(|known| *known == name) {
                Some(known) if !toggle.enabled => disabled.push(*known),
                Some(_) => {}
                None => errors.push(HostMetricsConfigError::UnknownMetric {
                    field: format!("metrics.{name}"),
                    name: name.clone(),
                }),
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(HostMetrics {
            scrapers,
            filesystem,
            disk,
            network,
            process_names: self.process.names.clone(),
            max_processes: self.process.max_processes,
            agent_process: self.process.agent,
            disabled,
        })
    }
}

fn device_filter(
    config: &DeviceFilterConfig,
    scraper: &str,
    errors: &mut Vec<HostMetricsConfigError>,
) -> DeviceFilter {
    DeviceFilter {
        include: globs(
            &config.include_devices,
            &format!("{scraper}.include_devices"),
            errors,
        ),
        exclude: globs(
            &config.exclude_devices,
            &format!("{scraper}.exclude_devices"),
            errors,
        ),
    }
}

fn globs(
    patterns: &[String],
    field: &str,
    errors: &mut Vec<HostMetricsConfigError>,
) -> Vec<glob::Pattern> {
    let mut compiled = Vec::with_capacity(patterns.len());
    for (i, pattern) in patterns.iter().enumerate() {
        match glob::Pattern::new(pattern) {
            Ok(p) => compiled.push(p),
            Err(e) => errors.push(HostMetricsConfigError::InvalidGlob {
                field: format!("{field}[{i}]"),
                pattern: pattern.clone(),
                message: e.msg.to_owned(),
            }),
        }
    }
    compiled
}

fn names(list: &[String], field: &str, errors: &mut Vec<HostMetricsConfigError>) {
    for (i, name) in list.iter().enumerate() {
        if name.is_empty() {
            errors.push(HostMetricsConfigError::Empty {
                field: format!("{field}[{i}]"),
            });
        } else if list[..i].contains(name) {
            errors.push(HostMetricsConfigError::Duplicate {
                field: field.to_owned(),
                value: name.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<HostMetricsConfig, String> {
        serde_saphyr::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn default_config_is_valid_and_runs_every_scraper() {
        let settings = match HostMetricsConfig::default().validate() {
            Ok(s) => s,
            Err(e) => panic!("default config rejected: {e:?}"),
        };
        for scraper in Scraper::ALL {
            assert!(settings.enabled(scraper), "{scraper} off by default");
        }
        assert!(!settings.disk.includes("loop3"));
        assert!(!settings.disk.includes("ram0"));
        assert!(settings.disk.includes("nvme0n1"));
        assert!(settings.network.includes("lo"));
        assert!(settings.agent_process);
        assert!(settings.process_names.is_empty());
    }

    #[test]
    fn empty_document_block_means_defaults() {
        assert_eq!(parse("{}"), Ok(HostMetricsConfig::default()));
    }

    #[test]
    fn yaml_sets_fields_and_unknown_keys_are_errors() {
        let config = parse(
            "scrapers: [cpu, memory]\n\
             filesystem:\n  exclude_mount_points: ['/var/lib/docker/*']\n\
             process:\n  names: [nginx]\n",
        );
        let config = match config {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(config.scrapers, vec![Scraper::Cpu, Scraper::Memory]);
        assert_eq!(config.process.names, vec!["nginx".to_owned()]);
        assert_eq!(config.process.max_processes, 64);

        let err = parse("filesystem:\n  exclude_mountpoints: [/x]\n");
        assert!(
            matches!(&err, Err(e) if e.contains("exclude_mountpoints")),
            "{err:?}"
        );
        let err = parse("scrapers: [cpu, gpu]\n");
        assert!(matches!(&err, Err(e) if e.contains("gpu")), "{err:?}");
    }

    #[test]
    fn validation_reports_every_problem_with_its_field() {
        let mut config = HostMetricsConfig {
            scrapers: vec![Scraper::Cpu, Scraper::Cpu],
            ..HostMetricsConfig::default()
        };
        config.filesystem.exclude_mount_points = vec!["/ok/*".into(), "/bad/[".into()];
        config.network.include_devices = vec!["eth[".into()];
        config.process.names = vec!["nginx".into(), String::new(), "nginx".into()];
        config.process.max_processes = 0;
        let errors = match config.validate() {
            Ok(_) => panic!("invalid config accepted"),
            Err(e) => e,
        };
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 6, "{text:#?}");
        let fields = [
            "scrapers: \"cpu\" is listed twice",
            "filesystem.exclude_mount_points[1]: \"/bad/[\"",
            "network.include_devices[0]",
            "process.names[1]: empty name",
            "process.names: \"nginx\" is listed twice",
            "process.max_processes: 0 is out of range; valid: 1 to 4096",
        ];
        for field in fields {
            assert!(
                text.iter().any(|t| t.contains(field)),
                "{field} missing in {text:#?}"
            );
        }
    }

    #[test]
    fn metrics_are_switched_off_by_name_and_unknown_names_refused() {
        let config = parse(
            "metrics:\n  system.cpu.utilization: {enabled: false}\n  \
             system.uptime: {enabled: true}\n",
        );
        let config = config.unwrap_or_else(|e| panic!("{e}"));
        let settings = config.validate().unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!settings.metric_enabled("system.cpu.utilization"));
        assert!(settings.metric_enabled("system.cpu.time"));
        assert!(settings.metric_enabled("system.uptime"));

        let config = parse("metrics:\n  system.cpu.utilisation: {enabled: false}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let errors = config.validate().err().unwrap_or_default();
        assert_eq!(
            errors,
            vec![HostMetricsConfigError::UnknownMetric {
                field: "metrics.system.cpu.utilisation".into(),
                name: "system.cpu.utilisation".into(),
            }]
        );
        let err = parse("metrics:\n  system.uptime: {enable: false}\n");
        assert!(matches!(&err, Err(e) if e.contains("enable")), "{err:?}");
    }

    #[test]
    fn filters_apply_include_then_exclude() {
        let mut config = HostMetricsConfig::default();
        config.filesystem.include_fs_types = vec!["ext4".into(), "xfs".into()];
        config.filesystem.exclude_mount_points = vec!["/var/lib/docker/*".into()];
        config.network.exclude_devices = vec!["veth*".into(), "lo".into()];
        let settings = match config.validate() {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        };
        let fs = &settings.filesystem;
        assert!(fs.includes("ext4", "/"));
        assert!(fs.includes("xfs", "/srv"));
        assert!(!fs.includes("btrfs", "/home"));
        assert!(!fs.includes("ext4", "/var/lib/docker/overlay2/abc/merged"));
        assert!(fs.names_type("xfs"));
        assert!(!fs.names_type("tmpfs"));
        assert!(settings.network.includes("eth0"));
        assert!(!settings.network.includes("veth12ab"));
        assert!(!settings.network.includes("lo"));
    }
}
