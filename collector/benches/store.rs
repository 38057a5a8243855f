//! Series store figures, measured on the real `SeriesStore` (head, WAL with
//! group commit, snapshots):
//!
//! - `head`: bytes per sample and per series in the head after a day of
//!   data — the chunks' encoded bytes (exact) and the process' resident
//!   memory growth (everything: chunks, labels, index, allocator slack);
//! - `restart`: the time `SeriesStore::open` takes on that day of data with
//!   a snapshot plus 15 minutes of WAL, and with the whole WAL replayed (no
//!   snapshot), plus the time and size of the snapshot itself;
//! - `query`: latency of `sum by (host_name) (rate(x[5m]))` over 100k
//!   series, evaluated by the rule engine's evaluator against the store as
//!   the API's instant query does, median and p99 over N runs.
//!
//! The day of data: `TOCSIN_BENCH_SERIES` series (default 10 000) sampled
//! every `TOCSIN_BENCH_INTERVAL_S` seconds (default 15, Prometheus' default
//! scrape interval) for `TOCSIN_BENCH_HOURS` hours (default 24), appended
//! one batch per timestamp (all series) as an agent fleet would. Values:
//! 40% counters (integer increments), 20% integer gauges (random walk),
//! 20% float gauges (full-precision ratios), 20% constants (`up`);
//! timestamps at the interval with 0–3 ms of jitter. The query data:
//! `TOCSIN_BENCH_QUERY_SERIES` counters `x` (default 100 000) on 1 000
//! hosts, 30 minutes at 15 s, `TOCSIN_BENCH_QUERY_RUNS` runs (default 50).
//! `TOCSIN_BENCH_DIR` picks the directory for the store (default: a temp
//! directory; the day of data needs about 1 GB of WAL).
//!
//! Run: `cargo bench -p tocsin-collector --bench store [-- head|restart|query]`
//! (`head` and `restart` share their data and run together). `-- openmetrics`
//! instead writes the day of data as OpenMetrics text to
//! `$TOCSIN_BENCH_DIR/day.om`, for feeding the same samples to Prometheus.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

mod common;

use common::{Rng, env};
use std::path::Path;
use std::time::{Duration, Instant};

use tocsin_collector::store::SeriesStore;
use tocsin_collector::store::head::HeadOptions;
use tocsin_collector::store::wal::WalOptions;
use tocsin_rules::promql::{Engine, EngineOptions, Labels, Value};

// The allocator `tocsin-collector` runs with, so memory figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resident memory of this process in bytes (Linux), for growth figures.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn dir_bytes(dir: &Path, prefix: Option<&str>) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            match prefix {
                Some(p) => name.starts_with(p),
                None => name.parse::<u64>().is_ok(),
            }
        })
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

const DAY_SEED: u64 = 0x1234_5678_9abc_def1;
const DAY_START: i64 = 1_700_000_000_000;

const METRICS: [&str; 10] = [
    "node_cpu_seconds_total",
    "node_network_receive_bytes_total",
    "http_requests_total",
    "process_open_fds",
    "node_memory_available_bytes",
    "node_filesystem_free_bytes",
    "node_load1",
    "http_request_duration_seconds_ratio",
    "up",
    "tocsin_agent_up",
];

/// Value kinds, by the metric's index in [`METRICS`].
fn kind(metric: usize) -> usize {
    match metric {
        0..=3 => 0, // counter
        4 | 5 => 1, // integer gauge
        6 | 7 => 2, // float gauge
        _ => 3,     // constant
    }
}

fn day_labels(i: usize) -> Labels {
    let host = format!("host-{:04}", i / 100);
    let metric = METRICS[i % METRICS.len()];
    let instance = format!("10.0.{}.{}:9100", (i / 100) / 250, (i / 100) % 250);
    let device = format!("dev{}", (i / METRICS.len()) % 10);
    Labels::from_pairs([
        ("__name__", metric),
        ("host_name", host.as_str()),
        ("instance", instance.as_str()),
        ("job", "node"),
        ("device", device.as_str()),
    ])
}

fn next_value(rng: &mut Rng, metric: usize, prev: f64) -> f64 {
    match kind(metric) {
        0 => prev + rng.below(1000) as f64,
        1 => (prev + rng.below(2_000_001) as f64 - 1_000_000.0).max(0.0),
        2 => rng.below(1 << 53) as f64 / (1u64 << 53) as f64 * 4.0,
        _ => 1.0,
    }
}

