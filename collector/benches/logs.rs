//! Log store figures, measured on the real `LogStore` (WAL with group
//! commit and fsync, memory blocks, de-duplication, counters):
//!
//! - append: records stored per CPU-second of the appending thread (which
//!   also writes and fsyncs the log; other load on the machine changes it
//!   little) and per wall second of `append` calls;
//! - memory: bytes per record as the store accounts them for its size
//!   budget, and the process' resident memory growth per record
//!   (everything: blocks, dictionaries, indexes, allocator slack);
//! - replay: the time `LogStore::open` takes to rebuild the blocks from
//!   the log, and that the rebuilt store holds the same records and bytes.
//!
//! The records are what the agent sends while tailing one file:
//! `TOCSIN_BENCH_RECORDS` records (default 1 000 000) in requests of 8 192,
//! lines of 129–165 bytes (147 on average; 45% INFO, 30% WARN, 20% ERROR,
//! 5% DEBUG), the attributes `log.file.name`, `log.file.path`,
//! `tocsin.file.id` and `tocsin.file.offset`, and an origin whose offset
//! grows by each line's length. Nothing is evicted (the size budget is
//! above the input). `TOCSIN_BENCH_DIR` picks the directory for the log
//! (default: a temp directory; the default run writes about 300 MB).
//!
//! Run: `cargo bench -p tocsin-collector --bench logs`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

mod common;

use common::{Rng, env, thread_cpu_seconds};
use std::time::Instant;

use tocsin_collector::logs::{
    Attributes, LogQuery, LogRecord, LogStore, LogStoreOptions, RecordOrigin, Severity,
};
use tocsin_rules::promql::Labels;

// The allocator `tocsin-collector` runs with, so memory figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const REQUEST_RECORDS: usize = 8192;
const T0: i64 = 1_700_000_000_000;

/// Resident memory of this process in bytes (Linux).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

const WORDS: [&str; 16] = [
    "request",
    "served",
    "user",
    "session",
    "timeout",
    "upstream",
    "cache",
    "miss",
    "db",
    "query",
    "latency",
    "retry",
    "token",
    "refresh",
    "handler",
    "completed",
];

/// One request's records, as the agent sends them for one file.
struct Source {
    rng: Rng,
    offset: u64,
    labels: [Labels; 4],
}

impl Source {
    fn new() -> Self {
        let labels = ["info", "warn", "error", "debug"].map(|sev| {
            Labels::from_pairs([
                ("host_name", "bench-host"),
                ("service_name", "bench"),
                ("severity", sev),
            ])
        });
        Source {
            rng: Rng(0x9e37_79b9_7f4a_7c15),
            offset: 0,
            labels,
        }
    }

    fn request(&mut self, n: usize, received_ms: i64) -> Vec<LogRecord> {
        (0..n)
            .map(|i| {
                let roll = self.rng.below(100);
                let (sev, text, li) = match roll {
                    0..45 => (Severity::Info, "INFO", 0),
                    45..75 => (Severity::Warn, "WARN", 1),
                    75..95 => (Severity::Error, "ERROR", 2),
                    _ => (Severity::Debug, "DEBUG", 3),
                };
                let time_ms = received_ms - 50 + i as i64 / 200;
                let target = 129 + self.rng.below(37) as usize;
                let mut body = format!(
                    "2026-11-26T10:00:{:02}.{:03}Z {text} [worker-{}] req={:08x}",
                    (time_ms / 1000) % 60,
                    time_ms % 1000,
                    self.rng.below(16),
                    self.rng.next() as u32,
                );
                while body.len() < target {
                    body.push(' ');
                    body.push_str(WORDS[self.rng.below(WORDS.len() as u64) as usize]);
                }
                body.truncate(target);
                let offset = self.offset;
                self.offset += body.len() as u64 + 1;
                LogRecord {
                    time_ms,
                    received_ms,
                    severity: sev,
                    severity_text: text.into(),
                    labels: self.labels[li].clone(),
                    body,
                    // As decoding gives an agent's record: the offset
                    // apart from the rest.
                    attributes: Attributes::new(
                        vec![
                            ("log.file.name".into(), "app.log".into()),
                            ("log.file.path".into(), "/var/log/bench/app.log".into()),
                            ("tocsin.file.id".into(), "8388609:1234567".into()),
                        ]
                        .into(),
                        Some(offset as i64),
                    ),
                    origin: Some(RecordOrigin {
                        agent_id: "0f3c9a52-8d1e-4b7a-9c61-2e5d8f4a7b10".into(),
                        file_id: "8388609:1234567".into(),
                        offset,
                    }),
                    trace_id: None,
                    span_id: None,
                }
            })
            .collect()
    }
}

