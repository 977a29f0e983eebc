//! The seed's split: `app-server` and `media-server` as two processes, joined only by
//! signed hooks one way and the media server's token-guarded control API the other — the
//! media server asks the app whether a stream key may publish (and as which channel),
//! whether a request may fetch a private video's files, and tells it publishes,
//! unpublishes, viewer counts and closed recordings (with their jobs); its tus uploads,
//! parallel ones too, belong to the app's accounts. The app ends a publish whose key was
//! rotated, and a deleted video's files go from the media server's storage. Unsigned or
//! wrongly signed hooks are refused; the key never appears in the media server's logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::{Value, json};
use videopick_testkit::ffmpeg;
use videopick_testkit::http::request;

mod common;
use common::{api_json as api, tus_js, tus_js_mode, wait_for};

fn spawn(bin: &str, args: &[&str], ready: &str) -> (Child, Vec<String>, Receiver<String>) {
    let mut child = Command::new(bin)
        .env("RUST_LOG", "info")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    loop {
        let line = lines.next().expect("exited before listening").unwrap();
        let done = line.contains(ready);
        got.push(line);
        if done {
            break;
        }
    }
    if bin.ends_with("media-server") {
        got.push(lines.next().unwrap().unwrap());
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    (child, got, rx)
}

#[test]
#[allow(clippy::too_many_lines)]
fn media_and_app_servers_work_together_over_signed_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "hook-s3cret";
    // The media server's job queue in PostgreSQL, which the app server follows too.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (jobs_db, jobs_db_name) = rt.block_on(videopick_testkit::pg::fresh_db("vp_remote_jobs"));
    let data = dir.path().join("app");
    // The media server's HTTP port, chosen first: the app calls it.
    let media_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let media_api = format!("http://127.0.0.1:{media_port}");
    let (mut app, lines, _app_logs) = spawn(
        env!("CARGO_BIN_EXE_app-server"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--data",
            data.to_str().unwrap(),
            "--hook-secret",
            secret,
            "--jobs-db",
            &jobs_db,
            "--media-api",
            &media_api,
            "--media-token",
            "media-t0ken",
        ],
        "app-server: listening on http://",
    );
    let app_http = lines
        .last()
        .unwrap()
        .rsplit("http://")
        .next()
        .unwrap()
        .to_string();
    let auth = format!("http://{app_http}/api/v1/hooks/auth");
    let events = format!("http://{app_http}/api/v1/hooks/events");
    let uploads = format!("http://{app_http}/api/v1/hooks/tus");
    let access = format!("http://{app_http}/api/v1/hooks/media");
    let media_listen = format!("127.0.0.1:{media_port}");
    let storage = dir.path().join("media");
    let (mut media, lines, media_logs) = spawn(
        env!("CARGO_BIN_EXE_media-server"),
        &[
            "--storage",
            storage.to_str().unwrap(),
            "--min-free-bytes",
            "0",
            "--rtmp",
            "127.0.0.1:0",
            "--http",
            &media_listen,
            "--api-token",
            "media-t0ken",
            "--access-hook",
            &access,
            "--auth-hook",
            &auth,
            "--event-hook",
            &events,
            "--upload-hook",
            &uploads,
            "--hook-secret",
            secret,
            "--key-apps",
            "live",
            "--jobs-db",
            &jobs_db,
            "--ladder",
            "120",
        ],
        "media-server: rtmp on rtmp://",
    );
    let rtmp = lines[lines.len() - 2]
        .rsplit("rtmp://")
        .next()
        .unwrap()
        .to_string();
    let media_http = lines
        .last()
        .unwrap()
        .rsplit("http://")
        .next()
        .unwrap()
        .to_string();

    // Hooks without the secret's signature are refused.
    let (st, body) = request(
        &app_http,
        "POST",
        "/api/v1/hooks/events",
        "Content-Type: application/json\r\n",
        br#"{"event":"publish","key":"live/x"}"#,
    );
    assert_eq!(st, 401, "{body}");
    let forged =
        videopick_hooks_signature("not-the-secret", br#"{"event":"publish","key":"live/x"}"#);
    let (st, _) = request(
        &app_http,
        "POST",
        "/api/v1/hooks/events",
        &format!("Content-Type: application/json\r\nX-Videopick-Signature: {forged}\r\n"),
        br#"{"event":"publish","key":"live/x"}"#,
    );
    assert_eq!(st, 401);

    let (st, me) = api(
        &app_http,
        "POST",
        "/api/v1/auth/signup",
        None,
        Some(
            json!({"username": "remote", "email": "remote@example.com", "password": "correct horse battery"}),
        ),
    );
    assert_eq!(st, 201, "{me}");
    let token = me["token"].as_str().unwrap().to_string();
    let (st, ch) = api(
        &app_http,
        "POST",
        "/api/v1/channels",
        Some(&token),
        Some(json!({"slug": "remote-live", "name": "원격"})),
    );
    assert_eq!(st, 201, "{ch}");
    let key = ch["key"]["stream_key"].as_str().unwrap().to_string();

    // A wrong key: the app says no, the media server refuses.
    assert!(
        !ffmpeg::publish_command(&format!("rtmp://{rtmp}/live/sk_wrong"), "160x120", 3)
            .status()
            .unwrap()
            .success()
    );
    // The right key publishes as the channel, on the media server; the app hears of it.
    let mut publisher =
        ffmpeg::publish_command(&format!("rtmp://{rtmp}/live/{key}"), "320x240", 120)
            .spawn()
            .unwrap();
    wait_for("the app to list the channel live", 20, || {
        api(&app_http, "GET", "/api/v1/live", None, None).1["items"][0]["slug"] == "remote-live"
    });
    let flv = format!("http://{media_http}/live/remote-live.flv");
    let mut player = ffmpeg::spawn(&["-i", &flv, "-t", "20", "-f", "null", "-"]);
    wait_for("viewers and health in the app", 20, || {
        let ch = api(&app_http, "GET", "/api/v1/channels/remote-live", None, None).1;
        ch["live"]["viewers"].as_i64().unwrap_or(0) >= 1 && ch["live"]["health"]["width"] == 320
    });
    let _ = player.kill();
    let _ = player.wait();
    let _ = publisher.kill();
    let _ = publisher.wait();
    wait_for("the app to see the stream end", 30, || {
        api(&app_http, "GET", "/api/v1/live", None, None).1["items"] == json!([])
    });
    // The recording, closed on the media server and remuxed by its worker, is a ready
    // video in the app (told by the event hook with its job, followed in the queue).
    let by_source = |source: &str| -> Vec<Value> {
        api(&app_http, "GET", "/api/v1/me/videos", Some(&token), None).1["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["source"] == source)
            .cloned()
            .collect()
    };
    let mut recording = Value::Null;
    wait_for("the recording's video to be ready", 90, || {
        recording = by_source("recording").first().cloned().unwrap_or_default();
        assert_ne!(recording["state"], "failed", "{recording}");
        recording["state"] == "ready"
    });
    let rec_file = recording["playlist"].as_str().unwrap().to_string();
    assert_eq!(
        request(&media_http, "GET", &rec_file, "", b"").0,
        200,
        "{recording}"
    );

    // Uploads to the media server belong to the app's accounts: refused without a session,
    // and a video in the user's channel with one, processing once every byte is stored.
    let input = ffmpeg::make_input(dir.path(), "clip.mp4", "160x120", 2);
    let endpoint = format!("http://{media_http}/files/");
    let out = tus_js(&endpoint, &input, None, &json!({}));
    assert!(!out.status.success(), "an anonymous upload was accepted");
    let out = tus_js(
        &endpoint,
        &input,
        Some(&token),
        &json!({"title": "원격 업로드"}),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut video = Value::Null;
    wait_for(
        "the upload's video to be processing with its job",
        20,
        || {
            video = by_source("upload").first().cloned().unwrap_or_default();
            video["state"] == "processing"
        },
    );
    assert_eq!(video["title"], "원격 업로드");
    assert_eq!(video["channel"]["slug"], "remote-live");
    // The media server transcodes it; the app follows the job in the shared queue.
    wait_for("the upload's video to be ready", 90, || {
        video = by_source("upload").first().cloned().unwrap_or_default();
        assert_ne!(video["state"], "failed", "{video}");
        video["state"] == "ready"
    });
    assert_eq!(video["renditions"][0]["height"], 120, "{video}");
    let playlist = video["playlist"].as_str().unwrap().to_string();
    assert_eq!(
        request(&media_http, "GET", &playlist, "", b"").0,
        200,
        "{playlist}"
    );
    // Another account may not resume it.
    let (st, other) = api(
        &app_http,
        "POST",
        "/api/v1/auth/signup",
        None,
        Some(
            json!({"username": "intruder", "email": "i@example.com", "password": "correct horse battery"}),
        ),
    );
    assert_eq!(st, 201);
    let upload_url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let path = upload_url.split_once(&media_http).unwrap().1.to_string();
    let (st, _) = request(
        &media_http,
        "HEAD",
        &path,
        &format!(
            "Tus-Resumable: 1.0.0\r\nAuthorization: Bearer {}\r\n",
            other["token"].as_str().unwrap()
        ),
        b"",
    );
    assert_eq!(st, 404);
    let intruder = format!(
        "Authorization: Bearer {}\r\n",
        other["token"].as_str().unwrap()
    );
    let owner = format!("Authorization: Bearer {token}\r\n");

    // Private: the media server asks the app, and only the owner gets the files.
    let id = video["id"].as_str().unwrap().to_string();
    let (st, _) = api(
        &app_http,
        "PATCH",
        &format!("/api/v1/videos/{id}"),
        Some(&token),
        Some(json!({"visibility": "private"})),
    );
    assert_eq!(st, 200);
    wait_for("the private video's files to be refused", 15, || {
        request(&media_http, "GET", &playlist, "", b"").0 == 404
    });
    assert_eq!(
        request(&media_http, "GET", &playlist, &intruder, b"").0,
        404
    );
    assert_eq!(request(&media_http, "GET", &playlist, &owner, b"").0, 200);

    // A parallel upload (four parts joined by a final upload) is one video.
    let out = tus_js_mode(
        &endpoint,
        &input,
        Some(&token),
        &json!({"title": "병렬"}),
        "parallel4",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the parallel upload's video", 20, || {
        by_source("upload")
            .iter()
            .any(|v| v["title"] == "병렬" && v["state"] != "uploading")
    });
    assert_eq!(
        by_source("upload").len(),
        2,
        "one video per upload, none per part"
    );

    // Deleting a video removes its files from the media server's storage.
    let (st, _) = api(
        &app_http,
        "DELETE",
        &format!("/api/v1/videos/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(st, 204);
    let upload_id = path.rsplit('/').next().unwrap().to_string();
    let mut left = (0, Vec::new());
    let gone = (0..75).any(|_| {
        left = (
            request(&media_http, "GET", &playlist, &owner, b"").0,
            tree_names(&storage)
                .into_iter()
                .filter(|n| n.contains(&upload_id))
                .collect::<Vec<_>>(),
        );
        std::thread::sleep(Duration::from_millis(200));
        left.0 == 404 && left.1.is_empty()
    });
    assert!(gone, "the deleted video's files stay: {left:?}");
    // The control API wants the media server's token.
    assert_eq!(
        request(
            &media_http,
            "DELETE",
            &format!("/api/media/{upload_id}"),
            "",
            b""
        )
        .0,
        401
    );

    // Rotating the key while live ends the publish on the media server; the old key is
    // refused from then on.
    let mut publisher =
        ffmpeg::publish_command(&format!("rtmp://{rtmp}/live/{key}"), "160x120", 120)
            .spawn()
            .unwrap();
    wait_for("the channel live again", 20, || {
        api(&app_http, "GET", "/api/v1/live", None, None).1["items"][0]["slug"] == "remote-live"
    });
    let (st, rotated) = api(
        &app_http,
        "POST",
        "/api/v1/channels/remote-live/key?end_live=true",
        Some(&token),
        None,
    );
    assert_eq!(st, 200, "{rotated}");
    wait_for("the publisher to be cut off", 20, || {
        publisher.try_wait().unwrap().is_some()
    });
    assert!(
        !ffmpeg::publish_command(&format!("rtmp://{rtmp}/live/{key}"), "160x120", 3)
            .status()
            .unwrap()
            .success()
    );

    let _ = media.kill();
    let _ = media.wait();
    let _ = app.kill();
    let _ = app.wait();
    rt.block_on(videopick_testkit::pg::drop_db(&jobs_db_name));
    let mut logs = Vec::new();
    while let Ok(l) = media_logs.recv_timeout(Duration::from_millis(300)) {
        logs.push(l);
    }
    assert!(
        logs.iter().any(|l| l.contains("publish refused")),
        "refusals are logged"
    );
    let leaked: Vec<_> = logs.iter().filter(|l| l.contains(&key)).collect();
    assert!(
        leaked.is_empty(),
        "the key leaked into the media server's logs: {leaked:?}"
    );
}

/// The names of every file and directory under `dir`.
fn tree_names(dir: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            names.push(e.file_name().to_string_lossy().into_owned());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(e.path());
            }
        }
    }
    names
}

/// A signature header as `videopick-hooks` makes it, with `secret`.
fn videopick_hooks_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex = mac
        .finalize()
        .into_bytes()
        .iter()
        .fold(String::new(), |mut h, b| {
            use std::fmt::Write as _;
            let _ = write!(h, "{b:02x}");
            h
        });
    format!("t={t},v1={hex}")
}
