//! The one outgoing HTTP client of VideoPick: every webhook (lifecycle events, recordings,
//! uploads) and every auth hook (publish/play, tus requests) goes through a [`HookClient`].
//!
//! ```text
//!  caller ─► HookClient::post_json(url, &impl Serialize)
//!              ├─ serde_json body, Content-Type: application/json
//!              ├─ http:// or https:// (rustls; OS roots + configured extra roots)
//!              ├─ pooled keep-alive connections (hyper-util)
//!              ├─ one deadline per attempt, answer read up to a size limit
//!              └─ deliver(): retries with exponential backoff until a 2xx
//!  HookAnswer { status, body } ─► .json::<T>() (serde; never a substring scan)
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use videopick_hooks::{HookClient, HookConfig, HookError};
//!
//! let client = HookClient::new(HookConfig::default()).unwrap();
//! // Nothing listens on port 9 of loopback: a clear error, no panic, no hang.
//! let err = client
//!     .post_json("http://127.0.0.1:9/hook", &serde_json::json!({"event": "publish"}))
//!     .await
//!     .unwrap_err();
//! assert!(matches!(err, HookError::Connect { .. }));
//! // Only http:// and https:// URLs are hooks.
//! assert!(matches!(
//!     client.post_json("ftp://x/y", &()).await,
//!     Err(HookError::BadUrl { .. })
//! ));
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Settings of a [`HookClient`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HookConfig {
    /// Deadline of one attempt: connect, send and read the whole answer (default 5 s).
    pub timeout: Duration,
    /// Extra attempts [`HookClient::deliver`] makes after a failure (default 3).
    pub retries: u32,
    /// Wait before the first retry; doubled before each next one (default 500 ms).
    pub backoff: Duration,
    /// Largest answer body read; a longer one is an error (default 64 KiB).
    pub max_answer: usize,
    /// PEM files of extra root certificates trusted for `https://` hooks, beside the
    /// operating system's roots (a private CA, or a test's self-signed certificate).
    pub extra_roots: Vec<PathBuf>,
    /// Shared secret: every request carries `X-Videopick-Signature: t=<unix seconds>,
    /// v1=<hex HMAC-SHA256 of "<t>." followed by the body>`, so the receiver knows it came
    /// from a holder of the secret and is fresh (default: none, unsigned).
    pub signing_secret: Option<Vec<u8>>,
}

/// The signature header of a request body `body` at `unix_secs` with `secret` (see
/// [`HookConfig::signing_secret`]).
pub fn signature(secret: &[u8], unix_secs: u64, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    use std::fmt::Write as _;
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(unix_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let mut hex = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        let _ = write!(hex, "{b:02x}");
    }
    format!("t={unix_secs},v1={hex}")
}

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "x-videopick-signature";

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_answer: 64 * 1024,
            extra_roots: Vec::new(),
            signing_secret: None,
        }
    }
}

impl HookConfig {
    /// Set [`HookConfig::timeout`].
    #[must_use]
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    /// Set [`HookConfig::retries`] and [`HookConfig::backoff`].
    #[must_use]
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }
    /// Trust the certificates in a PEM file too (see [`HookConfig::extra_roots`]).
    #[must_use]
    pub fn extra_root(mut self, pem: impl Into<PathBuf>) -> Self {
        self.extra_roots.push(pem.into());
        self
    }
}

/// Why a hook call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// Not an `http://` or `https://` URL.
    #[error("not an http:// or https:// URL: {url}")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// Could not connect or exchange the request (refused, reset, TLS failure …).
    #[error("{url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// No complete answer within the deadline.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The answer's body exceeded [`HookConfig::max_answer`].
    #[error("{url} answered more than {limit} bytes")]
    AnswerTooLarge {
        /// The URL.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The answer was not the JSON expected.
    #[error("{url} answered unreadable JSON: {reason}")]
    Json {
        /// The URL.
        url: String,
        /// serde_json's message.
        reason: String,
    },
    /// [`HookClient::deliver`] got non-2xx answers until it gave up.
    #[error("{url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The last status.
        status: u16,
    },
    /// The TLS set-up failed (an unreadable extra root file).
    #[error("TLS set-up: {0}")]
    Tls(String),
}

