//! The exporter: turns the sources' data into OTLP requests, sends them to
//! the collector, keeps what cannot be sent in the [spool](crate::spool),
//! and reports which tailer batches the collector acknowledged, so a log
//! file's checkpoint moves only over delivered lines.
//!
//! Data path: [`Exporter::submit_logs`] / [`Exporter::submit_metrics`]
//! encode a request and queue it in memory (bounded); one sender task
//! ([`ExporterTask::run`]) sends the oldest batches, up to
//! [`ExporterOptions::max_in_flight`] requests at once so that encoding,
//! the network and the collector's work overlap. When a send
//! fails for a reason that may pass (collector away, overloaded, refusing
//! the token) or the memory queue is full, batches go to the spool, and
//! while the spool holds anything every new batch goes there too, behind
//! the older ones; the sender then drains the spool oldest first with
//! exponential backoff and jitter between failures. The payload spooled is
//! the payload sent: timestamps are the original ones.
//!
//! Acknowledgement: a batch counts as delivered when the collector answers
//! with success, including an OTLP partial success. Items the collector
//! rejects in a partial success are refused for good (the specification
//! forbids retrying them), so they are counted and logged, and the batch is
//! acknowledged: holding the checkpoint would re-send the accepted records
//! forever. A batch the collector can never take (a permanent error such as
//! a malformed request) is dropped, counted and logged, and reported as
//! [`Delivery::Dropped`]; a refused token or certificate, or an endpoint
//! that is no OTLP receiver (404, a redirect, gRPC Unimplemented), is *not*
//! permanent for the data: the batch stays spooled and is retried slowly
//! while the error is logged, until an operator fixes the configuration.
//!
//! Invariants: sends start in submission order and results are settled in
//! that order; at most `max_in_flight` batches are in flight, of which at
//! most one metrics batch, so metrics reach the collector in submission
//! order (a later log batch may be taken before an earlier one whose send
//! failed and is retried from the spool: the collector de-duplicates logs,
//! and their order carries no meaning); batches are sent from the spool one
//! at a time, and only when nothing sent from memory is still in flight, so
//! the spool is emptied strictly oldest first; [`Delivery::Acked`] is reported only
//! after the collector's success answer, and only for tailer batches of the
//! current run (tailer batch ids restart with the process; a log batch
//! spooled by an earlier run is re-read by the tailer from its checkpoint,
//! and the collector drops the duplicate by agent, file id and offset).
//!
//! ```no_run
//! use std::path::Path;
//! use std::time::Duration;
//! use tocsin_agent::export::{
//!     ExporterOptions, Protocol, ResourceInfo, Transport, TransportConfig, exporter,
//! };
//! use tocsin_agent::sources::logtail::Tailer;
//! use tokio_util::sync::CancellationToken;
//!
//! async fn forward(
//!     mut tailer: Tailer,
//!     info: ResourceInfo,
//!     shutdown: CancellationToken,
//! ) -> Result<(), Box<dyn std::error::Error>> {
//!     let transport = Transport::new(&TransportConfig {
//!         protocol: Protocol::Grpc,
//!         endpoint: "http://collector:4317".into(),
//!         token: None,
//!         tls: None,
//!         gzip: true,
//!         timeout: Duration::from_secs(10),
//!     })?;
//!     let spool = Path::new("/var/lib/tocsin-agent/spool");
//!     let (exporter, task, mut deliveries) =
//!         exporter(spool, ExporterOptions::default(), transport, info)?;
//!     let sender = tokio::spawn(task.run(shutdown.clone()));
//!     let mut tick = tokio::time::interval(Duration::from_millis(200));
//!     while !shutdown.is_cancelled() {
//!         tokio::select! {
//!             _ = tick.tick() => {}
//!             () = shutdown.cancelled() => {}
//!         }
//!         tailer.poll()?;
//!         while let Some(batch) = tailer.next_batch(1000, 1 << 20) {
//!             exporter.submit_logs(&batch);
//!         }
//!         // A file's checkpoint moves only here, after the collector's answer.
//!         while let Ok(delivery) = deliveries.try_recv() {
//!             delivery.apply(&mut tailer)?;
//!         }
//!     }
//!     sender.await?; // the rest is spooled for the next run
//!     while let Ok(delivery) = deliveries.try_recv() {
//!         delivery.apply(&mut tailer)?;
//!     }
//!     tailer.checkpoint_now()?;
//!     Ok(())
//! }
//! ```

