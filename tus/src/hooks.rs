//! Hooks: the application's say in every request and its view of each upload's life.
//!
//! [`Hooks::authorize`] sees every request (not only creation), [`Hooks::pre_create`] can
//! reject an upload (e.g. bad metadata) with a status and message, [`Hooks::progress`]
//! hears of each stored chunk, [`Hooks::post_finish`] of a completed upload (with the path
//! of its bytes), [`Hooks::post_terminate`] of a deleted one. [`HttpHooks`] posts them to
//! a URL as JSON.

use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use crate::store::Upload;

/// A boxed future, as hooks return.
pub type HookFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A hook's refusal: the HTTP status and message the client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status (e.g. 401, 403, 400).
    pub status: u16,
    /// Message for the client.
    pub message: String,
}

/// What [`Hooks::authorize`] decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// HTTP method (after `X-HTTP-Method-Override`).
    pub method: String,
    /// Request path.
    pub path: String,
    /// The upload id, for requests on an upload.
    pub upload: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

/// The application's hooks. Every method has a permissive default.
pub trait Hooks: Send + Sync + 'static {
    /// Allow or reject any request.
    fn authorize<'a>(&'a self, _req: &'a RequestInfo) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(async { Ok(()) })
    }
    /// Allow or reject a new upload (its metadata, length …) before it is created.
    fn pre_create<'a>(&'a self, _upload: &'a Upload) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(async { Ok(()) })
    }
    /// Bytes were stored (called after each PATCH with the new durable offset).
    fn progress(&self, _upload: &Upload) {}
    /// The upload is complete; its bytes are at `data`.
    fn post_finish<'a>(&'a self, _upload: &'a Upload, _data: &'a Path) -> HookFuture<'a, ()> {
        Box::pin(async {})
    }
    /// The upload was terminated.
    fn post_terminate(&self, _id: &str) {}
}

/// Hooks that allow everything and do nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {}

/// POSTs each hook as JSON (`{"type": "authorize" | "pre-create" | "post-finish" |
/// "post-terminate", …}`) to an `http://` URL. For `authorize` and `pre-create`, a 2xx
/// answer allows; any other status rejects with that status and the answer's body as the
/// message (no answer within the timeout rejects with 503). `post-*` hooks are told once,
/// best effort. `progress` is not sent (it would be one request per chunk).
#[derive(Debug, Clone)]
pub struct HttpHooks {
    url: String,
    timeout: Duration,
}

impl HttpHooks {
    /// Hooks posted to `url`.
    pub fn new(url: impl Into<String>, timeout: Duration) -> HttpHooks {
        HttpHooks {
            url: url.into(),
            timeout,
        }
    }

    async fn post(&self, body: String) -> Result<(u16, String), String> {
        crate::http_client::post_json(&self.url, &body, self.timeout).await
    }

    async fn decide(&self, body: String) -> Result<(), Rejection> {
        match self.post(body).await {
            Ok((code, _)) if (200..300).contains(&code) => Ok(()),
            Ok((code, msg)) => Err(Rejection {
                status: code,
                message: msg,
            }),
            Err(e) => Err(Rejection {
                status: 503,
                message: format!("upload hook unavailable: {e}"),
            }),
        }
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt(s: Option<&str>) -> String {
    s.map_or("null".into(), json_str)
}

/// An upload as JSON (id, offset, length, metadata header, complete).
pub fn upload_json(u: &Upload) -> String {
    format!(
        "{{\"id\":{},\"offset\":{},\"length\":{},\"metadata\":{},\"complete\":{}}}",
        json_str(u.info.id.as_str()),
        u.offset,
        u.info.length.map_or("null".into(), |l| l.to_string()),
        json_str(&u.info.metadata),
        u.is_complete()
    )
}

impl Hooks for HttpHooks {
    fn authorize<'a>(&'a self, req: &'a RequestInfo) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(self.decide(format!(
            "{{\"type\":\"authorize\",\"method\":{},\"path\":{},\"upload\":{},\"authorization\":{}}}",
            json_str(&req.method),
            json_str(&req.path),
            opt(req.upload.as_deref()),
            opt(req.authorization.as_deref())
        )))
    }

    fn pre_create<'a>(&'a self, upload: &'a Upload) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(self.decide(format!(
            "{{\"type\":\"pre-create\",\"upload\":{}}}",
            upload_json(upload)
        )))
    }

    fn post_finish<'a>(&'a self, upload: &'a Upload, data: &'a Path) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let _ = self
                .post(format!(
                    "{{\"type\":\"post-finish\",\"upload\":{},\"path\":{}}}",
                    upload_json(upload),
                    json_str(&data.to_string_lossy())
                ))
                .await;
        })
    }

    fn post_terminate(&self, id: &str) {
        let hooks = self.clone();
        let body = format!("{{\"type\":\"post-terminate\",\"id\":{}}}", json_str(id));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = hooks.post(body).await;
            });
        }
    }
}
