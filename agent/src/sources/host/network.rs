//! Network interface counters from `/proc/net/dev`: bytes, packets,
//! errors and drops per interface and direction.
//!
//! One read of one file gives every counter of every interface at one
//! instant; sysinfo's network list reads several files per interface
//! under `/sys/class/net` and has no drop counters, so it is not used.
//! Interfaces are reported in name order, so the output is stable.

use std::time::SystemTime;

use procfs::FromRead;
use procfs::net::{DeviceStatus, InterfaceDeviceStatus};

use super::config::DeviceFilter;
use super::model::{Attribute, Descriptor, MetricBuilder, MetricKind};
use super::{Collection, CounterGuard, Interner, MAX_DEVICES, ScrapeError, parse_error, read_proc};

pub(crate) const NETWORK_IO: Descriptor = Descriptor {
    name: "system.network.io",
    description: "The number of bytes transmitted and received.",
    unit: "By",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const NETWORK_PACKETS: Descriptor = Descriptor {
    name: "system.network.packets",
    description: "The number of packets transferred.",
    unit: "{packets}",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const NETWORK_ERRORS: Descriptor = Descriptor {
    name: "system.network.errors",
    description: "The number of errors encountered.",
    unit: "{errors}",
    kind: MetricKind::MonotonicSum,
};
pub(crate) const NETWORK_DROPPED: Descriptor = Descriptor {
    name: "system.network.dropped",
    description: "The number of packets dropped.",
    unit: "{packets}",
    kind: MetricKind::MonotonicSum,
};

const PATH: &str = "/proc/net/dev";

pub(crate) fn parse(text: &[u8]) -> Result<Vec<DeviceStatus>, procfs::ProcError> {
    let mut devices: Vec<DeviceStatus> = InterfaceDeviceStatus::from_read(text)?
        .0
        .into_values()
        .collect();
    devices.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(devices)
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
    if let Err(e) = read_proc("network", PATH, buf) {
        c.errors.push(e);
        return;
    }
    let devices = match parse(buf) {
        Ok(d) => d,
        Err(e) => {
            c.errors.push(parse_error("network", PATH, e));
            return;
        }
    };
    let mut builders = [
        MetricBuilder::new(NETWORK_IO, time, boot),
        MetricBuilder::new(NETWORK_PACKETS, time, boot),
        MetricBuilder::new(NETWORK_ERRORS, time, boot),
        MetricBuilder::new(NETWORK_DROPPED, time, boot),
    ];
    let mut seen = 0;
    for d in devices.iter().filter(|d| filter.includes(&d.name)) {
        seen += 1;
        if seen > MAX_DEVICES {
            continue;
        }
        let dev = names.get(&d.name);
        let figures = [
            (d.recv_bytes, d.sent_bytes),
            (d.recv_packets, d.sent_packets),
            (d.recv_errs, d.sent_errs),
            (d.recv_drop, d.sent_drop),
        ];
        for (builder, (receive, transmit)) in builders.iter_mut().zip(figures) {
            let name = builder.name();
            for (j, (direction, v)) in [("receive", receive), ("transmit", transmit)]
                .into_iter()
                .enumerate()
            {
                let v = counters.hold(name, &dev, j as u8, v);
                builder.int(
                    v,
                    vec![
                        Attribute::shared("device", &dev),
                        Attribute::fixed("direction", direction),
                    ],
                );
            }
        }
    }
    if seen > MAX_DEVICES {
        c.errors.push(ScrapeError::Truncated {
            scraper: "network",
            what: "interfaces",
            seen,
            limit: MAX_DEVICES,
        });
    }
    for b in builders {
        b.finish(&mut c.metrics);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 8154312   61122    0    0    0     0          0         0  8154312   61122    0    0    0     0       0          0
  eth0: 912345678 700000   3   17    0     0          0       120 123456789 500000    1    2    0     0       0          0
";

    #[test]
    fn parses_drops_and_errors_per_direction_in_name_order() {
        let devices = match parse(NET_DEV.as_bytes()) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        };
        let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, vec!["eth0", "lo"]);
        let eth0 = &devices[0];
        assert_eq!((eth0.recv_bytes, eth0.recv_packets), (912345678, 700000));
        assert_eq!((eth0.recv_errs, eth0.recv_drop), (3, 17));
        assert_eq!(
            (eth0.sent_bytes, eth0.sent_errs, eth0.sent_drop),
            (123456789, 1, 2)
        );
    }
}
