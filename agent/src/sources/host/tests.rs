//! Collections on the machine the tests run on: names, units, kinds and
//! attribute sets against the hostmetrics receiver's metadata, and the
//! invariants between two collections.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::config::{HostMetricsConfig, ProcessConfig};
use super::*;

fn collector(config: HostMetricsConfig) -> HostCollector {
    match config.validate() {
        Ok(settings) => HostCollector::new(settings),
        Err(e) => panic!("{e:?}"),
    }
}

fn by_name(c: &Collection) -> BTreeMap<&'static str, &Metric> {
    c.metrics.iter().map(|m| (m.name(), m)).collect()
}

/// The receiver's metadata.yaml entries: name, unit, kind, attribute keys.
/// Written out here, not taken from the scrapers' constants, so a changed
/// constant fails this test.
const EXPECTED: &[(&str, &str, MetricKind, &[&str])] = &[
    (
        "system.cpu.time",
        "s",
        MetricKind::MonotonicSum,
        &["cpu", "state"],
    ),
    (
        "system.cpu.utilization",
        "1",
        MetricKind::Gauge,
        &["cpu", "state"],
    ),
    (
        "system.cpu.load_average.1m",
        "{thread}",
        MetricKind::Gauge,
        &[],
    ),
    (
        "system.cpu.load_average.5m",
        "{thread}",
        MetricKind::Gauge,
        &[],
    ),
    (
        "system.cpu.load_average.15m",
        "{thread}",
        MetricKind::Gauge,
        &[],
    ),
    (
        "system.memory.usage",
        "By",
        MetricKind::NonMonotonicSum,
        &["state"],
    ),
    (
        "system.memory.utilization",
        "1",
        MetricKind::Gauge,
        &["state"],
    ),
    (
        "system.paging.usage",
        "By",
        MetricKind::NonMonotonicSum,
        &["device", "state"],
    ),
    (
        "system.paging.utilization",
        "1",
        MetricKind::Gauge,
        &["device", "state"],
    ),
    (
        "system.paging.operations",
        "{operations}",
        MetricKind::MonotonicSum,
        &["direction", "type"],
    ),
    (
        "system.paging.faults",
        "{faults}",
        MetricKind::MonotonicSum,
        &["type"],
    ),
    (
        "system.filesystem.usage",
        "By",
        MetricKind::NonMonotonicSum,
        &["device", "mode", "mountpoint", "type", "state"],
    ),
    (
        "system.filesystem.inodes.usage",
        "{inodes}",
        MetricKind::NonMonotonicSum,
        &["device", "mode", "mountpoint", "type", "state"],
    ),
    (
        "system.filesystem.utilization",
        "1",
        MetricKind::Gauge,
        &["device", "mode", "mountpoint", "type"],
    ),
    (
        "system.disk.io",
        "By",
        MetricKind::MonotonicSum,
        &["device", "direction"],
    ),
    (
        "system.disk.operations",
        "{operations}",
        MetricKind::MonotonicSum,
        &["device", "direction"],
    ),
    (
        "system.disk.io_time",
        "s",
        MetricKind::MonotonicSum,
        &["device"],
    ),
    (
        "system.disk.operation_time",
        "s",
        MetricKind::MonotonicSum,
        &["device", "direction"],
    ),
    (
        "system.disk.weighted_io_time",
        "s",
        MetricKind::MonotonicSum,
        &["device"],
    ),
    (
        "system.disk.pending_operations",
        "{operations}",
        MetricKind::NonMonotonicSum,
        &["device"],
    ),
    (
        "system.disk.merged",
        "{operations}",
        MetricKind::MonotonicSum,
        &["device", "direction"],
    ),
    (
        "system.network.io",
        "By",
        MetricKind::MonotonicSum,
        &["device", "direction"],
    ),
    (
        "system.network.packets",
        "{packets}",
        MetricKind::MonotonicSum,
        &["device", "direction"],
    ),
    (
        "system.network.errors",
        "{errors}",
        MetricKind::MonotonicSum,
        &["device", "direction"],
    ),
    (
        "system.network.dropped",
        "{packets}",
        MetricKind::MonotonicSum,
        &["device", "direction"],
    ),
    (
        "system.processes.count",
        "{processes}",
        MetricKind::NonMonotonicSum,
        &["status"],
    ),
    (
        "system.processes.created",
        "{processes}",
        MetricKind::MonotonicSum,
        &[],
    ),
    ("system.uptime", "s", MetricKind::Gauge, &[]),
    (
        "process.cpu.time",
        "s",
        MetricKind::MonotonicSum,
        &["process.pid", "process.executable.name", "state"],
    ),
    (
        "process.memory.usage",
        "By",
        MetricKind::NonMonotonicSum,
        &["process.pid", "process.executable.name"],
    ),
    (
        "process.memory.virtual",
        "By",
        MetricKind::NonMonotonicSum,
        &["process.pid", "process.executable.name"],
    ),
    (
        "process.threads",
        "{threads}",
        MetricKind::NonMonotonicSum,
        &["process.pid", "process.executable.name"],
    ),
    (
        "process.open_file_descriptors",
        "{count}",
        MetricKind::NonMonotonicSum,
        &["process.pid", "process.executable.name"],
    ),
];

