//! Grouping accuracy of the error-group miner on the Loghub datasets
//! (`../shared/conformance/loghub/*.csv`, columns `Content` and `EventId`).
//!
//! Each dataset's `Content` column is mined with the default configuration,
//! the one every log format gets; `EventId` is read only to score. Grouping
//! accuracy is the conformance README's: a message is grouped correctly when
//! the set of messages in its group is exactly the set of messages sharing
//! its `EventId`. The test prints one line per dataset and the mean, and
//! fails when the mean drops below a floor just under what the miner
//! reaches, so that a change to masking or merging cannot quietly cost
//! accuracy. Run it with `cargo test -p tocsin-collector --release --test
//! patterns_loghub -- --nocapture` to see the figures.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests fail loudly")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tocsin_collector::patterns::{GroupId, Miner};

/// The mean grouping accuracy must stay at or above this.
const MEAN_FLOOR: f64 = 0.93;

/// The datasets of the Drain reference figures, in the README's order.
const DATASETS: [&str; 12] = [
    "HDFS",
    "Hadoop",
    "Spark",
    "BGL",
    "HPC",
    "Thunderbird",
    "Windows",
    "Linux",
    "HealthApp",
    "Apache",
    "Proxifier",
    "OpenSSH",
];

fn loghub_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/loghub")
}

/// Reads `(Content, EventId)` rows.
fn read_dataset(path: &Path) -> Vec<(String, String)> {
    let mut reader = csv::Reader::from_path(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    let headers = reader.headers().cloned().unwrap_or_default();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{} has no {name} column", path.display()))
    };
    let (content, event) = (column("Content"), column("EventId"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (r[content].to_owned(), r[event].to_owned())
        })
        .collect()
}

/// Grouping accuracy of `predicted` against `truth` (same length).
fn grouping_accuracy<P: std::hash::Hash + Eq, T: std::hash::Hash + Eq>(
    predicted: &[P],
    truth: &[T],
) -> f64 {
    assert_eq!(predicted.len(), truth.len());
    if truth.is_empty() {
        return 1.0;
    }
    let mut truth_sizes: HashMap<&T, usize> = HashMap::new();
    for t in truth {
        *truth_sizes.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<&P, Vec<&T>> = HashMap::new();
    for (p, t) in predicted.iter().zip(truth) {
        groups.entry(p).or_default().push(t);
    }
    let correct: usize = groups
        .values()
        .filter(|members| {
            let first = members[0];
            members.iter().all(|t| *t == first) && truth_sizes[first] == members.len()
        })
        .map(|members| members.len())
        .sum();
    correct as f64 / truth.len() as f64
}

#[test]
fn grouping_accuracy_counts_only_exact_groups() {
    // Perfect, split, merged, and a relabelled-but-equal partition.
    assert_eq!(grouping_accuracy(&[1, 1, 2], &["a", "a", "b"]), 1.0);
    assert_eq!(grouping_accuracy(&[7, 7, 9], &["a", "a", "b"]), 1.0);
    assert_eq!(grouping_accuracy(&[1, 2, 3], &["a", "a", "b"]), 1.0 / 3.0);
    assert_eq!(grouping_accuracy(&[1, 1, 1], &["a", "a", "b"]), 0.0);
}

#[test]
fn loghub_grouping_accuracy() {
    let dir = loghub_dir();
    if !dir.is_dir() {
        eprintln!(
            "skipping: {} is absent (Loghub conformance data)",
            dir.display()
        );
        return;
    }
    let mut sum = 0.0;
    for name in DATASETS {
        let rows = read_dataset(&dir.join(format!("{name}.csv")));
        assert!(!rows.is_empty(), "{name} has no rows");
        let mut miner = Miner::default();
        let predicted: Vec<GroupId> = rows.iter().map(|(c, _)| miner.observe(c)).collect();
        let truth: Vec<&str> = rows.iter().map(|(_, e)| e.as_str()).collect();
        let accuracy = grouping_accuracy(&predicted, &truth);
        println!(
            "{name:<12} {accuracy:.4}  ({} groups, {} events, {} lines)",
            miner.groups().len(),
            truth.iter().collect::<std::collections::HashSet<_>>().len(),
            rows.len()
        );
        sum += accuracy;
    }
    let mean = sum / DATASETS.len() as f64;
    println!("mean         {mean:.4}  (Drain, tuned per dataset: 0.871)");
    assert!(
        mean >= MEAN_FLOOR,
        "mean grouping accuracy {mean:.4} fell below {MEAN_FLOOR}"
    );
}