fn open(dir: &Path) -> (SeriesStore, tocsin_collector::store::OpenReport) {
    let opts = HeadOptions {
        // Snapshots only when the benchmark asks for one.
        snapshot_interval: Duration::ZERO,
        ..HeadOptions::default()
    };
    SeriesStore::open(dir, opts, WalOptions::default()).unwrap()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn head_and_restart(base: &Path) {
    let series = env("TOCSIN_BENCH_SERIES", 10_000) as usize;
    let interval_ms = env("TOCSIN_BENCH_INTERVAL_S", 15) as i64 * 1000;
    let hours = env("TOCSIN_BENCH_HOURS", 24) as i64;
    let rounds = hours * 3_600_000 / interval_ms;
    let tail_rounds = (15 * 60_000 / interval_ms).min(rounds);
    let dir = base.join("day");
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "== head and restart: {series} series x {rounds} samples ({hours} h at {} s) = {} samples",
        interval_ms / 1000,
        series as i64 * rounds
    );

    let mut batch: Vec<(Labels, i64, f64)> = (0..series).map(|i| (day_labels(i), 0, 0.0)).collect();
    let rss_before = rss_bytes();
    let (store, _) = open(&dir);
    let mut rng = Rng(DAY_SEED);
    let start_t = DAY_START;
    let fill = |store: &SeriesStore,
                batch: &mut Vec<(Labels, i64, f64)>,
                rng: &mut Rng,
                from: i64,
                to: i64| {
        for r in from..to {
            let t = start_t + r * interval_ms;
            for (i, s) in batch.iter_mut().enumerate() {
                s.1 = t + rng.below(4) as i64;
                s.2 = next_value(rng, i % METRICS.len(), s.2);
            }
            let out = store.append(batch).unwrap();
            assert_eq!(out.stored, batch.len());
        }
    };
    let started = Instant::now();
    fill(&store, &mut batch, &mut rng, 0, rounds - tail_rounds);
    let ingest_s = started.elapsed().as_secs_f64();
    let snap = store.snapshot().unwrap();
    let written = snap.written.clone().unwrap();
    fill(&store, &mut batch, &mut rng, rounds - tail_rounds, rounds);
    let samples = series as u64 * rounds as u64;
    let stats = store.head().stats();
    let rss_after = rss_bytes();
    drop(batch);

    println!(
        "ingest: {:.1} s for {} samples through the WAL ({:.0} samples/s, one fsync per batch of {series})",
        ingest_s,
        written.samples,
        written.samples as f64 / ingest_s
    );
    println!(
        "head chunks: {} bytes = {:.3} bytes/sample, {:.0} bytes/series",
        stats.chunk_bytes,
        stats.chunk_bytes as f64 / samples as f64,
        stats.chunk_bytes as f64 / series as f64
    );
    if let (Some(a), Some(b)) = (rss_before, rss_after) {
        let grown = b.saturating_sub(a);
        println!(
            "resident memory growth: {} bytes = {:.3} bytes/sample, {:.0} bytes/series (labels, index, chunks, allocator slack; {:.0} bytes/series beyond the chunks)",
            grown,
            grown as f64 / samples as f64,
            grown as f64 / series as f64,
            grown.saturating_sub(stats.chunk_bytes as u64) as f64 / series as f64
        );
    }
    println!(
        "snapshot of {} h - 15 min: {} bytes ({:.3} bytes/sample), {} series, written in {:.2} s",
        hours,
        written.bytes,
        written.bytes as f64 / written.samples as f64,
        written.series,
        snap.duration.as_secs_f64()
    );
    let wal_all = dir_bytes(&dir, None);
    let wal_tail: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .parse::<u64>()
                .is_ok_and(|n| n >= written.segment)
        })
        .map(|e| e.metadata().unwrap().len())
        .sum();
    println!(
        "WAL on disk: {wal_all} bytes ({:.2} bytes/sample), of which {wal_tail} bytes after the snapshot",
        wal_all as f64 / samples as f64
    );
    drop(store);

    let mut with_snapshot = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let (store, report) = open(&dir);
        with_snapshot.push(started.elapsed().as_secs_f64());
        assert_eq!(report.snapshot_segment, Some(written.segment));
        assert_eq!(
            report.snapshot_samples + report.samples_applied,
            samples,
            "{report:?}"
        );
        drop(store);
    }
    println!(
        "restart with snapshot + 15 min of WAL: median {:.2} s of {:?}",
        median(&mut with_snapshot.clone()),
        with_snapshot
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
    );

    // The same directory without the snapshot: only one snapshot was
    // taken, so no segment was deleted and the whole log is there.
    let aside = base.join("aside");
    std::fs::create_dir_all(&aside).unwrap();
    std::fs::rename(&written.path, aside.join("snapshot")).unwrap();
    let wal_bytes = dir_bytes(&dir, None);
    let started = Instant::now();
    let (store, report) = open(&dir);
    let full = started.elapsed().as_secs_f64();
    assert_eq!(report.snapshot_segment, None);
    assert_eq!(report.samples_applied, samples, "{report:?}");
    drop(store);
    println!(
        "restart replaying the whole WAL ({wal_bytes} bytes, {} records): {full:.2} s",
        report.wal_records
    );
    std::fs::rename(aside.join("snapshot"), &written.path).unwrap();
}

