//! Upload wiring: the tus service's hooks in the media server — an optional HTTP hook
//! for the application's decisions, and a finish event (in-process and to the event
//! webhook) that later becomes a transcoding job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::broadcast;
use videopick_app::videos::UploadKind;
use videopick_hooks::HookClient;
use videopick_tus::Upload;
use videopick_tus::hooks::{HookFuture, Hooks, HttpHooks, Rejection, RequestInfo};
use videopick_tus::store::ConcatRole;

/// A finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFinished {
    /// Upload id.
    pub id: String,
    /// Its length.
    pub length: u64,
    /// `Upload-Metadata` (canonical header form).
    pub metadata: String,
    /// Where its bytes are.
    pub path: PathBuf,
}

/// The media server's tus hooks.
#[derive(Debug, Clone)]
pub struct UploadEvents {
    app: Option<HttpHooks>,
    client: HookClient,
    event_hook: Option<String>,
    jobs: Option<crate::jobs::Jobs>,
    finished: broadcast::Sender<UploadFinished>,
    platform: Option<videopick_app::App>,
}

impl UploadEvents {
    /// Hooks that ask `app` (if any), queue a transcoding job for each finished upload
    /// (with `jobs`) and announce it to `event_hook`.
    pub fn new(
        app: Option<HttpHooks>,
        client: HookClient,
        event_hook: Option<String>,
        jobs: Option<crate::jobs::Jobs>,
    ) -> UploadEvents {
        UploadEvents {
            app,
            client,
            event_hook,
            jobs,
            finished: broadcast::channel(256).0,
            platform: None,
        }
    }

    /// Uploads belong to the platform's accounts: creating one needs a session (bearer
    /// token or cookie) and makes a video in the user's channel; only its owner may
    /// resume or cancel it; finishing moves the video to processing with its job.
    #[must_use]
    pub fn with_platform(mut self, app: videopick_app::App) -> UploadEvents {
        self.platform = Some(app);
        self
    }

    /// The signed-in user of a tus request, or the rejection to answer.
    async fn user(
        app: &videopick_app::App,
        req: &RequestInfo,
    ) -> Result<videopick_app::accounts::User, Rejection> {
        let method =
            hyper::Method::from_bytes(req.method.as_bytes()).unwrap_or(hyper::Method::POST);
        match videopick_app::api::session_from_headers(app, &method, &req.headers).await {
            Ok((Some(u), _)) => Ok(u),
            Ok((None, _)) => Err(Rejection {
                status: 401,
                message: "sign in to upload".into(),
            }),
            Err(e) => Err(Rejection {
                status: e.status().as_u16(),
                message: e.to_string(),
            }),
        }
    }

    /// Finished uploads, as they happen.
    pub fn finished(&self) -> broadcast::Receiver<UploadFinished> {
        self.finished.subscribe()
    }
}

