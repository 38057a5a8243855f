//! The promtool rule unit-test file format, as serde reads it. Unknown keys
//! are errors here whatever `--ignore-unknown-fields` says: promtool reads
//! test files strictly and applies that flag to rule files only.
//!
//! Durations are Prometheus durations (`1d`, `5m`, `1h30m`, `0`); YAML
//! scalars that Go would read as text (`values: 1`, `exp_labels: {code:
//! 500}`) are read as their text.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// A whole unit-test file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitTestFileConfig {
    #[serde(default)]
    pub rule_files: Vec<ScalarText>,
    #[serde(default)]
    pub evaluation_interval: Option<PromDuration>,
    #[serde(default)]
    pub group_eval_order: Vec<ScalarText>,
    #[serde(default)]
    pub tests: Vec<TestGroupConfig>,
    #[serde(default)]
    pub fuzzy_compare: bool,
}

/// One test group: input series and the tests run against them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestGroupConfig {
    #[serde(default)]
    pub interval: Option<PromDuration>,
    #[serde(default)]
    pub input_series: Vec<InputSeriesConfig>,
    #[serde(default)]
    pub alert_rule_test: Vec<AlertTestCaseConfig>,
    #[serde(default)]
    pub promql_expr_test: Vec<PromqlTestCaseConfig>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, ScalarText>,
    #[serde(default)]
    pub external_url: Option<ScalarText>,
    #[serde(default)]
    pub name: Option<ScalarText>,
    #[serde(default)]
    pub start_timestamp: Option<StartTimestamp>,
}

/// One `input_series` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSeriesConfig {
    #[serde(default)]
    pub series: ScalarText,
    #[serde(default)]
    pub values: ScalarText,
}

/// One `alert_rule_test` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertTestCaseConfig {
    #[serde(default)]
    pub eval_time: PromDuration,
    #[serde(default)]
    pub alertname: ScalarText,
    #[serde(default)]
    pub exp_alerts: Vec<ExpAlertConfig>,
}

/// One expected alert.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpAlertConfig {
    #[serde(default)]
    pub exp_labels: BTreeMap<String, ScalarText>,
    #[serde(default)]
    pub exp_annotations: BTreeMap<String, ScalarText>,
}

/// One `promql_expr_test` entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromqlTestCaseConfig {
    #[serde(default)]
    pub expr: ScalarText,
    #[serde(default)]
    pub eval_time: PromDuration,
    #[serde(default)]
    pub exp_samples: Vec<ExpSampleConfig>,
}

/// One expected sample.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpSampleConfig {
    #[serde(default)]
    pub labels: ScalarText,
    #[serde(default)]
    pub value: f64,
    /// A native histogram in series notation (not supported: reported as a
    /// failure of the test case).
    #[serde(default)]
    pub histogram: Option<ScalarText>,
}

/// A YAML scalar read as its text, whatever type YAML would give it, as
/// Go's YAML decoder does for a string field.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ScalarText(pub String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ScalarText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<ScalarText, E> {
                Ok(ScalarText(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ScalarText, E> {
                Ok(ScalarText(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<ScalarText, E> {
                Ok(ScalarText(String::new()))
            }
        }
        d.deserialize_string(V)
    }
}

impl fmt::Display for ScalarText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A test group's `start_timestamp`, in milliseconds since the epoch. A
/// value that is neither fails the whole file, as in promtool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StartTimestamp(pub i64);

impl<'de> Deserialize<'de> for StartTimestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = ScalarText::deserialize(d)?;
        parse_start_time(&text.0)
            .map(StartTimestamp)
            .map_err(de::Error::custom)
    }
}

/// promtool's `start_timestamp`: Unix seconds (fractions to the
/// millisecond) or RFC 3339; milliseconds since the epoch.
pub fn parse_start_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        let secs = f.trunc();
        let frac = ((f - secs) * 1000.0).round();
        return Ok(secs as i64 * 1000 + frac as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|_| format!("cannot parse {s:?} to a valid timestamp"))
}

/// A Prometheus duration (`model.Duration`), in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PromDuration(pub i64);

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = ScalarText::deserialize(d)?;
        parse_duration(&text.0)
            .map(PromDuration)
            .map_err(de::Error::custom)
    }
}

