//! The HTTP client behind the `tocsinctl` commands that talk to a running
//! collector: the base URL (`--url`), the bearer token (`--token` or
//! `TOCSIN_TOKEN`) and, for https, an extra CA (`--ca-file`).
//!
//! Every failure is a [`CtlError`] that says what to do about it: a
//! collector that cannot be reached names the URL; 401 and 403 say whether
//! the token is missing, not accepted or lacks the role; an API error
//! carries the API's own `errorType` and message. Requests are blocking
//! (a small runtime of its own), bounded by [`REQUEST_TIMEOUT`], and a
//! response body is read up to [`MAX_RESPONSE_BYTES`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};

/// Where `tocsinctl` looks for the collector unless `--url` says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9466";

/// The longest a request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(130);

/// The longest the connection alone may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest response body read.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Why a command talking to a collector failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("--url {url:?}: {reason} (want http://HOST:PORT or https://HOST:PORT)")]
    BadUrl { url: String, reason: String },
    #[error("--token: {0}")]
    BadToken(String),
    #[error("--ca-file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
    #[error(
        "cannot reach the collector at {url}: {reason} (is it running there? --url sets the address)"
    )]
    Connect { url: String, reason: String },
    #[error(
        "TLS with the collector at {url} failed: {reason} (a collector certificate signed by a private CA needs --ca-file)"
    )]
    Tls { url: String, reason: String },
    #[error("request to {url} failed: {reason}")]
    Request { url: String, reason: String },
    #[error(
        "the collector at {url} wants a bearer token: pass --token or set TOCSIN_TOKEN (it said: {message})"
    )]
    MissingToken { url: String, message: String },
    #[error(
        "the collector at {url} did not accept the token from --token or TOCSIN_TOKEN (it said: {message})"
    )]
    BadCredentials { url: String, message: String },
    #[error("the token's role may not do this at {url} (it said: {message})")]
    Forbidden { url: String, message: String },
    #[error("{url}: {error_type}: {message}")]
    Api {
        url: String,
        status: u16,
        error_type: String,
        message: String,
    },
    #[error("{url}: HTTP {status}: {body}")]
    Http {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url}: unexpected answer: {reason}")]
    Decode { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
}

/// How to reach the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    pub url: String,
    pub token: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            url: DEFAULT_URL.to_string(),
            token: None,
            ca_file: None,
        }
    }
}

/// A blocking client of one collector's HTTP API.
#[derive(Debug)]
pub struct Client {
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

/// Builds the base URL: http or https, a host, a path ending in `/` so
/// that API paths are joined below it.
pub fn base_url(url: &str) -> Result<Url, CtlError> {
    let bad = |reason: &str| CtlError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let mut base = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(bad(&format!(
            "scheme {:?} is not http or https",
            base.scheme()
        )));
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(bad("a query or fragment has no place here"));
    }
    if !base.path().ends_with('/') {
        let path = format!("{}/", base.path());
        base.set_path(&path);
    }
    Ok(base)
}

impl Client {
    pub fn new(opts: &ClientOptions) -> Result<Client, CtlError> {
        let base = base_url(&opts.url)?;
        let token = match opts.token.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(t) if t.chars().any(|c| c.is_control()) => {
                return Err(CtlError::BadToken(
                    "contains control characters (a token is printable text)".into(),
                ));
            }
            Some(t) => Some(t.to_string()),
        };
        // reqwest is built without a default crypto provider; installing
        // one twice is harmless (the first stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &opts.ca_file {
            for cert in read_ca(path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| CtlError::Setup(chain(&e)))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CtlError::Setup(e.to_string()))?;
        Ok(Client {
            base,
            token,
            http,
            rt,
        })
    }

    /// The URL of an API path (`api/v1/query`).
    pub fn url(&self, path: &str) -> Result<Url, CtlError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| CtlError::BadUrl {
                url: self.base.to_string(),
                reason: e.to_string(),
            })
    }

    /// GET `path` with `params`; the `data` of a successful answer.
    pub fn get(&self, path: &str, params: &[(&str, String)]) -> Result<Answer, CtlError> {
        self.call(Method::GET, self.url(path)?, params)
    }

    /// DELETE `path/item` (`item` percent-encoded as one path segment);
    /// the `data` of a successful answer.
    pub fn delete(&self, path: &str, item: &str) -> Result<Answer, CtlError> {
        let mut url = self.url(path)?;
        url.path_segments_mut()
            .map_err(|()| CtlError::BadUrl {
                url: self.base.to_string(),
                reason: "cannot hold a path".into(),
            })?
            .pop_if_empty()
            .push(item);
        self.call(Method::DELETE, url, &[])
    }

    fn call(
        &self,
        method: Method,
        mut url: Url,
        params: &[(&str, String)],
    ) -> Result<Answer, CtlError> {
        // Messages name the URL without the query: it may be long, and the
        // parameters are the user's own.
        let shown = url.to_string();
        if !params.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let (status, body) = self.rt.block_on(async {
            let resp = req.send().await.map_err(|e| send_error(&shown, &e))?;
            let status = resp.status();
            let body = read_body(resp, &shown).await?;
            Ok::<_, CtlError>((status, body))
        })?;
        interpret(&shown, status, &body, self.token.is_some())
    }
}

