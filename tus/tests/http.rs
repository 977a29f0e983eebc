//! The tus service over real HTTP (hyper server, raw HTTP/1.1 requests): one test per
//! protocol rule.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use videopick_storage::{Storage, StorageOptions, SyncPolicy};
use videopick_tus::service::{TusConfig, TusService};
use videopick_tus::{FileStore, base64};

struct Server {
    addr: String,
    _dir: tempfile::TempDir,
    _rt: tokio::runtime::Runtime,
}

fn server(max_size: u64) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("data")).unwrap();
    server_on(storage, max_size, dir)
}

fn server_on(storage: Storage, max_size: u64, dir: tempfile::TempDir) -> Server {
    server_with(
        storage,
        max_size,
        dir,
        std::sync::Arc::new(videopick_tus::hooks::NoHooks),
    )
    .0
}

fn server_with(
    storage: Storage,
    max_size: u64,
    dir: tempfile::TempDir,
    hooks: std::sync::Arc<dyn videopick_tus::hooks::Hooks>,
) -> (Server, TusService) {
    let svc = TusService::with_hooks(
        FileStore::new(storage, SyncPolicy::Always),
        TusConfig {
            max_size,
            ..TusConfig::default()
        },
        hooks,
    );
    let handle = svc.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    rt.spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                continue;
            };
            let svc = svc.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let svc = svc.clone();
                    async move { Ok::<_, std::convert::Infallible>(svc.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), service)
                    .await;
            });
        }
    });
    (
        Server {
            addr,
            _dir: dir,
            _rt: rt,
        },
        handle,
    )
}

struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim().to_ascii_lowercase() == name).then(|| v.trim())
        })
    }
}

