//! The `logs:` section of collector.yaml and its validation into
//! [`LogStoreOptions`], a value that cannot hold an invalid state.
//!
//! ```yaml
//! logs:
//!   retention: 24h                  # records older than this are dropped
//!   max_bytes: 1073741824           # memory and write-ahead log, each at most
//!   max_body_bytes: 65536           # longer bodies are cut (counted)
//!   max_series_per_log_metric: 10000
//!   max_records_total_series: 100000
//! ```
//!
//! Validation reports every problem at once, each naming its field.

use serde::Deserialize;

use super::counters::CounterLimits;
use super::store::LogStoreOptions;

/// `logs:`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// How long records are kept after they arrive, as a Prometheus
    /// duration (default `24h`). Log-metric series idle this long are
    /// forgotten too.
    pub retention: String,
    /// The records kept at most, in bytes of memory and of write-ahead log
    /// alike (default 1 GiB, at least 1 MiB).
    pub max_bytes: u64,
    /// A record body is cut to this many bytes (default 64 KiB, 1 KiB to
    /// 16 MiB).
    pub max_body_bytes: usize,
    /// Series one log metric may have; increments that would create more
    /// are refused and counted in `tocsin_log_metric_series_refused_total`
    /// (default 10000).
    pub max_series_per_log_metric: usize,
    /// Series of `tocsin_log_records_total` (hosts × services × severities;
    /// default 100000).
    pub max_records_total_series: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        let o = LogStoreOptions::default();
        LogsConfig {
            retention: "24h".into(),
            max_bytes: o.max_bytes,
            max_body_bytes: o.max_body_bytes,
            max_series_per_log_metric: o.counters.max_series_per_metric,
            max_records_total_series: o.counters.max_records_total_series,
        }
    }
}

/// One problem of the `logs:` section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("logs.{field}: {message}")]
pub struct LogsConfigError {
    pub field: &'static str,
    pub message: String,
}

impl LogsConfig {
    /// The validated options, or every problem found.
    pub fn validate(&self) -> Result<LogStoreOptions, Vec<LogsConfigError>> {
        let mut errors = Vec::new();
        let mut problem = |field, message: String| errors.push(LogsConfigError { field, message });
        let max_age_ms = match tocsin_rules::validate::parse_duration(&self.retention) {
            Ok(d) if d.as_millis() >= 60_000 => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Ok(_) => {
                problem(
                    "retention",
                    format!("{:?} is shorter than the minimum of 1m", self.retention),
                );
                0
            }
            Err(e) => {
                problem(
                    "retention",
                    format!("{:?} is not a duration ({e}; e.g. 24h, 7d)", self.retention),
                );
                0
            }
        };
        if self.max_bytes < 1 << 20 {
            problem(
                "max_bytes",
                format!("{} is below the minimum of 1048576 (1 MiB)", self.max_bytes),
            );
        }
        if !(1 << 10..=16 << 20).contains(&self.max_body_bytes) {
            problem(
                "max_body_bytes",
                format!("{} is out of range (1024 to 16777216)", self.max_body_bytes),
            );
        }
        for (field, v) in [
            ("max_series_per_log_metric", self.max_series_per_log_metric),
            ("max_records_total_series", self.max_records_total_series),
        ] {
            if v == 0 {
                problem(field, "must be at least 1".into());
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(LogStoreOptions {
            max_age_ms,
            max_bytes: self.max_bytes,
            max_body_bytes: self.max_body_bytes,
            counters: CounterLimits {
                max_series_per_metric: self.max_series_per_log_metric,
                max_records_total_series: self.max_records_total_series,
                idle_ms: max_age_ms,
            },
            ..LogStoreOptions::default()
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_store_defaults() {
        let o = LogsConfig::default().validate().unwrap();
        let d = LogStoreOptions::default();
        assert_eq!(o.max_age_ms, d.max_age_ms);
        assert_eq!(o.max_bytes, d.max_bytes);
        assert_eq!(o.counters.idle_ms, d.counters.idle_ms);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let c = LogsConfig {
            retention: "1 day".into(),
            max_bytes: 10,
            max_body_bytes: 1,
            max_series_per_log_metric: 0,
            max_records_total_series: 5,
        };
        let errors: Vec<String> = c
            .validate()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("logs.retention: \"1 day\" is not a duration"));
        assert!(errors[1].starts_with("logs.max_bytes: 10 is below"));
        assert!(errors[2].starts_with("logs.max_body_bytes: 1 is out of range"));
        assert_eq!(
            errors[3],
            "logs.max_series_per_log_metric: must be at least 1"
        );
        let short = LogsConfig {
            retention: "30s".into(),
            ..LogsConfig::default()
        };
        assert!(
            short.validate().unwrap_err()[0]
                .message
                .contains("minimum of 1m")
        );
    }
}
