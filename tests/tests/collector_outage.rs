//! Collector outage: the collector is killed (-9) while a writer appends
//! numbered lines and the agent collects 1 s host metrics, stays away for
//! a while, and is started again on the same ports and data directory.
//! Every line arrives exactly once, and the metrics collected during the
//! outage arrive with their original timestamps (raw samples of
//! `system_uptime_seconds` stamped inside the outage window). How many
//! samples and how far apart depends on the machine's load: those are
//! printed as figures, not asserted; the full-length bench script reports
//! them.
//!
//! Sizes: `TOCSIN_E2E_RATE`, `TOCSIN_E2E_OUTAGE_SECS`,
//! `TOCSIN_E2E_INTERVAL_MS`.

use std::time::{Duration, Instant};

use tocsin_tests::{
    Agent, Collector, Sizes, Writer, agent_config, check, now_ms, seqs_on_disk, tally,
    wait_for_records, wait_until,
};

/// Timestamps (ms) of the raw samples of `system_uptime_seconds` in
/// `(end_ms - window_ms, end_ms]`.
fn uptime_samples(collector: &Collector, end_ms: i64, window_ms: i64) -> Vec<i64> {
    let data = collector.query(&format!("system_uptime_seconds[{window_ms}ms]"), end_ms);
    let Some(series) = data["result"].as_array().and_then(|r| r.first()) else {
        return Vec::new();
    };
    series["values"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v[0].as_f64())
                .map(|s| (s * 1000.0).round() as i64)
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn lines_and_metrics_of_a_collector_outage_arrive_once_with_their_timestamps() {
    let sizes = Sizes::from_env();
    let tmp = check(tempfile::tempdir(), "tempdir");
    let began = Instant::now();
    let since = now_ms();
    let mut collector = Collector::start(&tmp.path().join("collector"));
    let logs = tmp.path().join("logs");
    check(std::fs::create_dir_all(&logs), "logs dir");
    let app = logs.join("app.log");
    let writing = Instant::now();
    let writer = Writer::start(&app, "ERROR", sizes.rate);
    let mut agent = Agent::start(
        &tmp.path().join("agent"),
        &agent_config(
            &collector,
            &tmp.path().join("agent/data"),
            &format!(
                "  - name: app\n    include: ['{}/*.log']\n    read_from: beginning\n",
                logs.display()
            ),
        ),
    );
    wait_until(
        "the first records and metrics at the collector",
        Duration::from_secs(60),
        || agent.all_logs(),
        || {
            collector.stored_records() > 0
                && !uptime_samples(&collector, now_ms(), 60_000).is_empty()
        },
    );

    std::thread::sleep(sizes.interval);
    let outage_start = now_ms();
    collector.kill9();
    std::thread::sleep(sizes.outage);
    let outage_end = now_ms();
    collector.restart();
    std::thread::sleep(sizes.interval);
    let written = writer.finish();
    let writing = writing.elapsed();
    let on_disk = seqs_on_disk(std::slice::from_ref(&app));
    assert_eq!(on_disk, (0..written).collect::<Vec<_>>());

    let catch_up = wait_for_records(
        &collector,
        on_disk.len() as u64,
        sizes.settle_deadline(written),
    );

    // The metrics of the outage arrive with their original timestamps: at
    // least one sample stamped strictly inside the outage, every one inside
    // the queried window, in strictly increasing order.
    let window = outage_end - outage_start;
    let expected = window / 1000;
    let samples = std::cell::RefCell::new(Vec::new());
    wait_until(
        "a spooled metric sample stamped inside the outage",
        Duration::from_secs(60),
        || format!("samples in the outage window: {:?}", samples.borrow()),
        || {
            *samples.borrow_mut() = uptime_samples(&collector, outage_end, window);
            samples
                .borrow()
                .iter()
                .any(|&t| outage_start < t && t < outage_end)
        },
    );
    let samples = samples.into_inner();
    assert!(
        samples.windows(2).all(|w| w[0] < w[1]),
        "outage samples not strictly increasing: {samples:?}"
    );
    assert!(
        samples.iter().all(|&t| outage_start < t && t <= outage_end),
        "outage samples outside the window {outage_start}..={outage_end}: {samples:?}"
    );
    // Figures only: how the 1 s samples were spaced depends on the load.
    let max_gap = samples
        .windows(2)
        .map(|w| w[1] - w[0])
        .chain(samples.first().map(|f| f - outage_start))
        .chain(samples.last().map(|l| outage_end - l))
        .max()
        .unwrap_or(window);

    agent.stop();
    let t = tally(&collector, &on_disk, since);
    t.report(
        "collector_outage",
        written,
        began.elapsed(),
        &format!(
            "writing_s={:.1} catch_up_s={:.1} outage_s={:.1} rate={} outage_metric_samples={} expected_samples~{expected} max_sample_gap_ms={max_gap} collector_duplicates_dropped={}",
            writing.as_secs_f64(),
            catch_up.as_secs_f64(),
            window as f64 / 1000.0,
            sizes.rate,
            samples.len(),
            collector.duplicates_dropped()
        ),
    );
    t.assert_exact(|| format!("{}\ncollector log:\n{}", agent.all_logs(), collector.log()));
}