/// Metrics a host may legitimately lack: no swap device, no block device
/// (containers), no mount that is not virtual.
const OPTIONAL: &[&str] = &[
    "system.paging.usage",
    "system.paging.utilization",
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
];

fn two_collections() -> (Collection, Collection) {
    let mut c = collector(HostMetricsConfig::default());
    let first = c.collect();
    // Burn a little CPU so the second reading has ticks to divide.
    let mut x = 0u64;
    let deadline = std::time::Instant::now() + Duration::from_millis(60);
    while std::time::Instant::now() < deadline {
        x = x.wrapping_mul(31).wrapping_add(7);
    }
    std::hint::black_box(x);
    let second = c.collect();
    (first, second)
}

#[test]
fn real_collection_matches_receiver_metadata() {
    let (_, c) = two_collections();
    // A mount the test user may not stat is the host's business; any
    // other error is a defect.
    let errors: Vec<_> = c
        .errors
        .iter()
        .filter(|e| !matches!(e, ScrapeError::Statvfs { .. }))
        .collect();
    assert!(errors.is_empty(), "errors: {errors:#?}");
    let metrics = by_name(&c);
    assert_eq!(metrics.len(), c.metrics.len(), "a metric emitted twice");
    for (name, unit, kind, keys) in EXPECTED {
        let Some(m) = metrics.get(name) else {
            assert!(OPTIONAL.contains(name), "{name} missing");
            continue;
        };
        assert_eq!(m.descriptor.unit, *unit, "{name} unit");
        assert_eq!(m.descriptor.kind, *kind, "{name} kind");
        assert!(!m.descriptor.description.is_empty(), "{name} description");
        let mut sets = HashSet::new();
        for p in &m.points {
            let got: Vec<&str> = p.attributes.iter().map(|a| a.key).collect();
            assert_eq!(got, *keys, "{name} attribute keys");
            assert_eq!(p.start_time.is_some(), kind.is_sum(), "{name} start time");
            if let Some(start) = p.start_time {
                assert!(start <= p.time, "{name} starts after its timestamp");
            }
            assert_eq!(p.time, c.time);
            assert!(p.value.as_f64().is_finite(), "{name} not finite");
            assert!(
                sets.insert(format!("{:?}", p.attributes)),
                "{name}: duplicate point {:?}",
                p.attributes
            );
        }
    }
    let known: BTreeSet<&str> = EXPECTED.iter().map(|e| e.0).collect();
    let listed: BTreeSet<&str> = super::config::METRIC_NAMES.into_iter().collect();
    assert_eq!(
        known, listed,
        "METRIC_NAMES out of step with what is emitted"
    );
    for name in metrics.keys() {
        assert!(known.contains(name), "unexpected metric {name}");
    }
}

#[test]
fn disabled_metrics_are_not_emitted() {
    let mut config = HostMetricsConfig::default();
    config.metrics.insert(
        "system.cpu.time".into(),
        super::config::MetricToggle { enabled: false },
    );
    let col = collector(config).collect();
    let names = by_name(&col);
    assert!(!names.contains_key("system.cpu.time"));
    assert!(names.contains_key("system.memory.usage"));
}