/// A successful API answer: its `data`, and the raw body for `-o json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub data: serde_json::Value,
    pub raw: String,
    pub warnings: Vec<String>,
}

async fn read_body(mut resp: reqwest::Response, url: &str) -> Result<Vec<u8>, CtlError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| CtlError::Request {
        url: url.to_string(),
        reason: chain(&e),
    })? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(CtlError::Request {
                url: url.to_string(),
                reason: format!("answer larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The CA certificates of a PEM file (one or a bundle).
fn read_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, CtlError> {
    let bad = |reason: String| CtlError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(chain(&e)))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (want the PEM CA certificate, -----BEGIN CERTIFICATE-----)"
                .into(),
        ));
    }
    Ok(certs)
}

/// The TLS error somewhere in `e`'s causes, if any. An I/O error hides
/// its inner error from `source()` (and hyper wraps I/O errors in I/O
/// errors), so those are opened with `get_ref` too.
fn tls_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut todo: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    // Bounded: a cause chain is short, but never trust it to end.
    for _ in 0..32 {
        let err = todo.pop()?;
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Some(t);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            todo.push(inner);
        }
        if let Some(next) = err.source() {
            todo.push(next);
        }
    }
    None
}

/// An error and its causes, `: `-separated (reqwest's own message alone
/// rarely says what happened).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let msg = s.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = s.source();
    }
    out
}

fn send_error(url: &str, e: &reqwest::Error) -> CtlError {
    // The innermost cause says it best ("Connection refused (os error 111)").
    let mut inner: &dyn std::error::Error = e;
    while let Some(s) = inner.source() {
        inner = s;
    }
    if let Some(t) = tls_cause(e) {
        CtlError::Tls {
            url: url.to_string(),
            reason: t.to_string(),
        }
    } else if e.is_connect() {
        CtlError::Connect {
            url: url.to_string(),
            reason: inner.to_string(),
        }
    } else if e.is_timeout() {
        CtlError::Request {
            url: url.to_string(),
            reason: format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
        }
    } else {
        CtlError::Request {
            url: url.to_string(),
            reason: chain(e),
        }
    }
}