/// One request with `headers` (each `Name: value`) and `body`.
fn req(s: &Server, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Resp {
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    c.write_all(head.as_bytes()).unwrap();
    // The server may answer (409, 413 …) before reading the whole body and close.
    let _ = c.write_all(body);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    assert!(!out.is_empty(), "no response to {method} {path}");
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Resp {
        status: head[9..12].parse().unwrap(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

const V: &str = "Tus-Resumable: 1.0.0";
const OCTETS: &str = "Content-Type: application/offset+octet-stream";

fn create(s: &Server, length: u64) -> String {
    let r = req(
        s,
        "POST",
        "/files/",
        &[V, &format!("Upload-Length: {length}")],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.header("location").unwrap().to_string()
}

#[test]
fn options_advertises_the_server() {
    let s = server(1 << 30);
    let r = req(&s, "OPTIONS", "/files/", &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("tus-version"), Some("1.0.0"));
    assert_eq!(r.header("tus-max-size"), Some("1073741824"));
    assert_eq!(
        r.header("tus-checksum-algorithm"),
        Some("sha1,md5,sha256,sha512")
    );
    let ext = r.header("tus-extension").unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{e} in {ext}");
    }
}

#[test]
fn a_missing_or_wrong_version_is_412() {
    let s = server(1 << 30);
    for h in [&[][..], &["Tus-Resumable: 0.2.2"][..]] {
        let r = req(&s, "POST", "/files/", h, b"");
        assert_eq!(r.status, 412);
        assert_eq!(r.header("tus-version"), Some("1.0.0"));
    }
}

#[test]
fn creation_rules() {
    let s = server(1000);
    let loc = create(&s, 10);
    assert!(loc.starts_with("/files/"));
    let r = req(&s, "POST", "/files/", &[V, "Upload-Length: 10"], b"");
    assert!(r.header("upload-expires").unwrap().ends_with(" GMT"));
    // Exactly one of Upload-Length / Upload-Defer-Length.
    assert_eq!(req(&s, "POST", "/files/", &[V], b"").status, 400);
    assert_eq!(
        req(
            &s,
            "POST",
            "/files/",
            &[V, "Upload-Length: 1", "Upload-Defer-Length: 1"],
            b""
        )
        .status,
        400
    );
    assert_eq!(
        req(&s, "POST", "/files/", &[V, "Upload-Length: -1"], b"").status,
        400
    );
    assert_eq!(
        req(&s, "POST", "/files/", &[V, "Upload-Defer-Length: 2"], b"").status,
        400
    );
    // Over Tus-Max-Size.
    assert_eq!(
        req(&s, "POST", "/files/", &[V, "Upload-Length: 1001"], b"").status,
        413
    );
    // Metadata is validated, then echoed on HEAD.
    assert_eq!(
        req(
            &s,
            "POST",
            "/files/",
            &[V, "Upload-Length: 1", "Upload-Metadata: a Zg==,a Zg=="],
            b""
        )
        .status,
        400
    );
    let r = req(
        &s,
        "POST",
        "/files/",
        &[
            V,
            "Upload-Length: 1",
            "Upload-Metadata: filename bW92aWUubXA0,public",
        ],
        b"",
    );
    let h = req(&s, "HEAD", r.header("location").unwrap(), &[V], b"");
    assert_eq!(
        h.header("upload-metadata"),
        Some("filename bW92aWUubXA0,public")
    );
    // Upload-Length: 0 is complete at once.
    let zero = create(&s, 0);
    let h = req(&s, "HEAD", &zero, &[V], b"");
    assert_eq!(
        (h.header("upload-offset"), h.header("upload-length")),
        (Some("0"), Some("0"))
    );
}

#[test]
fn head_rules() {
    let s = server(1 << 20);
    let loc = create(&s, 5);
    let h = req(&s, "HEAD", &loc, &[V], b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.header("upload-offset"), Some("0"));
    assert_eq!(h.header("upload-length"), Some("5"));
    assert_eq!(h.header("cache-control"), Some("no-store"));
    assert_eq!(h.header("tus-resumable"), Some("1.0.0"));
    assert_eq!(
        req(
            &s,
            "HEAD",
            "/files/0123456789abcdef0123456789abcdef",
            &[V],
            b""
        )
        .status,
        404
    );
    assert_eq!(
        req(&s, "HEAD", "/files/..%2f..%2fetc", &[V], b"").status,
        404
    );
}

#[test]
fn patch_rules() {
    let s = server(1 << 20);
    let loc = create(&s, 11);
    assert_eq!(
        req(&s, "PATCH", &loc, &[V, "Upload-Offset: 0"], b"hello").status,
        415
    );
    assert_eq!(req(&s, "PATCH", &loc, &[V, OCTETS], b"hello").status, 400);
    assert_eq!(
        req(
            &s,
            "PATCH",
            &loc,
            &[V, OCTETS, "Upload-Offset: x"],
            b"hello"
        )
        .status,
        400
    );
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[V, OCTETS, "Upload-Offset: 0"],
        b"hello",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("upload-offset"), Some("5"));
    assert!(r.header("upload-expires").is_some());
    // Offset mismatch: 409, nothing modified.
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[V, OCTETS, "Upload-Offset: 2"],
        b"XXXXXX",
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        req(&s, "HEAD", &loc, &[V], b"").header("upload-offset"),
        Some("5")
    );
    // Past the length: refused.
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[V, OCTETS, "Upload-Offset: 5"],
        b" world!!",
    );
    assert_eq!(r.status, 400);
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[V, OCTETS, "Upload-Offset: 5"],
        b" world",
    );
    assert_eq!((r.status, r.header("upload-offset")), (204, Some("11")));
}

