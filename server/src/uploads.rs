//! Upload wiring: the tus service's hooks in the media server — an optional HTTP hook
//! for the application's decisions, and a finish event (in-process and to the event
//! webhook) that later becomes a transcoding job.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::broadcast;
use videopick_hooks::HookClient;
use videopick_tus::Upload;
use videopick_tus::hooks::{HookFuture, Hooks, HttpHooks, Rejection, RequestInfo};

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
        }
    }

    /// Finished uploads, as they happen.
    pub fn finished(&self) -> broadcast::Receiver<UploadFinished> {
        self.finished.subscribe()
    }
}

impl Hooks for UploadEvents {
    fn authorize<'a>(&'a self, req: &'a RequestInfo) -> HookFuture<'a, Result<(), Rejection>> {
        match &self.app {
            Some(h) => h.authorize(req),
            None => Box::pin(async { Ok(()) }),
        }
    }

    fn pre_create<'a>(&'a self, upload: &'a Upload) -> HookFuture<'a, Result<(), Rejection>> {
        match &self.app {
            Some(h) => h.pre_create(upload),
            None => Box::pin(async { Ok(()) }),
        }
    }

    fn post_finish<'a>(&'a self, upload: &'a Upload, data: &'a Path) -> HookFuture<'a, ()> {
        Box::pin(async move {
            if upload.info.concat == Some(videopick_tus::store::ConcatRole::Partial) {
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
) -> Arc<UploadEvents> {
    Arc::new(UploadEvents::new(
        app.map(|u| HttpHooks::new(u, client.clone())),
        client.clone(),
        event_hook,
        jobs,
    ))
}
