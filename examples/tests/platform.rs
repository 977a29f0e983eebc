//! The platform in the all-in-one `videopick`, with real clients: an account and a
//! channel made through the API, ffmpeg publishing with the channel's stream key, the API
//! listing the channel live with its viewers while ffmpeg plays `/live/<slug>.flv`; a
//! wrong key and a rotated key refused; the key never in a log line. tus-js-client
//! uploading with the user's token: the video goes processing → ready with renditions,
//! poster and storyboard; a private video is neither listed nor playable by others.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use videopick_testkit::ffmpeg;
use videopick_testkit::http::request;

mod common;
use common::{api_json as api, tus_js, tus_js_mode, wait_for};

struct Server {
    child: Child,
    rtmp: String,
    http: String,
    chat: String,
    logs: Receiver<String>,
}

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_videopick"))
        .env("RUST_LOG", "info")
        .args(["--storage", dir.to_str().unwrap(), "--min-free-bytes", "0"])
        .args(["--rtmp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args([
            "--chat-listen",
            "127.0.0.1:0",
            "--jwt-secret",
            "chat-secret",
        ])
        .args(["--transcode-recordings", "none"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut rtmp, mut http, mut chat) = (String::new(), String::new(), String::new());
    while rtmp.is_empty() || http.is_empty() || chat.is_empty() {
        let line = lines.next().expect("videopick exited early").unwrap();
        if let Some(a) = line.strip_prefix("videopick: rtmp on rtmp://") {
            rtmp = a.to_string();
        } else if let Some(a) = line.strip_prefix("videopick: listening on http://") {
            http = a.to_string();
        } else if let Some(a) = line.strip_prefix("videopick: chat on http://") {
            chat = a.to_string();
        }
    }
    let (tx, logs) = std::sync::mpsc::channel();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    Server {
        child,
        rtmp,
        http,
        chat,
        logs,
    }
}

/// socket.io-client (`clients/js/chat-once.mjs`) joins `room` at `chat` with `token` and
/// sends `text`; the acks as JSON.
fn chat_once(chat: &str, room: &str, text: Option<&str>, token: Option<&str>) -> Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js");
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("chat-once.mjs")
        .arg(format!("http://{chat}"))
        .arg(room);
    if let Some(t) = text {
        cmd.arg(t);
    }
    if let Some(t) = token {
        cmd.env("CHAT_TOKEN", t);
    }
    let out = cmd.output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
