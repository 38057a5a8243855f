//! Throughput of the error-group miner: lines per second on one core.
//!
//! The input is the `Content` column of every Loghub dataset in
//! `../shared/conformance/loghub/` (or `$TOCSIN_LOGHUB_DIR`), repeated to
//! one million lines, so that the mix of formats and of new versus known
//! templates is the one the accuracy test scores. Each round mines the
//! whole input with a fresh default-configured miner (masking, tree lookup,
//! matching and generalisation: everything `observe` does) on one thread.
//!
//! Run: `cargo bench -p tocsin-collector --bench patterns`.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use tocsin_collector::patterns::Miner;

const TOTAL_LINES: usize = 1_000_000;
const ROUNDS: usize = 5;

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
    let mut rates = Vec::with_capacity(ROUNDS);
    for round in 1..=ROUNDS {
        let mut miner = Miner::default();
        let start = Instant::now();
        for line in &lines {
            black_box(miner.observe(black_box(line)));
        }
        let seconds = start.elapsed().as_secs_f64();
        let rate = lines.len() as f64 / seconds;
        println!(
            "  round {round}: {seconds:.3} s, {rate:.0} lines/s, {} groups",
            miner.groups().len()
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "patterns observe: median {:.0} lines/s, best {:.0} lines/s (one thread)",
        rates[ROUNDS / 2],
        rates[ROUNDS - 1]
    );
}
