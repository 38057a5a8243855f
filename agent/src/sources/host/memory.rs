//! Memory by state from `/proc/meminfo`; paging (swap) usage per device
//! from `/proc/swaps`, paging operations and faults from `/proc/vmstat`.
//!
//! Memory states partition `MemTotal`: `free` (MemFree), `buffered`
//! (Buffers), `cached` (Cached: the page cache alone), `slab_reclaimable`
//! (SReclaimable), `slab_unreclaimable` (SUnreclaim) and `used`, the rest.
//! So the six states sum to the total and their utilizations to 1, which
//! the semantic conventions ask for. This differs from the hostmetrics
//! receiver, whose `cached` (from gopsutil) already contains SReclaimable,
//! counting it twice (opentelemetry-collector-contrib issue 14909).
//!
//! Paging usage reports `used` and `free` per swap device, as the receiver
//! does on Linux; paging operations and faults follow its mapping
//! (`pswpin`/`pswpout` are major page-ins/outs, `pgpgin`/`pgpgout` minor;
//! minor faults are `pgfault` less `pgmajfault`).

use std::sync::Arc;
use std::time::SystemTime;

use procfs::{FromRead, Meminfo};

use super::model::{Attribute, Descriptor, MetricBuilder, MetricKind};
use super::{Collection, CounterGuard, Interner, parse_error, read_proc};

pub(crate) const MEMORY_USAGE: Descriptor = Descriptor {
    name: "system.memory.usage",
    description: "Bytes of memory in use.",
    unit: "By",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const MEMORY_UTILIZATION: Descriptor = Descriptor {
    name: "system.memory.utilization",
    description: "Percentage of memory bytes in use.",
    unit: "1",
    kind: MetricKind::Gauge,
};
pub(crate) const PAGING_USAGE: Descriptor = Descriptor {
    name: "system.paging.usage",
    description: "Swap (unix) or pagefile (windows) usage.",
    unit: "By",
    kind: MetricKind::NonMonotonicSum,
};
pub(crate) const PAGING_UTILIZATION: Descriptor = Descriptor {
    name: "system.paging.utilization",
    description: "Swap (unix) or pagefile (windows) utilization.",
    unit: "1",
    kind: MetricKind::Gauge,
};
pub(crate) const PAGING_OPERATIONS: Descriptor = Descriptor {
    name: "system.paging.operations",
    description: "The number of paging operations.",
    unit: "{operations}",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const PAGING_FAULTS: Descriptor = Descriptor {
    name: "system.paging.faults",
    description: "The number of page faults.",
    unit: "{faults}",
    kind: MetricKind::MonotonicSum,
};

/// Memory split into the receiver's states; the fields sum to `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryStates {
    pub(crate) total: u64,
    pub(crate) used: u64,
    pub(crate) free: u64,
    pub(crate) buffered: u64,
    pub(crate) cached: u64,
    pub(crate) slab_reclaimable: u64,
    pub(crate) slab_unreclaimable: u64,
}

impl MemoryStates {
    pub(crate) fn from_meminfo(m: &Meminfo) -> Self {
        let total = m.mem_total;
        // Each part is capped by what is left, so a kernel whose fields
        // overlap (slab counted in Cached on some old kernels) still gives
        // states that add up rather than a negative `used`.
        let mut left = total;
        let mut take = |v: u64| {
            let v = v.min(left);
            left -= v;
            v
        };
        let free = take(m.mem_free);
        let buffered = take(m.buffers);
        let cached = take(m.cached);
        let slab_reclaimable = take(m.s_reclaimable.unwrap_or(0));
        let slab_unreclaimable = take(m.s_unreclaim.unwrap_or(0));
        MemoryStates {
            total,
            used: left,
            free,
            buffered,
            cached,
            slab_reclaimable,
            slab_unreclaimable,
        }
    }

    pub(crate) fn states(&self) -> [(&'static str, u64); 6] {
        [
            ("used", self.used),
            ("free", self.free),
            ("buffered", self.buffered),
            ("cached", self.cached),
            ("slab_reclaimable", self.slab_reclaimable),
            ("slab_unreclaimable", self.slab_unreclaimable),
        ]
    }
}

const MEMINFO: &str = "/proc/meminfo";

pub(crate) fn record_memory(
    buf: &mut Vec<u8>,
    time: SystemTime,
    boot: SystemTime,
    c: &mut Collection,
) {
    if let Err(e) = read_proc("memory", MEMINFO, buf) {
        c.errors.push(e);
        return;
    }
    let meminfo = match Meminfo::from_read(&buf[..]) {
        Ok(m) => m,
        Err(e) => {
            c.errors.push(parse_error("memory", MEMINFO, e));
            return;
        }
    };
    let states = MemoryStates::from_meminfo(&meminfo);
    let mut usage = MetricBuilder::new(MEMORY_USAGE, time, boot);
    let mut utilization = MetricBuilder::new(MEMORY_UTILIZATION, time, boot);
    for (state, bytes) in states.states() {
        usage.int(bytes, vec![Attribute::fixed("state", state)]);
        if states.total > 0 {
            utilization.double(
                bytes as f64 / states.total as f64,
                vec![Attribute::fixed("state", state)],
            );
        }
    }
    usage.finish(&mut c.metrics);
    utilization.finish(&mut c.metrics);
}

/// One line of `/proc/swaps`, sizes in bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SwapDevice<'a> {
    pub(crate) name: &'a str,
    pub(crate) size: u64,
    pub(crate) used: u64,
}

/// Parses `/proc/swaps` (header line, then `name type size used priority`
/// with sizes in KiB). Names with spaces are octal-escaped by the kernel,
/// so whitespace splitting is safe. Malformed lines are skipped.
pub(crate) fn parse_swaps(text: &str) -> impl Iterator<Item = SwapDevice<'_>> {
    text.lines().skip(1).filter_map(|line| {
        let mut f = line.split_whitespace();
        let name = f.next()?;
        let _kind = f.next()?;
        let size: u64 = f.next()?.parse().ok()?;
        let used: u64 = f.next()?.parse().ok()?;
        Some(SwapDevice {
            name,
            size: size.saturating_mul(1024),
            used: used.saturating_mul(1024).min(size.saturating_mul(1024)),
        })
    })
}

