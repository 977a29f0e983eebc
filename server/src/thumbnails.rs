//! Live thumbnails: every interval, for each live stream of the platform's live app, one
//! short ffmpeg run decodes the newest cached key frame into a JPEG at
//! `thumbnails/<app>/<stream>.jpg` (written atomically; served at the same path), with
//! at most a few ffmpeg runs at once. The platform is told, so the channel's
//! `live.thumbnail` URL changes.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use videopick_app::App;
use videopick_live::hub::Hub;
use videopick_storage::{Area, Storage};

use crate::http::{HttpResponse, respond};

/// Longest one snapshot may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the thumbnail of `app/stream` is.
fn path(storage: &Storage, app: &str, stream: &str) -> std::path::PathBuf {
    storage
        .area_dir(Area::Thumbnails)
        .join(app)
        .join(format!("{stream}.jpg"))
}

/// Take thumbnails of the live app's streams every `every`, `concurrency` at once.
pub(crate) fn spawn(app: App, hub: Hub, storage: Storage, every: Duration, concurrency: usize) {
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tick.tick().await;
            let live_app = app.config().live_app.clone();
            let prefix = format!("{live_app}/");
            for s in hub.streams() {
                let Some(name) = s.key().strip_prefix(&prefix).map(str::to_string) else {
                    continue;
                };
                let Some(tags) = hub.snapshot(s.key()) else {
                    continue;
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    // Still busy with the previous round: skip this stream this time.
                    continue;
                };
                let target = path(&storage, &live_app, &name);
                let (app, storage, live_app) = (app.clone(), storage.clone(), live_app.clone());
                let first_failure = !warned;
                warned = true;
                tokio::spawn(async move {
                    let _permit = permit;
                    let mut flv = vec![Bytes::from_static(
                        b"FLV\x01\x01\x00\x00\x00\x09\x00\x00\x00\x00",
                    )];
                    flv.extend(tags.iter().map(|t| t.flv_bytes().clone()));
                    match jpeg(&flv).await {
                        Ok(jpg) => {
                            let written = tokio::task::spawn_blocking(move || {
                                if let Some(dir) = target.parent() {
                                    std::fs::create_dir_all(dir)?;
                                }
                                storage
                                    .write_atomic(&target, &jpg)
                                    .map_err(std::io::Error::other)
                            })
                            .await;
                            match written {
                                Ok(Ok(_)) => {
                                    if let Err(e) = app.thumbnail_taken(&live_app, &name).await {
                                        tracing::debug!(error = %e, "app: thumbnail not recorded");
                                    }
                                }
                                Ok(Err(e)) => {
                                    tracing::warn!(stream = %name, error = %e, "thumbnail not stored");
                                }
                                Err(e) => {
                                    tracing::warn!(stream = %name, error = %e, "thumbnail not stored");
                                }
                            }
                        }
                        Err(e) if first_failure => {
                            tracing::warn!(stream = %name, error = %e, "thumbnail not taken");
                        }
                        Err(e) => {
                            tracing::debug!(stream = %name, error = %e, "thumbnail not taken");
                        }
                    }
                });
            }
        }
    });
}

/// One JPEG (at most 640×360) from an FLV holding a sequence header and a key frame.
async fn jpeg(flv: &[Bytes]) -> std::io::Result<Vec<u8>> {
    let mut child = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-f",
            "flv",
            "-i",
            "pipe:0",
        ])
        .args([
            "-frames:v",
            "1",
            "-vf",
            "scale=w='min(640,iw)':h='min(360,ih)':force_original_aspect_ratio=decrease",
        ])
        .args(["-q:v", "5", "-f", "image2", "-c:v", "mjpeg", "pipe:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    let input: Vec<Bytes> = flv.to_vec();
    let feed = tokio::spawn(async move {
        for b in input {
            if stdin.write_all(&b).await.is_err() {
                break;
            }
        }
        drop(stdin);
    });
    let out = tokio::time::timeout(SNAPSHOT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "ffmpeg took too long"))??;
    let _ = feed.await;
    if !out.status.success() || out.stdout.is_empty() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(std::io::Error::other(format!(
            "ffmpeg: {}",
            err.lines().last().unwrap_or("no picture")
        )));
    }
    Ok(out.stdout)
}

/// `GET /thumbnails/<app>/<stream>.jpg`.
pub(crate) async fn serve(storage: &Storage, path_in_url: &str) -> Option<HttpResponse> {
    let rest = path_in_url.strip_prefix("/thumbnails/")?;
    let (app, file) = rest.split_once('/')?;
    let stream = file.strip_suffix(".jpg")?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !ok(app) || !ok(stream) {
        return Some(respond(
            hyper::StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n",
        ));
    }
    let p = path(storage, app, stream);
    Some(match tokio::fs::read(&p).await {
        Ok(bytes) => {
            let mut r = respond(hyper::StatusCode::OK, "image/jpeg", bytes);
            r.headers_mut().insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("public, max-age=10"),
            );
            r
        }
        Err(_) => respond(hyper::StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    })
}