/// The samples `head_and_restart` appends, series by series, in the
/// OpenMetrics text format, for `promtool tsdb create-blocks-from
/// openmetrics` (the Prometheus comparison in BENCHMARKS.md).
fn openmetrics(base: &Path) {
    use std::io::Write;
    let series = env("TOCSIN_BENCH_SERIES", 10_000) as usize;
    let interval_ms = env("TOCSIN_BENCH_INTERVAL_S", 15) as i64 * 1000;
    let hours = env("TOCSIN_BENCH_HOURS", 24) as i64;
    let rounds = (hours * 3_600_000 / interval_ms) as usize;
    let mut rng = Rng(DAY_SEED);
    let mut prev = vec![0.0; series];
    let mut data = vec![Vec::with_capacity(rounds); series];
    for r in 0..rounds {
        let t = DAY_START + r as i64 * interval_ms;
        for (i, d) in data.iter_mut().enumerate() {
            let ts = t + rng.below(4) as i64;
            prev[i] = next_value(&mut rng, i % METRICS.len(), prev[i]);
            d.push((ts, prev[i]));
        }
    }
    let path = base.join("day.om");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for (m, name) in METRICS.iter().enumerate() {
        writeln!(out, "# TYPE {name} unknown").unwrap();
        for i in (m..series).step_by(METRICS.len()) {
            let l = day_labels(i);
            let body: Vec<String> = l
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| format!("{}=\"{}\"", l.name, l.value))
                .collect();
            let body = body.join(",");
            for &(t, v) in &data[i] {
                writeln!(out, "{name}{{{body}}} {v} {}.{:03}", t / 1000, t % 1000).unwrap();
            }
        }
    }
    writeln!(out, "# EOF").unwrap();
    out.flush().unwrap();
    println!(
        "wrote {} samples of {series} series to {}",
        series * rounds,
        path.display()
    );
}

fn query(base: &Path) {
    let series = env("TOCSIN_BENCH_QUERY_SERIES", 100_000) as usize;
    let runs = env("TOCSIN_BENCH_QUERY_RUNS", 50) as usize;
    let interval_ms = 15_000;
    let rounds = 30 * 60_000 / interval_ms;
    let dir = base.join("query");
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "== query: sum by (host_name) (rate(x[5m])) over {series} series on {} hosts, {rounds} samples each",
        series.div_ceil(100)
    );
    let (store, _) = open(&dir);
    let mut batch: Vec<(Labels, i64, f64)> = (0..series)
        .map(|i| {
            let host = format!("host-{:04}", i / 100);
            let cpu = format!("{}", i % 100);
            (
                Labels::from_pairs([
                    ("__name__", "x"),
                    ("host_name", host.as_str()),
                    ("cpu", cpu.as_str()),
                    ("job", "node"),
                ]),
                0,
                0.0,
            )
        })
        .collect();
    let mut rng = Rng(0x0bad_cafe_f00d_d00d);
    let start_t: i64 = 1_700_000_000_000;
    for r in 0..rounds {
        let t = start_t + r * interval_ms;
        for s in batch.iter_mut() {
            s.1 = t + rng.below(4) as i64;
            s.2 += rng.below(1000) as f64;
        }
        store.append(&batch).unwrap();
    }
    drop(batch);
    let at = start_t + (rounds - 1) * interval_ms + 10;
    let expr = tocsin_rules::promql::parse("sum by (host_name) (rate(x[5m]))").unwrap();
    let engine = Engine::new(EngineOptions::default());
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let res = engine.instant_query(&store, &expr, at).unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        match &res.value {
            Value::Vector(v) => assert_eq!(v.len(), series.div_ceil(100)),
            other => panic!("unexpected result {other:?}"),
        }
    }
    times.sort_by(f64::total_cmp);
    let p99 = times[((times.len() * 99).div_ceil(100)).saturating_sub(1)];
    println!(
        "query latency over {runs} runs: median {:.1} ms, p99 {:.1} ms, min {:.1} ms, max {:.1} ms",
        median(&mut times.clone()),
        p99,
        times[0],
        times[times.len() - 1]
    );
}

fn main() {
    // `cargo bench` passes `--bench`; anything else names the parts to run.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants = |p: &str| parts.is_empty() || parts.iter().any(|a| a == p);
    let tmp;
    let base = match std::env::var_os("TOCSIN_BENCH_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().to_path_buf()
        }
    };
    println!(
        "series store benchmark on {} CPU(s); store in {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        base.display()
    );
    if wants("head") || wants("restart") {
        head_and_restart(&base);
    }
    if wants("query") {
        query(&base);
    }
    // Not part of a default run.
    if parts.iter().any(|a| a == "openmetrics") {
        openmetrics(&base);
    }
}