impl Hooks for UploadEvents {
    fn authorize<'a>(&'a self, req: &'a RequestInfo) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(async move {
            if let Some(app) = &self.platform {
                let user = UploadEvents::user(app, req).await?;
                if let Some(id) = &req.upload {
                    match app.may_use_upload(&user, id).await {
                        Ok(true) => {}
                        Ok(false) => {
                            return Err(Rejection {
                                status: 404,
                                message: "upload not found".into(),
                            });
                        }
                        Err(e) => {
                            return Err(Rejection {
                                status: e.status().as_u16(),
                                message: e.to_string(),
                            });
                        }
                    }
                }
            }
            match &self.app {
                Some(h) => h.authorize(req).await,
                None => Ok(()),
            }
        })
    }

    fn pre_create<'a>(
        &'a self,
        upload: &'a Upload,
        req: &'a RequestInfo,
    ) -> HookFuture<'a, Result<(), Rejection>> {
        Box::pin(async move {
            if let Some(app) = &self.platform {
                let user = UploadEvents::user(app, req).await?;
                let meta = videopick_tus::headers::Metadata::parse(&upload.info.metadata, 1 << 16)
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| {
                                let v = std::str::from_utf8(v?).ok()?;
                                Some((k.to_string(), v.to_string()))
                            })
                            .collect::<std::collections::HashMap<_, _>>()
                    })
                    .unwrap_or_default();
                let kind = match &upload.info.concat {
                    None => UploadKind::Whole,
                    Some(ConcatRole::Partial) => UploadKind::Partial,
                    Some(ConcatRole::Final(parts)) => {
                        UploadKind::Final(parts.iter().map(ToString::to_string).collect())
                    }
                };
                if let Err(e) = app
                    .upload_created(&user, upload.info.id.as_str(), &kind, &meta)
                    .await
                {
                    return Err(Rejection {
                        status: e.status().as_u16(),
                        message: e.to_string(),
                    });
                }
            }
            match &self.app {
                Some(h) => h.pre_create(upload, req).await,
                None => Ok(()),
            }
        })
    }

    fn post_finish<'a>(&'a self, upload: &'a Upload, data: &'a Path) -> HookFuture<'a, ()> {
        Box::pin(async move {
            if upload.info.concat == Some(ConcatRole::Partial) {
                // A part of a parallel upload: the final upload is the video.
                if let Some(h) = &self.app {
                    h.post_finish(upload, data).await;
                }
                return;
            }
            let ev = UploadFinished {
                id: upload.info.id.to_string(),
                length: upload.offset,
                metadata: upload.info.metadata.clone(),
                path: data.to_path_buf(),
            };
            tracing::info!(upload = %ev.id, bytes = ev.length, "upload finished");
            // Queued (durably) before the client hears the upload is complete.
            let job = match &self.jobs {
                Some(j) => j.upload_finished(&ev.id, &ev.path).await,
                None => None,
            };
            if let Some(app) = &self.platform {
                let job = job.map(|j| j.to_string());
                if let Err(e) = app.upload_finished(&ev.id, job.as_deref()).await {
                    tracing::warn!(upload = %ev.id, error = %e, "app: upload's video not updated");
                }
            }
            let _ = self.finished.send(ev.clone());
            if let Some(url) = &self.event_hook {
                let body = serde_json::json!({
                    "event": "upload",
                    "id": ev.id,
                    "length": ev.length,
                    "metadata": ev.metadata,
                    "path": ev.path.to_string_lossy(),
                    "job": job,
                });
                let (url, client) = (url.clone(), self.client.clone());
                tokio::spawn(async move {
                    let _ = client.deliver(&url, &body).await;
                });
            }
            if let Some(h) = &self.app {
                h.post_finish(upload, data).await;
            }
        })
    }

    fn post_terminate(&self, id: &str) {
        if let Some(app) = &self.platform {
            let (app, id) = (app.clone(), id.to_string());
            tokio::spawn(async move {
                if let Err(e) = app.upload_gone(&id).await {
                    tracing::warn!(upload = %id, error = %e, "app: cancelled upload's video not removed");
                }
            });
        }
        if let Some(h) = &self.app {
            h.post_terminate(id);
        }
    }
}

/// Keep `Arc` in the public signature simple for the binaries.
pub fn hooks(
    client: &HookClient,
    app: Option<String>,
    event_hook: Option<String>,
    jobs: Option<crate::jobs::Jobs>,
    platform: Option<videopick_app::App>,
) -> Arc<UploadEvents> {
    let events = UploadEvents::new(
        app.map(|u| HttpHooks::new(u, client.clone())),
        client.clone(),
        event_hook,
        jobs,
    );
    Arc::new(match platform {
        Some(p) => events.with_platform(p),
        None => events,
    })
}

/// tus PATCH bodies read straight from the socket ([`crate::http::BodyTaker`]): the
/// request goes through the same [`videopick_tus::service::TusService::handle`] as any
/// other (hooks, checks, offsets, durability), with the connection in its extensions so
/// that the upload's disk thread reads the body itself ([`videopick_tus::direct`]).
pub(crate) struct TusDirect {
    pub(crate) tus: videopick_tus::service::TusService,
    pub(crate) metrics: crate::metrics::Metrics,
}

impl crate::http::BodyTaker for TusDirect {
    fn wants(&self, method: &str, path: &str, length: u64) -> bool {
        // PATCH bodies; and the bodiless requests around them (creation, HEAD), so that a
        // keep-alive connection whose first request is a POST stays here for its PATCH.
        // Anything else with a body (creation-with-upload) goes through hyper.
        self.tus.owns(path) && (method == "PATCH" || length == 0)
    }

    fn answer(
        &self,
        head: bytes::Bytes,
        length: u64,
        read_ahead: bytes::Bytes,
        stream: tokio::net::TcpStream,
        _peer: std::net::SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<tokio::net::TcpStream>> + Send>>
    {
        use videopick_tus::direct::{DirectBody, DirectBodySlot};
        let (tus, metrics) = (self.tus.clone(), self.metrics.clone());
        Box::pin(async move {
            let started = std::time::Instant::now();
            let Some((mut req, expect)) = crate::http::request_from_head(&head) else {
                // Not a head this path takes whole: close (hyper would refuse it too).
                return None;
            };
            let slot = DirectBodySlot::new(DirectBody::new(stream, read_ahead, length, expect));
            req.extensions_mut().insert(slot.clone());
            let resp = tus.handle(req).await;
            metrics.observe_http("media", "tus", resp.status().as_u16(), started.elapsed());
            let body = slot.take()?;
            let complete = body.is_complete();
            let stream = body.into_stream()?;
            // A body not read to its end cannot be skipped: the connection closes.
            crate::http::write_response(&stream, resp, !complete)
                .await
                .ok()?;
            complete.then_some(stream)
        })
    }
}