/// The `/proc/vmstat` counters paging needs, found by a scan of the
/// buffer: procfs' `VmStat` builds a map of all ~180 counters, which is
/// work thrown away every second.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct PagingCounters {
    pub(crate) pswpin: u64,
    pub(crate) pswpout: u64,
    pub(crate) pgpgin: u64,
    pub(crate) pgpgout: u64,
    pub(crate) pgfault: u64,
    pub(crate) pgmajfault: u64,
}

pub(crate) fn parse_vmstat(text: &str) -> PagingCounters {
    let mut p = PagingCounters::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let slot = match key {
            "pswpin" => &mut p.pswpin,
            "pswpout" => &mut p.pswpout,
            "pgpgin" => &mut p.pgpgin,
            "pgpgout" => &mut p.pgpgout,
            "pgfault" => &mut p.pgfault,
            "pgmajfault" => &mut p.pgmajfault,
            _ => continue,
        };
        *slot = value.trim().parse().unwrap_or(0);
    }
    p
}

pub(crate) fn record_paging(
    buf: &mut Vec<u8>,
    names: &mut Interner,
    counters: &mut CounterGuard,
    time: SystemTime,
    boot: SystemTime,
    c: &mut Collection,
) {
    const SWAPS: &str = "/proc/swaps";
    const VMSTAT: &str = "/proc/vmstat";
    match read_proc("paging", SWAPS, buf) {
        Err(e) => c.errors.push(e),
        Ok(()) => {
            let text = String::from_utf8_lossy(buf);
            let mut usage = MetricBuilder::new(PAGING_USAGE, time, boot);
            let mut utilization = MetricBuilder::new(PAGING_UTILIZATION, time, boot);
            for dev in parse_swaps(&text).take(super::MAX_DEVICES) {
                let device = names.get(dev.name);
                let free = dev.size - dev.used;
                for (state, bytes) in [("used", dev.used), ("free", free)] {
                    usage.int(bytes, attrs(&device, state));
                    if dev.size > 0 {
                        utilization.double(bytes as f64 / dev.size as f64, attrs(&device, state));
                    }
                }
            }
            usage.finish(&mut c.metrics);
            utilization.finish(&mut c.metrics);
        }
    }
    match read_proc("paging", VMSTAT, buf) {
        Err(e) => c.errors.push(e),
        Ok(()) => {
            let p = parse_vmstat(&String::from_utf8_lossy(buf));
            let all = names.get("");
            let mut ops = MetricBuilder::new(PAGING_OPERATIONS, time, boot);
            for (i, (direction, kind, v)) in [
                ("page_in", "major", p.pswpin),
                ("page_out", "major", p.pswpout),
                ("page_in", "minor", p.pgpgin),
                ("page_out", "minor", p.pgpgout),
            ]
            .into_iter()
            .enumerate()
            {
                let v = counters.hold(PAGING_OPERATIONS.name, &all, i as u8, v);
                ops.int(
                    v,
                    vec![
                        Attribute::fixed("direction", direction),
                        Attribute::fixed("type", kind),
                    ],
                );
            }
            ops.finish(&mut c.metrics);
            let mut faults = MetricBuilder::new(PAGING_FAULTS, time, boot);
            let major = counters.hold(PAGING_FAULTS.name, &all, 0, p.pgmajfault);
            let minor = counters.hold(
                PAGING_FAULTS.name,
                &all,
                1,
                p.pgfault.saturating_sub(p.pgmajfault),
            );
            faults.int(major, vec![Attribute::fixed("type", "major")]);
            faults.int(minor, vec![Attribute::fixed("type", "minor")]);
            faults.finish(&mut c.metrics);
        }
    }
}

