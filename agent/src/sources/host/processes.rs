//! Process counts by status and processes created since boot.
//!
//! As the hostmetrics receiver does, statuses come from each process's
//! `/proc/<pid>/stat` state letter, then `running` and `blocked` are
//! replaced by the kernel's own `procs_running` / `procs_blocked` from
//! `/proc/stat`, which are read in one go and so do not miss processes
//! that come and go during the walk. The walk reads one small file per
//! process into the shared buffer and allocates nothing per process.

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

/// The state letter of a `/proc/<pid>/stat` line: the first field after
/// the command name, which is in parentheses and may itself contain `)`.
pub(crate) fn state_letter(stat_line: &[u8]) -> Option<u8> {
    let close = stat_line.iter().rposition(|&b| b == b')')?;
    stat_line[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

pub(crate) fn record(
    stat: &Stat,
    buf: &mut Vec<u8>,
    time: SystemTime,
    boot: SystemTime,
    c: &mut Collection,
) {
    let mut counts = [0u64; STATUSES.len() + 1];
    match std::fs::read_dir("/proc") {
        Ok(dir) => {
            let mut path = String::with_capacity(32);
            for entry in dir.flatten() {
                let name = entry.file_name();
                let Some(pid) = name
                    .to_str()
                    .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                else {
                    continue;
                };
                path.clear();
                path.push_str("/proc/");
                path.push_str(pid);
                path.push_str("/stat");
                // A process that exits during the walk is simply not counted.
                if super::read_proc("processes", &path, buf).is_ok() {
                    counts[state_letter(buf).map_or(UNKNOWN, status_index)] += 1;
                }
            }
        }
        Err(source) => {
            c.errors.push(ScrapeError::Read {
                scraper: "processes",
                path: "/proc".to_owned(),
                source,
            });
            return;
        }
    }
    if let Some(running) = stat.kernel.procs_running {
        counts[0] = u64::from(running);
    }
    if let Some(blocked) = stat.kernel.procs_blocked {
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
    let mut created = MetricBuilder::new(PROCESSES_CREATED, time, boot);
    created.int(stat.kernel.processes, Vec::new());
    created.finish(&mut c.metrics);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_letter_survives_parentheses_in_names() {
        assert_eq!(state_letter(b"1 (systemd) S 0 1 1 0"), Some(b'S'));
        assert_eq!(state_letter(b"42 (a) b) (c) Z 1 42"), Some(b'Z'));
        assert_eq!(state_letter(b"7 (kworker/0:1) I 2 0"), Some(b'I'));
        assert_eq!(state_letter(b"garbage"), None);
        assert_eq!(state_letter(b"1 (x)"), None);
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
