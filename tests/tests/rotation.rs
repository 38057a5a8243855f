//! Rotation: while a writer appends numbered lines, `app.log` is rotated
//! by rename (the writer reopens its file a moment later, as an
//! application told by logrotate's `postrotate`) and by copytruncate (the
//! writer paused between the copy and the truncation, as copytruncate
//! itself loses what is written in between); older rotated files shift
//! up (`app.log.1` → `app.log.2`), so every line stays on disk. The agent
//! tails `app.log*`: every line on disk arrives at the collector exactly
//! once, counted through `/api/v1/logs`.
//!
//! Sizes: `TOCSIN_E2E_RATE`, `TOCSIN_E2E_ROTATIONS` (renames),
//! `TOCSIN_E2E_COPYTRUNCATES`, `TOCSIN_E2E_INTERVAL_MS` (see
//! `bench/e2e/`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tocsin_tests::{
    Agent, Collector, Sizes, Writer, agent_config, check, now_ms, seqs_on_disk, tally,
    wait_for_records,
};

/// Renames `app.log.N` → `app.log.N+1`, newest last, so that the next
/// rotation can take `app.log.1`.
fn shift(app: &Path, rotated: u32) {
    for n in (1..=rotated).rev() {
        check(
            std::fs::rename(suffixed(app, n), suffixed(app, n + 1)),
            "shift a rotated file",
        );
    }
}

fn suffixed(app: &Path, n: u32) -> PathBuf {
    let mut s = app.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[test]
fn every_line_on_disk_arrives_once_through_renames_and_copytruncates() {
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
                "  - name: app\n    include: ['{}/app.log*']\n    read_from: beginning\n",
                logs.display()
            ),
        ),
    );

    let total = sizes.renames + sizes.copytruncates;
    let (mut renames, mut copies, mut rotated) = (0, 0, 0);
    for i in 0..total {
        std::thread::sleep(sizes.interval);
        let rename = copies >= sizes.copytruncates || (renames < sizes.renames && i % 2 == 0);
        if rename {
            shift(&app, rotated);
            check(std::fs::rename(&app, suffixed(&app, 1)), "rename rotation");
            // The application keeps writing to the renamed file until it
            // is told to reopen.
            std::thread::sleep(Duration::from_millis(30));
            writer.pause().reopen();
            renames += 1;
        } else {
            let paused = writer.pause();
            shift(&app, rotated);
            check(std::fs::copy(&app, suffixed(&app, 1)), "copy");
            let f = check(
                std::fs::OpenOptions::new().write(true).open(&app),
                "open for truncation",
            );
            check(f.set_len(0), "truncate");
            drop(paused);
            copies += 1;
        }
        rotated += 1;
    }
    std::thread::sleep(sizes.interval);
    let written = writer.finish();
    let writing = writing.elapsed();

    let mut files = vec![app.clone()];
    files.extend((1..=rotated).map(|n| suffixed(&app, n)));
    let mut on_disk = seqs_on_disk(&files);
    on_disk.sort_unstable();
    assert_eq!(
        on_disk,
        (0..written).collect::<Vec<_>>(),
        "the files do not hold every written line once"
    );

    let catch_up = wait_for_records(
        &collector,
        on_disk.len() as u64,
        sizes.settle_deadline(written),
    );
    // Nothing can arrive after a clean stop: the tally is final.
    agent.stop();
    let t = tally(&collector, &on_disk, since);
    t.report(
        "rotation",
        written,
        began.elapsed(),
        &format!(
            "writing_s={:.1} catch_up_s={:.1} renames={renames} copytruncates={copies} rate={} collector_duplicates_dropped={}",
            writing.as_secs_f64(),
            catch_up.as_secs_f64(),
            sizes.rate,
            collector.duplicates_dropped()
        ),
    );
    t.assert_exact(|| format!("{}\ncollector log:\n{}", agent.all_logs(), collector.log()));
}
