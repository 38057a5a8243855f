//! Bad input: an unreadable file, a watched directory deleted (and made
//! again), binary junk, a 10 MB line and an invalid configuration on
//! SIGHUP. The agent keeps running, says why in its log, and the numbered
//! lines of a healthy file written all along arrive exactly once. An
//! invalid configuration at start exits non-zero with every problem
//! listed as `file:line:col: field: message`.
//!
//! Tests may run as root, where `chmod 000` does not stop reads: then the
//! agent runs as `nobody` through `setpriv` (util-linux, on every Debian);
//! as root without `setpriv` the test fails and says what to install.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use tocsin_tests::{
    Agent, Collector, Record, Writer, agent_config, binaries, check, now_ms, seqs_on_disk, tally,
    wait_until,
};

/// The uid of `nobody` on Debian and most distributions.
const NOBODY: u32 = 65534;

fn append(path: &Path, bytes: &[u8]) {
    let mut f = check(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path),
        "open",
    );
    check(f.write_all(bytes), "append");
}

/// Deterministic bytes of every value, NUL and invalid UTF-8 included.
fn junk(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Records whose body starts with `prefix`.
fn with_prefix(c: &Collector, since: i64, prefix: &str) -> Vec<Record> {
    c.all_records(since - 60_000, now_ms() + 60_000)
        .into_iter()
        .filter(|r| r.body.starts_with(prefix))
        .collect()
}

/// The 1-based line and column where `value` first occurs on the first
/// line of `text` that contains `line_with`.
fn position(text: &str, line_with: &str, value: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        if line.contains(line_with)
            && let Some(col) = line.find(value)
        {
            return (i + 1, col + 1);
        }
    }
    #[expect(clippy::panic, reason = "a fixture that does not hold fails the test")]
    {
        panic!("{line_with:?} / {value:?} not in the config")
    }
}

/// An agent configuration with a validation problem in every section;
/// (field, line, column) of each.
fn invalid_config(data: &Path) -> (String, Vec<(String, usize, usize)>) {
    let text = format!(
        "collector:
  endpoint: ftp://nowhere
  retry_max: soon
resource:
  service.name: ''
metrics:
  interval: 10ms
logs:
  - name: app
    include: ['relative/*.log']
    multiline:
      start_pattern: '(['
    max_line_bytes: 10
data_dir: {}
",
        data.display()
    );
    let expect = [
        ("collector.endpoint", "endpoint:", "ftp://"),
        ("collector.retry_max", "retry_max:", "soon"),
        ("resource.service.name", "service.name:", "''"),
        ("metrics.interval", "interval:", "10ms"),
        ("logs[0].include[0]", "include:", "['"),
        ("logs[0].multiline.start_pattern", "start_pattern:", "'(['"),
        ("logs[0].max_line_bytes", "max_line_bytes:", "10"),
    ]
    .iter()
    .map(|(field, key, value)| {
        let (line, col) = position(&text, key, value);
        // A flow sequence's element starts after its bracket.
        let col = if value.starts_with('[') { col + 1 } else { col };
        (field.to_string(), line, col)
    })
    .collect();
    (text, expect)
}

#[track_caller]
fn assert_every_problem_listed(log: &str, file: &Path, expect: &[(String, usize, usize)]) {
    for (field, line, col) in expect {
        let want = format!("{}:{line}:{col}: {field}:", file.display());
        assert!(log.contains(&want), "{want} missing in:\n{log}");
    }
}

/// Can this process read a file whose mode is 000?
fn reads_despite_mode(path: &Path) -> bool {
    std::fs::File::open(path).is_ok()
}