pub mod agent_id;
mod backoff;
pub mod config;
mod encode;
mod transport;

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures_util::stream::{FuturesOrdered, StreamExt};
use prost::Message;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use backoff::{Backoff, BackoffPolicy};
pub use encode::{ResourceInfo, SCOPE_NAME, encode_logs_request, logs_request, metrics_request};
pub use transport::{
    Accepted, ClientTls, ErrorClass, Protocol, SendError, Transport, TransportConfig,
    TransportError,
};

use crate::sources::host::Metric;
use crate::sources::logtail::{Batch, Tailer, TailerError};
use crate::spool::{Origin, Signal, Spool, SpoolBatch, SpoolCounters, SpoolError, SpoolOptions};

/// Requests in flight by default: enough to keep the collector busy while
/// the agent reads and encodes the next batches, few enough that a
/// collector outage finds little to re-send.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// Settings of the exporter.
#[derive(Debug, Clone)]
pub struct ExporterOptions {
    /// Batches held in memory before new ones go to the spool.
    pub memory_batches: usize,
    /// Payload bytes held in memory before new batches go to the spool
    /// (a single larger batch is still held alone).
    pub memory_bytes: usize,
    /// Requests sent before the first is answered (at least 1). Batches in
    /// flight have left the memory queue: memory holds up to this many
    /// batches beyond `memory_batches` / `memory_bytes`.
    pub max_in_flight: usize,
    pub spool: SpoolOptions,
    pub backoff: BackoffPolicy,
}

impl Default for ExporterOptions {
    fn default() -> Self {
        ExporterOptions {
            memory_batches: 64,
            memory_bytes: 8 << 20,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            spool: SpoolOptions::default(),
            backoff: BackoffPolicy::default(),
        }
    }
}

/// What became of a tailer batch, for `Tailer::ack` / `Tailer::drop_batch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The collector acknowledged the request holding the batch.
    Acked { batch: u64 },
    /// The batch was given up (permanent rejection, evicted from a full
    /// spool, or could not be spooled): its lines are skipped.
    Dropped { batch: u64 },
}

impl Delivery {
    /// Settles the delivery in the tailer: its records' checkpoints may
    /// move (acknowledged) or skip them (dropped). A batch the tailer no
    /// longer knows (settled already: evicted while its send succeeded) is
    /// not an error.
    pub fn apply(self, tailer: &mut Tailer) -> Result<(), TailerError> {
        let result = match self {
            Delivery::Acked { batch } => tailer.ack(batch),
            Delivery::Dropped { batch } => tailer.drop_batch(batch),
        };
        match result {
            Err(TailerError::UnknownBatch(batch)) => {
                tracing::debug!(batch, "delivery for a batch the tailer settled already");
                Ok(())
            }
            other => other,
        }
    }
}

/// Counters since the exporter started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportCounters {
    /// Batches the collector acknowledged.
    pub batches_sent: u64,
    /// Batches written to the spool.
    pub batches_spooled: u64,
    /// Batches dropped because the collector refuses them for good.
    pub batches_rejected: u64,
    /// Batches dropped because the spool could not take them.
    pub batches_unspoolable: u64,
    /// Log records / data points refused in partial successes.
    pub items_rejected: u64,
    /// Sends that failed and will be retried.
    pub send_failures: u64,
    /// Of those, refused credentials.
    pub auth_failures: u64,
    /// Of those, answers saying the endpoint is not an OTLP receiver.
    pub misrouted: u64,
    /// Of those, throttled by the collector.
    pub throttled: u64,
    /// Spool reads or removals that failed.
    pub spool_errors: u64,
}

/// Failures of setting the exporter up.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot open the spool: {0}")]
    Spool(#[from] SpoolError),
}

struct State {
    memory: VecDeque<SpoolBatch>,
    /// Payload bytes in `memory`.
    memory_bytes: usize,
    spool: Spool,
    next_id: u64,
    counters: ExportCounters,
}