#[allow(clippy::too_many_lines)]
fn a_channel_goes_live_with_its_key_and_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = start(dir.path(), &["--thumbnail-secs", "1"]);
    let http = s.http.clone();

    let (st, me) = api(
        &http,
        "POST",
        "/api/v1/auth/signup",
        None,
        Some(
            json!({"username": "jiwoo", "email": "jiwoo@example.com", "password": "correct horse battery"}),
        ),
    );
    assert_eq!(st, 201, "{me}");
    let token = me["token"].as_str().unwrap().to_string();
    let (st, created) = api(
        &http,
        "POST",
        "/api/v1/channels",
        Some(&token),
        Some(json!({"slug": "jiwoo-live", "name": "지우 라이브"})),
    );
    assert_eq!(st, 201, "{created}");
    let key = created["key"]["stream_key"].as_str().unwrap().to_string();

    // A wrong key is refused at once.
    let wrong = format!("rtmp://{}/live/sk_not-the-key", s.rtmp);
    let t = Instant::now();
    let status = ffmpeg::publish_command(&wrong, "160x120", 5)
        .status()
        .unwrap();
    assert!(!status.success());
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "refused at once, not at the end"
    );
    // So is publishing under the public name.
    let direct = format!("rtmp://{}/live/jiwoo-live", s.rtmp);
    assert!(
        !ffmpeg::publish_command(&direct, "160x120", 5)
            .status()
            .unwrap()
            .success()
    );

    // OBS convention: server rtmp://HOST/live, stream key = the secret.
    let url = format!("rtmp://{}/live/{key}", s.rtmp);
    let mut publisher = ffmpeg::publish_command(&url, "320x240", 120)
        .spawn()
        .unwrap();
    wait_for("the channel to be live", 20, || {
        let (_, live) = api(&http, "GET", "/api/v1/live", None, None);
        live["items"][0]["slug"] == "jiwoo-live"
    });
    let (_, ch) = api(&http, "GET", "/api/v1/channels/jiwoo-live", None, None);
    assert_eq!(ch["live"]["flv"], "/live/jiwoo-live.flv");
    assert!(!ch.to_string().contains(&key));

    // The channel's chat: the owner's token (minted by the API) joins its room and posts
    // as the broadcaster; an anonymous viewer reads the history but may not post.
    let (st, chat) = api(
        &http,
        "POST",
        "/api/v1/chat/token",
        Some(&token),
        Some(json!({"channel": "jiwoo-live"})),
    );
    assert_eq!(st, 200, "{chat}");
    let room = chat["room"].as_str().unwrap().to_string();
    let said = chat_once(&s.chat, &room, Some("안녕하세요"), chat["token"].as_str());
    assert_eq!(said["join"]["ok"], true, "{said}");
    assert_eq!(said["message"]["ok"], true, "{said}");
    let read = chat_once(&s.chat, &room, Some("hi"), None);
    assert_eq!(read["join"]["history"][0]["text"], "안녕하세요", "{read}");
    assert_eq!(read["join"]["history"][0]["user"]["role"], "broadcaster");
    assert_eq!(read["message"]["error"]["code"], "unauthorized", "{read}");

    // A viewer plays the HTTP-FLV stream; the API counts it and reports the stream's health.
    let flv = format!("http://{http}/live/jiwoo-live.flv");
    let mut player = ffmpeg::spawn(&["-i", &flv, "-t", "15", "-f", "null", "-"]);
    wait_for("viewers >= 1 in the API", 20, || {
        let (_, ch) = api(&http, "GET", "/api/v1/channels/jiwoo-live", None, None);
        ch["live"]["viewers"].as_i64().unwrap_or(0) >= 1
    });
    let (_, ch) = api(&http, "GET", "/api/v1/channels/jiwoo-live", None, None);
    assert_eq!(ch["live"]["health"]["width"], 320, "{ch}");
    assert_eq!(ch["live"]["health"]["height"], 240, "{ch}");
    assert!(
        ch["live"]["health"]["video_codec"]
            .as_str()
            .unwrap()
            .starts_with("avc1"),
        "{ch}"
    );
    let probe = ffmpeg::ffprobe(&flv, &["-show_entries", "stream=codec_name,width"]);
    assert!(probe.contains("h264") && probe.contains("320"), "{probe}");

    // A thumbnail of the latest key frame, refreshed by itself.
    let mut thumb = String::new();
    wait_for("a live thumbnail", 20, || {
        let (_, ch) = api(&http, "GET", "/api/v1/channels/jiwoo-live", None, None);
        thumb = ch["live"]["thumbnail"].as_str().unwrap_or("").to_string();
        !thumb.is_empty()
    });
    assert!(
        thumb.starts_with("/thumbnails/live/jiwoo-live.jpg?t="),
        "{thumb}"
    );
    let out = Command::new("curl")
        .args(["-s", "-D", "/dev/stderr", &format!("http://{http}{thumb}")])
        .output()
        .unwrap();
    assert!(out.stdout.starts_with(&[0xff, 0xd8]), "not a JPEG");
    assert!(String::from_utf8_lossy(&out.stderr).contains("image/jpeg"));
    let dims = ffmpeg::ffprobe(
        &format!("http://{http}{thumb}"),
        &["-show_entries", "stream=width,height"],
    );
    assert!(dims.contains("320") && dims.contains("240"), "{dims}");

    // Rotating the key with end_live ends the publish; the old key no longer works.
    let (st, rotated) = api(
        &http,
        "POST",
        "/api/v1/channels/jiwoo-live/key?end_live=true",
        Some(&token),
        None,
    );
    assert_eq!(st, 200, "{rotated}");
    let new_key = rotated["stream_key"].as_str().unwrap().to_string();
    let t = Instant::now();
    loop {
        if publisher.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the publish was not ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = player.kill();
    let _ = player.wait();
    wait_for("the live session to end", 10, || {
        let (_, live) = api(&http, "GET", "/api/v1/live", None, None);
        live["items"] == json!([])
    });
    assert!(
        !ffmpeg::publish_command(&url, "160x120", 5)
            .status()
            .unwrap()
            .success()
    );
    let new_url = format!("rtmp://{}/live/{new_key}", s.rtmp);
    let mut again = ffmpeg::publish_command(&new_url, "160x120", 60)
        .spawn()
        .unwrap();
    wait_for("live again with the new key", 20, || {
        let (_, live) = api(&http, "GET", "/api/v1/live", None, None);
        live["items"][0]["slug"] == "jiwoo-live"
    });
    let _ = again.kill();
    let _ = again.wait();

    // The channel records by default: each ended publish became a video — with
    // transcoding of recordings off, the recording's own VOD playlist, playable at once.
    let mut rec = Value::Null;
    wait_for("the recording to become a ready video", 30, || {
        let (_, page) = api(
            &http,
            "GET",
            "/api/v1/channels/jiwoo-live/videos",
            None,
            None,
        );
        rec = page["items"]
            .as_array()
            .and_then(|v| {
                v.iter()
                    .find(|x| x["source"] == "recording" && x["state"] == "ready")
            })
            .cloned()
            .unwrap_or(Value::Null);
        !rec.is_null()
    });
    let playlist = rec["playlist"].as_str().unwrap().to_string();
    assert!(
        playlist.starts_with("/recordings/live.jiwoo-live."),
        "{rec}"
    );
    assert!(rec["duration_ms"].as_i64().unwrap() > 1000, "{rec}");
    let warnings = ffmpeg::decode_warnings(&format!("http://{http}{playlist}"));
    assert!(warnings.is_empty(), "{warnings}");

    // The platform's API and the media role share one origin; other API paths are problems.
    let (st, body) = api(&http, "GET", "/api/v1/nope", None, None);
    assert_eq!((st, body["code"].as_str()), (404, Some("not-found")));

    let _ = s.child.kill();
    let _ = s.child.wait();
    let mut lines = Vec::new();
    while let Ok(l) = s.logs.recv_timeout(Duration::from_millis(300)) {
        lines.push(l);
    }
    assert!(
        lines.iter().any(|l| l.contains("publish refused")),
        "the refusals are logged"
    );
    for (k, what) in [(&key, "old key"), (&new_key, "new key")] {
        let leaked: Vec<_> = lines.iter().filter(|l| l.contains(k.as_str())).collect();
        assert!(
            leaked.is_empty(),
            "the {what} leaked into the logs: {leaked:?}"
        );
    }
}

