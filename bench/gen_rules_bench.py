#!/usr/bin/env python3
"""Generates a large promtool-format rule unit test for benchmarking.

HOSTS hosts x 16 series each (cpu time per cpu and state, memory by state,
filesystem usage, network io, up), one day of samples at 1m, twelve
realistic rules, and alert/expression tests at times where the outcome is
unambiguous. Range windows end in 30s (e.g. [5m30s]) so no sample sits on a
window's left edge: Prometheus 2 (closed) and 3 (left-open) agree.

Usage: gen_rules_bench.py OUT_DIR [HOSTS]
Writes OUT_DIR/bench.rules.yaml and OUT_DIR/bench_test.yaml.
"""

import os
import random
import sys

RULES = """\
groups:
  - name: bench.recording
    rules:
      - record: host_name:cpu_busy:ratio_rate5m
        expr: |
          1 - sum by (host_name) (rate(system_cpu_time_seconds_total{state="idle"}[5m30s]))
            / sum by (host_name) (rate(system_cpu_time_seconds_total[5m30s]))
      - record: host_name:memory_used:ratio
        expr: |
          sum by (host_name) (system_memory_usage_bytes{state="used"})
            / sum by (host_name) (system_memory_usage_bytes)
      - record: host_name:network_io:rate5m
        expr: sum by (host_name, direction) (rate(system_network_io_bytes_total[5m30s]))
      - record: job:cpu_busy:quantile90
        expr: quantile(0.9, host_name:cpu_busy:ratio_rate5m)
  - name: bench.alerts
    rules:
      - alert: HostCpuSaturated
        expr: host_name:cpu_busy:ratio_rate5m > 0.9
        for: 10m
        labels: {severity: warning}
        annotations: {summary: '{{ $labels.host_name }}: CPU saturated'}
      - alert: HostCpuIowait
        expr: sum by (host_name) (rate(system_cpu_time_seconds_total{state="wait"}[10m30s])) > 0.5
        for: 15m
        labels: {severity: warning}
        annotations: {summary: '{{ $labels.host_name }}: disks slow'}
      - alert: HostMemoryPressure
        expr: host_name:memory_used:ratio > 0.95
        for: 5m
        labels: {severity: page}
        annotations: {summary: '{{ $labels.host_name }}: memory pressure'}
      - alert: HostFilesystemFillingUp
        expr: |
          predict_linear(system_filesystem_usage_bytes{state="free"}[1h30s], 4 * 3600) < 0
          and on (host_name) system_filesystem_usage_bytes{state="free"} < 10e9
        for: 30m
        labels: {severity: warning}
        annotations: {summary: '{{ $labels.host_name }}: disk full within 4h'}
      - alert: HostNetworkSaturated
        expr: max by (host_name) (host_name:network_io:rate5m) > 100e6
        for: 5m
        labels: {severity: warning}
        annotations: {summary: '{{ $labels.host_name }}: network saturated'}
      - alert: HostDown
        expr: up == 0
        for: 2m
        keep_firing_for: 5m
        labels: {severity: page}
        annotations: {summary: '{{ $labels.host_name }} is down'}
      - alert: HostCpuOutlier
        expr: host_name:cpu_busy:ratio_rate5m > 2 * scalar(job:cpu_busy:quantile90) and host_name:cpu_busy:ratio_rate5m > 0.5
        for: 10m
        labels: {severity: info}
        annotations: {summary: '{{ $labels.host_name }}: CPU outlier'}
      - alert: HostCountersReset
        expr: resets(system_network_io_bytes_total[30m30s]) > 3
        labels: {severity: info}
        annotations: {summary: '{{ $labels.host_name }}: network counters reset'}
"""

MINUTES = 24 * 60


def counter(rate_at, jitter, rng):
    """Cumulative values for a counter whose per-minute increase is rate_at(m)*60."""
    out, total = [], 0.0
    for m in range(MINUTES + 1):
        out.append(round(total, 3))
        total += max(0.0, rate_at(m) * 60 * (1 + rng.uniform(-jitter, jitter)))
    return out


def fmt(values):
    return " ".join(repr(v) if isinstance(v, float) else str(v) for v in values)


