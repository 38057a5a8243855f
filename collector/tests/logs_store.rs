//! The log store as the collector uses it: concurrent appends through group
//! commit, reopen from the write-ahead log, and a model-based property test
//! of de-duplication across reopens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use tocsin_collector::logs::{
    LogQuery, LogRecord, LogStore, LogStoreOptions, RECORDS_TOTAL, RecordOrigin, Severity,
};
use tocsin_rules::promql::value::Labels;

const T0: i64 = 1_700_000_000_000;

fn record(agent: &str, file: &str, offset: u64, t: i64, body: String) -> LogRecord {
    LogRecord {
        time_ms: t,
        received_ms: t,
        severity: Severity::Error,
        severity_text: "ERROR".into(),
        labels: Labels::from_pairs([("host_name", agent), ("service_name", "api")]),
        body,
        attributes: vec![("log.file.path".into(), format!("/var/log/{file}").into())].into(),
        origin: Some(RecordOrigin {
            agent_id: agent.into(),
            file_id: file.into(),
            offset,
        }),
        trace_id: None,
        span_id: None,
    }
}

fn everything() -> LogQuery {
    LogQuery {
        limit: tocsin_collector::logs::query::MAX_LIMIT,
        ..LogQuery::default()
    }
}

mod durability {
    use super::*;

    #[test]
    fn concurrent_appends_are_all_found_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let opts = LogStoreOptions {
            // Small segments and blocks, so replay crosses many of both.
            segment_bytes: 16 << 10,
            block_bytes: 4 << 10,
            ..LogStoreOptions::default()
        };
        let mut expected = BTreeSet::new();
        {
            let (store, _) = LogStore::open(dir.path(), opts.clone(), T0).unwrap();
            let store = Arc::new(store);
            let threads: Vec<_> = (0..4)
                .map(|w| {
                    let store = Arc::clone(&store);
                    std::thread::spawn(move || {
                        for batch in 0..25u64 {
                            let records = (0..8u64)
                                .map(|i| {
                                    let off = batch * 8 + i;
                                    record(
                                        &format!("agent-{w}"),
                                        "app.log",
                                        off * 100,
                                        T0 + off as i64,
                                        format!("w{w} line {off}"),
                                    )
                                })
                                .collect();
                            let out = store.append(records).unwrap();
                            assert_eq!(out.accepted, 8);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            for w in 0..4 {
                for off in 0..200 {
                    expected.insert(format!("w{w} line {off}"));
                }
            }
            assert_eq!(store.stats().records, 800);
        }
        let (store, report) = LogStore::open(dir.path(), opts, T0 + 1000).unwrap();
        assert_eq!(report.records_restored, 800);
        assert_eq!(report.undecodable_records, 0);
        let found: BTreeSet<String> = store
            .query(&everything())
            .records
            .into_iter()
            .map(|r| r.body)
            .collect();
        assert_eq!(found, expected);
        let total = Labels::from_pairs([
            ("__name__", RECORDS_TOTAL),
            ("host_name", "agent-2"),
            ("service_name", "api"),
            ("severity", "error"),
        ]);
        assert_eq!(store.counter_value(&total), Some(200));
        // A re-sent batch after the restart is recognised.
        let out = store
            .append(vec![record("agent-1", "app.log", 700, T0, "again".into())])
            .unwrap();
        assert_eq!((out.accepted, out.duplicates), (0, 1));
    }
}

mod dedup_model {
    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// Append records with these (file, offset) origins.
        Append(Vec<(u8, u8)>),
        Reopen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => proptest::collection::vec((0u8..3, 0u8..12), 1..6).prop_map(Op::Append),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Whatever the interleaving of appends, re-sends and restarts,
        /// each origin is stored exactly once and every drop is counted.
        #[test]
        fn each_origin_is_stored_once(ops in proptest::collection::vec(op(), 1..12)) {
            let dir = tempfile::tempdir().unwrap();
            let opts = LogStoreOptions::default();
            let mut store = LogStore::open(dir.path(), opts.clone(), T0).unwrap().0;
            let mut model: BTreeSet<(u8, u8)> = BTreeSet::new();
            let mut step = 0i64;
            for op in ops {
                step += 1;
                match op {
                    Op::Reopen => {
                        drop(store);
                        store = LogStore::open(dir.path(), opts.clone(), T0 + step).unwrap().0;
                    }
                    Op::Append(origins) => {
                        let records = origins
                            .iter()
                            .map(|&(f, o)| record("a", &format!("f{f}"), u64::from(o), T0 + step, format!("{f}/{o}")))
                            .collect();
                        let out = store.append(records).unwrap();
                        let mut fresh = 0;
                        for o in &origins {
                            if model.insert(*o) {
                                fresh += 1;
                            }
                        }
                        prop_assert_eq!(out.accepted, fresh);
                        prop_assert_eq!(out.duplicates, origins.len() - fresh);
                    }
                }
            }
            let stored: Vec<String> = store.query(&everything()).records.into_iter().map(|r| r.body).collect();
            let unique: BTreeSet<&String> = stored.iter().collect();
            prop_assert_eq!(unique.len(), stored.len());
            let want: BTreeSet<String> = model.iter().map(|(f, o)| format!("{f}/{o}")).collect();
            prop_assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<_>>(), want);
        }
    }
}