/// Turns a status and body into the answer or the error that explains it.
pub fn interpret(
    url: &str,
    status: StatusCode,
    body: &[u8],
    token_given: bool,
) -> Result<Answer, CtlError> {
    let text = String::from_utf8_lossy(body).into_owned();
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let api_error = json.as_ref().and_then(|j| {
        (j.get("status")?.as_str()? == "error").then(|| {
            (
                j.get("errorType")
                    .and_then(|v| v.as_str())
                    .unwrap_or("error")
                    .to_string(),
                j.get("error")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
    });
    let message = || match &api_error {
        Some((_, m)) if !m.is_empty() => m.clone(),
        _ => short(&text),
    };
    match status {
        StatusCode::UNAUTHORIZED if token_given => {
            return Err(CtlError::BadCredentials {
                url: url.to_string(),
                message: message(),
            });
        }
        StatusCode::UNAUTHORIZED => {
            return Err(CtlError::MissingToken {
                url: url.to_string(),
                message: message(),
            });
        }
        StatusCode::FORBIDDEN => {
            return Err(CtlError::Forbidden {
                url: url.to_string(),
                message: message(),
            });
        }
        _ => {}
    }
    if let Some((error_type, message)) = api_error {
        return Err(CtlError::Api {
            url: url.to_string(),
            status: status.as_u16(),
            error_type,
            message,
        });
    }
    if !status.is_success() {
        return Err(CtlError::Http {
            url: url.to_string(),
            status: status.as_u16(),
            body: short(&text),
        });
    }
    let Some(mut json) = json else {
        return Err(CtlError::Decode {
            url: url.to_string(),
            reason: format!("not JSON: {}", short(&text)),
        });
    };
    if json.get("status").and_then(|s| s.as_str()) != Some("success") {
        return Err(CtlError::Decode {
            url: url.to_string(),
            reason: format!("no \"status\":\"success\": {}", short(&text)),
        });
    }
    let warnings = json
        .get("warnings")
        .and_then(|w| w.as_array())
        .map(|w| {
            w.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let data = json
        .get_mut("data")
        .map(serde_json::Value::take)
        .unwrap_or(serde_json::Value::Null);
    Ok(Answer {
        data,
        raw: text,
        warnings,
    })
}

/// A body cut for an error message.
fn short(text: &str) -> String {
    const MAX: usize = 512;
    let t = text.trim();
    if t.len() <= MAX {
        return t.to_string();
    }
    let mut end = MAX;
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &t[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_get_a_trailing_slash_and_bad_ones_say_what_is_valid() {
        assert_eq!(
            base_url("http://127.0.0.1:9466").unwrap().as_str(),
            "http://127.0.0.1:9466/"
        );
        assert_eq!(
            base_url("https://tocsin.example/prefix")
                .unwrap()
                .join("api/v1/query")
                .unwrap()
                .as_str(),
            "https://tocsin.example/prefix/api/v1/query"
        );
        for bad in ["127.0.0.1:9466", "ftp://h/", "http://h/?x=1", "nonsense"] {
            let e = base_url(bad).unwrap_err().to_string();
            assert!(e.contains("want http://HOST:PORT"), "{bad}: {e}");
        }
    }

    #[test]
    fn statuses_become_errors_that_say_what_to_do() {
        let url = "http://c/api/v1/query";
        let unauth =
            br#"{"status":"error","errorType":"unauthorized","error":"missing bearer token"}"#;
        let e = interpret(url, StatusCode::UNAUTHORIZED, unauth, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("pass --token or set TOCSIN_TOKEN"), "{e}");
        assert!(e.contains("missing bearer token"), "{e}");
        let e = interpret(url, StatusCode::UNAUTHORIZED, unauth, true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("did not accept the token"), "{e}");
        let e = interpret(
            url,
            StatusCode::FORBIDDEN,
            br#"{"status":"error","errorType":"forbidden","error":"token \"g\" has role read; this endpoint needs admin"}"#,
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("role may not") && e.contains("needs admin"),
            "{e}"
        );
        let e = interpret(
            url,
            StatusCode::BAD_REQUEST,
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#,
            false,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "http://c/api/v1/query: bad_data: parse error at char 3");
        let e = interpret(url, StatusCode::BAD_GATEWAY, b"<html>proxy</html>", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("HTTP 502") && e.contains("proxy"), "{e}");
        let ok = interpret(
            url,
            StatusCode::OK,
            br#"{"status":"success","data":{"x":1},"warnings":["w"]}"#,
            false,
        )
        .unwrap();
        assert_eq!(ok.data, serde_json::json!({"x": 1}));
        assert_eq!(ok.warnings, vec!["w".to_string()]);
    }

    #[test]
    fn a_refused_connection_names_the_url() {
        // A port just released: nothing listens there.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let client = Client::new(&ClientOptions {
            url: format!("http://{addr}"),
            ..ClientOptions::default()
        })
        .unwrap();
        let e = client.get("api/v1/query", &[]).unwrap_err();
        assert!(matches!(e, CtlError::Connect { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains(&format!("http://{addr}/api/v1/query")), "{e}");
    }
}