#[test]
fn checksum_rules() {
    let s = server(1 << 20);
    let loc = create(&s, 6);
    // sha1("abc")
    let good = format!(
        "Upload-Checksum: sha1 {}",
        base64::encode(&[
            0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
            0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d,
        ])
    );
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[V, OCTETS, "Upload-Offset: 0", &good],
        b"abc",
    );
    assert_eq!((r.status, r.header("upload-offset")), (204, Some("3")));
    // A mismatch: 460, the chunk discarded, the offset unchanged.
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[V, OCTETS, "Upload-Offset: 3", &good],
        b"abd",
    );
    assert_eq!(r.status, 460);
    assert_eq!(
        req(&s, "HEAD", &loc, &[V], b"").header("upload-offset"),
        Some("3")
    );
    // An unsupported algorithm: 400.
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[
            V,
            OCTETS,
            "Upload-Offset: 3",
            "Upload-Checksum: crc32 AAAAAA==",
        ],
        b"abc",
    );
    assert_eq!(r.status, 400);
}

#[test]
fn deferred_length() {
    let s = server(1 << 20);
    let r = req(&s, "POST", "/files/", &[V, "Upload-Defer-Length: 1"], b"");
    let loc = r.header("location").unwrap().to_string();
    let h = req(&s, "HEAD", &loc, &[V], b"");
    assert_eq!(h.header("upload-defer-length"), Some("1"));
    assert_eq!(h.header("upload-length"), None);
    let r = req(&s, "PATCH", &loc, &[V, OCTETS, "Upload-Offset: 0"], b"abc");
    assert_eq!(r.status, 204);
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[V, OCTETS, "Upload-Offset: 3", "Upload-Length: 4"],
        b"d",
    );
    assert_eq!(r.status, 204);
    let h = req(&s, "HEAD", &loc, &[V], b"");
    assert_eq!(
        (h.header("upload-offset"), h.header("upload-length")),
        (Some("4"), Some("4"))
    );
}

