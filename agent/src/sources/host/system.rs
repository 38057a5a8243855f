//! Load average and uptime, through `sysinfo` on every operating system.
//! Both are gauges without attributes; the load average is the kernel's
//! own exponentially damped figure, not something the agent averages.

use std::time::SystemTime;

use super::model::{Descriptor, MetricBuilder, MetricKind};
use super::{Collection, ScrapeError};

pub(crate) const LOAD_1M: Descriptor = Descriptor {
    name: "system.cpu.load_average.1m",
    description: "Average CPU Load over 1 minute.",
    unit: "{thread}",
    kind: MetricKind::Gauge,
};
pub(crate) const LOAD_5M: Descriptor = Descriptor {
    name: "system.cpu.load_average.5m",
    description: "Average CPU Load over 5 minutes.",
    unit: "{thread}",
    kind: MetricKind::Gauge,
};
pub(crate) const LOAD_15M: Descriptor = Descriptor {
    name: "system.cpu.load_average.15m",
    description: "Average CPU Load over 15 minutes.",
    unit: "{thread}",
    kind: MetricKind::Gauge,
};
pub(crate) const UPTIME: Descriptor = Descriptor {
    name: "system.uptime",
    description: "The time the system has been running",
    unit: "s",
    kind: MetricKind::Gauge,
};

pub(crate) fn load(time: SystemTime, c: &mut Collection) {
    match sysinfo::System::load_average() {
        Ok(load) => {
            for (descriptor, value) in [
                (LOAD_1M, load.one),
                (LOAD_5M, load.five),
                (LOAD_15M, load.fifteen),
            ] {
                let mut m = MetricBuilder::new(descriptor, time, time);
                m.double(value, Vec::new());
                m.finish(&mut c.metrics);
            }
        }
        Err(e) => c.errors.push(sysinfo_error("load", e)),
    }
}

pub(crate) fn uptime(time: SystemTime, c: &mut Collection) {
    match sysinfo::System::uptime() {
        Ok(secs) => {
            let mut m = MetricBuilder::new(UPTIME, time, time);
            // Whole seconds, as the hostmetrics receiver reports it.
            m.double(secs as f64, Vec::new());
            m.finish(&mut c.metrics);
        }
        Err(e) => c.errors.push(sysinfo_error("system", e)),
    }
}

fn sysinfo_error(scraper: &'static str, e: sysinfo::Error) -> ScrapeError {
    match e {
        sysinfo::Error::Unsupported => ScrapeError::Unsupported { scraper },
        sysinfo::Error::Io(source) => ScrapeError::Read {
            scraper,
            path: "(sysinfo)".to_owned(),
            source,
        },
        other => ScrapeError::Parse {
            scraper,
            path: "(sysinfo)".to_owned(),
            message: other.to_string(),
        },
    }
}