/// Parses a Prometheus duration (`model.ParseDuration`) into milliseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if s.is_empty() {
        return Err("empty duration string".into());
    }
    if s == "0" {
        return Ok(0);
    }
    let invalid = || format!("not a valid duration string: {s:?}");
    const UNITS: [(&str, i64); 7] = [
        ("y", 365 * 24 * 3_600_000),
        ("w", 7 * 24 * 3_600_000),
        ("d", 24 * 3_600_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut rest = s;
    let mut total: i64 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| invalid())?;
        rest = &rest[digits..];
        // `ms` before `m`, so `5ms` is not read as minutes.
        let unit = if rest.starts_with("ms") {
            "ms"
        } else {
            rest.get(..1).ok_or_else(invalid)?
        };
        let idx = UNITS
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(invalid)?;
        // Units must appear in decreasing order, each at most once.
        if idx < next_unit {
            return Err(invalid());
        }
        next_unit = idx + 1;
        total = n
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| "duration out of range".to_string())?;
        rest = &rest[unit.len()..];
    }
    Ok(total)
}

/// Formats milliseconds as Prometheus' `model.Duration.String()`.
pub fn format_prom_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut ms = ms;
    let mut out = String::new();
    if ms < 0 {
        out.push('-');
        ms = -ms;
    }
    let mut unit = |name: &str, mult: i64, exact: bool| {
        if exact && ms % mult != 0 {
            return;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{name}"));
            ms -= v * mult;
        }
    };
    unit("y", 365 * 24 * 3_600_000, true);
    unit("w", 7 * 24 * 3_600_000, true);
    unit("d", 24 * 3_600_000, false);
    unit("h", 3_600_000, false);
    unit("m", 60_000, false);
    unit("s", 1000, false);
    unit("ms", 1, false);
    out
}

/// Formats milliseconds as Go's `time.Duration.String()` (`0s`, `1m0s`,
/// `1h0m0s`, `1.5s`, `250ms`).
pub fn format_go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let neg = ms < 0;
    let ms = ms.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if ms < 1000 {
        out.push_str(&format!("{ms}ms"));
        return out;
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s = (ms / 1000) % 60;
    let frac = ms % 1000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&s.to_string());
    if frac > 0 {
        let f = format!("{frac:03}");
        out.push('.');
        out.push_str(f.trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("2m59s999ms"), Ok(179_999));
        assert_eq!(parse_duration("100d"), Ok(8_640_000_000));
        assert_eq!(parse_duration("5ms"), Ok(5));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("1m1h").is_err());
        assert!(parse_duration("-1m").is_err());
        assert!(parse_duration("1.5m").is_err());
    }

    #[test]
    fn durations_format_like_model_duration() {
        assert_eq!(format_prom_duration(0), "0s");
        assert_eq!(format_prom_duration(300_000), "5m");
        assert_eq!(format_prom_duration(86_400_000), "1d");
        assert_eq!(format_prom_duration(14 * 86_400_000), "2w");
        assert_eq!(format_prom_duration(90 * 86_400_000), "90d");
        assert_eq!(format_prom_duration(179_999), "2m59s999ms");
    }

    #[test]
    fn durations_format_like_go() {
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(60_000), "1m0s");
        assert_eq!(format_go_duration(3_600_000), "1h0m0s");
        assert_eq!(format_go_duration(1500), "1.5s");
        assert_eq!(format_go_duration(250), "250ms");
        assert_eq!(format_go_duration(90_500), "1m30.5s");
    }

    #[test]
    fn test_file_reads_scalars_as_text_and_rejects_unknown_keys() {
        let f: UnitTestFileConfig = serde_saphyr::from_str(
            "tests:\n  - input_series:\n      - series: up\n        values: 0x10\n    alert_rule_test:\n      - eval_time: 0\n        alertname: A\n        exp_alerts:\n          - exp_labels: {code: 500}\n",
        )
        .expect("parse");
        assert_eq!(f.tests[0].input_series[0].values.0, "0x10");
        assert_eq!(
            f.tests[0].alert_rule_test[0].exp_alerts[0].exp_labels["code"].0,
            "500"
        );
        let bad: Result<UnitTestFileConfig, _> = serde_saphyr::from_str("fuzzy: true\n");
        assert!(bad.is_err());
    }
}