#[test]
fn termination_and_method_override() {
    let s = server(1 << 20);
    let loc = create(&s, 3);
    let r = req(
        &s,
        "POST",
        &loc,
        &[V, "X-HTTP-Method-Override: DELETE"],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(req(&s, "HEAD", &loc, &[V], b"").status, 404);
    assert_eq!(req(&s, "DELETE", &loc, &[V], b"").status, 404);
    assert_eq!(
        req(&s, "PATCH", &loc, &[V, OCTETS, "Upload-Offset: 0"], b"x").status,
        404
    );
}

#[test]
fn creation_with_upload() {
    let s = server(1 << 20);
    let r = req(
        &s,
        "POST",
        "/files/",
        &[V, OCTETS, "Upload-Length: 10"],
        b"hello",
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("upload-offset"), Some("5"));
    let h = req(&s, "HEAD", r.header("location").unwrap(), &[V], b"");
    assert_eq!(h.header("upload-offset"), Some("5"));
}

#[test]
fn cors_for_browsers() {
    let s = server(1 << 20);
    let r = req(
        &s,
        "OPTIONS",
        "/files/",
        &[
            "Origin: https://app.example",
            "Access-Control-Request-Method: POST",
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(
        r.header("access-control-allow-headers")
            .unwrap()
            .contains("Upload-Offset")
    );
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("PATCH")
    );
    let r = req(
        &s,
        "POST",
        "/files/",
        &[V, "Upload-Length: 1", "Origin: https://app.example"],
        b"",
    );
    let expose = r.header("access-control-expose-headers").unwrap();
    for h in [
        "Location",
        "Upload-Offset",
        "Upload-Length",
        "Tus-Resumable",
        "Upload-Expires",
    ] {
        assert!(expose.contains(h), "{h}");
    }
    assert_eq!(r.header("vary"), Some("Origin"));
}

/// A small tmpfs (tests run as root here and on CI), unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_gives_507_keeps_the_upload_consistent_and_resumable() {
    let fs = Tmpfs::mount("24m");
    let storage = Storage::open_with(
        fs.0.path().join("data"),
        StorageOptions::default().min_free_bytes(0),
    )
    .unwrap();
    let s = server_on(storage.clone(), 1 << 30, tempfile::tempdir().unwrap());
    // Too big to ever fit: refused before a byte is written.
    let r = req(&s, "POST", "/files/", &[V, "Upload-Length: 104857600"], b"");
    assert_eq!(r.status, 507, "{}", r.body);
    assert!(r.body.contains("not enough disk space"), "{}", r.body);

    let len = 16usize << 20;
    let source: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    let loc = create(&s, len as u64);
    // Something else fills the disk: only ~8 MB stay free.
    let filler = fs.0.path().join("filler");
    let free = storage.free_bytes().unwrap();
    std::fs::write(&filler, vec![0u8; (free - (8 << 20)) as usize]).unwrap();

    let r = req(&s, "PATCH", &loc, &[V, OCTETS, "Upload-Offset: 0"], &source);
    assert_eq!(r.status, 507, "{}", r.body);
    let h = req(&s, "HEAD", &loc, &[V], b"");
    let offset: usize = h.header("upload-offset").unwrap().parse().unwrap();
    assert!(offset < len, "cannot have stored everything");
    let id = videopick_storage::UploadId::new(loc.rsplit('/').next().unwrap()).unwrap();
    let data = std::fs::read(storage.upload_dir(&id).join("data")).unwrap();
    assert!(
        offset <= data.len() && data[..offset] == source[..offset],
        "no corruption"
    );

    // Space comes back: the upload resumes and completes byte-identical.
    std::fs::remove_file(&filler).unwrap();
    let r = req(
        &s,
        "PATCH",
        &loc,
        &[V, OCTETS, &format!("Upload-Offset: {offset}")],
        &source[offset..],
    );
    assert_eq!(
        (r.status, r.header("upload-offset")),
        (204, Some(len.to_string().as_str())),
        "{}",
        r.body
    );
    assert!(std::fs::read(storage.upload_dir(&id).join("data")).unwrap() == source);
}

#[test]
fn a_stalled_request_is_taken_over() {
    let s = server(1 << 30);
    let len = 4usize << 20;
    let source: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let loc = create(&s, len as u64);
    // Request A sends 1 MiB of its 4 MiB body, then stalls with the connection open.
    let mut a = TcpStream::connect(&s.addr).unwrap();
    write!(
        a,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\n{V}\r\n{OCTETS}\r\nUpload-Offset: 0\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    a.write_all(&source[..1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // Request B wants the upload: A is asked to let go (keeping what it stored) instead of
    // B failing with 423 for as long as A stalls.
    let started = std::time::Instant::now();
    let r = req(&s, "PATCH", &loc, &[V, OCTETS, "Upload-Offset: 0"], &source);
    assert_ne!(r.status, 423, "still locked by the stalled request");
    assert!(started.elapsed() < Duration::from_secs(5));
    let offset: usize = req(&s, "HEAD", &loc, &[V], b"")
        .header("upload-offset")
        .unwrap()
        .parse()
        .unwrap();
    if r.status == 409 {
        // A kept what it had stored; B resumes from there.
        assert!(offset > 0 && offset <= 1 << 20, "{offset}");
        let r = req(
            &s,
            "PATCH",
            &loc,
            &[V, OCTETS, &format!("Upload-Offset: {offset}")],
            &source[offset..],
        );
        assert_eq!(r.status, 204, "{}", r.body);
    } else {
        assert_eq!(r.status, 204, "{}", r.body);
    }
    assert_eq!(
        req(&s, "HEAD", &loc, &[V], b"").header("upload-offset"),
        Some(len.to_string().as_str())
    );
    drop(a);
}

#[test]
fn concatenation_and_unfinished_concatenation() {
    let s = server(1 << 20);
    let part = |len: u64| {
        let r = req(
            &s,
            "POST",
            "/files/",
            &[
                V,
                "Upload-Concat: partial",
                &format!("Upload-Length: {len}"),
            ],
            b"",
        );
        assert_eq!(r.status, 201, "{}", r.body);
        r.header("location").unwrap().to_string()
    };
    let (a, b, c) = (part(3), part(4), part(2));
    assert_eq!(
        req(&s, "HEAD", &a, &[V], b"").header("upload-concat"),
        Some("partial")
    );
    assert_eq!(
        req(&s, "PATCH", &a, &[V, OCTETS, "Upload-Offset: 0"], b"abc").status,
        204
    );
    assert_eq!(
        req(&s, "PATCH", &b, &[V, OCTETS, "Upload-Offset: 0"], b"defg").status,
        204
    );

    // Final of finished parts (one given as an absolute URL): complete at once.
    let abs_b = format!("http://{}{b}", s.addr);
    let r = req(
        &s,
        "POST",
        "/files/",
        &[V, &format!("Upload-Concat: final;{a} {abs_b}")],
        b"",
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let fin = r.header("location").unwrap().to_string();
    let h = req(&s, "HEAD", &fin, &[V], b"");
    assert_eq!(
        (h.header("upload-offset"), h.header("upload-length")),
        (Some("7"), Some("7"))
    );
    assert_eq!(
        h.header("upload-concat"),
        Some(format!("final;{a} {b}").as_str())
    );
    assert_eq!(
        req(&s, "PATCH", &fin, &[V, OCTETS, "Upload-Offset: 7"], b"x").status,
        403
    );

    // Final of an unfinished part: its offset reaches its length only once concatenated.
    let r = req(
        &s,
        "POST",
        "/files/",
        &[V, &format!("Upload-Concat: final;{a} {c}")],
        b"",
    );
    let fin2 = r.header("location").unwrap().to_string();
    let h = req(&s, "HEAD", &fin2, &[V], b"");
    assert_eq!(
        (h.header("upload-offset"), h.header("upload-length")),
        (Some("0"), Some("5"))
    );
    assert_eq!(
        req(&s, "PATCH", &c, &[V, OCTETS, "Upload-Offset: 0"], b"hi").status,
        204
    );
    let h = req(&s, "HEAD", &fin2, &[V], b"");
    assert_eq!(h.header("upload-offset"), Some("5"));

    // Only partial uploads of this server can be parts.
    let plain = create(&s, 1);
    for bad in [
        format!("final;{plain}"),
        "final;/elsewhere/x".into(),
        "final;/files/0123456789abcdef0123456789abcdef".into(),
    ] {
        let r = req(
            &s,
            "POST",
            "/files/",
            &[V, &format!("Upload-Concat: {bad}")],
            b"",
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
    }
}

/// Hooks that want a bearer token, a filename, and remember what finished.
#[derive(Default)]
struct AppHooks {
    finished: std::sync::Mutex<Vec<(String, u64, std::path::PathBuf)>>,
    terminated: std::sync::Mutex<Vec<String>>,
}

impl videopick_tus::hooks::Hooks for AppHooks {
    fn authorize<'a>(
        &'a self,
        req: &'a videopick_tus::hooks::RequestInfo,
    ) -> videopick_tus::hooks::HookFuture<'a, Result<(), videopick_tus::hooks::Rejection>> {
        let ok = req.authorization.as_deref() == Some("Bearer ok");
        Box::pin(async move {
            if ok {
                Ok(())
            } else {
                Err(videopick_tus::hooks::Rejection {
                    status: 401,
                    message: "token please".into(),
                })
            }
        })
    }
    fn pre_create<'a>(
        &'a self,
        upload: &'a videopick_tus::Upload,
        _req: &'a videopick_tus::hooks::RequestInfo,
    ) -> videopick_tus::hooks::HookFuture<'a, Result<(), videopick_tus::hooks::Rejection>> {
        let named = upload
            .info
            .metadata
            .split(',')
            .any(|p| p.starts_with("filename "));
        Box::pin(async move {
            if named {
                Ok(())
            } else {
                Err(videopick_tus::hooks::Rejection {
                    status: 422,
                    message: "filename required".into(),
                })
            }
        })
    }
    fn post_finish<'a>(
        &'a self,
        upload: &'a videopick_tus::Upload,
        data: &'a std::path::Path,
    ) -> videopick_tus::hooks::HookFuture<'a, ()> {
        self.finished.lock().unwrap().push((
            upload.info.id.to_string(),
            upload.offset,
            data.to_path_buf(),
        ));
        Box::pin(async {})
    }
    fn post_terminate(&self, id: &str) {
        self.terminated.lock().unwrap().push(id.to_string());
    }
}

