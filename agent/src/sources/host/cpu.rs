//! CPU time per logical CPU and state from `/proc/stat`, and the
//! utilization derived from two readings of those counters.
//!
//! Invariants: `system.cpu.time` never decreases for a (cpu, state) pair
//! (the kernel's per-CPU iowait can step back; the last reported value is
//! held instead); `system.cpu.utilization` is emitted only from the second
//! collection on, per CPU, as the share of each state in the ticks that
//! CPU accumulated since the previous collection, so its states sum to 1
//! and each lies in [0, 1]. The `cpu` attribute is the kernel's CPU number
//! (`cpu3`), which stays right when CPUs are offline and lines are missing.
//! Guest time is already part of user time in the kernel's accounting, so
//! it is not a state of its own (as in the hostmetrics receiver).

use std::sync::Arc;
use std::time::SystemTime;

use procfs::{FromReadSI, KernelStats, SystemInfo};

use super::model::{Attribute, Descriptor, MetricBuilder, MetricKind};
use super::{Collection, read_proc};

pub(crate) const CPU_TIME: Descriptor = Descriptor {
    name: "system.cpu.time",
    description: "Total seconds each logical CPU spent on each mode.",
    unit: "s",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const CPU_UTILIZATION: Descriptor = Descriptor {
    name: "system.cpu.utilization",
    description: "Difference in system.cpu.time since the last measurement per logical CPU, \
                  divided by the elapsed time (value in interval [0,1]).",
    unit: "1",
    kind: MetricKind::Gauge,
};

/// The receiver's states, in the order of [`ticks_of`].
const STATES: [&str; 8] = [
    "user",
    "system",
    "idle",
    "interrupt",
    "nice",
    "softirq",
    "steal",
    "wait",
];

const PATH: &str = "/proc/stat";

/// One parse of `/proc/stat`: shared by the cpu and processes scrapers.
pub(crate) struct Stat {
    pub(crate) kernel: KernelStats,
    /// The kernel's number of each entry of `kernel.cpu_time`.
    pub(crate) cpu_ids: Vec<u32>,
    pub(crate) ticks_per_second: u64,
}

pub(crate) fn read_stat(buf: &mut Vec<u8>, c: &mut Collection) -> Option<Stat> {
    if let Err(e) = read_proc("cpu", PATH, buf) {
        c.errors.push(e);
        return None;
    }
    match parse_stat(buf, procfs::current_system_info()) {
        Ok(stat) => Some(stat),
        Err(e) => {
            c.errors.push(super::parse_error("cpu", PATH, e));
            None
        }
    }
}

pub(crate) fn parse_stat(text: &[u8], si: &SystemInfo) -> Result<Stat, procfs::ProcError> {
    let kernel = KernelStats::from_read(text, si)?;
    let mut cpu_ids: Vec<u32> = text
        .split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"cpu"))
        .filter(|rest| rest.first().is_some_and(u8::is_ascii_digit))
        .filter_map(|rest| {
            let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
            std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
        })
        .collect();
    if cpu_ids.len() != kernel.cpu_time.len() {
        // Cannot happen with the kernel's format; numbering by position
        // is the best remaining guess.
        cpu_ids = (0..kernel.cpu_time.len())
            .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
            .collect();
    }
    Ok(Stat {
        kernel,
        cpu_ids,
        ticks_per_second: si.ticks_per_second().max(1),
    })
}

fn ticks_of(t: &procfs::CpuTime) -> [u64; 8] {
    [
        t.user,
        t.system,
        t.idle,
        t.irq.unwrap_or(0),
        t.nice,
        t.softirq.unwrap_or(0),
        t.steal.unwrap_or(0),
        t.iowait.unwrap_or(0),
    ]
}

struct CpuTicks {
    id: u32,
    name: Arc<str>,
    /// Reported ticks, never below an earlier report.
    ticks: [u64; 8],
}

/// The previous reading, for utilization and for holding counters.
#[derive(Default)]
pub(crate) struct CpuState {
    prev: Vec<CpuTicks>,
    next: Vec<CpuTicks>,
}

