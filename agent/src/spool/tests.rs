use super::*;
use proptest::prelude::*;
use std::io::Write;

fn batch(id: u64, signal: Signal, size: usize) -> SpoolBatch {
    SpoolBatch {
        id,
        signal,
        created: from_unix_nanos(1_700_000_000_000_000_000 + id),
        origin: (signal == Signal::Logs).then_some(Origin { run: 7, batch: id }),
        payload: (0..size).map(|i| (i as u64 ^ id) as u8).collect(),
    }
}

fn options(max_bytes: u64) -> SpoolOptions {
    SpoolOptions {
        max_bytes,
        fsync: false,
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn batches_come_back_oldest_first_with_their_metadata_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let written: Vec<SpoolBatch> = (0..6)
        .map(|i| {
            let signal = if i % 2 == 0 {
                Signal::Logs
            } else {
                Signal::Metrics
            };
            batch(i, signal, 100 + i as usize)
        })
        .collect();
    {
        let mut spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
        for b in &written {
            assert!(spool.append(b).unwrap().is_empty());
        }
        assert_eq!(spool.front().unwrap().as_ref(), Some(&written[0]));
        spool.remove(0).unwrap();
        spool.remove(1).unwrap();
    }
    let mut spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
    assert_eq!(spool.next_id(), 6);
    let mut read = Vec::new();
    while let Some(b) = spool.front().unwrap() {
        spool.remove(b.id).unwrap();
        read.push(b);
    }
    assert_eq!(read, written[2..].to_vec());
    assert!(
        segment_files(dir.path()).is_empty(),
        "drained segments are deleted"
    );
    // The mark survives too: ids keep growing after a drained restart.
    drop(spool);
    assert_eq!(
        Spool::open(dir.path(), options(1 << 20)).unwrap().next_id(),
        6
    );
}

#[test]
fn full_spool_evicts_oldest_metrics_first_and_logs_last() {
    let dir = tempfile::tempdir().unwrap();
    // 4 KiB segments (the floor); each batch takes a segment of its own.
    let mut spool = Spool::open(dir.path(), options(5 * 4096)).unwrap();
    let big = 4000;
    spool.append(&batch(0, Signal::Logs, big)).unwrap();
    spool.append(&batch(1, Signal::Metrics, big)).unwrap();
    spool.append(&batch(2, Signal::Logs, big)).unwrap();
    spool.append(&batch(3, Signal::Metrics, big)).unwrap();
    spool.append(&batch(4, Signal::Logs, big)).unwrap();
    let evicted = spool.append(&batch(5, Signal::Logs, big)).unwrap();
    assert_eq!(evicted.iter().map(|b| b.id).collect::<Vec<_>>(), vec![1]);
    let evicted = spool.append(&batch(6, Signal::Logs, big)).unwrap();
    assert_eq!(evicted.iter().map(|b| b.id).collect::<Vec<_>>(), vec![3]);
    // No metrics left: now the oldest logs go, origin intact for settling.
    let evicted = spool.append(&batch(7, Signal::Metrics, big)).unwrap();
    assert_eq!(evicted, vec![batch(0, Signal::Logs, big)]);
    assert_eq!(spool.counters().evicted_metrics, 2);
    assert_eq!(spool.counters().evicted_logs, 1);
    let ids: Vec<u64> = spool.ids().iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![2, 4, 5, 6, 7]);
    assert!(spool.disk_bytes() <= 5 * 4096);
}

#[test]
fn a_batch_larger_than_the_spool_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), options(4096)).unwrap();
    spool.append(&batch(0, Signal::Metrics, 100)).unwrap();
    let err = spool.append(&batch(1, Signal::Logs, 5000)).unwrap_err();
    assert!(matches!(err, SpoolError::TooLarge { id: 1, .. }), "{err}");
    assert_eq!(spool.counters().refused_too_large, 1);
    assert_eq!(
        spool.len(),
        1,
        "nothing evicted for a batch that cannot fit"
    );
}

#[test]
fn a_torn_tail_is_cut_and_the_records_before_it_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
        for i in 0..3 {
            spool.append(&batch(i, Signal::Logs, 50)).unwrap();
        }
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let good_len = fs::metadata(&seg).unwrap().len();
    // A crash in the middle of the next append: a frame header and half a body.
    let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&200u32.to_le_bytes()).unwrap();
    f.write_all(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
    drop(f);
    let mut spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
    assert_eq!(spool.len(), 3);
    assert_eq!(spool.counters().corrupt_tails, 1);
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    // Appends continue after the cut and read back.
    spool.append(&batch(3, Signal::Logs, 50)).unwrap();
    drop(spool);
    let spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
    assert_eq!(spool.ids().len(), 4);
    assert_eq!(spool.counters().corrupt_tails, 0);
}

