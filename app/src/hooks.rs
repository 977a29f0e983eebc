//! Signed hooks from a media server on another machine: the signature check
//! (`X-Videopick-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`, as
//! `videopick-hooks` signs with a shared secret) and what the hooks tell the platform.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::App;
use crate::channels::StreamHealth;
use crate::error::{AppError, Result};

/// Oldest (or most in the future) a signature may be, in seconds.
pub const MAX_SKEW_SECS: u64 = 300;

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `header` is a valid signature of `body` with `secret` at `now_secs`.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now_secs: u64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", x)) => t = x.parse::<u64>().ok(),
            Some(("v1", x)) => v1 = unhex(x),
            _ => {}
        }
    }
    let (Some(t), Some(sig)) = (t, v1) else {
        return false;
    };
    if t.abs_diff(now_secs) > MAX_SKEW_SECS {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// What the auth hook answers to an allowed publish: the name to publish under.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuthGrant {
    /// Publish as `<app>/<stream>` (the channel's slug).
    pub stream: Option<String>,
    /// Record it.
    pub record: Option<bool>,
}

/// A publish or play the media server asks about (its auth hook's body).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct AuthAsk {
    /// `publish` or `play`.
    pub action: String,
    /// RTMP application.
    pub app: String,
    /// Stream name asked for (a stream key, for the live app).
    pub stream: String,
}

/// A lifecycle event from the media server's event webhook.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct MediaEvent {
    /// `publish`, `unpublish`, `stats`, `upload`, `recording` (others are ignored).
    pub event: String,
    /// `app/stream`, for publish and unpublish.
    #[serde(default)]
    pub key: Option<String>,
    /// For `stats`: the live streams (as the media server's `/api/streams`).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub streams: Vec<serde_json::Value>,
    /// For `upload`: the upload's id; for `recording`: the recording's.
    #[serde(default)]
    pub id: Option<String>,
    /// For `upload` and `recording`: the transcoding job queued for it.
    #[serde(default)]
    pub job: Option<i64>,
    /// For `recording`: the recorded stream, `app/stream`.
    #[serde(default)]
    pub stream: Option<String>,
    /// For `recording`: its duration.
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

/// The media server asks whether a request may fetch a video's files (`/vod/<media>/…`,
/// `/recordings/<media>/…`): the media id and the request's credentials.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct MediaAsk {
    /// The media id (upload, job output or recording id) in the path.
    pub media: String,
    /// The request's `Authorization` header.
    #[serde(default)]
    pub authorization: Option<String>,
    /// The request's `Cookie` header.
    #[serde(default)]
    pub cookie: Option<String>,
}

/// The answer to a [`MediaAsk`] that is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct MediaAccess {
    /// Everyone may fetch it (the asker may remember this for everyone); else only this
    /// requester may.
    pub public: bool,
}

/// An upload as the media server's tus hooks describe it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TusUpload {
    /// Upload id.
    pub id: String,
    /// `Upload-Metadata` as received (`key base64,key2 base64`).
    #[serde(default)]
    pub metadata: String,
    /// `partial` (a part of a parallel upload) or `final` (joining `parts`); none for an
    /// ordinary upload.
    #[serde(default)]
    pub concat: Option<String>,
    /// For a final upload: the ids of the parts it joins.
    #[serde(default)]
    pub parts: Vec<String>,
}

impl TusUpload {
    /// How this upload takes part in concatenation.
    pub fn kind(&self) -> crate::videos::UploadKind {
        use crate::videos::UploadKind;
        match self.concat.as_deref() {
            Some("partial") => UploadKind::Partial,
            Some("final") => UploadKind::Final(self.parts.clone()),
            _ => UploadKind::Whole,
        }
    }
}

/// One of the media server's tus hooks (its `--upload-hook` body).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TusHook {
    /// Any tus request: who asks (`authorization`) for what (`upload`, none: a creation).
    Authorize {
        /// HTTP method.
        method: String,
        /// The upload the request is about (none: a creation).
        upload: Option<String>,
        /// The request's `Authorization` header.
        authorization: Option<String>,
    },
    /// A new upload, before it is created.
    PreCreate {
        /// The upload.
        upload: TusUpload,
        /// The creating request's `Authorization` header.
        authorization: Option<String>,
    },
    /// Every byte is stored (the job follows as an `upload` event).
    PostFinish {
        /// The upload.
        upload: TusUpload,
    },
    /// The upload was terminated.
    PostTerminate {
        /// Upload id.
        id: String,
    },
}

