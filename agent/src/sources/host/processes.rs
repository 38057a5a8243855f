//! Process counts by status and processes created since boot.
//!
//! As the hostmetrics receiver does, statuses come from each process's
//! `/proc/<pid>/stat` state letter, then `running` and `blocked` are
//! replaced by the kernel's own `procs_running` / `procs_blocked` from
//! `/proc/stat`, which are read in one go and so do not miss processes
//! that come and go during the walk. The walk reads the first 64 bytes of
//! one file per process into a stack buffer and allocates only for the
//! processes whose name is configured: the same walk finds those, so
//! per-process metrics cost no second pass over `/proc`.

use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use super::cpu::Stat;
use super::model::{Attribute, Descriptor, MetricBuilder, MetricKind};
use super::{Collection, ScrapeError};

pub(crate) const PROCESSES_COUNT: Descriptor = Descriptor {
    name: "system.processes.count",
    description: "Total number of processes in each state.",
    unit: "{processes}",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const PROCESSES_CREATED: Descriptor = Descriptor {
    name: "system.processes.created",
    description: "Total number of created processes.",
    unit: "{processes}",
    kind: MetricKind::MonotonicSum,
};

/// The receiver's statuses, in a fixed order for the counts array.
const STATUSES: [&str; 7] = [
    "running", "sleeping", "blocked", "zombies", "stopped", "paging", "idle",
];
const UNKNOWN: usize = STATUSES.len();

/// Maps a Linux state letter to an index in [`STATUSES`] (or unknown), as
/// gopsutil, and so the receiver, maps them.
fn status_index(letter: u8) -> usize {
    match letter {
        b'R' => 0,
        b'S' => 1,
        b'D' => 2,
        b'Z' => 3,
        b'T' | b't' => 4,
        b'W' => 5,
        b'I' => 6,
        _ => UNKNOWN,
    }
}

/// What one walk of `/proc` found: counts by status, and the processes
/// whose name is configured for per-process metrics.
#[derive(Default)]
pub(crate) struct Walk {
    pub(crate) counts: [u64; STATUSES.len() + 1],
    /// (pid, configured name), sorted by pid.
    pub(crate) matches: Vec<(i32, Arc<str>)>,
    dir_buf: Vec<u8>,
}

/// Bytes of directory entries read from `/proc` per `getdents64` call.
const DIR_BUF: usize = 8 << 10;

impl Walk {
    /// Reads the start of every `/proc/<pid>/stat`: the command name and
    /// the state letter are in the first 64 bytes (the name is at most 15
    /// bytes), so one `read(2)` into a stack buffer per process is enough.
    /// Processes that exit during the walk are simply not counted.
    pub(crate) fn run(
        &mut self,
        names: &[Arc<str>],
        skip_pid: Option<i32>,
    ) -> Result<(), ScrapeError> {
        use rustix::fs::{Mode, OFlags, RawDir};

        let Walk {
            counts,
            matches,
            dir_buf,
        } = self;
        *counts = [0; STATUSES.len() + 1];
        matches.clear();
        let read_error = |e: rustix::io::Errno| ScrapeError::Read {
            scraper: "processes",
            path: "/proc".to_owned(),
            source: e.into(),
        };
        let dir = rustix::fs::open(
            "/proc",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(read_error)?;
        // std's read_dir allocates a name per entry; RawDir reads entries
        // into one buffer kept across collections.
        dir_buf.reserve(DIR_BUF);
        let mut entries = RawDir::new(&dir, dir_buf.spare_capacity_mut());
        let mut path = String::with_capacity(32);
        let mut head = [0u8; 64];
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(read_error)?;
            let Some(pid_text) = std::str::from_utf8(entry.file_name().to_bytes())
                .ok()
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            path.clear();
            path.push_str("/proc/");
            path.push_str(pid_text);
            path.push_str("/stat");
            let Ok(n) = std::fs::File::open(&path).and_then(|mut f| f.read(&mut head)) else {
                continue;
            };
            let Some((comm, state)) = comm_and_state(&head[..n]) else {
                counts[UNKNOWN] += 1;
                continue;
            };
            counts[status_index(state)] += 1;
            if names.is_empty() {
                continue;
            }
            let Ok(pid) = pid_text.parse::<i32>() else {
                continue;
            };
            if Some(pid) == skip_pid {
                continue;
            }
            let comm = String::from_utf8_lossy(comm);
            if let Some(configured) = names
                .iter()
                .find(|n| super::process::name_matches(n, &comm))
            {
                matches.push((pid, Arc::clone(configured)));
            }
        }
        matches.sort_unstable_by_key(|(pid, _)| *pid);
        Ok(())
    }
}

/// The command name and state letter at the start of a
/// `/proc/<pid>/stat` line (`pid (comm) S ...`); the name may itself
/// contain parentheses, so it ends at the last `)`.
pub(crate) fn comm_and_state(head: &[u8]) -> Option<(&[u8], u8)> {
    let open = head.iter().position(|&b| b == b'(')?;
    let close = head.iter().rposition(|&b| b == b')')?;
    if close <= open {
        return None;
    }
    let state = head[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())?;
    Some((&head[open + 1..close], state))
}

/// Emits the counts of a walk, with `running` and `blocked` taken from
/// `/proc/stat` when it could be read, and the created-process counter.
pub(crate) fn record(
    stat: Option<&Stat>,
    walk: &Walk,
    time: SystemTime,
    boot: SystemTime,
    c: &mut Collection,
) {
    let mut counts = walk.counts;
    if let Some(running) = stat.and_then(|s| s.kernel.procs_running) {
        counts[0] = u64::from(running);
    }
    if let Some(blocked) = stat.and_then(|s| s.kernel.procs_blocked) {
        counts[2] = u64::from(blocked);
    }
    let mut count = MetricBuilder::new(PROCESSES_COUNT, time, boot);
    for (status, n) in STATUSES.iter().chain(["unknown"].iter()).zip(counts) {
        // Statuses nobody is in are left out, as the receiver leaves them.
        if n > 0 {
            count.int(n, vec![Attribute::fixed("status", status)]);
        }
    }
    count.finish(&mut c.metrics);
    if let Some(stat) = stat {
        let mut created = MetricBuilder::new(PROCESSES_CREATED, time, boot);
        created.int(stat.kernel.processes, Vec::new());
        created.finish(&mut c.metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_and_state_survive_parentheses_in_names() {
        let got = |line: &'static [u8]| {
            comm_and_state(line).map(|(c, s)| (String::from_utf8_lossy(c).into_owned(), s as char))
        };
        assert_eq!(got(b"1 (systemd) S 0 1 1 0"), Some(("systemd".into(), 'S')));
        assert_eq!(got(b"42 (a) b) (c) Z 1 42"), Some(("a) b) (c".into(), 'Z')));
        assert_eq!(
            got(b"7 (kworker/0:1) I 2 0"),
            Some(("kworker/0:1".into(), 'I'))
        );
        assert_eq!(got(b"garbage"), None);
        assert_eq!(got(b"1 (x)"), None);
        assert_eq!(got(b"1 )x( S"), None);
    }

    #[test]
    fn walk_counts_this_process_and_finds_it_by_name() {
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap_or_else(|e| panic!("{e}"));
        let names = [Arc::from(comm.trim()), Arc::from("no-such-process-name")];
        let mut walk = Walk::default();
        walk.run(&names, None).unwrap_or_else(|e| panic!("{e}"));
        assert!(walk.counts.iter().sum::<u64>() >= 1);
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        assert!(
            walk.matches
                .iter()
                .any(|(pid, n)| *pid == me && **n == *comm.trim()),
            "{:?}",
            walk.matches
        );
        assert!(
            walk.matches.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted by pid"
        );
        walk.run(&names, Some(me)).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            walk.matches.iter().all(|(pid, _)| *pid != me),
            "skipped pid reported"
        );
    }

    #[test]
    fn letters_map_to_receiver_statuses() {
        assert_eq!(STATUSES[status_index(b'D')], "blocked");
        assert_eq!(STATUSES[status_index(b't')], "stopped");
        assert_eq!(STATUSES[status_index(b'Z')], "zombies");
        assert_eq!(STATUSES[status_index(b'W')], "paging");
        assert_eq!(status_index(b'X'), UNKNOWN);
    }
}