impl State {
    fn pop_memory(&mut self) -> Option<SpoolBatch> {
        let b = self.memory.pop_front()?;
        self.memory_bytes -= b.payload.len();
        Some(b)
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Notify,
    deliveries: mpsc::UnboundedSender<Delivery>,
    run_id: u64,
    memory_batches: usize,
    memory_bytes: usize,
    info: Mutex<Arc<ResourceInfo>>,
}

/// The submitting side; cheap to clone.
#[derive(Clone)]
pub struct Exporter {
    shared: Arc<Shared>,
}

/// Where batches go: the collector over a [`Transport`], or a scripted
/// peer in tests.
pub trait OtlpSink: Send + Sync + 'static {
    /// Sends one encoded request of `signal`.
    fn send(
        &self,
        signal: Signal,
        payload: &[u8],
    ) -> impl Future<Output = Result<Accepted, SendError>> + Send;
}

impl OtlpSink for Transport {
    fn send(
        &self,
        signal: Signal,
        payload: &[u8],
    ) -> impl Future<Output = Result<Accepted, SendError>> + Send {
        Transport::send(self, signal, payload)
    }
}

/// The sending side: run it on a task.
pub struct ExporterTask<S = Transport> {
    shared: Arc<Shared>,
    transport: Arc<S>,
    backoff: Backoff,
    max_in_flight: usize,
}

/// The answer to one send, with the batch sent and whether it came from
/// the spool.
type SendResult = (Arc<SpoolBatch>, bool, Result<Accepted, SendError>);
type SendFuture = Pin<Box<dyn Future<Output = SendResult> + Send>>;

/// Opens the spool in `spool_dir` and builds the exporter. The receiver
/// gets one [`Delivery`] per tailer batch; it is unbounded because the
/// tailer bounds its unacknowledged batches (`max_unacked_records`), and a
/// lost acknowledgement would stall a file's checkpoint.
pub fn exporter<S: OtlpSink>(
    spool_dir: &Path,
    options: ExporterOptions,
    transport: S,
    info: ResourceInfo,
) -> Result<(Exporter, ExporterTask<S>, mpsc::UnboundedReceiver<Delivery>), ExportError> {
    let spool = Spool::open(spool_dir, options.spool.clone())?;
    if !spool.is_empty() {
        tracing::info!(
            batches = spool.len(),
            bytes = spool.disk_bytes(),
            "spool holds batches from an earlier run; sending them first"
        );
    }
    let run_id = agent_id::run_id();
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            memory: VecDeque::new(),
            memory_bytes: 0,
            next_id: spool.next_id(),
            spool,
            counters: ExportCounters::default(),
        }),
        wake: Notify::new(),
        deliveries: tx,
        run_id,
        memory_batches: options.memory_batches.max(1),
        memory_bytes: options.memory_bytes,
        info: Mutex::new(Arc::new(info)),
    });
    let task = ExporterTask {
        shared: Arc::clone(&shared),
        transport: Arc::new(transport),
        backoff: Backoff::new(options.backoff, run_id),
        max_in_flight: options.max_in_flight.max(1),
    };
    Ok((Exporter { shared }, task, rx))
}

/// Runs spool I/O (reads, appends with fsync) so that it does not stall
/// the other tasks of a multi-threaded runtime; elsewhere (a
/// current-thread runtime, no runtime) it simply runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue half
        // updated in a way that matters more than stopping delivery.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, origin: Option<Origin>, acked: bool) {
        let Some(origin) = origin.filter(|o| o.run == self.run_id) else {
            return;
        };
        let d = if acked {
            Delivery::Acked {
                batch: origin.batch,
            }
        } else {
            Delivery::Dropped {
                batch: origin.batch,
            }
        };
        // The receiver gone means the agent is shutting down; the tailer
        // re-reads from its checkpoint next time.
        let _ = self.deliveries.send(d);
    }

    /// Moves the memory queue into the spool (keeping order by id).
    fn spill(&self, st: &mut State) {
        while let Some(b) = st.pop_memory() {
            self.to_spool(st, &b);
        }
    }

    /// Appends to the spool, which sends by id: a batch whose send failed
    /// lands before later ones spilled while it was in flight.
    fn to_spool(&self, st: &mut State, batch: &SpoolBatch) {
        match st.spool.append(batch) {
            Ok(evicted) => {
                st.counters.batches_spooled += 1;
                for e in evicted {
                    self.report(e.origin, false);
                }
            }
            Err(e) => {
                st.counters.batches_unspoolable += 1;
                tracing::error!(
                    id = batch.id,
                    signal = batch.signal.name(),
                    error = %e,
                    "batch could not be spooled; dropped"
                );
                self.report(batch.origin, false);
            }
        }
    }
}

