//! OTLP metric and attribute names to Prometheus names, the standard way
//! (Prometheus' OTLP receiver with `UnderscoreEscapingWithSuffixes`, the
//! OpenTelemetry "Prometheus and OpenMetrics compatibility" rules):
//! `system.cpu.time` in `s` as a monotonic sum becomes
//! `system_cpu_time_seconds_total`; `system.memory.usage` in `By` becomes
//! `system_memory_usage_bytes`; a gauge in unit `1` gains `_ratio`.
//!
//! Invariant: every name returned is a valid legacy Prometheus name
//! (`[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics, without `:` for labels) that
//! is not made of underscores only.

/// The metric kinds that change a name's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Gauge,
    /// A monotonic cumulative or delta sum: gains `_total`.
    MonotonicCounter,
    /// A non-monotonic sum (an up-down counter): named like a gauge, but
    /// without the `_ratio` suffix.
    NonMonotonicSum,
    Histogram,
    Summary,
}

/// A name that cannot be translated into a valid Prometheus name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("metric name {0:?} translates to nothing valid")]
    Metric(String),
    #[error("attribute name {0:?} translates to nothing valid (names need a letter or digit)")]
    Label(String),
    #[error("attribute name is empty")]
    EmptyLabel,
}

/// UCUM units to Prometheus' base-unit words.
fn unit_word(unit: &str) -> &str {
    match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "",
        "%" => "percent",
        other => other,
    }
}

/// The "per" part of a unit (`By/s` → `second`).
fn per_unit_word(unit: &str) -> &str {
    match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == ':'
}

fn collapse_underscores(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev = false;
    for c in s.chars() {
        if c == '_' {
            if !prev {
                out.push('_');
            }
            prev = true;
        } else {
            out.push(c);
            prev = false;
        }
    }
    out
}

/// Unit words for a name: invalid characters become `_`, runs collapse and
/// a leading `_` goes.
fn clean_unit(unit: &str) -> String {
    let mapped: String = unit
        .chars()
        .map(|c| if is_metric_char(c) { c } else { '_' })
        .collect();
    collapse_underscores(&mapped)
        .trim_start_matches('_')
        .to_string()
}

/// The main and per suffixes of a unit; annotations such as `{packets}`
/// contribute nothing.
fn unit_suffixes(unit: &str) -> (String, String) {
    let mut parts = unit.splitn(2, '/');
    let main = parts.next().unwrap_or("").trim();
    let main = if main.is_empty() || main.contains(['{', '}']) {
        String::new()
    } else {
        unit_word(main).to_string()
    };
    let per = match parts.next().map(str::trim) {
        Some(p) if !p.is_empty() && !p.contains(['{', '}']) => {
            format!("per_{}", per_unit_word(p))
        }
        _ => String::new(),
    };
    (main, per)
}

