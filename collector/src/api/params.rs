//! Request parameters as Prometheus' HTTP API reads them: from the URL's
//! query string and, for POST, from an `application/x-www-form-urlencoded`
//! body (body values first, as Go's `Request.FormValue`), with times as
//! RFC 3339 or Unix seconds and durations as seconds or Prometheus
//! durations, and Prometheus' error wording.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, header};
use chrono::DateTime;
use promql_parser::parser::Expr;
use tocsin_rules::promql::storage::{MatchOp, Matcher};
use tocsin_rules::promql::value::METRIC_NAME;
use tocsin_rules::validate::parse_duration as parse_prom_duration;

use super::response::ApiError;

/// The far past and far future used as the default `start` and `end` of
/// metadata queries (the numbers of Prometheus' `MinTime` and `MaxTime`;
/// any timestamp a store holds lies between them).
pub const MIN_TIME_MS: i64 = -9_223_309_901_257_974;
pub const MAX_TIME_MS: i64 = 9_223_309_901_257_974;

/// The boundary times as Prometheus formats them; clients send them back.
const MIN_TIME_TEXT: &str = "-292273086-05-16T16:47:06Z";
const MAX_TIME_TEXT: &str = "292277025-08-18T07:12:54.999999999Z";

/// A request's form values, in order of precedence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        p: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Params {
            pairs: p.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, or "" (Go's `FormValue`).
    pub fn value(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Reads the parameters of `req`, its body bounded by `max_body`.
pub async fn read(req: Request, max_body: usize) -> Result<Params, ApiError> {
    let (parts, body) = req.into_parts();
    let mut pairs = Vec::new();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        });
    if matches!(parts.method, Method::POST | Method::PUT | Method::PATCH) && is_form {
        let bytes = axum::body::to_bytes(Body::new(body), max_body)
            .await
            .map_err(|e| {
                ApiError::bad_data(format!(
                    "error parsing form values: request body over {max_body} bytes or unreadable: {e}"
                ))
            })?;
        pairs.extend(form_urlencoded::parse(&bytes).into_owned());
    }
    if let Some(q) = parts.uri.query() {
        pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    Ok(Params { pairs })
}

/// `invalid parameter "name": msg`, as Prometheus' `invalidParamError`.
pub fn invalid_param(name: &str, msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad_data(format!("invalid parameter {name:?}: {msg}"))
}

/// Parses a time as Prometheus' `parseTime`: Unix seconds (fractions
/// rounded to the millisecond) or RFC 3339; returns milliseconds.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>()
        && f.is_finite()
    {
        let ms = (f * 1000.0).round();
        if ms >= MIN_TIME_MS as f64 && ms <= MAX_TIME_MS as f64 {
            return Ok(ms as i64);
        }
        return Err(format!("cannot parse {s:?} to a valid timestamp"));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    match s {
        MIN_TIME_TEXT => Ok(MIN_TIME_MS),
        MAX_TIME_TEXT => Ok(MAX_TIME_MS),
        _ => Err(format!("cannot parse {s:?} to a valid timestamp")),
    }
}

/// A time parameter, `default` when absent or empty.
pub fn time_param(p: &Params, name: &str, default: i64) -> Result<i64, ApiError> {
    match p.get(name) {
        None | Some("") => Ok(default),
        Some(v) => parse_time(v).map_err(|e| invalid_param(name, e)),
    }
}

/// Parses a duration as Prometheus' `parseDuration`: seconds (with
/// fractions) or a Prometheus duration; returns milliseconds (fractions
/// of a millisecond are dropped).
pub fn parse_duration(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        let ns = f * 1e9;
        if !ns.is_finite() || ns > i64::MAX as f64 || ns < i64::MIN as f64 {
            return Err(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            ));
        }
        return Ok((ns / 1e6) as i64);
    }
    parse_prom_duration(s)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .map_err(|_| format!("cannot parse {s:?} to a valid duration"))
}