impl Exporter {
    /// Queues a tailer batch as one logs request.
    pub fn submit_logs(&self, batch: &Batch) {
        let info = self.info();
        let payload = encode_logs_request(&info, &batch.records);
        let origin = Origin {
            run: self.shared.run_id,
            batch: batch.id,
        };
        self.submit(Signal::Logs, payload, Some(origin));
    }

    /// Queues one host-metrics collection as one metrics request.
    pub fn submit_metrics(&self, metrics: &[Metric]) {
        if metrics.is_empty() {
            return;
        }
        let info = self.info();
        let payload = metrics_request(&info, metrics).encode_to_vec();
        self.submit(Signal::Metrics, payload, None);
    }

    /// Queues an encoded request; returns its batch id. While the spool
    /// holds batches (or memory is full) this writes to the spool, with an
    /// fsync under the default policy, before returning.
    pub fn submit(&self, signal: Signal, payload: Vec<u8>, origin: Option<Origin>) -> u64 {
        let shared = &self.shared;
        let mut st = shared.lock();
        let id = st.next_id;
        st.next_id += 1;
        let batch = SpoolBatch {
            id,
            signal,
            created: SystemTime::now(),
            origin,
            payload,
        };
        let full = st.memory.len() >= shared.memory_batches
            || (!st.memory.is_empty()
                && st.memory_bytes + batch.payload.len() > shared.memory_bytes);
        if !st.spool.is_empty() || full {
            // Behind whatever waits already, so order is kept.
            blocking(|| {
                shared.spill(&mut st);
                shared.to_spool(&mut st, &batch);
            });
        } else {
            st.memory_bytes += batch.payload.len();
            st.memory.push_back(batch);
        }
        drop(st);
        shared.wake.notify_one();
        id
    }

    /// Replaces the resource attributes for requests built from now on
    /// (configuration reload).
    pub fn set_resource(&self, info: ResourceInfo) {
        *self.shared.info.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(info);
    }

