//! `chat-server` with the unmodified `socket.io-client` (npm): tokens, rooms, history,
//! presence, moderation and refusals, over the default transports and WebSocket only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ChatServer, chat_token, start_chat_server};

use serde_json::{Value, json};
use videopick_chat_proto::app::auth::sign;

const SECRET: &str = "test-secret";

fn start(extra: &[&str]) -> ChatServer {
    let mut args = vec!["--jwt-secret", SECRET];
    args.extend_from_slice(extra);
    start_chat_server(&args)
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js")
}

fn scenario(addr: &str, mode: &str) -> Value {
    assert!(
        clients_dir().join("node_modules/socket.io-client").exists(),
        "run `npm ci` in clients/js (scripts/test.sh does)"
    );
    let token = |sub: &str, role: &str| chat_token(sub, role, SECRET);
    let tokens = json!({
        "alice": token("alice", "viewer"),
        "bob": token("bob", "viewer"),
        "carol": token("carol", "viewer"),
        "mod": token("mod", "moderator"),
        "bad": sign(&json!({"sub": "eve"}), b"not-the-secret"),
    });
    let out = Command::new("node")
        .arg(clients_dir().join("chat-scenario.mjs"))
        .arg(format!("http://{addr}/"))
        .arg(mode)
        .arg(tokens.to_string())
        .output()
        .expect("node is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap()
}

fn check(out: &Value) {
    assert_eq!(out["refused"], "unauthorized", "{out}");
    assert_eq!(
        out["anonymous"], "unauthorized",
        "no anonymous readers unless allowed"
    );
    assert_eq!(out["joins"], json!([1, 2, 3]));
    assert_eq!(out["notInRoom"], "not_in_room");
    assert_eq!(out["sent"], json!({"ok": true, "id": 1}));
    assert_eq!(out["sent2"], json!({"ok": true, "id": 2}));
    // Every member got both messages once, in order, the sender included.
    for who in ["alice", "bob", "mod"] {
        let got = &out["received"][who];
        assert_eq!(got[0]["id"], 1, "{who}: {got}");
        assert_eq!(got[0]["text"], "hello");
        assert_eq!(
            got[0]["user"],
            json!({"id": "alice", "name": "alice", "role": "viewer"})
        );
        assert!(got[0]["ts"].as_u64().unwrap() > 1_700_000_000_000);
        assert_eq!(got[1]["id"], 2);
        assert_eq!(got[2], json!({"deleted": 1}), "{who}: {got}");
    }
    let carol = &out["carolJoin"];
    assert_eq!(carol["count"], 4);
    let history: Vec<&str> = carol["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["hello", "hi alice"], "history on join");
    assert!(out["presence"].as_u64().unwrap() >= 3, "{out}");
    assert_eq!(out["forbidden"], "forbidden");
    assert_eq!(out["deleted"], json!({"ok": true}));
    assert_eq!(out["slowFirst"], true);
    assert_eq!(out["slowSecond"], "slow_mode");
    assert_eq!(out["tooLong"], "too_long");
    assert_eq!(out["ban"], json!({"ok": true}));
    assert_eq!(out["bannedJoin"], "banned");
}

#[test]
fn socket_io_client_chats_with_default_transports() {
    let server = start(&[]);
    check(&scenario(&server.addr, "polling"));
}

#[test]
fn socket_io_client_chats_over_websocket_only() {
    let server = start(&[]);
    check(&scenario(&server.addr, "websocket"));
    let (status, metrics) = common_http(&server.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("videopick_chat_messages_in_total 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("videopick_chat_refused_total 2"),
        "{metrics}"
    );
}

/// The Socket.IO v5 protocol test suite's "should ignore WebSocket connection with same sid
/// after upgrade", with the suite's own WebSocket client (`ws`, pinned in clients/js): the
/// second upgrade's handshake completes, then that socket closes; the session lives on.
#[test]
fn a_second_upgrade_of_a_session_completes_then_closes_for_the_ws_client() {
    let server = start_chat_server(&["--test-suite"]);
    let out = Command::new("node")
        .arg(clients_dir().join("ws-double-upgrade.mjs"))
        .arg(format!("http://{}/", server.addr))
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

fn common_http(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    (
        r[9..12].parse().unwrap(),
        r.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    )
}

/// One raw request; the whole answer (head and body) as text.
fn raw(addr: &str, method: &str, path: &str, headers: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    r.to_ascii_lowercase()
}

#[test]
fn pages_of_allowed_origins_get_cors_answers_and_others_are_refused() {
    let server = start(&["--allowed-origins", "https://site.example"]);
    let handshake = "/socket.io/?EIO=4&transport=polling";
    // A browser's preflight for long-polling (the POST of a packet carries a content type).
    let r = raw(
        &server.addr,
        "OPTIONS",
        handshake,
        "Origin: https://site.example\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: content-type\r\n",
    );
    assert!(r.starts_with("http/1.1 204"), "{r}");
    for h in [
        "access-control-allow-origin: https://site.example",
        "access-control-allow-credentials: true",
        "access-control-allow-methods: get, post, options",
        "access-control-allow-headers: content-type",
        "vary: origin",
    ] {
        assert!(r.contains(h), "{h} missing: {r}");
    }
    // The long-polling handshake itself, from that page.
    let r = raw(
        &server.addr,
        "GET",
        handshake,
        "Origin: https://site.example\r\n",
    );
    assert!(r.starts_with("http/1.1 200"), "{r}");
    assert!(
        r.contains("access-control-allow-origin: https://site.example"),
        "{r}"
    );
    assert!(r.contains("\"sid\""), "{r}");
    // Another site's page is refused, preflight and request alike.
    for method in ["OPTIONS", "GET"] {
        let r = raw(
            &server.addr,
            method,
            handshake,
            "Origin: https://evil.example\r\nAccess-Control-Request-Method: GET\r\n",
        );
        assert!(r.starts_with("http/1.1 403"), "{method}: {r}");
        assert!(!r.contains("access-control-allow-origin"), "{r}");
    }
    // Clients that are not browsers send no Origin and are served.
    let r = raw(&server.addr, "GET", handshake, "");
    assert!(r.starts_with("http/1.1 200"), "{r}");
}

/// Reads one HTTP/1.1 response (head and a `Content-Length` body) from `s`.
fn response(s: &mut std::net::TcpStream) -> (String, String) {
    use std::io::Read;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head: {got:?}");
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap().to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}

/// Long-polling as a client on one keep-alive connection sees it, with the requests read
/// and answered ahead of hyper: the handshake, a packet posted in two pieces and with
/// `Expect: 100-continue`, the poll that carries the answer; an oversized payload is
/// refused; a body that stalls closes its connection within the header timeout.
#[test]
fn long_polling_on_one_keep_alive_connection() {
    use std::io::{Read, Write};
    let server = start(&[
        "--anonymous",
        "--max-payload",
        "2000",
        "--header-timeout-secs",
        "2",
    ]);
    let addr = &server.addr;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\n\r\n"
    )
    .unwrap();
    let (head, body) = response(&mut s);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let open: Value = serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_string();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    // The namespace connect, its body in two writes.
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: 2\r\n\r\n4"
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    s.write_all(b"0").unwrap();
    let (head, body) = response(&mut s);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "ok");
    // The poll carries the namespace's answer.
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let (head, body) = response(&mut s);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.starts_with("40{\"sid\":"), "{body}");
    // A client that waits for 100 Continue before its body gets it.
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n"
    )
    .unwrap();
    let mut cont = [0u8; 25];
    s.read_exact(&mut cont).unwrap();
    assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(b"3").unwrap(); // a pong
    let (head, body) = response(&mut s);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, "ok");

    // A payload over --max-payload is refused (and ends the session).
    let mut big = std::net::TcpStream::connect(addr).unwrap();
    big.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        big,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 3000\r\n\r\n{}",
        "4".repeat(3000)
    )
    .unwrap();
    let (head, _) = response(&mut big);
    assert!(head.starts_with("http/1.1 413"), "{head}");

    // A body that stops short is not waited for past the header timeout.
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stalled,
        "POST /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 10\r\n\r\n40"
    )
    .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        waited >= std::time::Duration::from_millis(1500)
            && waited < std::time::Duration::from_secs(6),
        "closed after {waited:?}"
    );
}