fn setpriv_available() -> bool {
    Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn agent_keeps_running_through_bad_input_and_a_bad_reload() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = check(tempfile::tempdir(), "tempdir");
    let since = now_ms();
    let collector = Collector::start(&tmp.path().join("collector"));
    let logs = tmp.path().join("logs");
    let sub = logs.join("sub");
    check(std::fs::create_dir_all(&sub), "logs dirs");

    // An unreadable file.
    let locked = logs.join("locked.log");
    append(&locked, b"ERROR in the locked file\n");
    check(
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)),
        "chmod 000",
    );
    let privileged = reads_despite_mode(&locked);
    assert!(
        !privileged || setpriv_available(),
        "bad_input: this process reads files of mode 000 (root) and `setpriv` is not there to run \
         the agent as nobody, so the unreadable-file case cannot be checked: install util-linux \
         (which has setpriv) or run the tests as a user other than root"
    );
    let run_as = privileged.then_some(NOBODY);
    let agent_dir = tmp.path().join("agent");
    check(std::fs::create_dir_all(&agent_dir), "agent dir");
    if let Some(uid) = run_as {
        // The agent, as nobody, must reach its config, data and the logs.
        check(
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)),
            "chmod tempdir",
        );
        check(
            std::os::unix::fs::chown(&agent_dir, Some(uid), Some(uid)),
            "chown agent dir",
        );
    }
    // Binary junk, then a line with invalid UTF-8 that must arrive with
    // the bytes replaced.
    let junk_log = logs.join("junk.log");
    append(&junk_log, &junk(64 * 1024));
    append(&junk_log, b"\nERROR junk \xff\xfe\x80 tail\n");

    // A 10 MB line, cut at max_line_bytes (default 64 KiB) and marked.
    let big = logs.join("big.log");
    let mut line = b"ERROR big line ".to_vec();
    line.resize(10 * 1024 * 1024, b'x');
    line.extend_from_slice(b"\nERROR after the big line\n");
    append(&big, &line);

    append(&sub.join("s.log"), b"ERROR in sub before the delete\n");

    let good = logs.join("good.log");
    let writer = Writer::start(&good, "ERROR", 500);
    let config_text = agent_config(
        &collector,
        &agent_dir.join("data"),
        &format!(
            "  - name: app\n    include: ['{l}/*.log', '{l}/sub/*.log']\n    read_from: beginning\n",
            l = logs.display()
        ),
    );
    let mut agent = Agent::start_as(&agent_dir, &config_text, run_as);
    let context = || format!("{}\ncollector log:\n{}", agent.all_logs(), collector.log());
    let deadline = Duration::from_secs(60);

    wait_until(
        "the unreadable file to be reported",
        deadline,
        context,
        || {
            agent.log().lines().any(|l| {
                l.contains("cannot read log file")
                    && l.contains(&locked.display().to_string())
                    && l.contains("Permission denied")
            })
        },
    );

    wait_until("the line after the junk", deadline, context, || {
        !with_prefix(&collector, since, "ERROR junk").is_empty()
    });
    let junk_records = with_prefix(&collector, since, "ERROR junk");
    assert_eq!(junk_records.len(), 1, "{junk_records:?}");
    assert_eq!(
        junk_records[0].body, "ERROR junk \u{FFFD}\u{FFFD}\u{FFFD} tail",
        "invalid UTF-8 not replaced"
    );

    wait_until("the line after the big one", deadline, context, || {
        !with_prefix(&collector, since, "ERROR after the big line").is_empty()
    });
    let bigs = with_prefix(&collector, since, "ERROR big line ");
    assert_eq!(bigs.len(), 1, "the big line: {} records", bigs.len());
    assert!(
        bigs[0].body.len() <= 64 * 1024 && bigs[0].body.len() >= 60 * 1024,
        "big line cut to {} bytes",
        bigs[0].body.len()
    );
    assert!(bigs[0].body[15..].bytes().all(|b| b == b'x'));
    assert_eq!(
        bigs[0].attr("tocsin.log.truncated").as_deref(),
        Some("true"),
        "{:?}",
        bigs[0].attributes
    );

    // The watched directory deleted: the agent says so and keeps running;
    // made again, its new file is read from its beginning.
    wait_until("the line in sub", deadline, context, || {
        !with_prefix(&collector, since, "ERROR in sub before").is_empty()
    });
    check(std::fs::remove_dir_all(&sub), "rm -r sub");
    let gone = sub.join("s.log").display().to_string();
    wait_until("the deleted file to be reported", deadline, context, || {
        agent
            .log()
            .lines()
            .any(|l| l.contains("deleted") && l.contains(&gone))
    });
    assert!(agent.is_running(), "agent exited: {}", context());
    check(std::fs::create_dir_all(&sub), "mkdir sub again");
    append(
        &sub.join("s2.log"),
        b"ERROR in sub after it was made again\n",
    );
    wait_until("the line in the new sub", deadline, context, || {
        !with_prefix(&collector, since, "ERROR in sub after").is_empty()
    });

    // An invalid configuration on SIGHUP: every problem logged with its
    // position, the running configuration kept.
    let (bad, expect) = invalid_config(&agent_dir.join("data"));
    check(std::fs::write(&agent.config, bad), "write the bad config");
    agent.signal("HUP");
    wait_until("the reload to be refused", deadline, context, || {
        agent
            .log()
            .contains("SIGHUP: the configuration is invalid; keeping the running one")
    });
    assert_every_problem_listed(&agent.log(), &agent.config, &expect);
    assert!(agent.is_running(), "agent exited: {}", context());

    // Good lines still arrive, every one exactly once.
    let written_before = writer.written();
    wait_until("good lines after the bad reload", deadline, context, || {
        collector
            .logs_page(&[("contains", format!("seq={written_before:010}"))])
            .records
            .len()
            == 1
    });
    let written = writer.finish();
    let on_disk = seqs_on_disk(std::slice::from_ref(&good));
    assert_eq!(on_disk, (0..written).collect::<Vec<_>>());
    let start = Instant::now();
    // The tally below says what is missing if the wait ends early.
    while !tally(&collector, &on_disk, since).missing.is_empty() && start.elapsed() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(agent.is_running(), "agent exited: {}", context());
    agent.stop();
    let context = || format!("{}\ncollector log:\n{}", agent.all_logs(), collector.log());
    let t = tally(&collector, &on_disk, since);
    t.report("bad_input", written, start.elapsed(), "");
    t.assert_exact(context);

    // Nothing from the locked file arrived, and the agent named no problem
    // with the good file.
    assert!(with_prefix(&collector, since, "ERROR in the locked").is_empty());
    let log = agent.all_logs();
    assert!(
        !log.lines()
            .any(|l| l.contains(&good.display().to_string()) && l.contains("WARN")),
        "{log}"
    );
}