def main():
    out_dir = sys.argv[1]
    hosts = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    rng = random.Random(42)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench.rules.yaml"), "w") as f:
        f.write(RULES)

    series = []
    alerts = {}  # (time_minute, alertname) -> list of host names
    saturated = set(range(0, hosts, 10))  # CPU 97% busy from 06:00 to 08:00
    down = set(range(5, hosts, 25))  # down from 12:00 to 12:30
    filling = set(range(7, hosts, 20))  # free space falls from 14:00
    for h in range(hosts):
        name = f"host-{h:03d}"

        def busy(m, h=h):
            if h in saturated and 360 <= m < 480:
                return 0.97
            return 0.2 + 0.1 * ((h * 7) % 5) / 5

        for cpu in ("0", "1"):
            series.append((f'system_cpu_time_seconds_total{{host_name="{name}", cpu="{cpu}", state="idle"}}',
                           counter(lambda m: 1 - busy(m), 0.01, rng)))
            series.append((f'system_cpu_time_seconds_total{{host_name="{name}", cpu="{cpu}", state="user"}}',
                           counter(lambda m: busy(m) * 0.7, 0.01, rng)))
            series.append((f'system_cpu_time_seconds_total{{host_name="{name}", cpu="{cpu}", state="system"}}',
                           counter(lambda m: busy(m) * 0.25, 0.01, rng)))
            series.append((f'system_cpu_time_seconds_total{{host_name="{name}", cpu="{cpu}", state="wait"}}',
                           counter(lambda m: busy(m) * 0.05, 0.01, rng)))
        total_mem = 64e9
        used = [round(total_mem * (0.5 + 0.05 * rng.random())) for _ in range(MINUTES + 1)]
        series.append((f'system_memory_usage_bytes{{host_name="{name}", state="used"}}', used))
        series.append((f'system_memory_usage_bytes{{host_name="{name}", state="cached"}}',
                       [round(total_mem * 0.2)] * (MINUTES + 1)))
        series.append((f'system_memory_usage_bytes{{host_name="{name}", state="free"}}',
                       [round(total_mem * 0.8) - u for u in used]))
        free = []
        for m in range(MINUTES + 1):
            if h in filling and m >= 840:
                free.append(max(0, round(200e9 - (m - 840) * 0.5e9)))
            else:
                free.append(round(200e9 + 1e6 * rng.random()))
        series.append((f'system_filesystem_usage_bytes{{host_name="{name}", device="sda1", mountpoint="/", state="free"}}', free))
        series.append((f'system_filesystem_usage_bytes{{host_name="{name}", device="sda1", mountpoint="/", state="used"}}',
                       [round(300e9 - x) for x in free]))
        series.append((f'system_network_io_bytes_total{{host_name="{name}", device="eth0", direction="receive"}}',
                       counter(lambda m: 5e6, 0.2, rng)))
        series.append((f'system_network_io_bytes_total{{host_name="{name}", device="eth0", direction="transmit"}}',
                       counter(lambda m: 2e6, 0.2, rng)))
        series.append((f'up{{host_name="{name}", job="node"}}',
                       [0 if (h in down and 720 <= m < 750) else 1 for m in range(MINUTES + 1)]))

    def alert(minute, name, hosts_, labels, summary):
        alerts[(minute, name)] = [(h, labels, summary) for h in hosts_]

    names = [f"host-{h:03d}" for h in range(hosts)]
    alert(7 * 60, "HostCpuSaturated", sorted(saturated), {"severity": "warning"}, "{}: CPU saturated")
    alert(3 * 60, "HostCpuSaturated", [], {}, "")
    alert(9 * 60, "HostCpuSaturated", [], {}, "")
    alert(12 * 60 + 15, "HostDown", sorted(down), {"severity": "page", "job": "node"}, "{} is down")
    alert(13 * 60, "HostDown", [], {}, "")
    alert(10 * 60, "HostMemoryPressure", [], {}, "")
    alert(16 * 60, "HostNetworkSaturated", [], {}, "")

    lines = [
        "# Generated by bench/gen_rules_bench.py: do not edit.",
        "rule_files: [bench.rules.yaml]",
        "evaluation_interval: 1m",
        "tests:",
        "  - name: one day of a fleet",
        "    interval: 1m",
        "    input_series:",
    ]
    for s, vals in series:
        lines.append(f"      - series: '{s}'")
        lines.append(f"        values: '{fmt(vals)}'")
    lines.append("    alert_rule_test:")
    for (minute, name), items in sorted(alerts.items()):
        lines.append(f"      - eval_time: {minute}m")
        lines.append(f"        alertname: {name}")
        if not items:
            lines.append("        exp_alerts: []")
            continue
        lines.append("        exp_alerts:")
        for h, labels, summary in items:
            lines.append("          - exp_labels:")
            lines.append(f"              host_name: {names[h]}")
            for k, v in labels.items():
                lines.append(f"              {k}: {v}")
            lines.append("            exp_annotations:")
            lines.append(f"              summary: '{summary.format(names[h])}'")
    lines.append("    promql_expr_test:")
    lines.append("      - expr: count(up == 1)")
    lines.append("        eval_time: 12h10m")
    lines.append("        exp_samples:")
    lines.append(f"          - value: {hosts - len(down)}")
    lines.append("      - expr: count(host_name:cpu_busy:ratio_rate5m > 0.9)")
    lines.append("        eval_time: 7h")
    lines.append("        exp_samples:")
    lines.append(f"          - value: {len(saturated)}")
    with open(os.path.join(out_dir, "bench_test.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