/// A hook's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookAnswer {
    /// HTTP status.
    pub status: u16,
    /// The body (at most [`HookConfig::max_answer`] bytes).
    pub body: Bytes,
    url: String,
}

impl HookAnswer {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON of type `T`. An empty body reads as JSON `null` (so `Option<T>` and
    /// structs whose fields all default accept a hook that answers nothing).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HookError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|e| HookError::Json {
            url: self.url.clone(),
            reason: e.to_string(),
        })
    }

    /// The body as text (lossy UTF-8), e.g. a refusal message to relay.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The outgoing HTTP client. Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct HookClient {
    client: Client<Https, Full<Bytes>>,
    config: HookConfig,
    durations: Option<HookDurations>,
}

/// Hook call durations by `outcome` (`success`, `refused` for a non-2xx answer, `error`,
/// `timeout`).
pub type HookDurations = prometheus_client::metrics::family::Family<
    [(&'static str, &'static str); 1],
    prometheus_client::metrics::histogram::Histogram,
>;

impl std::fmt::Debug for HookClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn tls_config(extra: &[PathBuf]) -> Result<rustls::ClientConfig, HookError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs();
    for cert in native {
        let _ = roots.add(cert);
    }
    for path in extra {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| HookError::Tls(format!("{}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| HookError::Tls(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(HookError::Tls(format!(
                "{}: no certificate in it",
                path.display()
            )));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| HookError::Tls(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HookError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The operating system's trusted roots (empty when there is no store).
fn rustls_native_certs() -> Vec<rustls_pki_types::CertificateDer<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(error = %e, "reading the system's root certificates");
    }
    found.certs
}

impl HookClient {
    /// A client with `config` (fails only on unreadable extra root files).
    pub fn new(config: HookConfig) -> Result<HookClient, HookError> {
        let tls = tls_config(&config.extra_roots)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(8)
            .build(https);
        Ok(HookClient {
            client,
            config,
            durations: None,
        })
    }