/// The pairs of a tus `Upload-Metadata` header whose values are UTF-8.
pub fn tus_metadata(header: &str) -> std::collections::HashMap<String, String> {
    use base64::Engine as _;
    header
        .split(',')
        .take(64)
        .filter_map(|pair| {
            let mut it = pair.trim().splitn(2, ' ');
            let key = it.next().filter(|k| !k.is_empty() && k.len() <= 64)?;
            let value = base64::engine::general_purpose::STANDARD
                .decode(it.next().unwrap_or("").trim())
                .ok()?;
            Some((key.to_string(), String::from_utf8(value).ok()?))
        })
        .collect()
}

impl App {
    /// Answer the media server's auth hook: for a publish to the live app, the channel
    /// the key belongs to (`Ok(Some((slug, record)))`) or a refusal; plays are allowed.
    pub async fn hook_auth(&self, ask: &AuthAsk) -> Result<Option<(String, bool)>> {
        if ask.action != "publish" {
            return Ok(None);
        }
        if ask.app != self.config().live_app {
            return Err(AppError::Forbidden(format!(
                "{}: not a platform app",
                ask.app
            )));
        }
        match self.authorize_publish(&ask.app, &ask.stream).await? {
            Some(g) => Ok(Some((g.slug, g.record))),
            None => Err(AppError::Forbidden("wrong or missing stream key".into())),
        }
    }