#[test]
fn a_flipped_byte_cuts_the_segment_at_the_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
        for i in 0..3 {
            spool.append(&batch(i, Signal::Metrics, 64)).unwrap();
        }
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut data = fs::read(&seg).unwrap();
    let second = segment::HEADER_LEN as usize + segment::record_size(64) as usize;
    data[second + 40] ^= 0xff;
    fs::write(&seg, &data).unwrap();
    let spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
    assert_eq!(spool.ids(), vec![(0, Signal::Metrics)]);
    assert_eq!(spool.counters().corrupt_tails, 1);
}

#[test]
fn another_format_version_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
        spool.append(&batch(0, Signal::Logs, 10)).unwrap();
    }
    let seg = segment_files(dir.path()).pop().unwrap();
    let mut data = fs::read(&seg).unwrap();
    data[8..12].copy_from_slice(&99u32.to_le_bytes());
    fs::write(&seg, &data).unwrap();
    let err = Spool::open(dir.path(), options(1 << 20)).unwrap_err();
    assert!(matches!(err, SpoolError::Version { found: 99, .. }));
    assert!(err.to_string().contains(&seg.display().to_string()));
}

#[test]
fn a_second_process_cannot_open_a_spool_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
    // A second open file description conflicts like another process would.
    let err = Spool::open(dir.path(), options(1 << 20)).unwrap_err();
    assert!(matches!(err, SpoolError::Locked { .. }), "{err}");
    drop(spool);
    Spool::open(dir.path(), options(1 << 20)).unwrap();
}

#[test]
fn ids_below_the_removed_mark_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spool = Spool::open(dir.path(), options(1 << 20)).unwrap();
    spool.append(&batch(5, Signal::Logs, 10)).unwrap();
    spool.remove(5).unwrap();
    assert!(matches!(
        spool.append(&batch(3, Signal::Logs, 10)),
        Err(SpoolError::StaleId { id: 3, mark: 6 })
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Append { metrics: bool, size: usize },
    RemoveFront,
    Restart,
    TearTail { bytes: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<bool>(), 1usize..3000).prop_map(|(metrics, size)| Op::Append { metrics, size }),
        3 => Just(Op::RemoveFront),
        1 => Just(Op::Restart),
        1 => (1usize..40).prop_map(|bytes| Op::TearTail { bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Against a model (an ordered map of live batches): the spool returns
    /// exactly the model's oldest batch; it stays under its bound; an
    /// eviction takes metrics while any are live, and the oldest segment of
    /// that kind; restarts lose nothing; a torn tail costs only the torn
    /// append.
    #[test]
    fn spool_matches_its_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let max = 6 * 4096;
        let mut spool = Spool::open(dir.path(), options(max)).unwrap();
        let mut model: BTreeMap<u64, SpoolBatch> = BTreeMap::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Append { metrics, size } => {
                    let signal = if metrics { Signal::Metrics } else { Signal::Logs };
                    let b = batch(next, signal, size);
                    next += 1;
                    let evicted = spool.append(&b).unwrap();
                    // In eviction order: a log batch goes only once the
                    // evictions before it left no metrics live.
                    for e in &evicted {
                        if e.signal == Signal::Logs {
                            let metrics_live = model.values().any(|b| b.signal == Signal::Metrics);
                            prop_assert!(!metrics_live, "logs {} evicted while metrics were live", e.id);
                        }
                        let removed = model.remove(&e.id);
                        prop_assert!(removed.is_some(), "evicted {} is not live", e.id);
                        if e.signal == Signal::Logs {
                            prop_assert_eq!(removed.as_ref(), Some(e));
                        }
                    }
                    model.insert(b.id, b);
                }
                Op::RemoveFront => {
                    let front = spool.front().unwrap();
                    prop_assert_eq!(front.as_ref(), model.values().next());
                    if let Some(front) = front {
                        spool.remove(front.id).unwrap();
                        model.remove(&front.id);
                    }
                }
                Op::Restart => {
                    drop(spool);
                    spool = Spool::open(dir.path(), options(max)).unwrap();
                    prop_assert!(spool.next_id() <= next);
                }
                Op::TearTail { bytes } => {
                    drop(spool);
                    if let Some(seg) = segment_files(dir.path()).pop() {
                        let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
                        f.write_all(&vec![0xab; bytes]).unwrap();
                    }
                    spool = Spool::open(dir.path(), options(max)).unwrap();
                }
            }
            prop_assert!(spool.disk_bytes() <= max, "{} > {}", spool.disk_bytes(), max);
            let on_disk: u64 = segment_files(dir.path())
                .iter()
                .map(|p| fs::metadata(p).unwrap().len())
                .sum();
            prop_assert_eq!(on_disk, spool.disk_bytes());
            let ids: Vec<u64> = spool.ids().iter().map(|(id, _)| *id).collect();
            let expected: Vec<u64> = model.keys().copied().collect();
            prop_assert_eq!(ids, expected);
        }
    }
}
