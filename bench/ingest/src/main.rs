//! Ingest benchmark load generator: the same host-metric samples sent as
//! OTLP (`ExportMetricsServiceRequest`, protobuf over HTTP `/v1/metrics`)
//! to `tocsin-collector` and as Prometheus remote-write 1.0 (snappy
//! `WriteRequest`) to Prometheus, with the CPU time each server process
//! spent taking them (utime + stime from `/proc/PID/stat`).
//!
//! Every request body is encoded before the clock starts, so the
//! generator's own work during a run is sending bytes. Series are split
//! into fixed shards, one per connection, and each shard sends its rounds
//! in order, so every series' samples arrive in time order (Prometheus
//! refuses out-of-order samples). A run counts only if every request was
//! acknowledged with a 2xx (and, for OTLP, no rejected data points) and a
//! query afterwards finds every sample.
//!
//! The series are what a Tocsin agent sends per host: 100 series per host
//! (`system.cpu.time` for 8 CPUs × 8 states, memory, disk and network I/O,
//! filesystem usage, load averages), one sample per series per round, 10 s
//! apart. Remote-write carries the label sets the collector's translation
//! produces for them (`job`, `instance`, `host_name`, `service_name` and
//! the data-point attributes), so both stores hold the same series.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

/// Prometheus remote-write 1.0 messages (`prompb`), the fields a
/// `WriteRequest` with samples needs.
mod prompb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

#[derive(Debug, Parser)]
#[command(
    about = "Sends the same samples to tocsin-collector (OTLP) and Prometheus (remote-write) and reports samples per CPU-second"
)]
struct Args {
    /// Series in total (100 per host).
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// Samples per series, 10 s apart.
    #[arg(long, default_value_t = 60)]
    rounds: usize,
    /// Series per request (rounded down to whole hosts).
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Requests in flight at once (one connection each).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// gzip the OTLP bodies (`Content-Encoding: gzip`).
    #[arg(long)]
    otlp_gzip: bool,
    /// The collector's OTLP/HTTP base URL, e.g. http://127.0.0.1:4318.
    #[arg(long)]
    tocsin_otlp: Option<String>,
    /// The collector's API base URL, e.g. http://127.0.0.1:9466.
    #[arg(long, requires = "tocsin_otlp")]
    tocsin_api: Option<String>,
    /// The collector's process id.
    #[arg(long, requires = "tocsin_otlp")]
    tocsin_pid: Option<u32>,
    /// Prometheus' base URL, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    prometheus: Option<String>,
    /// Prometheus' process id.
    #[arg(long, requires = "prometheus")]
    prometheus_pid: Option<u32>,
    /// Runs per server (fresh series each time, servers alternating);
    /// the medians are reported.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Idle time measured before each run, to report the server's
    /// background CPU.
    #[arg(long, default_value_t = 3.0)]
    idle_seconds: f64,
}

const HOST_SERIES: usize = 100;
const STEP_MS: i64 = 10_000;
const CPU_STATES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];
const MEMORY_STATES: [&str; 6] = [
    "used",
    "free",
    "buffered",
    "cached",
    "slab_reclaimable",
    "slab_unreclaimable",
];
const DISKS: [&str; 4] = ["sda", "sdb", "nvme0n1", "nvme1n1"];
const NICS: [&str; 4] = ["eth0", "eth1", "lo", "docker0"];
const FILESYSTEMS: [(&str, &str); 4] = [
    ("/dev/sda1", "/"),
    ("/dev/sda2", "/var"),
    ("/dev/nvme0n1p1", "/data"),
    ("tmpfs", "/run"),
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    UpDown,
    Gauge,
}

