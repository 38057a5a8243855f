//! Prometheus' response envelope and JSON encodings: `status`, `data`,
//! `warnings`, `infos`; errors with `errorType` and the HTTP status
//! Prometheus gives each type; sample timestamps as seconds with up to
//! three decimals and values as strings, written exactly as Prometheus'
//! `jsonutil` writes them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tocsin_rules::promql::value::format_value;
use tocsin_rules::promql::{Labels, Sample, Value};

/// Prometheus' error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Internal,
    Unavailable,
    NotFound,
    /// Not Prometheus': no or unknown bearer token.
    Unauthorized,
    /// Not Prometheus': the token's role does not allow the endpoint.
    Forbidden,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
            ErrorType::Unauthorized => "unauthorized",
            ErrorType::Forbidden => "forbidden",
        }
    }

    /// The HTTP status Prometheus answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
            ErrorType::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorType::Forbidden => StatusCode::FORBIDDEN,
        }
    }
}

/// An API error response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", .kind.as_str())]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> Self {
        Self::new(ErrorType::BadData, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Internal, message)
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = String::with_capacity(self.message.len() + 64);
        body.push_str(r#"{"status":"error","errorType":"#);
        write_str(&mut body, self.kind.as_str());
        body.push_str(r#","error":"#);
        write_str(&mut body, &self.message);
        body.push('}');
        let mut resp = json_response(self.kind.status(), body);
        if self.kind == ErrorType::Unauthorized {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A JSON body with its content type.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A success envelope around already-encoded `data`.
pub fn success(data: &str, warnings: &[String], infos: &[String]) -> Response {
    let mut body = String::with_capacity(data.len() + 64);
    body.push_str(r#"{"status":"success","data":"#);
    body.push_str(data);
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if list.is_empty() {
            continue;
        }
        body.push_str(",\"");
        body.push_str(key);
        body.push_str("\":[");
        for (i, w) in list.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            write_str(&mut body, w);
        }
        body.push(']');
    }
    body.push('}');
    json_response(StatusCode::OK, body)
}

/// Writes `s` as a JSON string.
pub fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a millisecond timestamp as Prometheus does: seconds, then
/// `.` and three digits only when the milliseconds are not zero.
pub fn write_timestamp(out: &mut String, t: i64) {
    if t < 0 {
        out.push('-');
    }
    let a = t.unsigned_abs();
    out.push_str(&(a / 1000).to_string());
    let frac = a % 1000;
    if frac != 0 {
        out.push_str(&format!(".{frac:03}"));
    }
}

/// `[ts,"value"]`
fn write_point(out: &mut String, t: i64, v: &str) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_str(out, v);
    out.push(']');
}

/// A label set as a JSON object, in label order.
pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, &l.name);
        out.push(':');
        write_str(out, &l.value);
    }
    out.push('}');
}

fn write_samples(out: &mut String, samples: &[Sample]) {
    out.push('[');
    for (i, s) in samples.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_point(out, s.t, &format_value(s.v));
    }
    out.push(']');
}

/// The `data` of a query response: `{"resultType":…,"result":…}`.
pub fn write_query_data(out: &mut String, value: &Value) {
    out.push_str(r#"{"resultType":"#);
    write_str(out, value.type_name());
    out.push_str(r#","result":"#);
    match value {
        Value::Scalar { t, v } => write_point(out, *t, &format_value(*v)),
        Value::String { t, v } => write_point(out, *t, v),
        Value::Vector(samples) => {
            out.push('[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                out.push_str(r#","value":"#);
                write_point(out, s.t, &format_value(s.v));
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push('[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                write_labels(out, &s.labels);
                out.push_str(r#","values":"#);
                write_samples(out, &s.samples);
                out.push('}');
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, the form of alert values
/// in the rules and alerts APIs (`1e+00`, `2.5e-01`).
pub fn format_float_e(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = format!("{v:e}");
    let Some((mant, exp)) = s.split_once('e') else {
        return s;
    };
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    if digits.len() < 2 {
        format!("{mant}e{sign}0{digits}")
    } else {
        format!("{mant}e{sign}{digits}")
    }
}

/// Go's `time.Time` JSON form (RFC 3339 with nanoseconds, trailing zeros
/// trimmed) of a millisecond timestamp, in UTC; `None` is Go's zero time.
pub fn format_time(ms: Option<i64>) -> String {
    let Some(ms) = ms else {
        return "0001-01-01T00:00:00Z".into();
    };
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => {
            let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let frac = ms.rem_euclid(1000);
            if frac == 0 {
                format!("{base}Z")
            } else {
                let f = format!("{frac:03}");
                format!("{base}.{}Z", f.trim_end_matches('0'))
            }
        }
        None => "0001-01-01T00:00:00Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tocsin_rules::promql::InstantSample;
    use tocsin_rules::promql::Series;

    #[test]
    fn timestamps_are_written_like_prometheus() {
        let w = |t| {
            let mut s = String::new();
            write_timestamp(&mut s, t);
            s
        };
        assert_eq!(w(1_435_781_451_781), "1435781451.781");
        assert_eq!(w(1_435_781_451_000), "1435781451");
        assert_eq!(w(1_500), "1.500");
        assert_eq!(w(1_005), "1.005");
        assert_eq!(w(-1_500), "-1.500");
        assert_eq!(w(0), "0");
    }

    #[test]
    fn query_data_shapes() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "a\"b")]);
        let mut s = String::new();
        write_query_data(
            &mut s,
            &Value::Vector(vec![InstantSample {
                labels: l.clone(),
                t: 1000,
                v: f64::INFINITY,
            }]),
        );
        assert_eq!(
            s,
            r#"{"resultType":"vector","result":[{"metric":{"__name__":"up","job":"a\"b"},"value":[1,"+Inf"]}]}"#
        );
        let mut s = String::new();
        write_query_data(
            &mut s,
            &Value::Matrix(vec![Series {
                labels: l,
                samples: vec![Sample { t: 0, v: 1.5 }, Sample { t: 15_000, v: 2.0 }],
            }]),
        );
        assert_eq!(
            s,
            r#"{"resultType":"matrix","result":[{"metric":{"__name__":"up","job":"a\"b"},"values":[[0,"1.5"],[15,"2"]]}]}"#
        );
        let mut s = String::new();
        write_query_data(&mut s, &Value::Scalar { t: 2500, v: 0.1 });
        assert_eq!(s, r#"{"resultType":"scalar","result":[2.500,"0.1"]}"#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["result"][0], serde_json::json!(2.5));
    }

    #[test]
    fn alert_values_and_times_use_go_formats() {
        assert_eq!(format_float_e(1.0), "1e+00");
        assert_eq!(format_float_e(0.25), "2.5e-01");
        assert_eq!(format_float_e(123456.0), "1.23456e+05");
        assert_eq!(format_float_e(1e-300), "1e-300");
        assert_eq!(format_float_e(f64::NAN), "NaN");
        assert_eq!(
            format_time(Some(1_435_781_451_780)),
            "2015-07-01T20:10:51.78Z"
        );
        assert_eq!(format_time(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(None), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn errors_carry_type_and_status() {
        let r = ApiError::new(ErrorType::Execution, "boom").into_response();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let r = ApiError::new(ErrorType::Timeout, "slow").into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let r = ApiError::new(ErrorType::Unauthorized, "who").into_response();
        assert_eq!(r.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
