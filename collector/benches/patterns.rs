//! Throughput of the error-group miner: lines per second on one core.
//!
//! Two inputs, each one million lines:
//!
//! - `loghub`: the `Content` column of every Loghub dataset in
//!   `../shared/conformance/loghub/` (or `$TOCSIN_LOGHUB_DIR`), repeated,
//!   so that the mix of formats and of new versus known templates is the
//!   one the accuracy test scores (skipped when the data is absent);
//! - `app`: application log lines as the collector's ingest path sees them
//!   (ISO timestamp, level, thread, logger, a message with ids, durations,
//!   addresses and key=value pairs, 120-200 bytes): 4096 distinct lines
//!   from a fixed seed, cycled with a timestamp that moves every 10,000
//!   lines, as the end-to-end benchmark's generator makes them.
//!
//! Each round mines the whole input with a fresh default-configured miner
//! (masking, tree lookup, matching and generalisation: everything `observe`
//! does) on one thread.
//!
//! Each round reports wall-clock throughput and, on Linux, throughput per
//! CPU-second of the mining thread (from `/proc/thread-self/stat`), which
//! is the per-core figure even when other processes share the cores.
//!
//! Before the rounds it prints a fingerprint of the output (outside the
//! timing): a hash of every distinct line's masked tokens, and one of the
//! group id of every line of the input with the final groups (id,
//! template, count). A change that is meant to be a pure speed-up must
//! leave both unchanged.
//!
//! Run: `cargo bench -p tocsin-collector --bench patterns` (`PATTERNS_ROUNDS`
//! sets the number of rounds, 5 by default).

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

mod common;

use common::{Rng, env, thread_cpu_seconds};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use tocsin_collector::patterns::Miner;
use tocsin_collector::patterns::mask::{MaskedLine, mask_line};

const TOTAL_LINES: usize = 1_000_000;

/// 64-bit FNV-1a, fed piece by piece (stable across runs and platforms,
/// unlike the standard library's hasher).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn feed(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
    }
}

/// Hashes of the masking of every distinct line, and of the grouping of
/// `lines` by one fresh miner (each line's id, then every group).
fn fingerprint(contents: &[String], lines: &[&str]) -> (u64, u64) {
    let mut masked = MaskedLine::default();
    let mut mask_hash = Fnv::new();
    for line in contents {
        let capped = mask_line(line, &mut masked);
        mask_hash.feed(&[u8::from(capped)]);
        for token in masked.tokens() {
            mask_hash.feed(token.as_bytes());
        }
        mask_hash.feed(b"\n");
    }
    let mut miner = Miner::default();
    let mut group_hash = Fnv::new();
    for line in lines {
        group_hash.feed(&miner.observe(line).as_u64().to_le_bytes());
    }
    for group in miner.groups() {
        group_hash.feed(&group.id().as_u64().to_le_bytes());
        group_hash.feed(group.template().as_bytes());
        group_hash.feed(&group.count().to_le_bytes());
    }
    let stats = miner.stats();
    group_hash.feed(&stats.truncated_lines.to_le_bytes());
    group_hash.feed(&stats.overflow_lines.to_le_bytes());
    (mask_hash.0, group_hash.0)
}

fn loghub_dir() -> PathBuf {
    std::env::var_os("TOCSIN_LOGHUB_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/loghub"),
        PathBuf::from,
    )
}

fn main() {
    let rounds = env("PATTERNS_ROUNDS", 5).max(1) as usize;
    if let Some(contents) = loghub_contents() {
        run("loghub", &contents, rounds);
    }
    run("app", &app_contents(), rounds);
}

/// The `Content` column of every Loghub dataset, or `None` (with a message)
/// when the data is absent.
fn loghub_contents() -> Option<Vec<String>> {
    let dir = loghub_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "skipping loghub: {} is absent (Loghub conformance data)",
            dir.display()
        );
        return None;
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.sort();
    let mut contents = Vec::new();
    for file in &files {
        let mut reader = csv::Reader::from_path(file).unwrap();
        let column = reader
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "Content")
            .unwrap_or_else(|| panic!("{} has no Content column", file.display()));
        for record in reader.records() {
            contents.push(record.unwrap()[column].to_owned());
        }
    }
    if contents.is_empty() {
        eprintln!("skipping loghub: no lines under {}", dir.display());
        return None;
    }
    Some(contents)
}