/// One OTLP metric of a host, with its attribute sets.
struct MetricDef {
    otlp_name: &'static str,
    unit: &'static str,
    kind: Kind,
    /// The name the collector's translation gives it.
    prom_name: &'static str,
    attrs: Vec<Vec<(&'static str, String)>>,
}

fn host_metrics() -> Vec<MetricDef> {
    let mut cpu = Vec::new();
    for c in 0..8 {
        for s in CPU_STATES {
            cpu.push(vec![("cpu", c.to_string()), ("state", s.to_string())]);
        }
    }
    let io = |devices: &[&str], dirs: [&str; 2]| {
        devices
            .iter()
            .flat_map(|d| {
                dirs.iter().map(move |x| {
                    vec![
                        ("device", (*d).to_string()),
                        ("direction", (*x).to_string()),
                    ]
                })
            })
            .collect::<Vec<_>>()
    };
    let fs = FILESYSTEMS
        .iter()
        .flat_map(|(d, m)| {
            ["used", "free", "reserved"].iter().map(move |s| {
                vec![
                    ("device", (*d).to_string()),
                    ("mountpoint", (*m).to_string()),
                    ("state", (*s).to_string()),
                ]
            })
        })
        .collect();
    let defs = vec![
        MetricDef {
            otlp_name: "system.cpu.time",
            unit: "s",
            kind: Kind::Counter,
            prom_name: "system_cpu_time_seconds_total",
            attrs: cpu,
        },
        MetricDef {
            otlp_name: "system.memory.usage",
            unit: "By",
            kind: Kind::UpDown,
            prom_name: "system_memory_usage_bytes",
            attrs: MEMORY_STATES
                .iter()
                .map(|s| vec![("state", (*s).to_string())])
                .collect(),
        },
        MetricDef {
            otlp_name: "system.disk.io",
            unit: "By",
            kind: Kind::Counter,
            prom_name: "system_disk_io_bytes_total",
            attrs: io(&DISKS, ["read", "write"]),
        },
        MetricDef {
            otlp_name: "system.network.io",
            unit: "By",
            kind: Kind::Counter,
            prom_name: "system_network_io_bytes_total",
            attrs: io(&NICS, ["receive", "transmit"]),
        },
        MetricDef {
            otlp_name: "system.filesystem.usage",
            unit: "By",
            kind: Kind::UpDown,
            prom_name: "system_filesystem_usage_bytes",
            attrs: fs,
        },
        MetricDef {
            otlp_name: "system.cpu.load_average.1m",
            unit: "{thread}",
            kind: Kind::Gauge,
            prom_name: "system_cpu_load_average_1m",
            attrs: vec![vec![]],
        },
        MetricDef {
            otlp_name: "system.cpu.load_average.15m",
            unit: "{thread}",
            kind: Kind::Gauge,
            prom_name: "system_cpu_load_average_15m",
            attrs: vec![vec![]],
        },
    ];
    debug_assert_eq!(
        defs.iter().map(|d| d.attrs.len()).sum::<usize>(),
        HOST_SERIES
    );
    defs
}

/// SplitMix64: deterministic per-series noise.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Sample value of series `id` (of kind `kind`) in round `r`, shaped like
/// real host metrics: counters advance by whole ticks or pages, gauges
/// wander around a level.
fn value(kind: Kind, unit: &str, id: u64, r: usize) -> f64 {
    let base = mix(id);
    let step = mix(id ^ ((r as u64) << 32));
    // Counters advance by `per` units a round, give or take under half of
    // it, so they never go down.
    let counter = |start: u64, per: u64| start + per * r as u64 + step % (per / 2 + 1);
    match (kind, unit) {
        // CPU seconds in USER_HZ ticks: 0 to 10 s per 10 s round.
        (Kind::Counter, "s") => counter(base % 100_000_000, 1 + base % 1000) as f64 / 100.0,
        // Bytes in 4 KiB pages.
        (Kind::Counter, _) => (counter(base % (1 << 28), 1 + base % 25_000) * 4096) as f64,
        (Kind::UpDown, _) => {
            let level = (base % (1 << 36)) & !4095;
            (level + (step % 1024) * 4096) as f64
        }
        (Kind::Gauge, _) => ((base % 800) + (step % 50)) as f64 / 100.0,
    }
}

fn kv(key: &str, v: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v)),
        }),
        ..KeyValue::default()
    }
}

fn host_name(h: usize) -> String {
    format!("host-{h:05}")
}

/// The generated workload: request bodies per shard, in sending order.
struct Workload {
    /// `shards[s]` = the bodies connection `s` sends, rounds in order.
    shards: Vec<Vec<Vec<u8>>>,
    samples: usize,
    requests: usize,
    bytes: usize,
}

/// Hosts in request `b` of a round.
fn batch_hosts(args: &Args, hosts: usize) -> Vec<std::ops::Range<usize>> {
    let per = (args.batch / HOST_SERIES).max(1);
    (0..hosts.div_ceil(per))
        .map(|b| b * per..((b + 1) * per).min(hosts))
        .collect()
}

fn round_time_ms(t0_ms: i64, r: usize) -> i64 {
    t0_ms + STEP_MS * r as i64
}

