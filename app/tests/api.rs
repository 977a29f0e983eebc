//! The API suite, run against SQLite and against the machine's PostgreSQL (a fresh
//! database per test): accounts, sessions and CSRF, channels and stream keys, live
//! sessions, videos with access control per resource, views, chat tokens, problems.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use videopick_app::api::{ClientAddr, router};
use videopick_app::channels::StreamHealth;
use videopick_app::videos::{ClosedRecording, Processed, Rendition, UploadKind};
use videopick_app::{App, AppConfig, BoxFuture, Db, MediaControl};

/// Records what the platform asked of the media side.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl MediaControl for Recorder {
    fn end_publish<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().push(format!("end {app}/{name}"));
        Box::pin(async {})
    }
    fn cancel_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, ()> {
        self.0.lock().unwrap().push(format!("cancel {job_id}"));
        Box::pin(async {})
    }
    fn remove_video_files<'a>(
        &'a self,
        video_id: &'a str,
        media_id: Option<&'a str>,
        _job: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        self.0
            .lock()
            .unwrap()
            .push(format!("remove {video_id} {}", media_id.unwrap_or("-")));
        Box::pin(async {})
    }
}

struct T {
    app: App,
    router: axum::Router,
    media: Arc<Recorder>,
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl T {
    fn new(db: Db) -> T {
        let mut config = AppConfig::default();
        config.chat_secret = Some("chat-secret".into());
        config.allowed_origins = vec!["https://studio.example".into()];
        config.limits.sign_up_burst = 1000;
        let app = App::new(db, config);
        let media = Arc::new(Recorder::default());
        app.set_media(media.clone());
        T {
            router: router(app.clone()),
            app,
            media,
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "site.example");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let body = match body {
            Some(v) => {
                b = b.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = b.body(body).unwrap();
        req.extensions_mut()
            .insert(ClientAddr(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn bearer(&self, method: &str, path: &str, token: &str, body: Option<Value>) -> Resp {
        let auth = format!("Bearer {token}");
        self.call(method, path, &[("authorization", &auth)], body)
            .await
    }

    async fn sign_up(&self, name: &str) -> (String, Value) {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/signup",
                &[],
                Some(json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        (
            r.body["token"].as_str().unwrap().to_string(),
            r.body["user"].clone(),
        )
    }
}

fn assert_problem(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status.as_u16(), status, "{:?}", r.body);
    assert_eq!(
        r.headers["content-type"], "application/problem+json",
        "{:?}",
        r.body
    );
    assert_eq!(r.body["status"], status);
    assert_eq!(r.body["code"], code, "{:?}", r.body);
    let id = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(r.body["request_id"], id);
    assert!(r.body["instance"].as_str().unwrap().starts_with("/api/"));
}

#[allow(clippy::too_many_lines)] // one user journey, step by step
async fn accounts_and_sessions(t: &T) {
    // The OpenAPI document is there and names every route.
    let doc = t.call("GET", "/api/v1/openapi.json", &[], None).await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for p in [
        "/api/v1/auth/signup",
        "/api/v1/channels/{slug}",
        "/api/v1/videos/{id}",
        "/api/v1/chat/token",
    ] {
        assert!(
            doc.body["paths"].get(p).is_some(),
            "{p} missing from the document"
        );
    }

    let (admin_token, admin) = t.sign_up("Admin_1").await;
    assert_eq!(admin["role"], "admin", "the first account is an admin");
    let (_, second) = t.sign_up("second").await;
    assert_eq!(second["role"], "viewer");

    // Same name in another case, bad input: problems with the field at fault.
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signup",
            &[],
            Some(
                json!({"username": "ADMIN_1", "email": "x@example.com", "password": "long enough"}),
            ),
        )
        .await;
    assert_problem(&r, 409, "conflict");
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signup",
            &[],
            Some(json!({"username": "ok_name", "email": "nope", "password": "long enough"})),
        )
        .await;
    assert_problem(&r, 400, "invalid");
    assert_eq!(r.body["field"], "email");
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signup",
            &[],
            Some(json!({"username": "ok_name", "email": "a@b.co", "password": "short"})),
        )
        .await;
    assert_eq!(r.body["field"], "password");
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signup",
            &[],
            Some(json!({"username": "ok_name", "extra": 1})),
        )
        .await;
    assert_problem(&r, 400, "invalid");
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signup",
            &[("x-request-id", "my-trace-1")],
            Some(json!("not an object")),
        )
        .await;
    assert_problem(&r, 400, "invalid");
    assert_eq!(r.body["request_id"], "my-trace-1");
    let big = "x".repeat(70 * 1024);
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signin",
            &[],
            Some(json!({"login": big, "password": "x"})),
        )
        .await;
    assert_problem(&r, 413, "too-large");