#[test]
fn hooks_authorize_every_request_veto_creation_and_hear_finish_and_terminate() {
    let hooks = std::sync::Arc::new(AppHooks::default());
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("data")).unwrap();
    let (s, svc) = server_with(storage, 1 << 20, dir, hooks.clone());
    let auth = "Authorization: Bearer ok";
    // No token: refused, on creation and on every other request.
    let r = req(
        &s,
        "POST",
        "/files/",
        &[V, "Upload-Length: 3", "Upload-Metadata: filename YQ=="],
        b"",
    );
    assert_eq!((r.status, r.body.trim()), (401, "token please"));
    // pre-create vetoes an upload without a filename, with the hook's status and message.
    let r = req(&s, "POST", "/files/", &[V, auth, "Upload-Length: 3"], b"");
    assert_eq!((r.status, r.body.trim()), (422, "filename required"));
    let r = req(
        &s,
        "POST",
        "/files/",
        &[
            V,
            auth,
            "Upload-Length: 3",
            "Upload-Metadata: filename YQ==",
        ],
        b"",
    );
    assert_eq!(r.status, 201);
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(req(&s, "HEAD", &loc, &[V], b"").status, 401);
    assert_eq!(
        req(&s, "PATCH", &loc, &[V, OCTETS, "Upload-Offset: 0"], b"abc").status,
        401
    );
    assert_eq!(
        req(
            &s,
            "PATCH",
            &loc,
            &[V, auth, OCTETS, "Upload-Offset: 0"],
            b"ab"
        )
        .status,
        204
    );
    assert!(
        hooks.finished.lock().unwrap().is_empty(),
        "not finished yet"
    );
    assert_eq!(
        req(
            &s,
            "PATCH",
            &loc,
            &[V, auth, OCTETS, "Upload-Offset: 2"],
            b"c"
        )
        .status,
        204
    );
    let finished = hooks.finished.lock().unwrap().clone();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].1, 3);
    assert_eq!(
        std::fs::read(&finished[0].2).unwrap(),
        b"abc",
        "post-finish gets the bytes' path"
    );
    assert_eq!(req(&s, "DELETE", &loc, &[V, auth], b"").status, 204);
    assert_eq!(hooks.terminated.lock().unwrap().len(), 1);
    let m = svc.metrics();
    assert_eq!(
        (m.created, m.finished, m.terminated, m.bytes_received),
        (1, 1, 1, 3)
    );
}