fn otlp_request(
    defs: &[MetricDef],
    hosts: std::ops::Range<usize>,
    t0_ms: i64,
    r: usize,
    job: &str,
) -> ExportMetricsServiceRequest {
    let t_ns = u64::try_from(round_time_ms(t0_ms, r)).unwrap_or(0) * 1_000_000;
    let start_ns = u64::try_from(t0_ms - 3_600_000).unwrap_or(0) * 1_000_000;
    let resource_metrics = hosts
        .map(|h| {
            let mut id = (h * HOST_SERIES) as u64;
            let metrics = defs
                .iter()
                .map(|d| {
                    let points: Vec<NumberDataPoint> = d
                        .attrs
                        .iter()
                        .map(|attrs| {
                            let v = value(d.kind, d.unit, id, r);
                            id += 1;
                            NumberDataPoint {
                                attributes: attrs.iter().map(|(k, v)| kv(k, v.clone())).collect(),
                                start_time_unix_nano: if d.kind == Kind::Gauge {
                                    0
                                } else {
                                    start_ns
                                },
                                time_unix_nano: t_ns,
                                value: Some(number_data_point::Value::AsDouble(v)),
                                ..NumberDataPoint::default()
                            }
                        })
                        .collect();
                    let data = match d.kind {
                        Kind::Gauge => Data::Gauge(Gauge {
                            data_points: points,
                        }),
                        Kind::Counter | Kind::UpDown => Data::Sum(Sum {
                            data_points: points,
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: d.kind == Kind::Counter,
                        }),
                    };
                    Metric {
                        name: d.otlp_name.to_string(),
                        unit: d.unit.to_string(),
                        data: Some(data),
                        ..Metric::default()
                    }
                })
                .collect();
            ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", job.to_string()),
                        kv("service.instance.id", host_name(h)),
                        kv("host.name", host_name(h)),
                    ],
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

fn remote_write_request(
    defs: &[MetricDef],
    hosts: std::ops::Range<usize>,
    t0_ms: i64,
    r: usize,
    job: &str,
) -> prompb::WriteRequest {
    let t_ms = round_time_ms(t0_ms, r);
    let mut timeseries = Vec::with_capacity(hosts.len() * HOST_SERIES);
    for h in hosts {
        let mut id = (h * HOST_SERIES) as u64;
        for d in defs {
            for attrs in &d.attrs {
                let mut labels: BTreeMap<&str, String> =
                    attrs.iter().map(|(k, v)| (*k, v.clone())).collect();
                labels.insert("__name__", d.prom_name.to_string());
                labels.insert("job", job.to_string());
                labels.insert("instance", host_name(h));
                labels.insert("host_name", host_name(h));
                labels.insert("service_name", job.to_string());
                timeseries.push(prompb::TimeSeries {
                    labels: labels
                        .into_iter()
                        .map(|(name, value)| prompb::Label {
                            name: name.to_string(),
                            value,
                        })
                        .collect(),
                    samples: vec![prompb::Sample {
                        value: value(d.kind, d.unit, id, r),
                        timestamp: t_ms,
                    }],
                });
                id += 1;
            }
        }
    }
    prompb::WriteRequest { timeseries }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    Otlp,
    RemoteWrite,
}

fn workload(args: &Args, target: Target, t0_ms: i64, job: &str) -> Workload {
    let defs = host_metrics();
    let hosts = args.series / HOST_SERIES;
    let batches = batch_hosts(args, hosts);
    let shards_n = args.concurrency.clamp(1, batches.len().max(1));
    let mut shards: Vec<Vec<Vec<u8>>> = vec![Vec::new(); shards_n];
    let (mut requests, mut bytes) = (0, 0);
    for r in 0..args.rounds {
        for (b, range) in batches.iter().enumerate() {
            let body = match target {
                Target::Otlp => {
                    let raw = otlp_request(&defs, range.clone(), t0_ms, r, job).encode_to_vec();
                    if args.otlp_gzip { gzip(&raw) } else { raw }
                }
                Target::RemoteWrite => {
                    let raw =
                        remote_write_request(&defs, range.clone(), t0_ms, r, job).encode_to_vec();
                    snap::raw::Encoder::new()
                        .compress_vec(&raw)
                        .unwrap_or_default()
                }
            };
            requests += 1;
            bytes += body.len();
            shards[b % shards_n].push(body);
        }
    }
    Workload {
        shards,
        samples: hosts * HOST_SERIES * args.rounds,
        requests,
        bytes,
    }
}

/// gzip at flate2's default level, as OTLP exporters send it.
fn gzip(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = e.write_all(raw);
    e.finish().unwrap_or_default()
}

/// utime + stime of a process (all its threads), in seconds.
fn cpu_seconds(pid: u32, ticks_per_s: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after its `)` are
    // state (3) … utime (14), stime (15).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no ')' in /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    ensure!(f.len() > 12, "short /proc/{pid}/stat");
    let utime: u64 = f[11].parse()?;
    let stime: u64 = f[12].parse()?;
    Ok((utime + stime) as f64 / ticks_per_s)
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Sends every shard concurrently, one connection each; fails on the
/// first refused request.
async fn send_all(
    client: &reqwest::Client,
    url: &str,
    target: Target,
    gzip: bool,
    shards: Vec<Vec<Vec<u8>>>,
) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    for shard in shards {
        let client = client.clone();
        let url = url.to_string();
        tasks.spawn(async move {
            for body in shard {
                let mut req = client
                    .post(&url)
                    .header("Content-Type", "application/x-protobuf");
                req = match target {
                    Target::Otlp if gzip => req.header("Content-Encoding", "gzip"),
                    Target::Otlp => req,
                    Target::RemoteWrite => req
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0"),
                };
                let resp = req.body(body).send().await.context("sending")?;
                let status = resp.status();
                let bytes = resp.bytes().await.context("reading the answer")?;
                if !status.is_success() {
                    bail!("{url}: {status}: {}", String::from_utf8_lossy(&bytes));
                }
                if target == Target::Otlp {
                    let answer = ExportMetricsServiceResponse::decode(bytes)
                        .context("decoding the OTLP answer")?;
                    if let Some(p) = answer.partial_success
                        && p.rejected_data_points > 0
                    {
                        bail!(
                            "{url}: {} data points rejected: {}",
                            p.rejected_data_points,
                            p.error_message
                        );
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

/// The samples a server holds of the benchmark's series, counted by one
/// PromQL query per metric name at the last round's time over all rounds
/// (one query over every name would drop the names and collide).
async fn stored_samples(
    client: &reqwest::Client,
    api: &str,
    t0_ms: i64,
    rounds: usize,
    job: &str,
) -> anyhow::Result<f64> {
    let t_last = round_time_ms(t0_ms, rounds.saturating_sub(1));
    let range_s = (STEP_MS * rounds as i64) / 1000 + 5;
    let mut total = 0.0;
    for d in host_metrics() {
        let expr = format!(
            r#"sum(count_over_time({}{{job="{job}"}}[{range_s}s]))"#,
            d.prom_name
        );
        let params = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", &expr)
            .append_pair("time", &format!("{:.3}", t_last as f64 / 1000.0))
            .finish();
        let resp = client
            .get(format!("{api}/api/v1/query?{params}"))
            .timeout(Duration::from_secs(300))
            .send()
            .await?;
        let status = resp.status();
        let body: serde_json::Value = serde_json::from_slice(&resp.bytes().await?)?;
        ensure!(status.is_success(), "{api}: {expr}: {status}: {body}");
        let v = body["data"]["result"][0]["value"][1]
            .as_str()
            .with_context(|| format!("no result for {expr}: {body}"))?;
        total += v.parse::<f64>()?;
    }
    Ok(total)
}

struct RunResult {
    name: &'static str,
    rep: usize,
    samples: usize,
    requests: usize,
    bytes: usize,
    cpu_s: f64,
    idle_cpu_per_s: f64,
    wall_s: f64,
}

impl RunResult {
    fn per_cpu_s(&self) -> f64 {
        self.samples as f64 / self.cpu_s
    }

    /// Samples per CPU-second with the server's idle background rate over
    /// the run's wall time taken out.
    fn net_per_cpu_s(&self) -> f64 {
        let net = (self.cpu_s - self.idle_cpu_per_s * self.wall_s).max(f64::MIN_POSITIVE);
        self.samples as f64 / net
    }
}

/// A server under test.
struct Server {
    name: &'static str,
    target: Target,
    write_url: String,
    api: String,
    pid: u32,
}

/// One run: `args.series` fresh series under `job`, `args.rounds` rounds.
async fn run(
    server: &Server,
    client: &reqwest::Client,
    args: &Args,
    rep: usize,
    job: &str,
    t0_ms: i64,
) -> anyhow::Result<RunResult> {
    let name = server.name;
    let ticks = clock_ticks();
    let w = workload(args, server.target, t0_ms, job);
    eprintln!(
        "{name} #{rep}: {} requests, {} samples, {:.1} MB of bodies encoded",
        w.requests,
        w.samples,
        w.bytes as f64 / 1e6
    );
    let pid = server.pid;
    let idle_start = cpu_seconds(pid, ticks)?;
    let idle_t = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.idle_seconds)).await;
    let idle_cpu_per_s = (cpu_seconds(pid, ticks)? - idle_start) / idle_t.elapsed().as_secs_f64();

    let cpu_before = cpu_seconds(pid, ticks)?;
    let t = Instant::now();
    send_all(
        client,
        &server.write_url,
        server.target,
        args.otlp_gzip,
        w.shards,
    )
    .await?;
    let wall_s = t.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds(pid, ticks)? - cpu_before;

    let stored = stored_samples(client, &server.api, t0_ms, args.rounds, job).await?;
    ensure!(
        stored == w.samples as f64,
        "{name}: {stored} samples stored, {} sent",
        w.samples
    );
    eprintln!(
        "{name} #{rep}: all {} requests acknowledged (2xx); {stored} samples found by query",
        w.requests
    );
    Ok(RunResult {
        name,
        rep,
        samples: w.samples,
        requests: w.requests,
        bytes: w.bytes,
        cpu_s,
        idle_cpu_per_s,
        wall_s,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.series >= HOST_SERIES && args.series % HOST_SERIES == 0,
        "--series must be a multiple of {HOST_SERIES}"
    );
    ensure!(args.rounds >= 1, "--rounds must be at least 1");
    ensure!(args.repeat >= 1, "--repeat must be at least 1");
    // reqwest may be built with `rustls-no-provider` in a workspace build.
    let _already = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(120))
        .build()?;

    let mut servers = Vec::new();
    if let (Some(otlp), Some(api), Some(pid)) =
        (&args.tocsin_otlp, &args.tocsin_api, args.tocsin_pid)
    {
        servers.push(Server {
            name: "tocsin",
            target: Target::Otlp,
            write_url: format!("{otlp}/v1/metrics"),
            api: api.clone(),
            pid,
        });
    }
    if let (Some(prom), Some(pid)) = (&args.prometheus, args.prometheus_pid) {
        servers.push(Server {
            name: "prometheus",
            target: Target::RemoteWrite,
            write_url: format!("{prom}/api/v1/write"),
            api: prom.clone(),
            pid,
        });
    }
    ensure!(!servers.is_empty(), "give --tocsin-* and/or --prometheus*");

    // Each repetition writes fresh series (its own `job`), the servers in
    // turn, so both see the same mix of series creation and appends and
    // the same share of whatever else the machine is doing.
    let mut results = Vec::new();
    for rep in 0..args.repeat {
        let job = format!("node{rep}");
        // Rounds end a minute before now, well inside both servers' windows.
        let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
        let t0_ms = (now_ms - 60_000 - STEP_MS * args.rounds as i64) / STEP_MS * STEP_MS;
        for server in &servers {
            results.push(run(server, &client, &args, rep, &job, t0_ms).await?);
        }
    }

    println!(
        "{:<11} {:>3} {:>9} {:>8} {:>8} {:>7} {:>7} {:>13} {:>10} {:>17}",
        "server",
        "run",
        "samples",
        "requests",
        "MB sent",
        "wall s",
        "CPU s",
        "samples/CPU-s",
        "idle CPU/s",
        "net samples/CPU-s"
    );
    for r in &results {
        println!(
            "{:<11} {:>3} {:>9} {:>8} {:>8.1} {:>7.2} {:>7.2} {:>13.0} {:>10.3} {:>17.0}",
            r.name,
            r.rep,
            r.samples,
            r.requests,
            r.bytes as f64 / 1e6,
            r.wall_s,
            r.cpu_s,
            r.per_cpu_s(),
            r.idle_cpu_per_s,
            r.net_per_cpu_s()
        );
    }
    let medians: Vec<(&str, f64, f64)> = servers
        .iter()
        .map(|s| {
            let mine = || results.iter().filter(|r| r.name == s.name);
            (
                s.name,
                median(mine().map(RunResult::per_cpu_s).collect()),
                median(mine().map(RunResult::net_per_cpu_s).collect()),
            )
        })
        .collect();
    for (name, m, net) in &medians {
        println!(
            "median {name}: {m:.0} samples per CPU-second (net of idle: {net:.0}) over {} runs",
            args.repeat
        );
    }
    if let [(_, t, tn), (_, p, pn)] = medians[..] {
        println!(
            "ratio tocsin/prometheus samples per CPU-second (medians): {:.2} (net of idle: {:.2})",
            t / p,
            tn / pn
        );
    }
    Ok(())
}