#[test]
fn cpu_time_covers_every_cpu_and_state() {
    let (_, c) = two_collections();
    let metrics = by_name(&c);
    let cpu = metrics["system.cpu.time"];
    let states: BTreeSet<&str> = cpu
        .points
        .iter()
        .filter_map(|p| p.attribute("state").and_then(AttributeValue::as_str))
        .collect();
    let expected: BTreeSet<&str> = [
        "idle",
        "interrupt",
        "nice",
        "softirq",
        "steal",
        "system",
        "user",
        "wait",
    ]
    .into();
    assert_eq!(states, expected);
    let cpus: BTreeSet<&str> = cpu
        .points
        .iter()
        .filter_map(|p| p.attribute("cpu").and_then(AttributeValue::as_str))
        .collect();
    let online = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cpus.len() >= online, "{cpus:?} vs {online} CPUs");
    assert!(
        cpus.iter()
            .all(|c| c.starts_with("cpu") && c[3..].parse::<u32>().is_ok())
    );
}

#[test]
fn counters_never_decrease_between_collections() {
    let (a, b) = two_collections();
    let before = by_name(&a);
    let mut compared = 0;
    for m in &b.metrics {
        if m.descriptor.kind != MetricKind::MonotonicSum {
            continue;
        }
        let Some(old) = before.get(m.name()) else {
            continue;
        };
        for p in &m.points {
            if let Some(q) = old.points.iter().find(|q| q.attributes == p.attributes) {
                assert!(
                    p.value.as_f64() >= q.value.as_f64(),
                    "{} {:?}: {:?} -> {:?}",
                    m.name(),
                    p.attributes,
                    q.value,
                    p.value
                );
                assert_eq!(p.start_time, q.start_time, "{} start time moved", m.name());
                compared += 1;
            }
        }
    }
    assert!(compared > 20, "only {compared} counters compared");
}

#[test]
fn utilizations_are_fractions_that_add_up() {
    let (_, c) = two_collections();
    let metrics = by_name(&c);
    for m in c.metrics.iter().filter(|m| m.descriptor.unit == "1") {
        for p in &m.points {
            let v = p.value.as_f64();
            assert!(
                (0.0..=1.0).contains(&v),
                "{} {:?} = {v}",
                m.name(),
                p.attributes
            );
        }
    }
    let util = metrics.get("system.cpu.utilization").map_or_else(
        || panic!("no cpu utilization on the second collection"),
        |m| *m,
    );
    let mut per_cpu: BTreeMap<String, f64> = BTreeMap::new();
    for p in &util.points {
        let cpu = p
            .attribute("cpu")
            .and_then(AttributeValue::as_str)
            .unwrap_or("");
        *per_cpu.entry(cpu.to_owned()).or_default() += p.value.as_f64();
    }
    assert!(!per_cpu.is_empty());
    for (cpu, sum) in per_cpu {
        assert!((sum - 1.0).abs() < 1e-9, "{cpu} states sum to {sum}");
    }
}

#[test]
fn memory_states_sum_to_meminfo_total() {
    let (_, c) = two_collections();
    let metrics = by_name(&c);
    let usage = metrics["system.memory.usage"];
    let states: BTreeSet<&str> = usage
        .points
        .iter()
        .filter_map(|p| p.attribute("state").and_then(AttributeValue::as_str))
        .collect();
    let expected: BTreeSet<&str> = [
        "used",
        "free",
        "buffered",
        "cached",
        "slab_reclaimable",
        "slab_unreclaimable",
    ]
    .into();
    assert_eq!(states, expected);
    let sum: f64 = usage.points.iter().map(|p| p.value.as_f64()).sum();
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or_else(|| panic!("no MemTotal"), |kib| kib * 1024.0);
    // MemTotal is fixed; the tolerance only covers memory hot-plug.
    assert!(
        (sum - total).abs() <= total * 0.01,
        "sum {sum} vs total {total}"
    );
    let util: f64 = metrics["system.memory.utilization"]
        .points
        .iter()
        .map(|p| p.value.as_f64())
        .sum();
    assert!((util - 1.0).abs() < 1e-9, "utilizations sum to {util}");
}