    /// Observe every call's duration in `registry` (`videopick_hook_duration_seconds`, by
    /// outcome, each outcome listed from the start; buckets from 5 ms to about 10 s).
    #[must_use]
    pub fn with_metrics(mut self, registry: &mut prometheus_client::registry::Registry) -> Self {
        let family = HookDurations::new_with_constructor(|| {
            prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 12),
            )
        });
        registry.register(
            "videopick_hook_duration_seconds",
            "Duration of outgoing hook calls (webhooks and auth hooks), by outcome.",
            family.clone(),
        );
        // Every outcome from the start, at zero: dashboards and alerts see the series
        // before the first call.
        for outcome in ["success", "refused", "timeout", "error"] {
            let _ = family.get_or_create(&[("outcome", outcome)]);
        }
        self.durations = Some(family);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &HookConfig {
        &self.config
    }

    /// POST `body` as JSON to `url` once; any answer (whatever its status) is `Ok`.
    pub async fn post_json<T: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
    ) -> Result<HookAnswer, HookError> {
        let json = serde_json::to_vec(body).map_err(|e| HookError::Json {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        self.post_bytes(url, Bytes::from(json)).await
    }

    /// POST `body` as JSON until a 2xx answer, retrying after connection errors, time-outs
    /// and non-2xx answers up to [`HookConfig::retries`] times with exponential backoff.
    /// The error is the last attempt's.
    pub async fn deliver<T: Serialize + ?Sized>(
        &self,
        url: &str,
        body: &T,
    ) -> Result<HookAnswer, HookError> {
        let json = Bytes::from(serde_json::to_vec(body).map_err(|e| HookError::Json {
            url: url.to_string(),
            reason: e.to_string(),
        })?);
        let mut backoff = self.config.backoff;
        let mut attempt = 0;
        loop {
            let err = match self.post_bytes(url, json.clone()).await {
                Ok(a) if a.is_success() => return Ok(a),
                Ok(a) => HookError::Status {
                    url: url.to_string(),
                    status: a.status,
                },
                Err(e @ HookError::BadUrl { .. }) => return Err(e),
                Err(e) => e,
            };
            if attempt >= self.config.retries {
                tracing::warn!(url, error = %err, attempts = attempt + 1, "hook gave up");
                return Err(err);
            }
            tracing::debug!(url, error = %err, attempt, "hook failed, retrying");
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }

    /// Send one `method` request to `url` (an API call rather than a hook: `DELETE`, or a
    /// `POST` without body), with `Authorization: Bearer <bearer>` when given; signed like
    /// the hooks when the client has a signing secret. Any answer is `Ok`.
    pub async fn call(
        &self,
        method: http::Method,
        url: &str,
        bearer: Option<&str>,
    ) -> Result<HookAnswer, HookError> {
        self.send(method, url, bearer, Bytes::new()).await
    }

    async fn post_bytes(&self, url: &str, body: Bytes) -> Result<HookAnswer, HookError> {
        self.send(http::Method::POST, url, None, body).await
    }

    async fn send(
        &self,
        method: http::Method,
        url: &str,
        bearer: Option<&str>,
        body: Bytes,
    ) -> Result<HookAnswer, HookError> {
        let bad = || HookError::BadUrl {
            url: url.to_string(),
        };
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(bad());
        }
        let signed = self.config.signing_secret.as_ref().map(|secret| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            signature(secret, now, &body)
        });
        let request = || {
            let mut r = http::Request::builder()
                .method(method.clone())
                .uri(uri.clone())
                .header(http::header::USER_AGENT, "videopick-hooks");
            if !body.is_empty() {
                r = r.header(http::header::CONTENT_TYPE, "application/json");
            }
            if let Some(sig) = &signed {
                r = r.header(SIGNATURE_HEADER, sig.as_str());
            }
            if let Some(token) = bearer {
                r = r.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            r.body(Full::new(body.clone())).map_err(|_| bad())
        };
        let limit = self.config.max_answer;
        let exchange = async {
            let resp = match self.client.request(request()?).await {
                Ok(r) => r,
                // A pooled keep-alive connection the server had already closed (without
                // saying `Connection: close`): the request never reached it; send it once
                // more on a new connection.
                Err(e) if closed_before_answer(&e) => {
                    tracing::debug!(url, "hook connection was closed by the server; resending");
                    self.client
                        .request(request()?)
                        .await
                        .map_err(|e| HookError::Connect {
                            url: url.to_string(),
                            reason: error_chain(&e),
                        })?
                }
                Err(e) => {
                    return Err(HookError::Connect {
                        url: url.to_string(),
                        reason: error_chain(&e),
                    });
                }
            };
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut buf = BytesMut::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| HookError::Connect {
                    url: url.to_string(),
                    reason: error_chain(&e),
                })?;
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > limit {
                        return Err(HookError::AnswerTooLarge {
                            url: url.to_string(),
                            limit,
                        });
                    }
                    buf.extend_from_slice(&data);
                }
            }
            Ok(HookAnswer {
                status,
                body: buf.freeze(),
                url: url.to_string(),
            })
        };
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(self.config.timeout, exchange)
            .await
            .map_err(|_| HookError::Timeout {
                url: url.to_string(),
                timeout: self.config.timeout,
            })
            .and_then(|r| r);
        if let Some(d) = &self.durations {
            let outcome = match &result {
                Ok(a) if a.is_success() => "success",
                Ok(_) => "refused",
                Err(HookError::Timeout { .. }) => "timeout",
                Err(_) => "error",
            };
            d.get_or_create(&[("outcome", outcome)])
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }
}

/// Whether `e` says the connection closed before any answer began: the race of reusing a
/// pooled connection that the server closed meanwhile.
fn closed_before_answer(e: &hyper_util::client::legacy::Error) -> bool {
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        if let Some(h) = inner.downcast_ref::<hyper::Error>() {
            return h.is_incomplete_message() || h.is_canceled();
        }
        src = inner.source();
    }
    false
}

/// An error and its sources, for a readable message ("client error (Connect): tcp connect
/// error: Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