#[test]
fn http_hooks_post_json_and_relay_the_answer() {
    use std::io::BufRead;
    // A hook endpoint that rejects uploads named "virus.exe" and records every body.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut r = std::io::BufReader::new(c.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            r.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            // "virus.exe" in base64.
            // One request per connection, so it says so (else a pooled connection may
            // be reused just as it closes).
            let answer = if body.contains("dmlydXMuZXhl") {
                "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: 14\r\n\r\nnot that file\n"
            } else {
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
            };
            seen2.lock().unwrap().push(body);
            let _ = c.write_all(answer.as_bytes());
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("data")).unwrap();
    let client = videopick_hooks::HookClient::new(videopick_hooks::HookConfig::default()).unwrap();
    let hooks = std::sync::Arc::new(videopick_tus::hooks::HttpHooks::new(url, client));
    let (s, _svc) = server_with(storage, 1 << 20, dir, hooks);
    let r = req(
        &s,
        "POST",
        "/files/",
        &[
            V,
            "Upload-Length: 1",
            "Upload-Metadata: filename dmlydXMuZXhl",
        ],
        b"",
    );
    assert_eq!((r.status, r.body.as_str()), (403, "not that file\n\n"));
    let r = req(
        &s,
        "POST",
        "/files/",
        &[V, "Upload-Length: 1", "Upload-Metadata: filename b2suanBn"],
        b"",
    );
    assert_eq!(r.status, 201);
    let loc = r.header("location").unwrap().to_string();
    assert_eq!(
        req(&s, "PATCH", &loc, &[V, OCTETS, "Upload-Offset: 0"], b"x").status,
        204
    );
    let bodies = seen.lock().unwrap().clone();
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with(r#"{"type":"authorize","method":"POST""#)),
        "{bodies:?}"
    );
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with(r#"{"type":"pre-create""#)),
        "{bodies:?}"
    );
    assert!(
        bodies
            .iter()
            .any(|b| b.starts_with(r#"{"type":"post-finish""#) && b.contains(r#""complete":true"#)),
        "{bodies:?}"
    );
}

/// A chunked PATCH whose Upload-Checksum comes as a trailer.
fn patch_with_trailer(s: &Server, loc: &str, offset: u64, body: &[u8], checksum: &str) -> Resp {
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\n{V}\r\n{OCTETS}\r\nUpload-Offset: {offset}\r\nTransfer-Encoding: chunked\r\nTrailer: Upload-Checksum\r\nConnection: close\r\n\r\n{:x}\r\n",
        body.len()
    )
    .unwrap();
    c.write_all(body).unwrap();
    write!(c, "\r\n0\r\nUpload-Checksum: {checksum}\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Resp {
        status: head[9..12].parse().unwrap(),
        head: head.to_string(),
        body: body.to_string(),
    }
}