/// Distinct application log lines in the order the input cycles through
/// them: 4096 bodies, each time under the timestamp of its block of 10,000
/// lines, to one million lines (the timestamp and the pool are what the
/// end-to-end benchmark's generator uses).
fn app_contents() -> Vec<String> {
    const LEVELS: [&str; 20] = [
        "INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "INFO", "WARN", "WARN",
        "WARN", "WARN", "WARN", "WARN", "ERROR", "ERROR", "ERROR", "ERROR", "DEBUG",
    ];
    const LOGGERS: [&str; 6] = [
        "http.server",
        "payment.worker",
        "db.pool",
        "auth.session",
        "cache.redis",
        "orders.api",
    ];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut pool = Vec::with_capacity(4096);
    for _ in 0..4096 {
        let n = 100_000 + rng.below(900_000);
        let d = 1 + rng.below(4999);
        let b = 100 + rng.below(99_900);
        let a = 1 + rng.below(8);
        let h = rng.next();
        let msg = match rng.below(7) {
            0 => format!(
                "request completed method=GET path=/api/v1/orders/{n} status=200 duration_ms={d} bytes={b}"
            ),
            1 => format!(
                "upstream timeout after {d}ms calling inventory-service attempt={a}/3 request_id={h:016x}"
            ),
            2 => format!(
                "connection pool exhausted active={a}0 waiting={n} db=orders-primary wait_ms={d}"
            ),
            3 => format!(
                "login failed for user=u{n} from 10.{a}.{}.7 reason=bad_credentials password=hunter{n}",
                b % 256
            ),
            4 => format!("cache miss key=session:{h:016x} ttl_s=3600 fallback=db latency_ms={d}"),
            5 => format!(
                "payment declined order={n} amount_cents={b} gateway=stripe code=card_declined trace={h:016x}"
            ),
            _ => format!(
                "request {:08x} failed after {d} ms: connection reset by peer (10.0.{a}.{}:8080) user=alice id={:08x}-{:04x}-41d4-a716-{:012x}",
                h >> 32,
                b % 256,
                h as u32,
                n % 65_536,
                h >> 16
            ),
        };
        let level = LEVELS[rng.below(20) as usize];
        let logger = LOGGERS[rng.below(6) as usize];
        let worker = 1 + rng.below(15);
        pool.push(format!(" {level:<5} [worker-{worker}] {logger}: {msg}"));
    }
    let mut contents = Vec::with_capacity(TOTAL_LINES);
    for block in 0..TOTAL_LINES / 10_000 {
        let (minute, second) = (block / 60 % 60, block % 60);
        let stamp = format!("2026-11-26T10:{minute:02}:{second:02}.000Z");
        for i in 0..10_000 {
            let body = &pool[(block * 10_000 + i) % pool.len()];
            contents.push(format!("{stamp}{body}"));
        }
    }
    contents
}

/// Mines `contents` cycled to one million lines, `rounds` times, and prints
/// the output's fingerprint and the throughput of each round.
fn run(name: &str, contents: &[String], rounds: usize) {
    let lines: Vec<&str> = contents
        .iter()
        .map(String::as_str)
        .cycle()
        .take(TOTAL_LINES)
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    println!(
        "patterns {name}: {} lines (cycling {} input lines, {:.1} MB), {rounds} rounds",
        lines.len(),
        contents.len(),
        bytes as f64 / 1e6
    );
    let (mask_hash, group_hash) = fingerprint(contents, &lines);
    println!("patterns {name} output: masking {mask_hash:016x}, grouping {group_hash:016x}");
    let mut rates = Vec::with_capacity(rounds);
    let mut cpu_rates = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let mut miner = Miner::default();
        let cpu_start = thread_cpu_seconds();
        let start = Instant::now();
        for line in &lines {
            black_box(miner.observe(black_box(line)));
        }
        let seconds = start.elapsed().as_secs_f64();
        let cpu = cpu_start.zip(thread_cpu_seconds()).map(|(a, b)| b - a);
        let rate = lines.len() as f64 / seconds;
        rates.push(rate);
        let per_cpu = match cpu {
            Some(cpu) if cpu > 0.0 => {
                let r = lines.len() as f64 / cpu;
                cpu_rates.push(r);
                format!(", {cpu:.2} CPU-s, {r:.0} lines per CPU-second")
            }
            _ => String::new(),
        };
        println!(
            "  round {round}: {seconds:.3} s, {rate:.0} lines/s{per_cpu}, {} groups",
            miner.groups().len()
        );
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "patterns {name} observe: median {:.0} lines/s wall-clock (best {:.0}), one thread",
        rates[rounds / 2],
        rates[rounds - 1]
    );
    if cpu_rates.len() == rounds {
        cpu_rates.sort_by(f64::total_cmp);
        println!(
            "patterns {name} observe: median {:.0} lines per CPU-second (best {:.0})",
            cpu_rates[rounds / 2],
            cpu_rates[rounds - 1]
        );
    }
}