fn attrs(device: &Arc<str>, state: &'static str) -> Vec<Attribute> {
    vec![
        Attribute::shared("device", device),
        Attribute::fixed("state", state),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a 4 GiB VM.
    const MEMINFO_TEXT: &str = "\
MemTotal:        4015944 kB
MemFree:          220468 kB
MemAvailable:    2712280 kB
Buffers:          123456 kB
Cached:          2223412 kB
SwapCached:         1024 kB
Active:          1588204 kB
Inactive:        1703196 kB
SwapTotal:       2097148 kB
SwapFree:        2000000 kB
Dirty:               124 kB
Writeback:             0 kB
AnonPages:        944420 kB
Mapped:           431412 kB
Shmem:             12380 kB
Slab:             301212 kB
SReclaimable:     201000 kB
SUnreclaim:       100212 kB
Committed_AS:    3000000 kB
VmallocTotal:   34359738367 kB
VmallocUsed:       30000 kB
VmallocChunk:          0 kB
";

    #[test]
    fn memory_states_partition_the_total() {
        let m = match Meminfo::from_read(MEMINFO_TEXT.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        let s = MemoryStates::from_meminfo(&m);
        assert_eq!(s.total, 4015944 * 1024);
        assert_eq!(s.cached, 2223412 * 1024, "page cache without slab");
        assert_eq!(s.slab_reclaimable, 201000 * 1024);
        assert_eq!(
            s.used,
            (4015944 - 220468 - 123456 - 2223412 - 201000 - 100212) * 1024
        );
        let sum: u64 = s.states().iter().map(|(_, v)| v).sum();
        assert_eq!(sum, s.total);
    }

    #[test]
    fn overlapping_fields_never_make_used_negative() {
        let text = "MemTotal: 100 kB\nMemFree: 60 kB\nBuffers: 10 kB\nCached: 50 kB\n\
                    SwapCached: 0 kB\nActive: 0 kB\nInactive: 0 kB\nSwapTotal: 0 kB\n\
                    SwapFree: 0 kB\nDirty: 0 kB\nWriteback: 0 kB\nMapped: 0 kB\n\
                    Slab: 0 kB\nShmem: 0 kB\nCommitted_AS: 0 kB\nVmallocTotal: 0 kB\n\
                    VmallocUsed: 0 kB\nVmallocChunk: 0 kB\n";
        let m = match Meminfo::from_read(text.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        let s = MemoryStates::from_meminfo(&m);
        assert_eq!(
            (s.free, s.buffered, s.cached, s.used),
            (60 * 1024, 10 * 1024, 30 * 1024, 0)
        );
    }

    #[test]
    fn swaps_parse_in_bytes_and_skip_junk() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /dev/dm-1                               partition\t2097148\t\t97148\t\t-2\n\
                    /swap\\040file                           file\t\t1024\t\t0\t\t-3\n\
                    broken line\n";
        let devices: Vec<_> = parse_swaps(text).collect();
        assert_eq!(
            devices,
            vec![
                SwapDevice {
                    name: "/dev/dm-1",
                    size: 2097148 * 1024,
                    used: 97148 * 1024
                },
                SwapDevice {
                    name: "/swap\\040file",
                    size: 1024 * 1024,
                    used: 0
                },
            ]
        );
    }

    #[test]
    fn vmstat_scan_finds_paging_counters() {
        let text = "nr_free_pages 55117\npgpgin 1829624\npgpgout 4711\npswpin 12\n\
                    pswpout 34\npgfault 99000\npgmajfault 1000\npgfault_other 5\n";
        assert_eq!(
            parse_vmstat(text),
            PagingCounters {
                pswpin: 12,
                pswpout: 34,
                pgpgin: 1829624,
                pgpgout: 4711,
                pgfault: 99000,
                pgmajfault: 1000,
            }
        );
    }

    proptest::proptest! {
        /// For any meminfo figures, overlapping or not, the six states add
        /// up to MemTotal exactly.
        #[test]
        fn memory_states_partition_any_meminfo(
            total in 0u64..1 << 40,
            parts in proptest::array::uniform5(0u64..1 << 40),
        ) {
            let [free, buffers, cached, sreclaimable, sunreclaim] = parts;
            let text = format!(
                "MemTotal: {total} kB\nMemFree: {free} kB\nBuffers: {buffers} kB\n\
                 Cached: {cached} kB\nSwapCached: 0 kB\nActive: 0 kB\nInactive: 0 kB\n\
                 SwapTotal: 0 kB\nSwapFree: 0 kB\nDirty: 0 kB\nWriteback: 0 kB\n\
                 Mapped: 0 kB\nSlab: 0 kB\nSReclaimable: {sreclaimable} kB\n\
                 SUnreclaim: {sunreclaim} kB\nCommitted_AS: 0 kB\nVmallocTotal: 0 kB\n\
                 VmallocUsed: 0 kB\nVmallocChunk: 0 kB\n"
            );
            let m = Meminfo::from_read(text.as_bytes()).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let s = MemoryStates::from_meminfo(&m);
            let sum: u64 = s.states().iter().map(|(_, v)| v).sum();
            proptest::prop_assert_eq!(sum, total * 1024);
        }
    }
}