/// Parses `match[]` values into matcher sets, one per selector and `or`
/// branch (`{a="1" or b="2"}` is two sets), as Prometheus'
/// `parseMatchersParam`.
pub fn match_params(values: &[&str]) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut out = Vec::new();
    for v in values {
        let expr = tocsin_rules::promql::parse(v).map_err(|e| invalid_param("match[]", e))?;
        let Expr::VectorSelector(vs) = expr else {
            return Err(invalid_param(
                "match[]",
                format!("1:1: parse error: unexpected expression in {v:?}: want a series selector"),
            ));
        };
        let m = &vs.matchers;
        let mut groups: Vec<Vec<Matcher>> = if m.or_matchers.is_empty() {
            vec![m.matchers.clone()]
        } else {
            let mut g = m.or_matchers.clone();
            if !m.matchers.is_empty() {
                g.push(m.matchers.clone());
            }
            g
        };
        if let Some(name) = &vs.name {
            for g in &mut groups {
                g.push(Matcher::new(MatchOp::Equal, METRIC_NAME, name));
            }
        }
        for g in groups {
            // Prometheus refuses selectors that match everything.
            if g.iter().all(|m| m.is_match("")) {
                return Err(ApiError::bad_data(
                    "match[] must contain at least one non-empty matcher",
                ));
            }
            out.push(g);
        }
    }
    Ok(out)
}

/// Reverses Prometheus' `U__` escaping of label names in URL paths
/// (`U__http_2e_method` is `http.method`); other names are returned as is.
pub fn unescape_label_name(s: &str) -> Option<String> {
    let Some(rest) = s.strip_prefix("U__") else {
        return Some(s.to_string());
    };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() && hex.len() < 8 => hex.push(h),
                _ => return None,
            }
        }
        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_like_prometheus() {
        assert_eq!(parse_time("1435781451.781"), Ok(1_435_781_451_781));
        assert_eq!(parse_time("1435781451"), Ok(1_435_781_451_000));
        assert_eq!(parse_time("-1.5"), Ok(-1_500));
        assert_eq!(
            parse_time("2015-07-01T20:10:51.781Z"),
            Ok(1_435_781_451_781)
        );
        assert_eq!(
            parse_time("2015-07-01T22:10:51+02:00"),
            Ok(1_435_781_451_000)
        );
        assert_eq!(parse_time(MAX_TIME_TEXT), Ok(MAX_TIME_MS));
        assert_eq!(
            parse_time("yesterday"),
            Err("cannot parse \"yesterday\" to a valid timestamp".to_string())
        );
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn durations_parse_like_prometheus() {
        assert_eq!(parse_duration("15"), Ok(15_000));
        assert_eq!(parse_duration("0.5"), Ok(500));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000));
        assert_eq!(
            parse_duration("1x"),
            Err("cannot parse \"1x\" to a valid duration".to_string())
        );
        assert!(
            parse_duration("1e300")
                .unwrap_err()
                .contains("overflows int64")
        );
    }

    #[test]
    fn match_params_split_or_branches_and_refuse_empty_selectors() {
        let m = match_params(&["up{job=\"a\"}", "{x=\"1\" or y=\"2\"}"]).unwrap();
        assert_eq!(m.len(), 3);
        assert!(m[0].iter().any(|m| m.name == "__name__" && m.value == "up"));
        assert!(match_params(&["{job=~\".*\"}"]).is_err());
        let e = match_params(&["sum(up)"]).unwrap_err();
        assert!(
            e.message.starts_with("invalid parameter \"match[]\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn escaped_label_names() {
        assert_eq!(unescape_label_name("job").as_deref(), Some("job"));
        assert_eq!(
            unescape_label_name("U__http_2e_method").as_deref(),
            Some("http.method")
        );
        assert_eq!(unescape_label_name("U__a__b").as_deref(), Some("a_b"));
        assert_eq!(unescape_label_name("U__bad_zz_"), None);
    }

    #[tokio::test]
    async fn body_values_come_before_url_values() {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/query?query=a&time=1")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from("query=b&match%5B%5D=x"))
            .unwrap();
        let p = read(req, 1024).await.unwrap();
        assert_eq!(p.value("query"), "b");
        assert_eq!(p.all("query"), vec!["b", "a"]);
        assert_eq!(p.value("time"), "1");
        assert_eq!(p.all("match[]"), vec!["x"]);
        let big = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(vec![b'a'; 100]))
            .unwrap();
        assert_eq!(read(big, 10).await.unwrap_err().status().as_u16(), 400);
    }
}
