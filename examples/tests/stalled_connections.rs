//! Every listener closes connections that stall before a complete request: thousands that
//! send nothing, thousands that trickle a request head a byte at a time, and two that idle
//! on keep-alive after a response (one from hyper, one from the plain path) — on the media
//! server's HTTP and RTMP listeners and on the chat server — while real clients (curl,
//! ffmpeg) are served meanwhile.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{start_chat_server, start_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SILENT: usize = 1500;
const TRICKLING: usize = 500;

/// Open the stalled connections to `addr`; `first_bytes` is what trickling ones send, one
/// byte every 300 ms (an RTMP C0+C1 prefix, or an HTTP head that never ends).
async fn stall(addr: &str, first_bytes: &'static [u8]) -> Vec<TcpStream> {
    let mut conns = Vec::new();
    for _ in 0..SILENT {
        conns.push(TcpStream::connect(addr).await.unwrap());
    }
    for _ in 0..TRICKLING {
        conns.push(TcpStream::connect(addr).await.unwrap());
    }
    let trickle: Vec<TcpStream> = conns.split_off(SILENT);
    let mut handles = Vec::new();
    for mut s in trickle {
        handles.push(tokio::spawn(async move {
            for b in first_bytes.iter().cycle().take(200) {
                if s.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            s
        }));
    }
    // The trickling ones are handed back when the server has closed them (a write fails)
    // or after 60 s of trickling.
    let mut back = conns;
    for h in handles {
        back.push(h.await.unwrap());
    }
    back
}

/// How many of `conns` are still open: a read that neither ends nor fails within 2 s.
async fn still_open(conns: Vec<TcpStream>) -> usize {
    let mut tasks = Vec::new();
    for mut s in conns {
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
                    Err(_) => return 1, // nothing for 2 s: open
                    Ok(Ok(0) | Err(_)) => return 0,
                    Ok(Ok(_)) => {} // e.g. an error answer before the close
                }
            }
        }));
    }
    let mut open = 0;
    for t in tasks {
        open += t.await.unwrap();
    }
    open
}

fn curl_ok(url: &str) -> bool {
    Command::new("curl")
        .args(["-sf", "--max-time", "5", url])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_and_real_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let media = start_server(
        &dir.path().join("data"),
        &[
            "--http-header-timeout-secs",
            "2",
            "--handshake-timeout-secs",
            "2",
        ],
    );
    let chat = start_chat_server(&["--anonymous", "--header-timeout-secs", "2"]);
    let t0 = Instant::now();

    // An idle keep-alive connection after one complete request and answer.
    let mut idle = TcpStream::connect(&media.http).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // The same after an answer from the plain path (live HLS, answered ahead of hyper).
    let mut idle_plain = TcpStream::connect(&media.http).await.unwrap();
    idle_plain
        .write_all(b"GET /live/nobody.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = idle_plain.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 404"));

    let (http, rtmp, chat_conns) = tokio::join!(
        stall(
            &media.http,
            b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa"
        ),
        stall(&media.rtmp, b"\x03\x00\x00\x00\x00\x00\x00\x00\x00"),
        stall(
            &chat.addr,
            b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nX: y"
        ),
    );
    // While they stall, real clients are served.
    let (h, c) = (media.http.clone(), chat.addr.clone());
    let served = tokio::task::spawn_blocking(move || {
        (
            curl_ok(&format!("http://{h}/healthz")),
            curl_ok(&format!("http://{c}/healthz")),
        )
    });
    let publish = videopick_testkit::ffmpeg::publish_command(
        &format!("rtmp://{}/live/real", media.rtmp),
        "320x240",
        2,
    )
    .status()
    .unwrap();
    assert_eq!(served.await.unwrap(), (true, true));
    assert!(
        publish.success(),
        "ffmpeg could not publish beside the stalled connections"
    );

    let (open_http, open_rtmp, open_chat, open_idle) = tokio::join!(
        still_open(http),
        still_open(rtmp),
        still_open(chat_conns),
        still_open(vec![idle, idle_plain]),
    );
    assert_eq!(
        (open_http, open_rtmp, open_chat, open_idle),
        (0, 0, 0, 0),
        "connections still open {:?} after start",
        t0.elapsed()
    );
}
