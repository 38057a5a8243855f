//! Block-device I/O from `/proc/diskstats`: the hostmetrics receiver's
//! `system.disk.*` metrics, all of which it enables by default.
//!
//! Sectors in `/proc/diskstats` are always 512 bytes, whatever the
//! device's sector size (the kernel's documented unit). Partitions are
//! reported beside their disk, as in the receiver, so summing over all
//! devices counts partition I/O twice: select with `device`.

use std::time::SystemTime;

use procfs::{DiskStat, DiskStats, FromRead};

use super::config::DeviceFilter;
use super::model::{Attribute, Descriptor, MetricBuilder, MetricKind};
use super::{Collection, CounterGuard, Interner, MAX_DEVICES, ScrapeError, parse_error, read_proc};

pub(crate) const DISK_IO: Descriptor = Descriptor {
    name: "system.disk.io",
    description: "Disk bytes transferred.",
    unit: "By",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const DISK_OPERATIONS: Descriptor = Descriptor {
    name: "system.disk.operations",
    description: "Disk operations count.",
    unit: "{operations}",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const DISK_IO_TIME: Descriptor = Descriptor {
    name: "system.disk.io_time",
    description: "Time disk spent activated.",
    unit: "s",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const DISK_OPERATION_TIME: Descriptor = Descriptor {
    name: "system.disk.operation_time",
    description: "Time spent in disk operations.",
    unit: "s",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const DISK_WEIGHTED_IO_TIME: Descriptor = Descriptor {
    name: "system.disk.weighted_io_time",
    description: "Time disk spent activated multiplied by the queue length.",
    unit: "s",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const DISK_PENDING_OPERATIONS: Descriptor = Descriptor {
    name: "system.disk.pending_operations",
    description: "The queue size of pending I/O operations.",
    unit: "{operations}",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const DISK_MERGED: Descriptor = Descriptor {
    name: "system.disk.merged",
    description: "The number of disk reads/writes merged into single physical disk access operations.",
    unit: "{operations}",
    kind: MetricKind::MonotonicSum,
};

const PATH: &str = "/proc/diskstats";
const SECTOR: u64 = 512;

pub(crate) fn parse(text: &[u8]) -> Result<Vec<DiskStat>, procfs::ProcError> {
    DiskStats::from_read(text).map(|d| d.0)
}

pub(crate) fn record(
    filter: &DeviceFilter,
    buf: &mut Vec<u8>,
    names: &mut Interner,
    counters: &mut CounterGuard,
    time: SystemTime,
    boot: SystemTime,
    c: &mut Collection,
) {
    if let Err(e) = read_proc("disk", PATH, buf) {
        c.errors.push(e);
        return;
    }
    let disks = match parse(buf) {
        Ok(d) => d,
        Err(e) => {
            c.errors.push(parse_error("disk", PATH, e));
            return;
        }
    };
    let mut io = MetricBuilder::new(DISK_IO, time, boot);
    let mut ops = MetricBuilder::new(DISK_OPERATIONS, time, boot);
    let mut io_time = MetricBuilder::new(DISK_IO_TIME, time, boot);
    let mut op_time = MetricBuilder::new(DISK_OPERATION_TIME, time, boot);
    let mut weighted = MetricBuilder::new(DISK_WEIGHTED_IO_TIME, time, boot);
    let mut pending = MetricBuilder::new(DISK_PENDING_OPERATIONS, time, boot);
    let mut merged = MetricBuilder::new(DISK_MERGED, time, boot);
    let mut seen = 0;
    for d in disks.iter().filter(|d| filter.includes(&d.name)) {
        seen += 1;
        if seen > MAX_DEVICES {
            continue;
        }
        let dev = names.get(&d.name);
        let mut held =
            |metric: &'static str, index: u8, v: u64| counters.hold(metric, &dev, index, v);
        let rw = |direction: &'static str| {
            vec![
                Attribute::shared("device", &dev),
                Attribute::fixed("direction", direction),
            ]
        };
        let one = || vec![Attribute::shared("device", &dev)];
        let secs = |ms: u64| ms as f64 / 1000.0;

        io.int(
            held(DISK_IO.name, 0, d.sectors_read.saturating_mul(SECTOR)),
            rw("read"),
        );
        io.int(
            held(DISK_IO.name, 1, d.sectors_written.saturating_mul(SECTOR)),
            rw("write"),
        );
        ops.int(held(DISK_OPERATIONS.name, 0, d.reads), rw("read"));
        ops.int(held(DISK_OPERATIONS.name, 1, d.writes), rw("write"));
        io_time.double(secs(held(DISK_IO_TIME.name, 0, d.time_in_progress)), one());
        op_time.double(
            secs(held(DISK_OPERATION_TIME.name, 0, d.time_reading)),
            rw("read"),
        );
        op_time.double(
            secs(held(DISK_OPERATION_TIME.name, 1, d.time_writing)),
            rw("write"),
        );
        weighted.double(
            secs(held(
                DISK_WEIGHTED_IO_TIME.name,
                0,
                d.weighted_time_in_progress,
            )),
            one(),
        );
        pending.int(d.in_progress, one());
        merged.int(held(DISK_MERGED.name, 0, d.merged), rw("read"));
        merged.int(held(DISK_MERGED.name, 1, d.writes_merged), rw("write"));
    }
    if seen > MAX_DEVICES {
        c.errors.push(ScrapeError::Truncated {
            scraper: "disk",
            what: "devices",
            seen,
            limit: MAX_DEVICES,
        });
    }
    for m in [io, ops, io_time, op_time, weighted, pending, merged] {
        m.finish(&mut c.metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a kernel 6.1 host (20 fields: discards and flushes).
    const DISKSTATS: &str = "\
 259       0 nvme0n1 94528 31200 6143702 21820 416337 229071 17232674 442384 0 240848 478676 0 0 0 0 31552 14471
 259       1 nvme0n1p1 227 1002 12582 43 2 0 2 0 0 76 44 0 0 0 0 0 0
   7       0 loop0 59 0 2168 18 0 0 0 0 0 80 18 0 0 0 0 0 0
 253       0 dm-0 71 0 3426 11 0 0 0 0 0 24 11 0 0 0 0 0 0
";

    #[test]
    fn parses_captured_diskstats() {
        let disks = match parse(DISKSTATS.as_bytes()) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(disks.len(), 4);
        let d = &disks[0];
        assert_eq!(d.name, "nvme0n1");
        assert_eq!(
            (d.reads, d.merged, d.sectors_read, d.time_reading),
            (94528, 31200, 6143702, 21820)
        );
        assert_eq!((d.writes, d.sectors_written), (416337, 17232674));
        assert_eq!(
            (
                d.in_progress,
                d.time_in_progress,
                d.weighted_time_in_progress
            ),
            (0, 240848, 478676)
        );
    }

    #[test]
    fn malformed_diskstats_is_an_error() {
        assert!(parse(b"   8 0 sda 1 2\n").is_err());
    }
}
