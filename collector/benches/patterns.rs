//! Throughput of the error-group miner: lines per second on one core.
//!
//! The input is the `Content` column of every Loghub dataset in
//! `../shared/conformance/loghub/` (or `$TOCSIN_LOGHUB_DIR`), repeated to
//! one million lines, so that the mix of formats and of new versus known
//! templates is the one the accuracy test scores. Each round mines the
//! whole input with a fresh default-configured miner (masking, tree lookup,
//! matching and generalisation: everything `observe` does) on one thread.
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
//! Run: `cargo bench -p tocsin-collector --bench patterns`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

mod common;

use common::thread_cpu_seconds;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use tocsin_collector::patterns::Miner;
use tocsin_collector::patterns::mask::{MaskedLine, mask_line};

const TOTAL_LINES: usize = 1_000_000;
const ROUNDS: usize = 5;

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
    let dir = loghub_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!(
            "skipping: {} is absent (Loghub conformance data)",
            dir.display()
        );
        return;
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
        eprintln!("skipping: no Loghub lines under {}", dir.display());
        return;
    }
    let lines: Vec<&str> = contents
        .iter()
        .map(String::as_str)
        .cycle()
        .take(TOTAL_LINES)
        .collect();
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    println!(
        "patterns: {} lines ({} distinct from {} files, {:.1} MB), {ROUNDS} rounds",
        lines.len(),
        contents.len(),
        files.len(),
        bytes as f64 / 1e6
    );
    let (mask_hash, group_hash) = fingerprint(&contents, &lines);
    println!("patterns output: masking {mask_hash:016x}, grouping {group_hash:016x}");
    let mut rates = Vec::with_capacity(ROUNDS);
    let mut cpu_rates = Vec::with_capacity(ROUNDS);
    for round in 1..=ROUNDS {
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
        "patterns observe: median {:.0} lines/s wall-clock (best {:.0}), one thread",
        rates[ROUNDS / 2],
        rates[ROUNDS - 1]
    );
    if cpu_rates.len() == ROUNDS {
        cpu_rates.sort_by(f64::total_cmp);
        println!(
            "patterns observe: median {:.0} lines per CPU-second (best {:.0})",
            cpu_rates[ROUNDS / 2],
            cpu_rates[ROUNDS - 1]
        );
    }
}