    // Sign in by username (any case) or email; wrong passwords are one problem.
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signin",
            &[],
            Some(json!({"login": "admin_1", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let cookie = r.headers["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.starts_with("vp_session=vps_"), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap().to_string();
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signin",
            &[],
            Some(json!({"login": "second@EXAMPLE.com", "password": "wrong password"})),
        )
        .await;
    assert_problem(&r, 401, "bad-credentials");
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signin",
            &[],
            Some(json!({"login": "nobody", "password": "wrong password"})),
        )
        .await;
    assert_problem(&r, 401, "bad-credentials");

    // Bearer and cookie both work; a bad bearer is 401, not anonymity.
    let r = t.bearer("GET", "/api/v1/me", &admin_token, None).await;
    assert_eq!(r.body["username"], "Admin_1");
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = t
        .call("GET", "/api/v1/me", &[("cookie", &session)], None)
        .await;
    assert_eq!(r.body["username"], "Admin_1");
    assert_problem(
        &t.bearer("GET", "/api/v1/me", "vps_forged", None).await,
        401,
        "unauthenticated",
    );
    assert_problem(
        &t.call("GET", "/api/v1/me", &[], None).await,
        401,
        "unauthenticated",
    );

    // Cookie-authenticated writes need the site's own (or an allowed) Origin.
    let create = json!({"slug": "admin-ch", "name": "Admin's"});
    let r = t
        .call(
            "POST",
            "/api/v1/channels",
            &[("cookie", &session)],
            Some(create.clone()),
        )
        .await;
    assert_problem(&r, 403, "forbidden");
    let r = t
        .call(
            "POST",
            "/api/v1/channels",
            &[("cookie", &session), ("origin", "https://evil.example")],
            Some(create.clone()),
        )
        .await;
    assert_problem(&r, 403, "forbidden");
    let r = t
        .call(
            "POST",
            "/api/v1/channels",
            &[("cookie", &session), ("origin", "http://site.example")],
            Some(create.clone()),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = t
        .call(
            "POST",
            "/api/v1/channels",
            &[("cookie", &session), ("origin", "https://studio.example")],
            Some(json!({"slug": "admin-two", "name": "Two"})),
        )
        .await;
    assert_eq!(r.status, 201, "an allowed origin: {:?}", r.body);
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signin",
            &[("origin", "https://evil.example")],
            Some(json!({"login": "admin_1", "password": "correct horse battery"})),
        )
        .await;
    assert_problem(&r, 403, "forbidden");

    // Sign out ends that session only; sign out everywhere ends all.
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signout",
            &[("cookie", &session), ("origin", "http://site.example")],
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        t.call("GET", "/api/v1/me", &[("cookie", &session)], None)
            .await
            .status,
        401
    );
    assert_eq!(
        t.bearer("GET", "/api/v1/me", &admin_token, None)
            .await
            .status,
        200
    );
    let r = t
        .call(
            "POST",
            "/api/v1/auth/signin",
            &[],
            Some(json!({"login": "admin_1", "password": "correct horse battery"})),
        )
        .await;
    let other = r.body["token"].as_str().unwrap().to_string();
    assert_eq!(
        t.bearer("POST", "/api/v1/auth/signout-all", &admin_token, None)
            .await
            .status,
        204
    );
    assert_eq!(
        t.bearer("GET", "/api/v1/me", &admin_token, None)
            .await
            .status,
        401
    );
    assert_eq!(
        t.bearer("GET", "/api/v1/me", &other, None).await.status,
        401
    );

    // Unknown API paths are problems too.
    assert_problem(
        &t.call("GET", "/api/v1/nothing-here", &[], None).await,
        404,
        "not-found",
    );
}

async fn rate_limits(t: &T) {
    t.sign_up("limited").await;
    let mut last = None;
    for _ in 0..12 {
        let r = t
            .call(
                "POST",
                "/api/v1/auth/signin",
                &[],
                Some(json!({"login": "limited", "password": "wrong password"})),
            )
            .await;
        last = Some(r);
    }
    let r = last.unwrap();
    assert_problem(&r, 429, "rate-limited");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}

#[allow(clippy::too_many_lines)]
async fn channels_keys_and_live(t: &T) {
    let (a, _) = t.sign_up("alice").await;
    let (b, b_user) = t.sign_up("bob").await;
    let r = t
        .bearer(
            "POST",
            "/api/v1/channels",
            &b,
            Some(json!({"slug": "bob-live", "name": "밥의 방송", "description": "매일 저녁"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let key = r.body["key"]["stream_key"].as_str().unwrap().to_string();
    assert!(key.starts_with("sk_"));
    assert_eq!(r.body["key"]["server"], "rtmp://127.0.0.1:1935/live");
    assert_eq!(r.body["channel"]["record"], true);
    assert_eq!(
        t.bearer("GET", "/api/v1/me", &b, None).await.body["role"],
        "creator"
    );
    assert_problem(
        &t.bearer(
            "POST",
            "/api/v1/channels",
            &a,
            Some(json!({"slug": "bob-live", "name": "x"})),
        )
        .await,
        409,
        "conflict",
    );
    assert_problem(
        &t.bearer(
            "POST",
            "/api/v1/channels",
            &a,
            Some(json!({"slug": "api", "name": "x"})),
        )
        .await,
        400,
        "invalid",
    );

    // Everybody sees the channel; nobody ever sees the key again.
    let r = t.call("GET", "/api/v1/channels/bob-live", &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["owner"]["username"], "bob");
    assert!(r.body["live"].is_null());
    assert!(!r.body.to_string().contains(&key));
    let mine = t.bearer("GET", "/api/v1/me/channels", &b, None).await;
    assert_eq!(mine.body[0]["slug"], "bob-live");
    assert!(!mine.body.to_string().contains(&key));
    let settings = t
        .bearer("GET", "/api/v1/channels/bob-live/settings", &b, None)
        .await;
    assert!(!settings.body.to_string().contains(&key));

    // Alice may not read or change Bob's channel settings or key.
    assert_problem(
        &t.bearer("GET", "/api/v1/channels/bob-live/settings", &a, None)
            .await,
        403,
        "forbidden",
    );
    assert_problem(
        &t.bearer(
            "PATCH",
            "/api/v1/channels/bob-live",
            &a,
            Some(json!({"name": "mine now"})),
        )
        .await,
        403,
        "forbidden",
    );
    assert_problem(
        &t.bearer("POST", "/api/v1/channels/bob-live/key", &a, None)
            .await,
        403,
        "forbidden",
    );
    assert_problem(
        &t.call("GET", "/api/v1/channels/no-such", &[], None).await,
        404,
        "not-found",
    );

    // The key publishes as the channel's slug; others are refused.
    let g = t
        .app
        .authorize_publish("live", &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((g.slug.as_str(), g.record), ("bob-live", true));
    assert!(
        t.app
            .authorize_publish("live", "sk_wrong")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        t.app
            .authorize_publish("other", &key)
            .await
            .unwrap()
            .is_none()
    );

    // Going live, viewers, health, title while live, ending.
    let r = t
        .bearer(
            "PATCH",
            "/api/v1/channels/bob-live",
            &b,
            Some(json!({"live_title": "저녁 방송"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let session = t
        .app
        .stream_started("live", "bob-live")
        .await
        .unwrap()
        .unwrap();
    let live = t.call("GET", "/api/v1/live", &[], None).await;
    assert_eq!(live.body["items"][0]["slug"], "bob-live");
    assert_eq!(live.body["items"][0]["live"]["title"], "저녁 방송");
    assert_eq!(live.body["items"][0]["live"]["flv"], "/live/bob-live.flv");
    assert_eq!(live.body["items"][0]["live"]["hls"], "/live/bob-live.m3u8");
    let health = StreamHealth {
        video_codec: Some("h264".into()),
        width: Some(1280),
        height: Some(720),
        fps: Some(30.0),
        bitrate_kbps: Some(2500),
        ..StreamHealth::default()
    };
    t.app
        .stream_stats("live", "bob-live", 7, &health)
        .await
        .unwrap();
    t.app
        .stream_stats("live", "bob-live", 3, &health)
        .await
        .unwrap();
    let ch = t.call("GET", "/api/v1/channels/bob-live", &[], None).await;
    assert_eq!(
        ch.body["live"]["viewers"], 3,
        "the cached page was invalidated"
    );
    assert_eq!(ch.body["live"]["peak_viewers"], 7);
    assert_eq!(ch.body["live"]["health"]["height"], 720);
    assert_eq!(ch.body["live"]["session_id"], session);
    let r = t
        .bearer(
            "PATCH",
            "/api/v1/channels/bob-live",
            &b,
            Some(json!({"live_title": "제목 변경"})),
        )
        .await;
    assert_eq!(r.body["live"]["title"], "제목 변경");

    // Rotation: the old key stops at once; with end_live the publish is ended.
    let r = t
        .bearer(
            "POST",
            "/api/v1/channels/bob-live/key?end_live=true",
            &b,
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let new_key = r.body["stream_key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert!(
        t.app
            .authorize_publish("live", &key)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        t.app
            .authorize_publish("live", &new_key)
            .await
            .unwrap()
            .unwrap()
            .slug,
        "bob-live"
    );
    assert_eq!(t.media.0.lock().unwrap().as_slice(), ["end live/bob-live"]);
    assert_eq!(
        t.app.stream_ended("live", "bob-live").await.unwrap(),
        Some(session)
    );
    let live = t.call("GET", "/api/v1/live", &[], None).await;
    assert_eq!(live.body["items"], json!([]));

    // Chat tokens: the owner is the broadcaster, admins moderate, others view; signed.
    let r = t
        .bearer(
            "POST",
            "/api/v1/chat/token",
            &b,
            Some(json!({"channel": "bob-live"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["role"], "broadcaster");
    assert_eq!(r.body["room"], "live:bob-live");
    let claims = jwt_claims(r.body["token"].as_str().unwrap(), "chat-secret");
    assert_eq!(claims["sub"], b_user["id"]);
    assert_eq!(claims["name"], "bob");
    assert_eq!(claims["room"], "live:bob-live");
    assert!(claims["exp"].as_u64().unwrap() > 1_700_000_000);
    let r = t
        .bearer(
            "POST",
            "/api/v1/chat/token",
            &a,
            Some(json!({"channel": "bob-live"})),
        )
        .await;
    assert_eq!(r.body["role"], "viewer");
    assert_problem(
        &t.call(
            "POST",
            "/api/v1/chat/token",
            &[],
            Some(json!({"channel": "bob-live"})),
        )
        .await,
        401,
        "unauthenticated",
    );
}

fn jwt_claims(token: &str, secret: &str) -> Value {
    use base64::Engine as _;
    use hmac::{KeyInit, Mac};
    let parts: Vec<&str> = token.split('.').collect();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap();
    mac.verify_slice(&sig).expect("signed with the chat secret");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap()
}

#[allow(clippy::too_many_lines)]
async fn videos(t: &T) {
    let (c, _) = t.sign_up("carol").await;
    let (d, _) = t.sign_up("dave").await;
    // The first account of this database is the admin.
    let admin = t
        .call(
            "POST",
            "/api/v1/auth/signin",
            &[],
            Some(json!({"login": "admin_1", "password": "correct horse battery"})),
        )
        .await
        .body["token"]
        .as_str()
        .unwrap()
        .to_string();
    let carol = t.app.session_user(&c).await.unwrap().unwrap();
    let dave = t.app.session_user(&d).await.unwrap().unwrap();
    let meta = |title: &str, vis: &str| -> HashMap<String, String> {
        HashMap::from([
            ("filename".to_string(), title.to_string()),
            ("visibility".to_string(), vis.to_string()),
        ])
    };
    // No channel yet: uploads are refused with a reason.
    assert!(matches!(
        t.app
            .upload_started(&carol, "up-0", &meta("a.mp4", "public"))
            .await,
        Err(videopick_app::AppError::Conflict(_))
    ));
    t.bearer(
        "POST",
        "/api/v1/channels",
        &c,
        Some(json!({"slug": "carol-tv", "name": "Carol"})),
    )
    .await;

    // uploading → processing (progress) → ready.
    let v = t
        .app
        .upload_started(&carol, "up-1", &meta("여행 브이로그.mp4", "public"))
        .await
        .unwrap();
    let r = t
        .call("GET", &format!("/api/v1/videos/{v}"), &[], None)
        .await;
    assert_eq!(r.body["state"], "uploading");
    assert_eq!(r.body["title"], "여행 브이로그.mp4");
    assert_eq!(r.body["channel"]["slug"], "carol-tv");
    assert_eq!(
        t.app.video_of_upload("up-1").await.unwrap().as_deref(),
        Some(v.as_str())
    );
    t.app.attach_job(&v, "job-1").await.unwrap();
    t.app.job_progress("job-1", 42).await.unwrap();
    let r = t
        .call("GET", &format!("/api/v1/videos/{v}"), &[], None)
        .await;
    assert_eq!(
        (r.body["state"].as_str(), r.body["progress"].as_i64()),
        (Some("processing"), Some(42))
    );
    // Not listed until ready.
    assert_eq!(
        t.call("GET", "/api/v1/videos", &[], None).await.body["items"],
        json!([])
    );
    t.app
        .job_finished(
            "job-1",
            &Processed {
                duration_ms: Some(12_000),
                renditions: vec![Rendition {
                    name: "720p".into(),
                    width: 1280,
                    height: 720,
                    bitrate_kbps: 2800,
                }],
                poster: Some(format!("/vod/{v}/poster.jpg")),
                storyboard: Some(format!("/vod/{v}/storyboard.vtt")),
                playlist: Some(format!("/vod/{v}/master.m3u8")),
            },
        )
        .await
        .unwrap();
    let r = t
        .call("GET", &format!("/api/v1/videos/{v}"), &[], None)
        .await;
    assert_eq!(r.body["state"], "ready");
    assert_eq!(r.body["renditions"][0]["height"], 720);
    assert_eq!(r.body["duration_ms"], 12_000);
    let list = t.call("GET", "/api/v1/videos", &[], None).await;
    assert_eq!(list.body["items"][0]["id"], v);
    assert_eq!(
        t.call("GET", "/api/v1/videos?q=브이로그", &[], None)
            .await
            .body["items"][0]["id"],
        v
    );
    assert_eq!(
        t.call("GET", "/api/v1/videos?q=100%25", &[], None)
            .await
            .body["items"],
        json!([])
    );

    // A cancelled or expired upload takes its video with it; a finished one stays.
    let gone = t
        .app
        .upload_started(&carol, "up-gone", &meta("gone.mp4", "public"))
        .await
        .unwrap();
    t.app.upload_gone("up-gone").await.unwrap();
    assert_problem(
        &t.bearer("GET", &format!("/api/v1/videos/{gone}"), &c, None)
            .await,
        404,
        "not-found",
    );
    t.app.upload_gone("up-1").await.unwrap();
    assert_eq!(
        t.call("GET", &format!("/api/v1/videos/{v}"), &[], None)
            .await
            .status,
        200
    );

    // Parallel uploads: parts have no video and are their creator's alone; a final
    // upload joins only its creator's parts; an upload the platform does not know is
    // nobody's.
    let none = HashMap::new();
    assert_eq!(
        t.app
            .upload_created(&carol, "part-1", &UploadKind::Partial, &none)
            .await
            .unwrap(),
        None
    );
    assert!(t.app.may_use_upload(&carol, "part-1").await.unwrap());
    assert!(!t.app.may_use_upload(&dave, "part-1").await.unwrap());
    assert!(!t.app.may_use_upload(&carol, "never-made").await.unwrap());
    let stolen = t
        .app
        .upload_created(
            &dave,
            "final-x",
            &UploadKind::Final(vec!["part-1".into()]),
            &none,
        )
        .await;
    assert!(
        matches!(stolen, Err(videopick_app::AppError::NotFound(_))),
        "{stolen:?}"
    );
    let joined = t
        .app
        .upload_created(
            &carol,
            "final-1",
            &UploadKind::Final(vec!["part-1".into()]),
            &meta("joined.mp4", "public"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        t.app.video_of_upload("final-1").await.unwrap().as_deref(),
        Some(joined.as_str())
    );
    t.app.upload_gone("part-1").await.unwrap();
    assert!(!t.app.may_use_upload(&carol, "part-1").await.unwrap());
    t.app.upload_gone("final-1").await.unwrap();
    assert_eq!(t.app.video_of_upload("final-1").await.unwrap(), None);

    // A failed job says why.
    let f = t
        .app
        .upload_started(&carol, "up-2", &meta("broken.mp4", "public"))
        .await
        .unwrap();
    t.app.attach_job(&f, "job-2").await.unwrap();
    t.app
        .job_failed("job-2", "ffmpeg: invalid data found")
        .await
        .unwrap();
    let r = t
        .bearer("GET", &format!("/api/v1/videos/{f}"), &c, None)
        .await;
    assert_eq!(
        (r.body["state"].as_str(), r.body["failure"].as_str()),
        (Some("failed"), Some("ffmpeg: invalid data found"))
    );

    // Private: not listed, not visible to others (404, not 403: no existence leak);
    // unlisted: visible by id, not listed.
    let p = t
        .app
        .upload_started(&carol, "up-3", &meta("private.mp4", "private"))
        .await
        .unwrap();
    let u = t
        .app
        .upload_started(&carol, "up-4", &meta("unlisted.mp4", "unlisted"))
        .await
        .unwrap();
    for (id, job) in [(&p, "job-3"), (&u, "job-4")] {
        t.app.attach_job(id, job).await.unwrap();
        t.app
            .job_finished(job, &Processed::default())
            .await
            .unwrap();
    }
    assert_problem(
        &t.call("GET", &format!("/api/v1/videos/{p}"), &[], None)
            .await,
        404,
        "not-found",
    );
    assert_problem(
        &t.bearer("GET", &format!("/api/v1/videos/{p}"), &d, None)
            .await,
        404,
        "not-found",
    );
    assert_eq!(
        t.bearer("GET", &format!("/api/v1/videos/{p}"), &c, None)
            .await
            .status,
        200
    );
    assert_eq!(
        t.bearer("GET", &format!("/api/v1/videos/{p}"), &admin, None)
            .await
            .status,
        200
    );
    assert_eq!(
        t.call("GET", &format!("/api/v1/videos/{u}"), &[], None)
            .await
            .status,
        200
    );
    let public: Vec<Value> = t.call("GET", "/api/v1/videos", &[], None).await.body["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(public.len(), 1, "only the public, ready one: {public:?}");
    let chan = t
        .call("GET", "/api/v1/channels/carol-tv/videos", &[], None)
        .await;
    assert_eq!(chan.body["items"].as_array().unwrap().len(), 1);
    let chan = t
        .bearer("GET", "/api/v1/channels/carol-tv/videos", &c, None)
        .await;
    assert_eq!(
        chan.body["items"].as_array().unwrap().len(),
        4,
        "the owner sees all"
    );
    assert_eq!(
        t.bearer("GET", "/api/v1/me/videos", &c, None).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        t.bearer("GET", "/api/v1/me/videos", &d, None).await.body["items"],
        json!([])
    );

    // Dave may not change or delete Carol's videos; a private one does not exist for him.
    assert_problem(
        &t.bearer(
            "PATCH",
            &format!("/api/v1/videos/{v}"),
            &d,
            Some(json!({"title": "mine"})),
        )
        .await,
        403,
        "forbidden",
    );
    assert_problem(
        &t.bearer("DELETE", &format!("/api/v1/videos/{v}"), &d, None)
            .await,
        403,
        "forbidden",
    );
    assert_problem(
        &t.bearer("DELETE", &format!("/api/v1/videos/{p}"), &d, None)
            .await,
        404,
        "not-found",
    );
    assert_problem(
        &t.bearer(
            "PATCH",
            &format!("/api/v1/videos/{v}"),
            &c,
            Some(json!({"title": ""})),
        )
        .await,
        400,
        "invalid",
    );
    assert_problem(
        &t.bearer(
            "PATCH",
            &format!("/api/v1/videos/{v}"),
            &c,
            Some(json!({"visibility": "secret"})),
        )
        .await,
        400,
        "invalid",
    );
    let r = t
        .bearer(
            "PATCH",
            &format!("/api/v1/videos/{u}"),
            &c,
            Some(json!({"title": "이제 공개", "visibility": "public"})),
        )
        .await;
    assert_eq!(
        (r.body["title"].as_str(), r.body["visibility"].as_str()),
        (Some("이제 공개"), Some("public"))
    );
    assert_eq!(
        t.call("GET", "/api/v1/videos", &[], None).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Views: once per viewer per 30 minutes.
    let view = format!("/api/v1/videos/{v}/views");
    assert_eq!(
        t.call("POST", &view, &[("user-agent", "A")], None)
            .await
            .body["counted"],
        true
    );
    assert_eq!(
        t.call("POST", &view, &[("user-agent", "A")], None)
            .await
            .body["counted"],
        false
    );
    assert_eq!(
        t.call("POST", &view, &[("user-agent", "B")], None)
            .await
            .body["counted"],
        true
    );
    assert_eq!(
        t.bearer("POST", &view, &d, None).await.body["counted"],
        true
    );
    assert_eq!(
        t.bearer("POST", &view, &d, None).await.body["counted"],
        false
    );
    assert_eq!(
        t.call("GET", &format!("/api/v1/videos/{v}"), &[], None)
            .await
            .body["views"],
        3
    );
    assert_problem(
        &t.call("POST", &format!("/api/v1/videos/{f}/views"), &[], None)
            .await,
        404,
        "not-found",
    );

    // Deleting cancels the job and removes the files.
    t.media.0.lock().unwrap().clear();
    assert_eq!(
        t.bearer("DELETE", &format!("/api/v1/videos/{f}"), &c, None)
            .await
            .status,
        204
    );
    assert_eq!(
        t.media.0.lock().unwrap().as_slice(),
        ["cancel job-2".to_string(), format!("remove {f} up-2")]
    );
    assert_problem(
        &t.bearer("GET", &format!("/api/v1/videos/{f}"), &c, None)
            .await,
        404,
        "not-found",
    );

    // Pagination: 25 more, pages of 10, nothing repeated or skipped.
    for i in 0..25 {
        let id = t
            .app
            .upload_started(
                &carol,
                &format!("bulk-{i}"),
                &meta(&format!("clip {i}"), "public"),
            )
            .await
            .unwrap();
        t.app
            .attach_job(&id, &format!("bulk-job-{i}"))
            .await
            .unwrap();
        t.app
            .job_finished(&format!("bulk-job-{i}"), &Processed::default())
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = t
            .call(
                "GET",
                &format!("/api/v1/videos?limit=10{cursor}"),
                &[],
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for it in r.body["items"].as_array().unwrap() {
            seen.push(it["id"].as_str().unwrap().to_string());
        }
        match r.body["next"].as_str() {
            Some(n) => cursor = format!("&cursor={n}"),
            None => break,
        }
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!((seen.len(), dedup.len()), (27, 27));
    assert_problem(
        &t.call("GET", "/api/v1/videos?limit=500", &[], None).await,
        400,
        "invalid",
    );
    assert_problem(
        &t.call("GET", "/api/v1/videos?cursor=garbage!", &[], None)
            .await,
        400,
        "invalid",
    );

    // Recordings of a channel become videos (unless the channel says no).
    let s = t.app.stream_started("live", "carol-tv").await.unwrap();
    let rec = t
        .app
        .recording_finished(&ClosedRecording {
            stream: "live/carol-tv".into(),
            id: "live.carol-tv.1".into(),
            job: Some("job-rec".into()),
            session: s.clone(),
            ..ClosedRecording::default()
        })
        .await
        .unwrap()
        .unwrap();
    let r = t
        .bearer("GET", &format!("/api/v1/videos/{rec}"), &c, None)
        .await;
    assert_eq!(
        (r.body["source"].as_str(), r.body["state"].as_str()),
        (Some("recording"), Some("processing"))
    );
    // Told by a media server on another machine (no session known, no job: recordings
    // are not transcoded there): ready at once with the recording's own playlist, titled
    // from the channel's latest live session.
    t.app.stream_ended("live", "carol-tv").await.unwrap();
    t.bearer(
        "PATCH",
        "/api/v1/channels/carol-tv",
        &c,
        Some(json!({"live_title": "저녁 방송"})),
    )
    .await;
    t.app.stream_started("live", "carol-tv").await.unwrap();
    t.app.stream_ended("live", "carol-tv").await.unwrap();
    t.app
        .hook_event(
            &serde_json::from_value(json!({
                "event": "recording", "id": "live.carol-tv.5", "stream": "live/carol-tv",
                "duration_ms": 4200, "job": null
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let mine = t.bearer("GET", "/api/v1/me/videos", &c, None).await.body;
    let remote = mine["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["playlist"] == "/recordings/live.carol-tv.5/index.m3u8")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (remote["state"].as_str(), remote["duration_ms"].as_i64()),
        (Some("ready"), Some(4200)),
        "{mine}"
    );
    assert_eq!(remote["title"], "저녁 방송", "{remote}");
    assert!(
        t.app
            .recording_finished(&ClosedRecording {
                stream: "live/carol-tv".into(),
                id: "../../etc".into(),
                ..ClosedRecording::default()
            })
            .await
            .is_err(),
        "a recording id that is not one safe path component"
    );
    t.bearer(
        "PATCH",
        "/api/v1/channels/carol-tv",
        &c,
        Some(json!({"record": false})),
    )
    .await;
    assert!(
        t.app
            .recording_finished(&ClosedRecording {
                stream: "live/carol-tv".into(),
                id: "live.carol-tv.2".into(),
                ..ClosedRecording::default()
            })
            .await
            .unwrap()
            .is_none()
    );

    // Admin command: only admins.
    assert_problem(
        &t.bearer(
            "PUT",
            "/api/v1/admin/users/dave/role",
            &d,
            Some(json!({"role": "admin"})),
        )
        .await,
        403,
        "forbidden",
    );
    let r = t
        .bearer(
            "PUT",
            "/api/v1/admin/users/dave/role",
            &admin,
            Some(json!({"role": "creator"})),
        )
        .await;
    assert_eq!(r.body["role"], "creator", "{:?}", r.body);
}

async fn suite(db: Db) {
    let t = T::new(db);
    accounts_and_sessions(&t).await;
    channels_keys_and_live(&t).await;
    videos(&t).await;
    rate_limits(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open_in(dir.path()).await.unwrap();
    assert_eq!(db.backend(), videopick_app::Backend::Sqlite);
    suite(db.clone()).await;
    // A WAL journal, in the storage root.
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(dir.path().join("app/videopick.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_on_postgres() {
    let (url, name) = videopick_testkit::pg::fresh_db("vp_app").await;
    let db = Db::open(&url).await.unwrap();
    assert_eq!(db.backend(), videopick_app::Backend::Postgres);
    suite(db.clone()).await;
    db.close().await;
    videopick_testkit::pg::drop_db(&name).await;
}