impl CpuState {
    pub(crate) fn record(
        &mut self,
        stat: &Stat,
        time: SystemTime,
        boot: SystemTime,
        out: &mut Vec<super::Metric>,
    ) {
        let tps = stat.ticks_per_second as f64;
        let mut cpu_time = MetricBuilder::new(CPU_TIME, time, boot);
        let mut utilization = MetricBuilder::new(CPU_UTILIZATION, time, boot);
        self.next.clear();
        for (id, times) in stat.cpu_ids.iter().zip(&stat.kernel.cpu_time) {
            let mut ticks = ticks_of(times);
            let prev = self.prev.iter().find(|p| p.id == *id);
            let name = match prev {
                Some(p) => Arc::clone(&p.name),
                None => Arc::from(format!("cpu{id}")),
            };
            if let Some(p) = prev {
                for (now, before) in ticks.iter_mut().zip(p.ticks) {
                    *now = (*now).max(before);
                }
                let deltas: [u64; 8] = std::array::from_fn(|i| ticks[i] - p.ticks[i]);
                let total: u64 = deltas.iter().sum();
                if total > 0 {
                    for (state, delta) in STATES.iter().zip(deltas) {
                        utilization.double(
                            delta as f64 / total as f64,
                            vec![
                                Attribute::shared("cpu", &name),
                                Attribute::fixed("state", state),
                            ],
                        );
                    }
                }
            }
            for (state, t) in STATES.iter().zip(ticks) {
                cpu_time.double(
                    t as f64 / tps,
                    vec![
                        Attribute::shared("cpu", &name),
                        Attribute::fixed("state", state),
                    ],
                );
            }
            self.next.push(CpuTicks {
                id: *id,
                name,
                ticks,
            });
        }
        std::mem::swap(&mut self.prev, &mut self.next);
        cpu_time.finish(out);
        utilization.finish(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::host::model::{AttributeValue, Value};
    use procfs::ExplicitSystemInfo;
    use std::time::Duration;

    const SI: ExplicitSystemInfo = ExplicitSystemInfo {
        boot_time_secs: 1_700_000_000,
        ticks_per_second: 100,
        page_size: 4096,
        is_little_endian: true,
    };

    // Captured on a 4-CPU host with cpu2 offline.
    const STAT_1: &str = "\
cpu  1000 20 300 50000 40 5 6 7 0 0
cpu0 500 10 150 25000 20 3 3 4 0 0
cpu1 400 10 100 20000 20 2 3 3 0 0
cpu3 100 0 50 5000 0 0 0 0 0 0
intr 123 0 0
ctxt 456789
btime 1700000000
processes 4242
procs_running 3
procs_blocked 1
softirq 1 2 3
";
    // cpu0: +100 ticks (60 user, 40 idle); cpu1: iowait stepped back by 1.
    const STAT_2: &str = "\
cpu  1100 20 300 50040 39 5 6 7 0 0
cpu0 560 10 150 25040 20 3 3 4 0 0
cpu1 400 10 100 20000 19 2 3 3 0 0
cpu3 100 0 50 5000 0 0 0 0 0 0
ctxt 456790
btime 1700000000
processes 4250
procs_running 1
procs_blocked 0
";

    fn stat(text: &str) -> Stat {
        match parse_stat(text.as_bytes(), &SI) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    fn point(m: &crate::sources::host::Metric, cpu: &str, state: &str) -> f64 {
        let p = m.points.iter().find(|p| {
            p.attribute("cpu").and_then(AttributeValue::as_str) == Some(cpu)
                && p.attribute("state").and_then(AttributeValue::as_str) == Some(state)
        });
        match p.map(|p| p.value) {
            Some(Value::Double(v)) => v,
            other => panic!("{cpu}/{state}: {other:?}"),
        }
    }

    #[test]
    fn parses_per_cpu_ticks_with_kernel_numbers() {
        let s = stat(STAT_1);
        assert_eq!(s.cpu_ids, vec![0, 1, 3]);
        assert_eq!(s.kernel.processes, 4242);
        assert_eq!(s.kernel.procs_running, Some(3));
        assert_eq!(s.kernel.btime, 1_700_000_000);
        assert_eq!(
            ticks_of(&s.kernel.cpu_time[0]),
            [500, 150, 25000, 3, 10, 3, 4, 20]
        );
    }

    #[test]
    fn time_in_seconds_then_utilization_from_deltas() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100);
        let boot = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut state = CpuState::default();
        let mut out = Vec::new();
        state.record(&stat(STAT_1), t0, boot, &mut out);
        assert_eq!(out.len(), 1, "no utilization from a single reading");
        assert_eq!(out[0].points.len(), 3 * 8);
        assert_eq!(point(&out[0], "cpu3", "system"), 0.5);
        assert_eq!(point(&out[0], "cpu0", "wait"), 0.2);
        assert_eq!(out[0].points[0].start_time, Some(boot));

        let mut out = Vec::new();
        state.record(&stat(STAT_2), t0 + Duration::from_secs(1), boot, &mut out);
        let (time, util) = (&out[0], &out[1]);
        assert_eq!(util.descriptor, CPU_UTILIZATION);
        assert_eq!(point(util, "cpu0", "user"), 0.6);
        assert_eq!(point(util, "cpu0", "idle"), 0.4);
        assert_eq!(point(util, "cpu0", "system"), 0.0);
        // cpu1's iowait went 20 -> 19: held at 20, no negative share.
        assert_eq!(point(time, "cpu1", "wait"), 0.2);
        // cpu1 and cpu3 accumulated nothing: no utilization rather than 0/0.
        assert!(
            util.points
                .iter()
                .all(|p| p.attribute("cpu").and_then(AttributeValue::as_str) == Some("cpu0"))
        );
        assert!(util.points.iter().all(|p| p.start_time.is_none()));
    }

    #[test]
    fn malformed_stat_is_an_error() {
        assert!(parse_stat(b"cpu  1 2 x\n", &SI).is_err());
        assert!(parse_stat(b"", &SI).is_err());
    }

    /// Renders per-CPU tick lines as /proc/stat would, CPU numbers given.
    fn render(cpus: &[(u32, [u64; 8])]) -> String {
        let mut text = String::from("cpu  0 0 0 0 0 0 0 0 0 0\n");
        for (id, t) in cpus {
            // /proc/stat order: user nice system idle iowait irq softirq steal.
            text.push_str(&format!(
                "cpu{id} {} {} {} {} {} {} {} {} 0 0\n",
                t[0], t[4], t[1], t[2], t[7], t[3], t[5], t[6]
            ));
        }
        text.push_str("ctxt 1\nbtime 1700000000\nprocesses 1\n");
        text
    }

    proptest::proptest! {
        /// Whatever the kernel reports from one reading to the next (steps
        /// back, CPUs going offline), cpu time never decreases from one
        /// reading to the next and each CPU's
        /// utilization states lie in [0, 1] and sum to 1.
        #[test]
        fn cpu_invariants_hold_for_any_readings(
            readings in proptest::collection::vec(
                proptest::collection::vec(proptest::array::uniform8(0u64..1_000_000), 1..4),
                2..6,
            )
        ) {
            let boot = SystemTime::UNIX_EPOCH;
            let mut state = CpuState::default();
            let mut last: std::collections::HashMap<String, f64> = Default::default();
            for (n, reading) in readings.iter().enumerate() {
                let cpus: Vec<(u32, [u64; 8])> =
                    reading.iter().enumerate().map(|(i, t)| (i as u32 * 2, *t)).collect();
                let mut out = Vec::new();
                state.record(&stat(&render(&cpus)), boot + Duration::from_secs(n as u64), boot, &mut out);
                let time = &out[0];
                // Compared with the previous reading only: a CPU that went
                // offline starts a new series when it returns.
                let mut now = std::collections::HashMap::new();
                for p in &time.points {
                    let key = format!("{:?}", p.attributes);
                    let v = p.value.as_f64();
                    if let Some(before) = last.get(&key) {
                        proptest::prop_assert!(v >= *before, "{key}: {before} -> {v}");
                    }
                    now.insert(key, v);
                }
                last = now;
                if let Some(util) = out.get(1) {
                    let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
                    for p in &util.points {
                        let v = p.value.as_f64();
                        proptest::prop_assert!((0.0..=1.0).contains(&v));
                        let cpu = p.attribute("cpu").and_then(AttributeValue::as_str).unwrap_or("").to_owned();
                        *sums.entry(cpu).or_default() += v;
                    }
                    for (cpu, sum) in sums {
                        proptest::prop_assert!((sum - 1.0).abs() < 1e-9, "{cpu}: {sum}");
                    }
                }
            }
        }
    }
}
