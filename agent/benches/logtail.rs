//! Throughput of the log tailer from file to acknowledged records: a file
//! of mixed log lines read from its beginning, every record shipped
//! (`min_severity: all`, redaction on) or only warn and up (the default).
//! Run with `cargo bench -p tocsin-agent --bench logtail`; figures go to
//! BENCHMARKS.md.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tocsin_agent::sources::logtail::{
    LogInputConfig, SystemClock, Tailer, TailerOptions, validate_inputs,
};

const LINES: usize = 400_000;

fn lines() -> Vec<u8> {
    let samples = [
        "2026-11-26T05:00:00.123Z INFO  http: GET /api/v1/items/12345 200 3.2ms user=alice",
        "2026-11-26T05:00:00.124Z DEBUG cache: miss key=session:9f8e7d6c5b4a ttl=300",
        "2026-11-26T05:00:00.125Z WARN  pool: 18/20 connections busy, waiting 12ms",
        "2026-11-26T05:00:00.126Z ERROR db: query failed: connection reset by peer (retry 2/5)",
        r#"{"ts":"2026-11-26T05:00:00.127Z","level":"info","msg":"request done","status":200}"#,
        "2026-11-26T05:00:00.128Z INFO  auth: login ok user=bob password=hunter2 from 10.0.0.7",
    ];
    let mut out = Vec::new();
    for i in 0..LINES {
        let _ = writeln!(out, "{} #{i}", samples[i % samples.len()]);
    }
    out
}

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn run(min_severity: &str, text: &[u8]) -> BenchResult<(Duration, u64)> {
    let logs = tempfile::tempdir()?;
    let data = tempfile::tempdir()?;
    std::fs::write(logs.path().join("app.log"), text)?;
    let yaml = format!(
        "- include: ['{}/*.log']\n  read_from: beginning\n  min_severity: {min_severity}\n",
        logs.path().display()
    );
    let configs: Vec<LogInputConfig> = serde_saphyr::from_str(&yaml)?;
    let inputs = validate_inputs("logs", &configs)?;
    let options = TailerOptions {
        watch: false,
        ..TailerOptions::default()
    };
    let start = Instant::now();
    let mut tailer = Tailer::new(inputs, data.path(), Arc::new(SystemClock), options)?;
    let mut records = 0;
    loop {
        tailer.poll()?;
        let mut got = false;
        while let Some(batch) = tailer.next_batch(1000, 1 << 20) {
            records += batch.records.len() as u64;
            tailer.ack(batch.id)?;
            got = true;
        }
        if !got && tailer.counters().bytes_read == text.len() as u64 {
            break;
        }
    }
    tailer.checkpoint_now()?;
    Ok((start.elapsed(), records))
}

fn main() -> BenchResult<()> {
    let text = lines();
    let mib = text.len() as f64 / (1024.0 * 1024.0);
    for min_severity in ["all", "warn"] {
        let mut best = Duration::MAX;
        let mut records = 0;
        for _ in 0..3 {
            let (took, n) = run(min_severity, &text)?;
            best = best.min(took);
            records = n;
        }
        println!(
            "logtail min_severity={min_severity}: {mib:.1} MiB, {LINES} lines, {records} records shipped in {:.3}s: {:.1} MiB/s, {:.0} lines/s (best of 3)",
            best.as_secs_f64(),
            mib / best.as_secs_f64(),
            LINES as f64 / best.as_secs_f64()
        );
    }
    Ok(())
}
