//! The hook client against real servers: plain HTTP with keep-alive and chunked answers,
//! HTTPS with a private root, retries with backoff, deadlines and answer limits.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use videopick_hooks::{HookClient, HookConfig, HookError};

#[derive(serde::Deserialize)]
struct Answer {
    record: bool,
}

static BIG: [u8; 100_000] = [b'x'; 100_000];

type Handler = Arc<
    dyn Fn(Bytes, usize) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>
        + Send
        + Sync,
>;

/// Serve `handler` (given the request body and the request's number) on a loopback port,
/// over TLS when `tls` is given. Returns the port.
async fn serve(handler: Handler, tls: Option<tokio_rustls::TlsAcceptor>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (sock, _) = l.accept().await.unwrap();
            let (handler, count, tls) = (handler.clone(), count.clone(), tls.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (handler, count) = (handler.clone(), count.clone());
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(handler(body, n))
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(acceptor) => {
                        if let Ok(s) = acceptor.accept(sock).await {
                            let _ = http.serve_connection(TokioIo::new(s), svc).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(sock), svc).await;
                    }
                }
            });
        }
    });
    port
}

fn full(
    status: u16,
    body: &'static str,
) -> Response<http_body_util::combinators::BoxBody<Bytes, Infallible>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r
}

#[tokio::test]
async fn json_goes_out_and_a_chunked_answer_comes_back() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let port = serve(
        Arc::new(move |body, _| {
            seen2.lock().unwrap().push(body);
            // A streamed body: hyper sends it chunked.
            let chunks = ["{\"rec", "ord\": ", "true}"]
                .map(|c| Ok::<_, Infallible>(Frame::data(Bytes::from_static(c.as_bytes()))));
            Response::new(StreamBody::new(futures_util::stream::iter(chunks)).boxed())
        }),
        None,
    )
    .await;
    let client = HookClient::new(HookConfig::default()).unwrap();
    let url = format!("http://127.0.0.1:{port}/hook");
    for _ in 0..3 {
        let a = client
            .post_json(
                &url,
                &serde_json::json!({"event": "publish", "key": "live/\"cam\""}),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200);
        assert!(a.json::<Answer>().unwrap().record);
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(&seen[0][..], br#"{"event":"publish","key":"live/\"cam\""}"#);
}

#[tokio::test]
async fn https_hooks_work_with_a_private_root_and_fail_without_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("root.pem");
    std::fs::write(&pem, cert.cert.pem()).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let port = serve(Arc::new(|_, _| full(204, "")), Some(acceptor)).await;
    let url = format!("https://localhost:{port}/hook");

    let trusted = HookClient::new(HookConfig::default().extra_root(&pem)).unwrap();
    let a = trusted
        .post_json(&url, &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(a.status, 204);
    assert!(a.is_success());

    let untrusted = HookClient::new(HookConfig::default()).unwrap();
    let err = untrusted
        .post_json(&url, &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Connect { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    // An unreadable root file is a set-up error, not a silent downgrade.
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    assert!(matches!(
        HookClient::new(HookConfig::default().extra_root(&bad)),
        Err(HookError::Tls(_))
    ));
}

#[tokio::test]
async fn deliver_retries_with_backoff_until_a_2xx() {
    // 503, 503, then 200.
    let port = serve(
        Arc::new(|_, n| {
            if n < 2 {
                full(503, "busy")
            } else {
                full(200, "")
            }
        }),
        None,
    )
    .await;
    let client =
        HookClient::new(HookConfig::default().retries(3, Duration::from_millis(100))).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    let t = Instant::now();
    let a = client.deliver(&url, &1).await.unwrap();
    assert_eq!(a.status, 200);
    // Waited 100 ms, then 200 ms.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );

    // Always 500: gives up after 1 + 2 attempts with the last status.
    let port = serve(Arc::new(|_, _| full(500, "no")), None).await;
    let client =
        HookClient::new(HookConfig::default().retries(2, Duration::from_millis(10))).unwrap();
    let err = client
        .deliver(&format!("http://127.0.0.1:{port}/"), &1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HookError::Status { status: 500, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn slow_and_oversized_answers_are_bounded() {
    // Accepts, reads, never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (s, _) = l.accept().await.unwrap();
            held.push(s);
        }
    });
    let client =
        HookClient::new(HookConfig::default().timeout(Duration::from_millis(300))).unwrap();
    let t = Instant::now();
    let err = client
        .post_json(&format!("http://127.0.0.1:{port}/"), &1)
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Timeout { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(2));

    let port = serve(
        Arc::new(|_, _| Response::new(Full::new(Bytes::from_static(&BIG)).boxed())),
        None,
    )
    .await;
    let client = HookClient::new(HookConfig::default()).unwrap();
    let err = client
        .post_json(&format!("http://127.0.0.1:{port}/"), &1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, HookError::AnswerTooLarge { limit: 65_536, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_that_drops_idle_connections_loses_no_hook() {
    // Answers the first request of a connection (without `Connection: close`), then drops
    // the connection unanswered when the next request comes — a server whose keep-alive
    // timeout fires just as a pooled connection is reused.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let served2 = served.clone();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let served = served2.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                served.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                // The next request on this connection is read, then dropped unanswered.
                let _ = s.read(&mut buf);
            });
        }
    });
    let client = HookClient::new(HookConfig::default()).unwrap();
    let url = format!("http://127.0.0.1:{port}/");
    for i in 0..20 {
        let a = client.post_json(&url, &i).await.unwrap();
        assert_eq!((a.status, &a.body[..]), (200, &b"ok"[..]));
    }
    assert_eq!(served.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn api_calls_carry_their_method_and_bearer_token() {
    // What the server saw: method, path, Authorization, body length.
    let seen = Arc::new(std::sync::Mutex::new(
        Vec::<(String, String, String, usize)>::new(),
    ));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = l.accept().await.unwrap();
            let seen = seen2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let seen = seen.clone();
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_string();
                        let auth = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        seen.lock().unwrap().push((method, path, auth, body.len()));
                        Ok::<_, Infallible>(full(200, "{\"ok\":true}"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    let client = HookClient::new(HookConfig::default()).unwrap();
    let a = client
        .call(
            hyper::Method::DELETE,
            &format!("http://127.0.0.1:{port}/api/streams/live/x"),
            Some("t0ken"),
        )
        .await
        .unwrap();
    assert!(a.is_success());
    let a = client
        .call(
            hyper::Method::POST,
            &format!("http://127.0.0.1:{port}/api/jobs/7/cancel"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.text(), "{\"ok\":true}");
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (
                "DELETE".to_string(),
                "/api/streams/live/x".to_string(),
                "Bearer t0ken".to_string(),
                0
            ),
            (
                "POST".to_string(),
                "/api/jobs/7/cancel".to_string(),
                String::new(),
                0
            ),
        ]
    );
}
