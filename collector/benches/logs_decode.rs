//! Decoding and translating OTLP/protobuf logs requests as the agent
//! sends them: log records per CPU-second of one thread, for the two ways
//! the collector has of doing it —
//!
//! - `prost`: prost decodes the `ExportLogsServiceRequest`, then
//!   `translate_logs` turns it into log records (the OTLP/JSON path, and
//!   the protobuf path before `decode_logs`);
//! - `direct`: `decode_logs` goes from the bytes to log records (the
//!   OTLP/protobuf path of both receivers).
//!
//! The request is the agent's own encoding (`encode_logs_request`) of
//! `TOCSIN_BENCH_RECORDS` records (default 8192, the agent's batch size)
//! from one log file: one resource with the agent's eight attributes, one
//! scope, and per record both timestamps, a severity number and text, a
//! body of about 147 bytes and the agent's three attributes (file path,
//! file id, offset). Before timing, the bench checks that both ways give
//! the same batch.
//!
//! Each round decodes `REQUESTS_PER_ROUND` requests and keeps the
//! batches, which are dropped after the round's clock is read: dropping
//! the records is the store's business, not decoding's. CPU time comes
//! from `/proc/thread-self/stat` (Linux; 10 ms ticks, so rounds last a
//! good fraction of a second).
//!
//! Run: `cargo bench -p tocsin-collector --bench logs_decode`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a benchmark fails loudly"
)]

mod common;

use common::thread_cpu_seconds;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use prost::Message;
use tocsin_agent::export::{ResourceInfo, encode_logs_request};
use tocsin_agent::sources::logtail::LogRecord as AgentRecord;
use tocsin_collector::translate::logs::{LogsBatch, LogsOptions, translate_logs};
use tocsin_collector::translate::logs_wire::decode_logs;

// The allocator `tocsin-collector` runs with: decoding is mostly
// allocation and copying.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One way of decoding and translating a request.
type Decode<'a> = &'a dyn Fn(&Bytes) -> LogsBatch;

const ROUNDS: usize = 7;
const REQUESTS_PER_ROUND: usize = 24;
const NOW_MS: i64 = 1_764_000_000_000;

fn agent_request(records: usize) -> Vec<u8> {
    let info = ResourceInfo {
        host_name: "web-17.eu-west-1.internal".into(),
        service_name: "host".into(),
        environment: Some("production".into()),
        service_version: Some("2.14.3".into()),
        track: Some("stable".into()),
        agent_id: "0f3c9a4e-5b1d-4c7e-9a2f-6d8e1b3c5a70".into(),
        agent_version: "0.1.0".into(),
        interval_secs: 10,
    };
    let path: Arc<Path> = Arc::from(Path::new("/var/log/nginx/api.example.com.access.log"));
    let file_id: Arc<str> = Arc::from("803:1835021:1764000000");
    let attributes = Arc::new(BTreeMap::from([(
        "service.name".to_string(),
        "nginx".to_string(),
    )]));
    let mut offset = 1_048_576_u64;
    let out: Vec<AgentRecord> = (0..records)
        .map(|i| {
            let body = format!(
                "10.42.{}.{} - - [24/Nov/2025:16:00:{:02} +0000] \"GET /api/v2/orders/{} HTTP/1.1\" {} {} \"-\" \"okhttp/4.12.0\" rt={:.3}",
                i % 250,
                (i * 7) % 250,
                i % 60,
                100_000 + i * 13,
                [200, 200, 200, 404, 500][i % 5],
                512 + (i * 37) % 20_000,
                (i % 997) as f64 / 1000.0,
            );
            let len = body.len() as u64 + 1;
            let r = AgentRecord {
                body,
                path: Arc::clone(&path),
                file_id: Arc::clone(&file_id),
                offset,
                end_offset: offset + len,
                severity_number: [9, 9, 9, 13, 17][i % 5],
                severity_text: Some(["INFO", "INFO", "INFO", "WARN", "ERROR"][i % 5].to_string()),
                truncated: false,
                observed_unix_nanos: (NOW_MS as u64 - 5_000 + i as u64 / 8) * 1_000_000,
                input: 0,
                attributes: Arc::clone(&attributes),
            };
            offset += len;
            r
        })
        .collect();
    encode_logs_request(&info, &out)
}

fn assert_same(a: &LogsBatch, b: &LogsBatch) {
    assert_eq!(a.records, b.records);
    assert_eq!(
        (a.total, a.refused_future, a.refused_label_limits),
        (b.total, b.refused_future, b.refused_label_limits)
    );
    assert_eq!(a.newest_by_agent, b.newest_by_agent);
    assert_eq!(a.agents, b.agents);
}

fn main() {
    let records: usize = std::env::var("TOCSIN_BENCH_RECORDS")
        .ok()
        .map_or(8192, |v| {
            v.parse().expect("TOCSIN_BENCH_RECORDS: a whole number")
        });
    let bytes = Bytes::from(agent_request(records));
    let opts = LogsOptions::default();
    let via_prost = |b: &Bytes| {
        translate_logs(
            ExportLogsServiceRequest::decode(b.clone()).unwrap(),
            NOW_MS,
            &opts,
        )
    };
    let direct = |b: &Bytes| decode_logs(b, NOW_MS, &opts).unwrap();
    let a = via_prost(&bytes);
    assert_eq!(a.records.len(), records);
    assert_same(&a, &direct(&bytes));
    println!(
        "request: {records} records, {} bytes ({:.0} bytes per record)",
        bytes.len(),
        bytes.len() as f64 / records as f64
    );
    let paths: [(&str, Decode<'_>); 2] = [("prost", &via_prost), ("direct", &direct)];
    for (name, decode) in paths {
        let mut per_cpu = Vec::new();
        for round in 0..ROUNDS {
            let mut kept = Vec::with_capacity(REQUESTS_PER_ROUND);
            let cpu = thread_cpu_seconds();
            let wall = Instant::now();
            for _ in 0..REQUESTS_PER_ROUND {
                kept.push(decode(black_box(&bytes)));
            }
            let wall = wall.elapsed().as_secs_f64();
            let cpu = cpu.and_then(|c| Some(thread_cpu_seconds()? - c));
            drop(black_box(kept));
            let n = (records * REQUESTS_PER_ROUND) as f64;
            match cpu {
                Some(cpu) if cpu > 0.0 => {
                    per_cpu.push(n / cpu);
                    println!(
                        "{name:>6} round {round}: {:>10.0} records/CPU-s {:>10.0} records/s wall",
                        n / cpu,
                        n / wall
                    );
                }
                _ => println!("{name:>6} round {round}: {:>10.0} records/s wall", n / wall),
            }
        }
        if !per_cpu.is_empty() {
            per_cpu.sort_by(f64::total_cmp);
            println!(
                "{name:>6} median: {:.0} records per CPU-second",
                per_cpu[per_cpu.len() / 2]
            );
        }
    }
}
