//! kill -9 of the agent while a writer appends numbered lines, then a
//! restart on the same data directory, several times over: the agent
//! resumes from its checkpoints and spool, re-sends what was not
//! acknowledged, and the collector drops what it already accepted (same
//! agent, file and offset): every line arrives exactly once.
//!
//! Sizes: `TOCSIN_E2E_RATE`, `TOCSIN_E2E_KILLS`, `TOCSIN_E2E_INTERVAL_MS`.

use std::time::Instant;

use tocsin_tests::{
    Agent, Collector, Sizes, Writer, agent_config, check, now_ms, seqs_on_disk, tally,
    wait_for_records,
};

#[test]
fn every_line_arrives_once_across_agent_kill9_and_restart() {
    let sizes = Sizes::from_env();
    let tmp = check(tempfile::tempdir(), "tempdir");
    let began = Instant::now();
    let since = now_ms();
    let collector = Collector::start(&tmp.path().join("collector"));
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
    for i in 0..sizes.kills {
        // 1, 2 or 3 intervals: some kills land before the agent's first
        // checkpoint write (every second), some after.
        std::thread::sleep(sizes.interval * (1 + i % 3));
        agent.kill9();
        agent.restart();
    }
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
    agent.stop();
    let t = tally(&collector, &on_disk, since);
    t.report(
        "agent_kill9",
        written,
        began.elapsed(),
        &format!(
            "writing_s={:.1} catch_up_s={:.1} kills={} rate={} collector_duplicates_dropped={}",
            writing.as_secs_f64(),
            catch_up.as_secs_f64(),
            sizes.kills,
            sizes.rate,
            collector.duplicates_dropped()
        ),
    );
    t.assert_exact(|| format!("{}\ncollector log:\n{}", agent.all_logs(), collector.log()));
}