    fn info(&self) -> Arc<ResourceInfo> {
        Arc::clone(&self.shared.info.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The run id that log batch origins carry.
    pub fn run_id(&self) -> u64 {
        self.shared.run_id
    }

    pub fn counters(&self) -> ExportCounters {
        self.shared.lock().counters.clone()
    }

    pub fn spool_counters(&self) -> SpoolCounters {
        self.shared.lock().spool.counters().clone()
    }

    /// Would a batch submitted now wait in memory? False while the memory
    /// queue is full and the spool empty: the collector answers but the
    /// sender is busy. A source whose data can wait where it is (the
    /// tailer: its lines stay in the file, behind the checkpoint) holds
    /// back then, rather than have its batches written to the spool and
    /// read back a moment later. While the spool holds batches (the
    /// collector did not answer), submitting goes on into the spool.
    /// "Full" starts at half the byte bound, so that one more batch of a
    /// few MiB still fits in memory.
    pub fn has_room(&self) -> bool {
        let st = self.shared.lock();
        !st.spool.is_empty()
            || (st.memory.len() < self.shared.memory_batches
                && st.memory_bytes <= self.shared.memory_bytes / 2)
    }

    /// Batches waiting: (in memory, in the spool).
    pub fn pending(&self) -> (usize, usize) {
        let st = self.shared.lock();
        (st.memory.len(), st.spool.len())
    }
}

impl<S: OtlpSink> ExporterTask<S> {
    /// Sends until `shutdown` is cancelled, then moves what is still in
    /// memory (and the batches in flight) to the spool and returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let shared = Arc::clone(&self.shared);
        let mut in_flight: FuturesOrdered<SendFuture> = FuturesOrdered::new();
        // What is in flight, oldest first: (batch, from the spool).
        let mut sent: VecDeque<(Arc<SpoolBatch>, bool)> = VecDeque::new();
        // While backing off after a failure, nothing new is sent.
        let mut resume_at: Option<Instant> = None;
        loop {
            let notified = shared.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if resume_at.is_some_and(|t| Instant::now() >= t) {
                resume_at = None;
            }
            if resume_at.is_none() {
                while sent.len() < self.max_in_flight {
                    let metrics_busy = sent.iter().any(|(b, _)| b.signal == Signal::Metrics);
                    match blocking(|| self.next_batch(sent.is_empty(), metrics_busy)) {
                        Ok(Some((batch, from_spool))) => {
                            let batch = Arc::new(batch);
                            sent.push_back((Arc::clone(&batch), from_spool));
                            let transport = Arc::clone(&self.transport);
                            in_flight.push_back(Box::pin(async move {
                                let result = transport.send(batch.signal, &batch.payload).await;
                                (batch, from_spool, result)
                            }));
                        }
                        Ok(None) => break,
                        Err(()) => {
                            // The spool could not be read (logged): try
                            // again later rather than spinning on the error.
                            resume_at = Some(Instant::now() + self.backoff.next_delay());
                            break;
                        }
                    }
                }
            }
            if sent.is_empty() {
                let sleep = tokio::time::sleep_until(resume_at.unwrap_or_else(Instant::now));
                tokio::select! {
                    () = &mut notified => continue,
                    () = sleep, if resume_at.is_some() => continue,
                    () = shutdown.cancelled() => break,
                }
            }
            tokio::select! {
                // An answer already in is settled before a shutdown, so a
                // batch the collector took is not spooled and sent again.
                biased;
                Some((batch, from_spool, result)) = in_flight.next() => {
                    sent.pop_front();
                    // A wait that has passed is no wait: this failure
                    // sets a new one.
                    let backing_off = resume_at.is_some_and(|t| t > Instant::now());
                    let delay = blocking(|| self.settle(&batch, from_spool, result, backing_off));
                    if let Some(delay) = delay {
                        let at = Instant::now() + delay;
                        resume_at = Some(resume_at.map_or(at, |r| r.max(at)));
                    }
                }
                () = &mut notified => {}
                () = shutdown.cancelled() => break,
            }
        }
        // Sends still in flight are abandoned: their batches go to the spool
        // (those read from it are there still), oldest first, ahead of
        // what waits in memory.
        drop(in_flight);
        let spooled = blocking(|| {
            let mut st = shared.lock();
            for (batch, from_spool) in &sent {
                if !from_spool {
                    shared.to_spool(&mut st, batch);
                }
            }
            shared.spill(&mut st);
            st.spool.len()
        });
        tracing::info!(
            spooled,
            "exporter stopped; undelivered batches are in the spool"
        );
    }

    /// The next batch to send, if one may be sent now: the spool's front
    /// when it holds anything (after moving the memory queue behind it) and
    /// nothing is in flight, else the memory queue's front unless it is a
    /// metrics batch while another is in flight.
    fn next_batch(
        &mut self,
        idle: bool,
        metrics_busy: bool,
    ) -> Result<Option<(SpoolBatch, bool)>, ()> {
        let shared = &self.shared;
        let mut st = shared.lock();
        if st.spool.is_empty() {
            if metrics_busy
                && st
                    .memory
                    .front()
                    .is_some_and(|b| b.signal == Signal::Metrics)
            {
                return Ok(None);
            }
            return Ok(st.pop_memory().map(|b| (b, false)));
        }
        if !idle {
            // A spooled batch is removed from the spool once taken, which
            // requires every older batch to be settled (and a failed one in
            // flight must still find room before it in the spool).
            return Ok(None);
        }
        shared.spill(&mut st);
        match st.spool.front() {
            Ok(b) => Ok(b.map(|b| (b, true))),
            Err(e) => {
                st.counters.spool_errors += 1;
                tracing::error!(error = %e, "cannot read the spool");
                Err(())
            }
        }
    }

    /// Applies the result of sending `batch`; returns how long to wait
    /// before the next attempt, if at all. `backing_off`: an earlier
    /// failure already set the wait (the sends in flight with it failing
    /// too are one outage, not several).
    fn settle(
        &mut self,
        batch: &SpoolBatch,
        from_spool: bool,
        result: Result<Accepted, SendError>,
        backing_off: bool,
    ) -> Option<Duration> {
        let shared = Arc::clone(&self.shared);
        let mut st = shared.lock();
        let remove = |st: &mut State, id: u64| {
            if let Err(e) = st.spool.remove(id) {
                st.counters.spool_errors += 1;
                tracing::error!(id, error = %e, "cannot record a delivered batch in the spool; it may be sent again");
            }
        };
        match result {
            Ok(accepted) => {
                self.backoff.reset();
                st.counters.batches_sent += 1;
                if accepted.rejected > 0 {
                    st.counters.items_rejected += accepted.rejected;
                    tracing::warn!(
                        id = batch.id,
                        signal = batch.signal.name(),
                        rejected = accepted.rejected,
                        message = %accepted.message,
                        "collector rejected part of a batch for good; the rest is stored"
                    );
                }
                if from_spool {
                    remove(&mut st, batch.id);
                }
                drop(st);
                shared.report(batch.origin, true);
                None
            }
            Err(error) => match error.class() {
                ErrorClass::Permanent => {
                    st.counters.batches_rejected += 1;
                    tracing::error!(
                        id = batch.id,
                        signal = batch.signal.name(),
                        %error,
                        "collector refuses the batch for good; dropped"
                    );
                    if from_spool {
                        remove(&mut st, batch.id);
                    }
                    drop(st);
                    shared.report(batch.origin, false);
                    None
                }
                class => {
                    st.counters.send_failures += 1;
                    if !from_spool {
                        shared.to_spool(&mut st, batch);
                        shared.spill(&mut st);
                    }
                    let spooled = st.spool.len();
                    match class {
                        ErrorClass::Unauthorized => {
                            st.counters.auth_failures += 1;
                            let delay = Some(self.backoff.max_delay());
                            tracing::error!(
                                %error,
                                spooled,
                                retry_in = ?delay,
                                "collector refuses the agent's credentials; batches are kept in the spool until they are fixed"
                            );
                            delay
                        }
                        ErrorClass::Misrouted => {
                            st.counters.misrouted += 1;
                            let delay = Some(self.backoff.max_delay());
                            tracing::error!(
                                %error,
                                spooled,
                                retry_in = ?delay,
                                "the endpoint is not an OTLP receiver (check collector.endpoint and protocol); batches are kept in the spool"
                            );
                            delay
                        }
                        ErrorClass::Throttled(after) => {
                            st.counters.throttled += 1;
                            // A Retry-After is honoured up to five minutes.
                            let delay = match after {
                                Some(d) => Some(d.min(Duration::from_secs(300))),
                                None if backing_off => None,
                                None => Some(self.backoff.next_delay()),
                            };
                            tracing::warn!(%error, spooled, retry_in = ?delay, "collector is throttling; backing off");
                            delay
                        }
                        _ => {
                            let delay = (!backing_off).then(|| self.backoff.next_delay());
                            tracing::warn!(%error, spooled, retry_in = ?delay, "send failed; will retry");
                            delay
                        }
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn info() -> ResourceInfo {
        ResourceInfo {
            host_name: "h".into(),
            service_name: "s".into(),
            environment: None,
            service_version: None,
            track: None,
            agent_id: "a".into(),
            agent_version: "0".into(),
            interval_secs: 10,
        }
    }

    /// No sender runs here, so what stays in memory and what spills is
    /// decided by the bounds alone.
    fn unsent(memory_batches: usize, memory_bytes: usize) -> (tempfile::TempDir, Exporter) {
        let dir = tempfile::tempdir().unwrap();
        let transport = Transport::new(&TransportConfig {
            protocol: Protocol::Http,
            endpoint: "http://127.0.0.1:9".into(),
            token: None,
            tls: None,
            gzip: false,
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        let options = ExporterOptions {
            memory_batches,
            memory_bytes,
            max_in_flight: 1,
            spool: SpoolOptions {
                max_bytes: 1 << 20,
                fsync: false,
            },
            backoff: BackoffPolicy::default(),
        };
        let (exporter, _task, _rx) = exporter(dir.path(), options, transport, info()).unwrap();
        (dir, exporter)
    }

    /// What the scripted collector answers to one attempt.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        Accept,
        Partial,
        Unreachable,
        Unauthorized,
        Misrouted,
        Throttled,
        Refuse,
    }

    /// A collector that answers attempts from a script (then accepts) and
    /// records the ids of the batches it took or refused for good.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<VecDeque<Answer>>,
        accepted: Mutex<Vec<u64>>,
        refused: Mutex<Vec<u64>>,
    }

    impl OtlpSink for Arc<Scripted> {
        fn send(
            &self,
            _signal: Signal,
            payload: &[u8],
        ) -> impl Future<Output = Result<Accepted, SendError>> + Send {
            let id = u64::from_le_bytes(payload.try_into().unwrap());
            let answer = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Answer::Accept);
            let http = |status| SendError::Http {
                endpoint: "scripted".into(),
                signal: "logs",
                status,
                message: String::new(),
                retry_after: Some(Duration::ZERO),
            };
            let result = match answer {
                Answer::Accept | Answer::Partial => {
                    self.accepted.lock().unwrap().push(id);
                    Ok(Accepted {
                        rejected: u64::from(matches!(answer, Answer::Partial)),
                        message: String::new(),
                    })
                }
                Answer::Unreachable => Err(SendError::Unreachable {
                    endpoint: "scripted".into(),
                    signal: "logs",
                    message: "refused".into(),
                }),
                Answer::Unauthorized => Err(http(401)),
                Answer::Misrouted => Err(http(404)),
                Answer::Throttled => Err(http(429)),
                Answer::Refuse => {
                    self.refused.lock().unwrap().push(id);
                    Err(http(400))
                }
            };
            std::future::ready(result)
        }
    }

    fn answer() -> impl Strategy<Value = Answer> {
        prop_oneof![
            4 => Just(Answer::Accept),
            1 => Just(Answer::Partial),
            3 => Just(Answer::Unreachable),
            1 => Just(Answer::Unauthorized),
            1 => Just(Answer::Misrouted),
            1 => Just(Answer::Throttled),
            1 => Just(Answer::Refuse),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the collector answers, however submissions and sends
        /// interleave and however many requests may be in flight: every
        /// batch is taken or refused for good exactly once, metrics batches
        /// are taken in submission order (all batches are, with one request
        /// in flight), and each log batch is reported once, as acknowledged
        /// exactly when it was taken.
        #[test]
        fn delivery_keeps_order_and_reports_each_batch_once(
            script in proptest::collection::vec(answer(), 0..40),
            batches in proptest::collection::vec((any::<bool>(), 0usize..4), 1..30),
            memory_batches in 1usize..4,
            max_in_flight in 1usize..5,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let sink = Arc::new(Scripted::default());
            sink.script.lock().unwrap().extend(script);
            let options = ExporterOptions {
                memory_batches,
                memory_bytes: 1 << 20,
                max_in_flight,
                spool: SpoolOptions { max_bytes: 1 << 20, fsync: false },
                // Retries without waiting: the script, not time, decides.
                backoff: BackoffPolicy { initial: Duration::ZERO, max: Duration::ZERO },
            };
            let (exp, task, mut rx) =
                exporter(dir.path(), options, Arc::clone(&sink), info()).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .unwrap();
            let n = batches.len() as u64;
            rt.block_on(async {
                let stop = CancellationToken::new();
                let handle = tokio::spawn(task.run(stop.clone()));
                for (is_log, yields) in &batches {
                    let id = exp.shared.lock().next_id;
                    let (signal, origin) = if *is_log {
                        (Signal::Logs, Some(Origin { run: exp.run_id(), batch: id }))
                    } else {
                        (Signal::Metrics, None)
                    };
                    exp.submit(signal, id.to_le_bytes().to_vec(), origin);
                    for _ in 0..*yields {
                        tokio::task::yield_now().await;
                    }
                }
                let mut rounds = 0;
                while (sink.accepted.lock().unwrap().len() + sink.refused.lock().unwrap().len()) < batches.len() {
                    rounds += 1;
                    assert!(rounds < 100_000, "delivery did not finish");
                    tokio::task::yield_now().await;
                }
                stop.cancel();
                handle.await.unwrap();
            });
            let accepted = sink.accepted.lock().unwrap().clone();
            let refused = sink.refused.lock().unwrap().clone();
            let metrics: Vec<u64> = accepted
                .iter()
                .copied()
                .filter(|&id| !batches[id as usize].0)
                .collect();
            prop_assert!(metrics.windows(2).all(|w| w[0] < w[1]), "metrics out of order: {:?}", accepted);
            if max_in_flight == 1 {
                prop_assert!(accepted.windows(2).all(|w| w[0] < w[1]), "out of order: {:?}", accepted);
            }
            let mut all: Vec<u64> = accepted.iter().chain(&refused).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
            let mut reports = BTreeMap::new();
            while let Ok(d) = rx.try_recv() {
                let (batch, acked) = match d {
                    Delivery::Acked { batch } => (batch, true),
                    Delivery::Dropped { batch } => (batch, false),
                };
                prop_assert!(reports.insert(batch, acked).is_none(), "batch {} reported twice", batch);
            }
            for (i, (is_log, _)) in batches.iter().enumerate() {
                let id = i as u64;
                let expected = is_log.then(|| accepted.contains(&id));
                prop_assert_eq!(reports.get(&id).copied(), expected, "batch {}", id);
            }
            prop_assert_eq!(exp.pending(), (0, 0));
        }
    }

    /// A collector whose answers take scripted times: (delay, accept?) per
    /// attempt, then quick acceptance; it records when each attempt came.
    #[derive(Default)]
    struct Slow {
        script: Mutex<VecDeque<(Duration, bool)>>,
        attempts: Mutex<Vec<(u64, tokio::time::Instant)>>,
    }

    impl OtlpSink for Arc<Slow> {
        fn send(
            &self,
            _signal: Signal,
            payload: &[u8],
        ) -> impl Future<Output = Result<Accepted, SendError>> + Send {
            let id = u64::from_le_bytes(payload.try_into().unwrap());
            self.attempts
                .lock()
                .unwrap()
                .push((id, tokio::time::Instant::now()));
            let (delay, accept) = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or((Duration::ZERO, true));
            async move {
                tokio::time::sleep(delay).await;
                if accept {
                    Ok(Accepted {
                        rejected: 0,
                        message: String::new(),
                    })
                } else {
                    Err(SendError::Unreachable {
                        endpoint: "slow".into(),
                        signal: "logs",
                        message: "timed out".into(),
                    })
                }
            }
        }
    }

    /// Two sends in flight fail one after the other, the second after the
    /// first's wait has passed: the second failure waits again before the
    /// spool is retried (a wait that has passed is not a reason to skip
    /// the next one).
    #[test]
    fn a_failure_after_an_expired_wait_waits_again() {
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Slow::default());
        sink.script
            .lock()
            .unwrap()
            .extend([(Duration::ZERO, false), (Duration::from_millis(500), false)]);
        let options = ExporterOptions {
            memory_batches: 4,
            memory_bytes: 1 << 20,
            max_in_flight: 2,
            spool: SpoolOptions {
                max_bytes: 1 << 20,
                fsync: false,
            },
            backoff: BackoffPolicy {
                initial: Duration::from_millis(200),
                max: Duration::from_secs(10),
            },
        };
        let (exp, task, _rx) = exporter(dir.path(), options, Arc::clone(&sink), info()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let stop = CancellationToken::new();
            let handle = tokio::spawn(task.run(stop.clone()));
            for id in 0..2u64 {
                let origin = Some(Origin {
                    run: exp.run_id(),
                    batch: id,
                });
                exp.submit(Signal::Logs, id.to_le_bytes().to_vec(), origin);
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while sink.attempts.lock().unwrap().len() < 4 {
                assert!(tokio::time::Instant::now() < deadline, "no retries");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.cancel();
            handle.await.unwrap();
        });
        let attempts = sink.attempts.lock().unwrap().clone();
        let ids: Vec<u64> = attempts.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids[..4], [0, 1, 0, 1]);
        // Batch 1 failed 500 ms after it was sent; the second wait is at
        // least half of 400 ms (the delay doubled, jitter takes up to half).
        let second_failure = attempts[1].1 + Duration::from_millis(500);
        let retry = attempts[2].1;
        assert!(
            retry >= second_failure + Duration::from_millis(190),
            "retried {:?} after the second failure",
            retry.saturating_duration_since(second_failure)
        );
    }

    #[test]
    fn a_full_memory_queue_spills_to_the_spool_in_order() {
        let (_dir, exp) = unsent(2, 1 << 20);
        for i in 0..5u8 {
            exp.submit(Signal::Metrics, vec![i; 10], None);
        }
        // Two in memory, then the third spills them and itself; from then
        // on everything queues behind the spool.
        assert_eq!(exp.pending(), (0, 5));
        let st = exp.shared.lock();
        let ids: Vec<u64> = st.spool.ids().iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_memory_queue_is_bounded_in_bytes_too() {
        let (_dir, exp) = unsent(100, 25);
        exp.submit(Signal::Metrics, vec![0; 20], None);
        assert_eq!(exp.pending(), (1, 0));
        exp.submit(Signal::Metrics, vec![0; 20], None);
        assert_eq!(exp.pending(), (0, 2));
        // A batch larger than the bound alone is still held in memory when
        // nothing else is waiting.
        let (_dir, exp) = unsent(100, 25);
        exp.submit(Signal::Metrics, vec![0; 100], None);
        assert_eq!(exp.pending(), (1, 0));
    }
}