#[test]
fn checksum_trailer() {
    let s = server(1 << 20);
    let loc = create(&s, 6);
    assert!(
        req(&s, "OPTIONS", "/files/", &[], b"")
            .header("tus-extension")
            .unwrap()
            .contains("checksum-trailer")
    );
    // sha1("abc") and sha256("def"), each after its body.
    let r = patch_with_trailer(&s, &loc, 0, b"abc", "sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    assert_eq!(
        (r.status, r.header("upload-offset")),
        (204, Some("3")),
        "{}",
        r.body
    );
    let r = patch_with_trailer(&s, &loc, 3, b"xyz", "sha1 qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    assert_eq!(r.status, 460, "a wrong trailer checksum: {}", r.body);
    assert_eq!(
        req(&s, "HEAD", &loc, &[V], b"").header("upload-offset"),
        Some("3")
    );
    let r = patch_with_trailer(
        &s,
        &loc,
        3,
        b"def",
        "sha256 y4N5rCCYqhZQKeOTilHaC87PwAj9Z5X0AReGR/lsWzQ=",
    );
    assert_eq!(
        (r.status, r.header("upload-offset")),
        (204, Some("6")),
        "{}",
        r.body
    );
}

#[test]
fn a_termination_takes_over_a_stalled_request() {
    // tus-js-client's cancel aborts its PATCH and sends DELETE at once: the server may still
    // be writing for the aborted request. The DELETE asks it to let go instead of 423.
    let s = server(1 << 30);
    let len = 4usize << 20;
    let source: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let loc = create(&s, len as u64);
    let mut a = TcpStream::connect(&s.addr).unwrap();
    write!(
        a,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\n{V}\r\n{OCTETS}\r\nUpload-Offset: 0\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    a.write_all(&source[..1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let r = req(&s, "DELETE", &loc, &[V], b"");
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(req(&s, "HEAD", &loc, &[V], b"").status, 404);
    drop(a);
}