/// Translates an OTLP metric name with its unit and kind.
pub fn metric_name(name: &str, unit: &str, kind: MetricKind) -> Result<String, NameError> {
    let mut tokens: Vec<String> = name
        .split(|c: char| !is_metric_char(c))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();

    let (main, per) = unit_suffixes(unit);
    let mut main = clean_unit(&main);
    let mut per = clean_unit(&per);
    if tokens.contains(&main) {
        main.clear();
    }
    if per == "per_" {
        per.clear();
    } else {
        per = per.trim_end_matches('_').to_string();
        if tokens.contains(&per) {
            per.clear();
        }
    }
    if !per.is_empty() {
        main = main.trim_end_matches('_').to_string();
    }
    if !main.is_empty() {
        tokens.push(main);
    }
    if !per.is_empty() {
        tokens.push(per);
    }
    if kind == MetricKind::MonotonicCounter {
        tokens.retain(|t| t != "total");
        tokens.push("total".to_string());
    }
    if unit == "1" && kind == MetricKind::Gauge {
        tokens.retain(|t| t != "ratio");
        tokens.push("ratio".to_string());
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.is_empty() || (out != name && out.chars().all(|c| c == '_')) {
        return Err(NameError::Metric(name.to_string()));
    }
    Ok(out)
}

/// Translates an OTLP attribute name into a label name: invalid characters
/// become `_` (runs collapsed), a leading digit gains `key_`, and reserved
/// `__x__` names keep their double underscores.
pub fn label_name(attr: &str) -> Result<String, NameError> {
    if attr.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    let reserved = attr.len() >= 4 && attr.starts_with("__") && attr.ends_with("__");
    let inner = if reserved {
        &attr[2..attr.len() - 2]
    } else {
        attr
    };
    let mut out = String::with_capacity(attr.len() + 4);
    let mut prev_underscore = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            prev_underscore = false;
        } else if !prev_underscore {
            out.push('_');
            prev_underscore = true;
        }
    }
    if reserved {
        out = format!("__{out}__");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    if out.chars().all(|c| c == '_') {
        return Err(NameError::Label(attr.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn host_metrics_get_the_standard_names() {
        let cases = [
            (
                "system.cpu.time",
                "s",
                MetricKind::MonotonicCounter,
                "system_cpu_time_seconds_total",
            ),
            (
                "system.cpu.utilization",
                "1",
                MetricKind::Gauge,
                "system_cpu_utilization_ratio",
            ),
            (
                "system.memory.usage",
                "By",
                MetricKind::NonMonotonicSum,
                "system_memory_usage_bytes",
            ),
            (
                "system.memory.utilization",
                "1",
                MetricKind::Gauge,
                "system_memory_utilization_ratio",
            ),
            (
                "system.filesystem.usage",
                "By",
                MetricKind::NonMonotonicSum,
                "system_filesystem_usage_bytes",
            ),
            (
                "system.filesystem.inodes.usage",
                "{inode}",
                MetricKind::NonMonotonicSum,
                "system_filesystem_inodes_usage",
            ),
            (
                "system.disk.io",
                "By",
                MetricKind::MonotonicCounter,
                "system_disk_io_bytes_total",
            ),
            (
                "system.disk.operations",
                "{operation}",
                MetricKind::MonotonicCounter,
                "system_disk_operations_total",
            ),
            (
                "system.network.packets",
                "{packet}",
                MetricKind::MonotonicCounter,
                "system_network_packets_total",
            ),
            (
                "system.cpu.load_average.1m",
                "{thread}",
                MetricKind::Gauge,
                "system_cpu_load_average_1m",
            ),
            (
                "system.uptime",
                "s",
                MetricKind::Gauge,
                "system_uptime_seconds",
            ),
            (
                "http.server.request.duration",
                "s",
                MetricKind::Histogram,
                "http_server_request_duration_seconds",
            ),
            (
                "requests.count",
                "1",
                MetricKind::MonotonicCounter,
                "requests_count_total",
            ),
            (
                "io.rate",
                "By/s",
                MetricKind::Gauge,
                "io_rate_bytes_per_second",
            ),
            (
                "already_total",
                "",
                MetricKind::MonotonicCounter,
                "already_total",
            ),
            ("latency_seconds", "s", MetricKind::Gauge, "latency_seconds"),
            ("2xx.count", "", MetricKind::Gauge, "_2xx_count"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(
                metric_name(name, unit, kind).unwrap(),
                want,
                "{name} [{unit}]"
            );
        }
    }

    #[test]
    fn untranslatable_metric_names_are_errors() {
        assert!(metric_name("...", "", MetricKind::Gauge).is_err());
        assert!(metric_name("", "", MetricKind::Gauge).is_err());
    }

    #[test]
    fn attribute_names() {
        assert_eq!(label_name("host.name").unwrap(), "host_name");
        assert_eq!(
            label_name("deployment.environment.name").unwrap(),
            "deployment_environment_name"
        );
        assert_eq!(label_name("http..method").unwrap(), "http_method");
        assert_eq!(label_name("123abc").unwrap(), "key_123abc");
        assert_eq!(label_name("__meta.x__").unwrap(), "__meta_x__");
        assert_eq!(label_name("tocsin.track").unwrap(), "tocsin_track");
        assert!(label_name("").is_err());
        assert!(label_name("..").is_err());
    }
}