#[test]
fn invalid_config_at_start_exits_non_zero_listing_every_problem() {
    let tmp = check(tempfile::tempdir(), "tempdir");
    let config = tmp.path().join("agent.yaml");
    let (text, expect) = invalid_config(&tmp.path().join("data"));
    check(std::fs::write(&config, text), "write config");
    for check_only in [false, true] {
        let mut cmd = Command::new(binaries().agent);
        if check_only {
            cmd.arg("check-config");
        }
        let out = check(
            cmd.arg("--config")
                .arg(&config)
                .env("NO_COLOR", "1")
                .output(),
            "run the agent",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "check_only={check_only}: {stderr}");
        assert_every_problem_listed(&stderr, &config, &expect);
    }
}

/// Schema problems (an unknown key, a wrong enum value) in some sections
/// and validation problems in others: every one is listed.
#[test]
fn schema_and_validation_problems_are_all_listed_together() {
    let tmp = check(tempfile::tempdir(), "tempdir");
    let config = tmp.path().join("agent.yaml");
    let (mut text, mut expect) = invalid_config(&tmp.path().join("data"));
    text.push_str("spool:\n  colour: blue\n");
    let (line, col) = position(&text, "colour:", "colour");
    expect.push(("spool.colour".to_string(), line, col));
    check(std::fs::write(&config, text), "write config");
    let out = check(
        Command::new(binaries().agent)
            .arg("check-config")
            .arg("--config")
            .arg(&config)
            .output(),
        "run the agent",
    );
    assert!(!out.status.success());
    assert_every_problem_listed(&String::from_utf8_lossy(&out.stderr), &config, &expect);
}
