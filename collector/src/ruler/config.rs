//! The `ruler:` section of collector.yaml, and its validation into
//! [`RulerSettings`], a value that cannot hold an invalid state.
//!
//! ```yaml
//! ruler:
//!   rule_files: ["/etc/tocsin/rules/*.yaml"]   # globs, relative to collector.yaml
//!   evaluation_interval: 1m       # groups without `interval:`
//!   query_offset: 0s              # groups without `query_offset:`
//!   state_file: ruler.sqlite      # alert state; relative to the data directory
//!   external_labels: { cluster: eu1 }
//!   external_url: https://tocsin.example.com
//!   for_grace_period: 10m         # Prometheus' rules.alert.for-grace-period
//!   for_outage_tolerance: 1h      # Prometheus' rules.alert.for-outage-tolerance
//!   resend_delay: 1m              # Prometheus' rules.alert.resend-delay
//!   watch_files: true             # reload when a rule file changes on disk
//! ```
//!
//! Validation reports every problem at once, each naming its field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tocsin_rules::promql::Labels;
use tocsin_rules::validate::parse_duration;

pub use crate::receivers::config::ConfigError;

/// `ruler:`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulerConfig {
    /// Rule files to load, as glob patterns (`*`, `?`, `[...]`, `**`);
    /// relative patterns are taken from the configuration file's
    /// directory. A pattern matching nothing is not an error (a rules
    /// directory may be empty).
    pub rule_files: Vec<String>,
    /// How often groups without their own `interval:` are evaluated
    /// (Prometheus duration, default `1m`).
    pub evaluation_interval: String,
    /// How far behind the evaluation time groups without their own
    /// `query_offset:` query (default `0s`).
    pub query_offset: String,
    /// The SQLite file holding alert state (`for` and `keep_firing_for`
    /// progress) across restarts; relative to the data directory (default
    /// `ruler.sqlite`).
    pub state_file: PathBuf,
    /// Labels available to templates as `$externalLabels` and added to the
    /// alerts handed to the incident manager (an alert's own labels win).
    pub external_labels: BTreeMap<String, String>,
    /// Available to templates as `$externalURL`; the base of each alert's
    /// generator URL.
    pub external_url: String,
    /// After a restart, an alert whose `for` would complete sooner than
    /// this waits until this long after the start, so that it fires on
    /// fresh data (default `10m`).
    pub for_grace_period: String,
    /// Alert state older than this at start is not restored: after a long
    /// outage, alerts start pending anew (default `1h`).
    pub for_outage_tolerance: String,
    /// How often a still-firing alert is handed again to the incident
    /// manager (default `1m`).
    pub resend_delay: String,
    /// Reload when a matched rule file (or a file appearing in a watched
    /// directory) changes on disk (default true). SIGHUP and
    /// `POST /-/reload` reload in any case.
    pub watch_files: bool,
}

impl Default for RulerConfig {
    fn default() -> Self {
        RulerConfig {
            rule_files: Vec::new(),
            evaluation_interval: "1m".into(),
            query_offset: "0s".into(),
            state_file: PathBuf::from("ruler.sqlite"),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            for_grace_period: "10m".into(),
            for_outage_tolerance: "1h".into(),
            resend_delay: "1m".into(),
            watch_files: true,
        }
    }
}

/// The validated ruler configuration. Durations are milliseconds.
#[derive(Debug, Clone)]
pub struct RulerSettings {
    /// Absolute glob patterns.
    pub rule_files: Vec<String>,
    pub evaluation_interval_ms: i64,
    pub query_offset_ms: i64,
    pub state_file: PathBuf,
    pub external_labels: Labels,
    pub external_url: String,
    pub for_grace_period_ms: i64,
    pub for_outage_tolerance_ms: i64,
    pub resend_delay_ms: i64,
    pub watch_files: bool,
}