    /// The account of a tus request's `Authorization` header.
    async fn tus_user(&self, authorization: Option<&str>) -> Result<crate::accounts::User> {
        let token = authorization
            .and_then(|a| a.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .ok_or(AppError::Unauthenticated)?;
        self.session_user(token)
            .await?
            .ok_or(AppError::Unauthenticated)
    }

    /// Answer one of the media server's tus hooks: uploads belong to signed-in accounts
    /// (as in process — see the media role's upload hooks).
    pub async fn hook_tus(&self, hook: &TusHook) -> Result<()> {
        match hook {
            TusHook::Authorize {
                upload,
                authorization,
                ..
            } => {
                let user = self.tus_user(authorization.as_deref()).await?;
                if let Some(id) = upload
                    && !self.may_use_upload(&user, id).await?
                {
                    return Err(AppError::NotFound("upload"));
                }
            }
            TusHook::PreCreate {
                upload,
                authorization,
            } => {
                let user = self.tus_user(authorization.as_deref()).await?;
                let meta = tus_metadata(&upload.metadata);
                self.upload_created(&user, &upload.id, &upload.kind(), &meta)
                    .await?;
            }
            TusHook::PostFinish { upload } => {
                self.upload_finished(&upload.id, None).await?;
            }
            TusHook::PostTerminate { id } => self.upload_gone(id).await?,
        }
        Ok(())
    }

    /// Viewers and health of the live streams, as the media side's `/api/streams` lists
    /// them (`key`, `viewers`, codecs, size, fps, `bitrate_in_kbps`); streams of other apps
    /// are skipped. Every stream is stored; the first failure is returned.
    pub async fn streams_report(&self, streams: &[serde_json::Value]) -> Result<()> {
        let mut first_error = None;
        for s in streams.iter().take(10_000) {
            let Some((a, name)) = s["key"].as_str().and_then(|k| k.split_once('/')) else {
                continue;
            };
            let health = StreamHealth {
                video_codec: s["video_codec"].as_str().map(str::to_string),
                audio_codec: s["audio_codec"].as_str().map(str::to_string),
                width: s["width"].as_u64().and_then(|w| u32::try_from(w).ok()),
                height: s["height"].as_u64().and_then(|h| u32::try_from(h).ok()),
                fps: s["fps"].as_f64(),
                bitrate_kbps: s["bitrate_in_kbps"].as_f64().map(|b| {
                    #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)] // clamped
                    let kbps = b.clamp(0.0, 1e12).round() as u64;
                    kbps
                }),
            };
            let viewers = s["viewers"].as_i64().unwrap_or(0);
            if let Err(e) = self.stream_stats(a, name, viewers, &health).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Take in one event of the media server's event webhook.
    pub async fn hook_event(&self, ev: &MediaEvent) -> Result<()> {
        let split = |k: &str| {
            k.split_once('/')
                .map(|(a, s)| (a.to_string(), s.to_string()))
        };
        match ev.event.as_str() {
            "publish" => {
                if let Some((a, s)) = ev.key.as_deref().and_then(split) {
                    self.stream_started(&a, &s).await?;
                }
            }
            "unpublish" => {
                if let Some((a, s)) = ev.key.as_deref().and_then(split) {
                    self.stream_ended(&a, &s).await?;
                }
            }
            "upload" => {
                if let Some(id) = &ev.id {
                    let job = ev.job.map(|j| j.to_string());
                    self.upload_finished(id, job.as_deref()).await?;
                }
            }
            "recording" => {
                if let (Some(id), Some(stream)) = (&ev.id, &ev.stream) {
                    self.recording_finished(&crate::videos::ClosedRecording {
                        stream: stream.clone(),
                        id: id.clone(),
                        duration_ms: ev.duration_ms,
                        job: ev.job.map(|j| j.to_string()),
                        session: None,
                    })
                    .await?;
                }
            }
            "stats" => self.streams_report(&ev.streams).await?,
            _ => {}
        }
        Ok(())
    }

    /// Answer the media server's media access hook: `Ok(Some(_))` when the request may
    /// fetch the files of `ask.media` (a private video's only for its owner and admins),
    /// `Ok(None)` when not.
    pub async fn hook_media(&self, ask: &MediaAsk) -> Result<Option<MediaAccess>> {
        if self.may_fetch_media(None, &ask.media).await? {
            return Ok(Some(MediaAccess { public: true }));
        }
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            (http::header::AUTHORIZATION, &ask.authorization),
            (http::header::COOKIE, &ask.cookie),
        ] {
            if let Some(v) = value.as_deref().and_then(|v| v.parse().ok()) {
                headers.insert(name, v);
            }
        }
        let user = crate::api::session_from_headers(self, &http::Method::GET, &headers)
            .await
            .ok()
            .and_then(|(u, _)| u);
        Ok(match user {
            Some(u) if self.may_fetch_media(Some(&u), &ask.media).await? => {
                Some(MediaAccess { public: false })
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tus_metadata_pairs() {
        // title "첫 영상", filename "a.mp4", a flag without value, garbage.
        let m = tus_metadata("title 7LKrIOyYgeyDgQ==,filename YS5tcDQ=,private,bad !!!");
        assert_eq!(m.get("title").map(String::as_str), Some("첫 영상"));
        assert_eq!(m.get("filename").map(String::as_str), Some("a.mp4"));
        assert_eq!(m.get("private").map(String::as_str), Some(""));
        assert!(!m.contains_key("bad"));
    }

    #[test]
    fn signatures_check_secret_body_and_freshness() {
        // What videopick-hooks sends: t=<secs>,v1=<hex HMAC-SHA256("<t>." + body)>; the
        // value computed by Python's hmac module.
        let hex = "1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940";
        let h = format!("t=1700000000,v1={hex}");
        assert!(verify(b"s3cret", &h, br#"{"a":1}"#, 1_700_000_100));
        assert!(!verify(b"other", &h, br#"{"a":1}"#, 1_700_000_100));
        assert!(!verify(b"s3cret", &h, br#"{"a":2}"#, 1_700_000_100));
        assert!(!verify(
            b"s3cret",
            &h,
            br#"{"a":1}"#,
            1_700_000_000 + MAX_SKEW_SECS + 1
        ));
        for bad in [
            "",
            "t=x,v1=zz",
            "v1=00",
            "t=1700000000",
            "t=1700000000,v1=0",
        ] {
            assert!(!verify(b"s3cret", bad, b"", 1_700_000_000), "{bad}");
        }
    }
}
