//! Group commit over the write-ahead log: concurrent writers hand in their
//! framed records and wait; whoever finds no write in progress becomes the
//! leader and writes and fsyncs everything pending in one go. Under load
//! one fsync covers many requests; alone, a request pays one fsync.
//!
//! Invariants: a caller's `wait` returns Ok only after its records were
//! fsync'd; a failed write fails exactly the callers whose records were in
//! it; records reach the log in the order `enqueue` was called.

use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::wal::{Wal, WalError};

/// Why a commit did not become durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("write-ahead log write failed: {0}")]
pub struct CommitError(pub String);

#[derive(Debug, Default)]
struct State {
    pending: Vec<u8>,
    /// The buffer of the last group write, emptied, to take pending
    /// records next: under steady load the records are copied into memory
    /// already in use instead of a fresh allocation the kernel must zero.
    spare: Vec<u8>,
    /// Sequence number of the newest enqueued batch.
    enqueued: u64,
    /// Every batch up to this number has been written (or failed).
    settled: u64,
    writing: bool,
    /// Ranges of batch numbers whose write failed, newest last (bounded).
    failed: Vec<(u64, u64, String)>,
}

const FAILED_RANGES_KEPT: usize = 64;

/// Told how long each group write (write and fsync) took and how many
/// bytes it wrote: the collector's self metrics. One per log, so the
/// series and log stores' logs are told apart.
struct WriteObserver(Box<dyn Fn(Duration, usize) + Send + Sync>);

impl std::fmt::Debug for WriteObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteObserver")
    }
}

#[cfg(test)]
struct Fault(Box<dyn Fn() -> Result<(), String> + Send + Sync>);

#[cfg(test)]
impl std::fmt::Debug for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fault")
    }
}

/// A ticket for one enqueued batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// The group-commit front of a [`Wal`].
#[derive(Debug)]
pub struct GroupCommit {
    state: Mutex<State>,
    settled: Condvar,
    wal: Mutex<Wal>,
    /// Bytes pending beyond which `enqueue` callers write themselves
    /// instead of growing the buffer: the buffer stays bounded.
    max_pending: usize,
    observer: OnceLock<WriteObserver>,
    /// Runs before each group write; an error fails the write without
    /// writing (tests stall and fail writes with it).
    #[cfg(test)]
    fault: OnceLock<Fault>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state is updated in single assignments, so a panic in
    // another holder cannot leave it inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl GroupCommit {
    pub fn new(wal: Wal) -> Self {
        GroupCommit {
            state: Mutex::new(State::default()),
            settled: Condvar::new(),
            wal: Mutex::new(wal),
            max_pending: 64 << 20,
            observer: OnceLock::new(),
            #[cfg(test)]
            fault: OnceLock::new(),
        }
    }

    /// Installs the hook run before each group write (see `fault`).
    #[cfg(test)]
    pub fn inject_faults(&self, f: impl Fn() -> Result<(), String> + Send + Sync + 'static) {
        assert!(
            self.fault.set(Fault(Box::new(f))).is_ok(),
            "a fault hook is installed already"
        );
    }

    #[cfg(test)]
    fn before_write(&self) -> Result<(), String> {
        self.fault.get().map_or(Ok(()), |f| (f.0)())
    }

    #[cfg(not(test))]
    fn before_write(&self) -> Result<(), String> {
        Ok(())
    }

    /// Installs this log's write observer; false when one is installed
    /// already (the first one stays).
    pub fn observe_writes(&self, f: impl Fn(Duration, usize) + Send + Sync + 'static) -> bool {
        self.observer.set(WriteObserver(Box::new(f))).is_ok()
    }

