//! Multiline and redaction: a Java stack trace and a Python traceback,
//! each under the start/continue patterns the agent documents for them
//! and together under the timestamp start pattern of the packaged
//! configuration, arrive as one record each with every line in the body;
//! lines with a password and a bearer token arrive with both masked, and
//! the secrets appear nowhere in what `/api/v1/logs` returns.

use std::path::Path;
use std::time::Duration;

use tocsin_tests::{Agent, Collector, agent_config, check, now_ms, wait_for_records};

const JAVA: &str =
    "Exception in thread \"main\" java.lang.IllegalStateException: connection pool exhausted
\tat com.example.db.Pool.acquire(Pool.java:118)
\tat com.example.api.Handler.handle(Handler.java:42)
Caused by: java.net.SocketTimeoutException: connect timed out
\tat java.base/java.net.Socket.connect(Socket.java:633)
\t... 12 more";

const PYTHON: &str = "Traceback (most recent call last):
  File \"/srv/app/worker.py\", line 42, in <module>
    main()
  File \"/srv/app/worker.py\", line 17, in main
    raise ValueError(\"bad input\")
ValueError: bad input";

const TS_JAVA: &str = "2026-11-26 12:00:00,123 ERROR [main] com.example.Api - request failed
java.lang.IllegalStateException: pool exhausted
\tat com.example.db.Pool.acquire(Pool.java:118)
Caused by: java.net.SocketTimeoutException: connect timed out
\t... 12 more";

const TS_PYTHON: &str = "2026-11-26 12:00:01,456 ERROR worker crashed
Traceback (most recent call last):
  File \"/srv/app/worker.py\", line 42, in <module>
    main()
ValueError: bad input";

const SECRET_PASSWORD: &str = "hunter2";
const SECRET_TOKEN: &str = "abc.def.ghi";

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = check(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path),
        "open",
    );
    check(f.write_all(text.as_bytes()), "append");
}

#[test]
fn stack_traces_arrive_as_one_record_and_secrets_are_masked() {
    let tmp = check(tempfile::tempdir(), "tempdir");
    let since = now_ms();
    let collector = Collector::start(&tmp.path().join("collector"));
    let logs = tmp.path().join("logs");
    check(std::fs::create_dir_all(&logs), "logs dir");
    let d = logs.display();
    let inputs = format!(
        "  - name: java
    include: ['{d}/java.log']
    read_from: beginning
    multiline:
      start_pattern: '^\\S'
      continue_pattern: '^(\\s|Caused by:)'
      flush_timeout: 1s
  - name: python
    include: ['{d}/py.log']
    read_from: beginning
    multiline:
      start_pattern: '^\\S'
      continue_pattern: '^(\\s|Traceback |\\w[\\w.]*(Error|Exception|Exit|Interrupt)\\b)'
      flush_timeout: 1s
  - name: timestamped
    include: ['{d}/ts.log']
    read_from: beginning
    multiline:
      start_pattern: '^\\d{{4}}-\\d{{2}}-\\d{{2}}'
      flush_timeout: 1s
  - name: secrets
    include: ['{d}/secrets.log']
    read_from: beginning
    min_severity: all
"
    );
    let mut agent = Agent::start(
        &tmp.path().join("agent"),
        &agent_config(&collector, &tmp.path().join("agent/data"), &inputs),
    );

    append(
        &logs.join("java.log"),
        &format!("{JAVA}\nERROR next record after the java trace\n"),
    );
    append(
        &logs.join("py.log"),
        &format!("{PYTHON}\nERROR next record after the python traceback\n"),
    );
    append(
        &logs.join("ts.log"),
        &format!("{TS_JAVA}\n{TS_PYTHON}\n2026-11-26 12:00:02,000 INFO done\n"),
    );
    append(
        &logs.join("secrets.log"),
        &format!(
            "ERROR login failed for user=bob password={SECRET_PASSWORD} from 10.0.0.1\n\
             upstream refused Authorization: Bearer {SECRET_TOKEN}\n\
             WARN retry with password={SECRET_PASSWORD} and Authorization: Bearer {SECRET_TOKEN}\n"
        ),
    );
    let expected = [
        JAVA.to_string(),
        "ERROR next record after the java trace".to_string(),
        PYTHON.to_string(),
        "ERROR next record after the python traceback".to_string(),
        TS_JAVA.to_string(),
        TS_PYTHON.to_string(),
        "ERROR login failed for user=bob password=*** from 10.0.0.1".to_string(),
        "upstream refused Authorization: Bearer ***".to_string(),
        "WARN retry with password=*** and Authorization: Bearer ***".to_string(),
    ];
    wait_for_records(&collector, expected.len() as u64, Duration::from_secs(60));
    agent.stop();

    let records = collector.all_records(since - 60_000, now_ms() + 60_000);
    let mut got: Vec<String> = records.iter().map(|r| r.body.clone()).collect();
    got.sort();
    let mut want = expected.to_vec();
    want.sort();
    assert_eq!(
        got,
        want,
        "records differ from the expected ones; agent log:\n{}",
        agent.all_logs()
    );
    for r in &records {
        if r.body.contains("Exception") || r.body.contains("Traceback") {
            assert_eq!(r.severity, "error", "{r:?}");
        }
    }

    // The secrets are nowhere: not in bodies, attributes or labels, and a
    // text search for them finds nothing.
    for r in &records {
        let all = format!("{} {} {}", r.body, r.attributes, r.labels);
        assert!(
            !all.contains(SECRET_PASSWORD) && !all.contains(SECRET_TOKEN),
            "a secret reached the collector: {r:?}"
        );
    }
    for secret in [SECRET_PASSWORD, SECRET_TOKEN] {
        let page = collector.logs_page(&[("contains", secret.to_string())]);
        assert!(
            page.records.is_empty(),
            "{secret} found: {:?}",
            page.records
        );
    }
}