fn main() {
    let total = env("TOCSIN_BENCH_RECORDS", 1_000_000) as usize;
    let tmp;
    let dir = match std::env::var_os("TOCSIN_BENCH_DIR") {
        Some(d) => std::path::PathBuf::from(d).join("logs-bench"),
        None => {
            tmp = tempfile::tempdir().unwrap();
            tmp.path().join("logs")
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    let opts = LogStoreOptions {
        max_bytes: 64 << 30,
        ..LogStoreOptions::default()
    };
    let (store, _) = LogStore::open(&dir, opts.clone(), T0).unwrap();
    let mut source = Source::new();
    let rss0 = rss_bytes();
    let (mut cpu, mut wall) = (0.0, 0.0);
    let (mut accepted, mut line_bytes) = (0, 0);
    for r in 0..total.div_ceil(REQUEST_RECORDS) {
        // Each request is built just before it is appended (and freed by
        // it), so resident growth is the store's.
        let n = REQUEST_RECORDS.min(total - r * REQUEST_RECORDS);
        let req = source.request(n, T0 + r as i64 * 50);
        line_bytes += req.iter().map(|r| r.body.len()).sum::<usize>();
        let (cpu0, wall0) = (
            thread_cpu_seconds().expect("thread CPU time (Linux)"),
            Instant::now(),
        );
        accepted += store.append(req).unwrap().accepted;
        cpu += thread_cpu_seconds().expect("thread CPU time (Linux)") - cpu0;
        wall += wall0.elapsed().as_secs_f64();
    }
    let rss = rss_bytes().saturating_sub(rss0);
    assert_eq!(accepted, total);
    let stats = store.stats();
    assert_eq!(stats.records, total as u64);

    println!(
        "logs append: {total} records ({:.1} bytes/line) in requests of {REQUEST_RECORDS}",
        line_bytes as f64 / total as f64
    );
    println!(
        "  {:.0} records per CPU-second ({cpu:.2} CPU-s), {:.0} records/s wall ({wall:.2} s)",
        total as f64 / cpu,
        total as f64 / wall
    );
    println!(
        "  memory per record: {:.1} bytes accounted, {:.1} bytes resident growth; WAL {:.1} bytes per record; {} blocks",
        stats.bytes as f64 / total as f64,
        rss as f64 / total as f64,
        stats.wal_bytes as f64 / total as f64,
        stats.blocks
    );
    let q =
        LogQuery::from_params(None, None, None, None, Some("timeout"), None, Some(100)).unwrap();
    let t = Instant::now();
    let found = store.query(&q);
    println!(
        "  query (text \"timeout\", limit 100): {} records, {} scanned, {:.1} ms",
        found.records.len(),
        found.scanned,
        t.elapsed().as_secs_f64() * 1e3
    );
    drop(store);

    let t = Instant::now();
    let (store, report) = LogStore::open(&dir, opts, T0 + 3_600_000).unwrap();
    let open = t.elapsed().as_secs_f64();
    let reopened = store.stats();
    println!(
        "logs replay: {} records restored in {open:.2} s ({:.0} records/s), {} bytes accounted (was {})",
        report.records_restored,
        report.records_restored as f64 / open,
        reopened.bytes,
        stats.bytes
    );
    assert_eq!(report.records_restored, total as u64);
    assert_eq!(reopened.records, stats.records);
}