fn sign_up(http: &str, name: &str) -> String {
    let (st, me) = api(
        http,
        "POST",
        "/api/v1/auth/signup",
        None,
        Some(
            json!({"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"}),
        ),
    );
    assert_eq!(st, 201, "{me}");
    me["token"].as_str().unwrap().to_string()
}

fn get_with(http: &str, path: &str, token: Option<&str>) -> u16 {
    let extra = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    request(http, "GET", path, &extra, b"").0
}

#[test]
#[allow(clippy::too_many_lines)]
fn an_upload_by_a_signed_in_user_becomes_a_ready_private_video() {
    let dir = tempfile::tempdir().unwrap();
    let input = ffmpeg::make_input(dir.path(), "clip.mp4", "320x240", 4);
    let mut s = start(&dir.path().join("data"), &["--ladder", "240"]);
    let http = s.http.clone();
    let endpoint = format!("http://{http}/files/");
    let owner = sign_up(&http, "seoyeon");
    let other = sign_up(&http, "minho");

    // Anonymous uploads are refused; so are uploads of an account without a channel.
    let out = tus_js(&endpoint, &input, None, &json!({}));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sign in to upload"),
        "{out:?}"
    );
    let out = tus_js(&endpoint, &input, Some(&owner), &json!({}));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("create a channel"),
        "{out:?}"
    );
    let (st, _) = api(
        &http,
        "POST",
        "/api/v1/channels",
        Some(&owner),
        Some(json!({"slug": "seoyeon-tv", "name": "서연 TV"})),
    );
    assert_eq!(st, 201);

    let out = tus_js(
        &endpoint,
        &input,
        Some(&owner),
        &json!({"title": "첫 번째 영상", "visibility": "private"}),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let upload_url = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let upload_path = upload_url
        .split_once(&http)
        .map(|x| x.1.to_string())
        .unwrap();

    // uploading → processing → ready, with what the ladder made.
    let mut video = Value::Null;
    let mut states = Vec::new();
    wait_for("the video to be ready", 120, || {
        let (_, page) = api(&http, "GET", "/api/v1/me/videos", Some(&owner), None);
        video = page["items"][0].clone();
        let state = video["state"].as_str().unwrap_or("").to_string();
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        assert_ne!(state, "failed", "{video}");
        state == "ready"
    });
    assert!(
        states
            .iter()
            .all(|s| ["processing", "ready"].contains(&s.as_str())),
        "{states:?}"
    );
    assert_eq!(video["title"], "첫 번째 영상");
    assert_eq!(video["visibility"], "private");
    assert_eq!(video["channel"]["slug"], "seoyeon-tv");
    assert_eq!(video["renditions"][0]["height"], 240, "{video}");
    assert!(video["duration_ms"].as_i64().unwrap() >= 3_500, "{video}");
    let id = video["id"].as_str().unwrap().to_string();
    let playlist = video["playlist"].as_str().unwrap().to_string();
    let poster = video["poster"].as_str().unwrap().to_string();
    let storyboard = video["storyboard"].as_str().unwrap().to_string();

    // Private: only its owner sees it, lists it or fetches its files.
    assert_eq!(get_with(&http, &format!("/api/v1/videos/{id}"), None), 404);
    assert_eq!(
        get_with(&http, &format!("/api/v1/videos/{id}"), Some(&other)),
        404
    );
    assert_eq!(
        get_with(&http, &format!("/api/v1/videos/{id}"), Some(&owner)),
        200
    );
    let (_, public) = api(&http, "GET", "/api/v1/videos", None, None);
    assert_eq!(public["items"], json!([]));
    for f in [&playlist, &poster, &storyboard] {
        assert_eq!(get_with(&http, f, None), 404, "{f}");
        assert_eq!(get_with(&http, f, Some(&other)), 404, "{f}");
        assert_eq!(get_with(&http, f, Some(&owner)), 200, "{f}");
    }
    // Nor may another account touch the upload.
    let (st, _) = request(
        &http,
        "HEAD",
        &upload_path,
        &format!("Tus-Resumable: 1.0.0\r\nAuthorization: Bearer {other}\r\n"),
        b"",
    );
    assert_eq!(st, 404);
    let (st, _) = request(
        &http,
        "HEAD",
        &upload_path,
        &format!("Tus-Resumable: 1.0.0\r\nAuthorization: Bearer {owner}\r\n"),
        b"",
    );
    assert_eq!(st, 200);

    // Made public, it is listed and plays for anyone (ffmpeg decodes the HLS ladder).
    let (st, v) = api(
        &http,
        "PATCH",
        &format!("/api/v1/videos/{id}"),
        Some(&owner),
        Some(json!({"visibility": "public"})),
    );
    assert_eq!((st, v["visibility"].as_str()), (200, Some("public")));
    let (_, public) = api(&http, "GET", "/api/v1/videos", None, None);
    assert_eq!(public["items"][0]["id"], id.as_str());
    assert_eq!(get_with(&http, &playlist, None), 200);
    let warnings = ffmpeg::decode_warnings(&format!("http://{http}{playlist}"));
    assert!(warnings.is_empty(), "{warnings}");

    // Deleted: gone from the API and its files from storage.
    let (st, _) = api(
        &http,
        "DELETE",
        &format!("/api/v1/videos/{id}"),
        Some(&other),
        None,
    );
    assert_eq!(st, 403);
    let (st, _) = api(
        &http,
        "DELETE",
        &format!("/api/v1/videos/{id}"),
        Some(&owner),
        None,
    );
    assert_eq!(st, 204);
    assert_eq!(get_with(&http, &playlist, Some(&owner)), 404);
    let upload_id = upload_url.rsplit('/').next().unwrap();
    let storage = videopick_storage::Storage::open(dir.path().join("data")).unwrap();
    let vod = storage.vod_dir(&videopick_storage::VideoId::new(upload_id).unwrap());
    let upload = storage.upload_dir(&videopick_storage::UploadId::new(upload_id).unwrap());
    assert!(!vod.exists() && !upload.exists(), "files left behind");

    // A parallel upload (four parts joined by a final upload) is one video.
    let out = tus_js_mode(
        &endpoint,
        &input,
        Some(&owner),
        &json!({"title": "병렬 업로드"}),
        "parallel4",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut mine = Value::Null;
    wait_for("the parallel upload's video", 20, || {
        mine = api(&http, "GET", "/api/v1/me/videos", Some(&owner), None).1;
        mine["items"][0]["state"] == "processing" || mine["items"][0]["state"] == "ready"
    });
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["items"][0]["title"], "병렬 업로드");
    let _ = s.child.kill();
    let _ = s.child.wait();
}
