//! Hooks: the application's say in every request and its view of each upload's life.
//!
//! [`Hooks::authorize`] sees every request (not only creation), [`Hooks::pre_create`] can
//! reject an upload (e.g. bad metadata) with a status and message, [`Hooks::progress`]
//! hears of each stored chunk, [`Hooks::post_finish`] of a completed upload (with the path
//! of its bytes), [`Hooks::post_terminate`] of a deleted one. [`HttpHooks`] posts them to
//! a URL as JSON.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use videopick_hooks::HookClient;

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
    /// Every request header (cookies and `Origin` for session checks, …).
    pub headers: hyper::header::HeaderMap,
}

/// The application's hooks. Every method has a permissive default.
pub trait Hooks: Send + Sync + 'static {
    /// Allow or reject any request.
    fn authorize<'a>(&'a self, _req: &'a RequestInfo) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(async { Ok(()) })
    }
    /// Allow or reject a new upload (its metadata, length …) before it is created; `req`
    /// is the creating request (who asks).
    fn pre_create<'a>(
        &'a self,
        _upload: &'a Upload,
        _req: &'a RequestInfo,
    ) -> HookFuture<'a, Result<(), Rejection>> {
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
/// "post-terminate", …}`) through the one [`HookClient`] (`http://` or `https://`). For
/// `authorize` and `pre-create`, a 2xx answer allows; any other status rejects with that
/// status and the answer's body as the message (no answer within the client's timeout
/// rejects with 503). `post-*` hooks are told once, best effort. `progress` is not sent (it
/// would be one request per chunk).
#[derive(Debug, Clone)]
pub struct HttpHooks {
    url: String,
    client: HookClient,
}

/// An upload as the hooks' JSON.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UploadBody<'a> {
    /// Upload id.
    pub id: &'a str,
    /// Bytes stored.
    pub offset: u64,
    /// Declared length (`null` while deferred).
    pub length: Option<u64>,
    /// The `Upload-Metadata` header as received (canonical form).
    pub metadata: &'a str,
    /// Whether every byte is stored.
    pub complete: bool,
    /// `partial` (a part of a parallel upload) or `final` (joining `parts`); absent for an
    /// ordinary upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concat: Option<&'static str>,
    /// For a final upload: the ids of the parts it joins, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<&'a str>,
}

impl<'a> From<&'a Upload> for UploadBody<'a> {
    fn from(u: &'a Upload) -> UploadBody<'a> {
        UploadBody {
            id: u.info.id.as_str(),
            offset: u.offset,
            length: u.info.length,
            metadata: &u.info.metadata,
            complete: u.is_complete(),
            concat: match &u.info.concat {
                None => None,
                Some(crate::store::ConcatRole::Partial) => Some("partial"),
                Some(crate::store::ConcatRole::Final(_)) => Some("final"),
            },
            parts: match &u.info.concat {
                Some(crate::store::ConcatRole::Final(parts)) => parts
                    .iter()
                    .map(videopick_storage::UploadId::as_str)
                    .collect(),
                _ => Vec::new(),
            },
        }
    }
}

/// The hooks' JSON bodies, tagged by `type`.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
enum HookBody<'a> {
    Authorize {
        method: &'a str,
        path: &'a str,
        upload: Option<&'a str>,
        authorization: Option<&'a str>,
    },
    PreCreate {
        upload: UploadBody<'a>,
        authorization: Option<&'a str>,
    },
    PostFinish {
        upload: UploadBody<'a>,
        path: String,
    },
    PostTerminate {
        id: &'a str,
    },
}

impl HttpHooks {
    /// Hooks posted to `url` through `client`.
    pub fn new(url: impl Into<String>, client: HookClient) -> HttpHooks {
        HttpHooks {
            url: url.into(),
            client,
        }
    }

    async fn decide(&self, body: HookBody<'_>) -> Result<(), Rejection> {
        match self.client.post_json(&self.url, &body).await {
            Ok(a) if a.is_success() => Ok(()),
            Ok(a) => Err(Rejection {
                status: a.status,
                message: a.text(),
            }),
            Err(e) => Err(Rejection {
                status: 503,
                message: format!("upload hook unavailable: {e}"),
            }),
        }
    }
}

impl Hooks for HttpHooks {
    fn authorize<'a>(&'a self, req: &'a RequestInfo) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(self.decide(HookBody::Authorize {
            method: &req.method,
            path: &req.path,
            upload: req.upload.as_deref(),
            authorization: req.authorization.as_deref(),
        }))
    }

    fn pre_create<'a>(
        &'a self,
        upload: &'a Upload,
        req: &'a RequestInfo,
    ) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(self.decide(HookBody::PreCreate {
            upload: upload.into(),
            authorization: req.authorization.as_deref(),
        }))
    }

    fn post_finish<'a>(&'a self, upload: &'a Upload, data: &'a Path) -> HookFuture<'a, ()> {
        Box::pin(async move {
            let body = HookBody::PostFinish {
                upload: upload.into(),
                path: data.to_string_lossy().into_owned(),
            };
            let _ = self.client.post_json(&self.url, &body).await;
        })
    }

    fn post_terminate(&self, id: &str) {
        let hooks = self.clone();
        let id = id.to_string();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let body = HookBody::PostTerminate { id: &id };
                let _ = hooks.client.post_json(&hooks.url, &body).await;
            });
        }
    }
}