    /// Queues framed records; call [`GroupCommit::wait`] with the ticket
    /// to learn when they are durable.
    pub fn enqueue(&self, frames: &[u8]) -> Ticket {
        let mut st = lock(&self.state);
        while st.pending.len() + frames.len() > self.max_pending && !st.pending.is_empty() {
            st = self.settled.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.pending.extend_from_slice(frames);
        st.enqueued += 1;
        Ticket(st.enqueued)
    }

    /// Blocks until the ticket's batch is durable, writing as the leader
    /// when no write is in progress.
    pub fn wait(&self, ticket: Ticket) -> Result<(), CommitError> {
        let mut st = lock(&self.state);
        loop {
            if let Some((_, _, msg)) = st
                .failed
                .iter()
                .find(|(from, to, _)| (*from..=*to).contains(&ticket.0))
            {
                return Err(CommitError(msg.clone()));
            }
            if st.settled >= ticket.0 {
                return Ok(());
            }
            if !st.writing {
                st.writing = true;
                let spare = std::mem::take(&mut st.spare);
                let mut batch = std::mem::replace(&mut st.pending, spare);
                let (from, to) = (st.settled + 1, st.enqueued);
                drop(st);
                let started = Instant::now();
                let result = self.before_write().and_then(|()| {
                    lock(&self.wal)
                        .write_frames(&batch)
                        .map_err(|e| e.to_string())
                });
                if let Some(observe) = self.observer.get() {
                    (observe.0)(started.elapsed(), batch.len());
                }
                st = lock(&self.state);
                st.writing = false;
                st.settled = to;
                batch.clear();
                if batch.capacity() <= self.max_pending && batch.capacity() > st.spare.capacity() {
                    st.spare = batch;
                }
                if let Err(e) = result {
                    st.failed.push((from, to, e));
                    if st.failed.len() > FAILED_RANGES_KEPT {
                        st.failed.remove(0);
                    }
                }
                self.settled.notify_all();
                continue;
            }
            st = self.settled.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Runs `f` on the log with no write in progress (segment cuts,
    /// truncation, size queries).
    pub fn with_wal<R>(
        &self,
        f: impl FnOnce(&mut Wal) -> Result<R, WalError>,
    ) -> Result<R, WalError> {
        f(&mut lock(&self.wal))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::wal::{WalOptions, frame};
    use std::sync::Arc;

    #[test]
    fn concurrent_writers_all_become_durable_in_enqueue_order_per_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        let gc = Arc::new(GroupCommit::new(wal));
        let threads: Vec<_> = (0..8u8)
            .map(|w| {
                let gc = Arc::clone(&gc);
                std::thread::spawn(move || {
                    for i in 0..50u8 {
                        let mut f = Vec::new();
                        frame(w, &[i], &mut f).unwrap();
                        let t = gc.enqueue(&f);
                        gc.wait(t).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(gc);
        let (_, replay) = Wal::open(dir.path(), WalOptions::default()).unwrap();
        assert_eq!(replay.records.len(), 400);
        for w in 0..8u8 {
            let seq: Vec<u8> = replay
                .records
                .iter()
                .filter(|r| r.kind == w)
                .map(|r| r.payload[0])
                .collect();
            assert_eq!(seq, (0..50).collect::<Vec<u8>>(), "writer {w}");
        }
    }

    #[test]
    fn each_log_tells_its_own_observer() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let seen: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        let logs: Vec<GroupCommit> = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (wal, _) = Wal::open(d.path(), WalOptions::default()).unwrap();
                let gc = GroupCommit::new(wal);
                let seen = seen.clone();
                assert!(gc.observe_writes(move |_, len| {
                    seen[i].fetch_add(len, Ordering::Relaxed);
                }));
                // The first observer stays.
                assert!(!gc.observe_writes(|_, _| {}));
                gc
            })
            .collect();
        let mut f = Vec::new();
        frame(1, b"abc", &mut f).unwrap();
        logs[0].wait(logs[0].enqueue(&f)).unwrap();
        logs[0].wait(logs[0].enqueue(&f)).unwrap();
        logs[1].wait(logs[1].enqueue(&f)).unwrap();
        assert_eq!(seen[0].load(Ordering::Relaxed), 2 * f.len());
        assert_eq!(seen[1].load(Ordering::Relaxed), f.len());
    }
}