#[test]
fn filesystems_exclude_virtual_types_and_add_up() {
    let mut c = collector(HostMetricsConfig::default());
    let col = c.collect();
    let metrics = by_name(&col);
    let Some(usage) = metrics.get("system.filesystem.usage") else {
        return; // no real filesystem mounted: checked by the metadata test
    };
    for p in &usage.points {
        let t = p
            .attribute("type")
            .and_then(AttributeValue::as_str)
            .unwrap_or("");
        assert!(
            ![
                "proc", "sysfs", "tmpfs", "cgroup", "cgroup2", "devtmpfs", "devpts", "mqueue"
            ]
            .contains(&t),
            "virtual filesystem {t} reported"
        );
        let mode = p.attribute("mode").and_then(AttributeValue::as_str);
        assert!(matches!(mode, Some("rw" | "ro" | "unknown")));
    }
    let root = usage
        .points
        .iter()
        .filter(|p| p.attribute("mountpoint").and_then(AttributeValue::as_str) == Some("/"))
        .map(|p| p.value.as_f64())
        .sum::<f64>();
    if root > 0.0 {
        let st = rustix::fs::statvfs("/").unwrap_or_else(|e| panic!("{e}"));
        let size = (st.f_blocks * st.f_frsize) as f64;
        assert_eq!(root, size, "used + free + reserved of / is its size");
    }
    let inodes = metrics["system.filesystem.inodes.usage"];
    assert_eq!(inodes.points.len() * 3, usage.points.len() * 2);
}

#[test]
fn processes_count_includes_this_one_and_self_metrics_are_sane() {
    let mut c = collector(HostMetricsConfig::default());
    let col = c.collect();
    let metrics = by_name(&col);
    let total: f64 = metrics["system.processes.count"]
        .points
        .iter()
        .map(|p| p.value.as_f64())
        .sum();
    assert!(total >= 1.0);
    let pid = i64::from(std::process::id());
    let rss = metrics["process.memory.usage"]
        .points
        .iter()
        .find(|p| p.attribute("process.pid") == Some(&AttributeValue::Int(pid)))
        .map_or_else(|| panic!("no self rss"), |p| p.value.as_f64());
    assert!(rss > 1e6 && rss < 4e9, "rss {rss}");
    let fds = metrics["process.open_file_descriptors"].points[0]
        .value
        .as_f64();
    assert!(fds >= 3.0, "fds {fds}");
    let cpu = &metrics["process.cpu.time"].points[0];
    let start = cpu.start_time.unwrap_or_else(|| panic!("no start"));
    assert!(start >= c.boot_time() && start <= col.time);
}

#[test]
fn configured_process_names_are_found_and_capped() {
    // The test binary's own name, as the kernel truncates it.
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap_or_else(|e| panic!("{e}"));
    let comm = comm.trim().to_owned();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap_or_else(|e| panic!("spawn sleep: {e}"));
    // Until it has exec'd, the child carries this binary's name.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
        .map_or(true, |c| c.trim() != "sleep")
    {
        assert!(std::time::Instant::now() < deadline, "sleep never exec'd");
        std::thread::yield_now();
    }
    let config = HostMetricsConfig {
        scrapers: Vec::new(),
        process: ProcessConfig {
            names: vec!["sleep".into(), comm],
            max_processes: 1,
            agent: false,
        },
        ..HostMetricsConfig::default()
    };
    let mut c = collector(config);
    let col = c.collect();
    let _ = child.kill();
    let _ = child.wait();
    let metrics = by_name(&col);
    let names: BTreeSet<&str> = metrics["process.memory.usage"]
        .points
        .iter()
        .filter_map(|p| {
            p.attribute("process.executable.name")
                .and_then(AttributeValue::as_str)
        })
        .collect();
    assert_eq!(
        metrics["process.memory.usage"].points.len(),
        1,
        "capped at 1"
    );
    assert_eq!(names.len(), 1);
    assert!(
        col.errors.iter().any(|e| matches!(
            e,
            ScrapeError::Truncated {
                scraper: "process",
                ..
            }
        )),
        "{:?}",
        col.errors
    );
    assert!(
        !metrics.contains_key("process.open_file_descriptors"),
        "only for the agent itself"
    );
    assert!(!metrics.contains_key("system.cpu.time"), "scrapers off");
}
