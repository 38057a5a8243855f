//! Expression evaluation on arbitrary PromQL text over a small fixed store:
//! instant and range queries must return a value or an error, never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tocsin_rules::promql::{Engine, Labels, MemStorage, parse, value::stale_nan};

fn store() -> &'static MemStorage {
    static STORE: OnceLock<MemStorage> = OnceLock::new();
    STORE.get_or_init(|| {
        let mut st = MemStorage::new();
        let series = [
            Labels::from_pairs([
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("instance", "a"),
            ]),
            Labels::from_pairs([
                ("__name__", "http_requests_total"),
                ("job", "api"),
                ("instance", "b"),
            ]),
            Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", "a")]),
            Labels::from_pairs([("__name__", "req_duration_seconds_bucket"), ("le", "0.1")]),
            Labels::from_pairs([("__name__", "req_duration_seconds_bucket"), ("le", "1")]),
            Labels::from_pairs([("__name__", "req_duration_seconds_bucket"), ("le", "+Inf")]),
        ];
        for (i, l) in series.iter().enumerate() {
            for step in 0..40i64 {
                let v = match (i, step) {
                    (2, 20) => stale_nan(),
                    (1, s) if s % 13 == 0 => 0.0,
                    (_, s) => (s * (i as i64 + 1)) as f64,
                };
                st.add(l, step * 15_000, v);
            }
        }
        st
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.len() > 512 {
        return;
    }
    let Ok(expr) = parse(text) else { return };
    let engine = Engine::default();
    let _ = engine.instant_query(store(), &expr, 300_000);
    let _ = engine.range_query(store(), &expr, 0, 600_000, 30_000);
});