impl RulerSettings {
    /// Settings for tests and embedding: the given patterns, defaults
    /// otherwise, state in `state_file`.
    pub fn new(rule_files: Vec<String>, state_file: PathBuf) -> Self {
        RulerSettings {
            rule_files,
            evaluation_interval_ms: 60_000,
            query_offset_ms: 0,
            state_file,
            external_labels: Labels::empty(),
            external_url: String::new(),
            for_grace_period_ms: 10 * 60_000,
            for_outage_tolerance_ms: 60 * 60_000,
            resend_delay_ms: 60_000,
            watch_files: true,
        }
    }
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

impl RulerConfig {
    /// Validates the section found at `field` (e.g. `ruler`); rule-file
    /// patterns are resolved against `config_dir`, the state file against
    /// `data_dir`.
    pub fn validate(
        &self,
        field: &str,
        config_dir: &Path,
        data_dir: &Path,
    ) -> Result<RulerSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut duration = |key: &str, value: &str, positive: bool| -> i64 {
            match parse_duration(value) {
                Ok(d) if positive && d.is_zero() => {
                    errors.push(ConfigError {
                        field: format!("{field}.{key}"),
                        message: "must be greater than 0s".into(),
                    });
                    0
                }
                Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
                Err(e) => {
                    errors.push(ConfigError {
                        field: format!("{field}.{key}"),
                        message: format!("{e} (want a Prometheus duration such as 30s, 1m or 1h)"),
                    });
                    0
                }
            }
        };
        let evaluation_interval_ms =
            duration("evaluation_interval", &self.evaluation_interval, true);
        let query_offset_ms = duration("query_offset", &self.query_offset, false);
        let for_grace_period_ms = duration("for_grace_period", &self.for_grace_period, false);
        let for_outage_tolerance_ms =
            duration("for_outage_tolerance", &self.for_outage_tolerance, false);
        let resend_delay_ms = duration("resend_delay", &self.resend_delay, false);

        let mut rule_files = Vec::with_capacity(self.rule_files.len());
        for (i, p) in self.rule_files.iter().enumerate() {
            let full = resolve(config_dir, Path::new(p));
            let text = full.to_string_lossy().into_owned();
            match glob::Pattern::new(&text) {
                Ok(_) => rule_files.push(text),
                Err(e) => errors.push(ConfigError {
                    field: format!("{field}.rule_files[{i}]"),
                    message: format!("{p:?} is not a valid glob pattern: {e}"),
                }),
            }
        }
        for name in self.external_labels.keys() {
            if name.is_empty() || name == "__name__" {
                errors.push(ConfigError {
                    field: format!("{field}.external_labels"),
                    message: format!("{name:?} cannot be an external label name"),
                });
            }
        }
        if self.state_file.as_os_str().is_empty() {
            errors.push(ConfigError {
                field: format!("{field}.state_file"),
                message: "must not be empty".into(),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RulerSettings {
            rule_files,
            evaluation_interval_ms,
            query_offset_ms,
            state_file: resolve(data_dir, &self.state_file),
            external_labels: Labels::from_pairs(self.external_labels.clone()),
            external_url: self.external_url.trim_end_matches('/').to_string(),
            for_grace_period_ms,
            for_outage_tolerance_ms,
            resend_delay_ms,
            watch_files: self.watch_files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_paths_resolve() {
        let cfg = RulerConfig {
            rule_files: vec!["rules/*.yaml".into(), "/abs/x.yml".into()],
            ..RulerConfig::default()
        };
        let s = cfg
            .validate(
                "ruler",
                Path::new("/etc/tocsin"),
                Path::new("/var/lib/tocsin"),
            )
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(s.rule_files, vec!["/etc/tocsin/rules/*.yaml", "/abs/x.yml"]);
        assert_eq!(s.state_file, Path::new("/var/lib/tocsin/ruler.sqlite"));
        assert_eq!(s.evaluation_interval_ms, 60_000);
        assert_eq!(s.for_grace_period_ms, 600_000);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let cfg = RulerConfig {
            rule_files: vec!["[".into()],
            evaluation_interval: "0s".into(),
            resend_delay: "1x".into(),
            state_file: PathBuf::new(),
            ..RulerConfig::default()
        };
        let errs = match cfg.validate("ruler", Path::new("/"), Path::new("/")) {
            Ok(_) => panic!("accepted"),
            Err(e) => e,
        };
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "ruler.evaluation_interval",
                "ruler.resend_delay",
                "ruler.rule_files[0]",
                "ruler.state_file"
            ]
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let r: Result<RulerConfig, _> = serde_saphyr::from_str("rule_file: [a]\n");
        assert!(r.is_err());
    }
}
