//! The web application's built assets (`web/dist`, made by `npm run build` in `web/`):
//! hashed files under `/assets/` with a year of immutable caching, the few root files
//! (`/favicon.svg`, `/robots.txt`) with an hour, and `index.html` for every page route
//! (a GET that accepts HTML and no other route answered: the single-page app routes it)
//! with no caching, a Content-Security-Policy that allows only what the app loads, and
//! the usual security headers. Files compressed at build time (`.br`, `.gz` beside them)
//! are sent to clients that accept them.

use std::path::{Path, PathBuf};

use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};

use crate::http::{HttpResponse, respond};

/// The built web application, served from a directory.
#[derive(Debug, Clone)]
pub struct WebApp {
    dir: PathBuf,
    /// Where the page may connect besides its own origin (the chat), `{host}` standing for
    /// the host name the browser used.
    connect: Vec<String>,
    /// The media server's origin when it is not the page's (players fetch from it, images
    /// and video come from it).
    media: Option<String>,
}

/// How a file is cached.
#[derive(Clone, Copy)]
enum Caching {
    Immutable,
    Hour,
    Never,
}

impl WebApp {
    /// The web app built in `dir` (its `index.html`); `None` when it is not built.
    /// `connect`: origins the page talks to besides its own (`http://{host}:3001` for a
    /// chat on another port; `{host}` is the host name of each request).
    pub fn open(dir: &Path, connect: Vec<String>) -> Option<WebApp> {
        if !dir.join("index.html").is_file() {
            return None;
        }
        Some(WebApp {
            dir: dir.to_path_buf(),
            connect,
            media: None,
        })
    }

    /// Media (HLS, HTTP-FLV, thumbnails, uploads) comes from `origin`, not the page's own
    /// (`https://media.example`).
    #[must_use]
    pub fn with_media_origin(mut self, origin: Option<String>) -> WebApp {
        self.media = origin.filter(|o| !o.is_empty());
        self
    }

    /// Answer `req` if it is the web app's: an asset, a root file, or a page route (a GET
    /// accepting HTML; call this last). `None` for everything else.
    pub async fn serve<B>(&self, req: &Request<B>) -> Option<HttpResponse> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        let path = req.uri().path();
        if let Some(name) = path.strip_prefix("/assets/") {
            if !safe_name(name) {
                return Some(not_found());
            }
            let file = self.dir.join("assets").join(name);
            return Some(
                self.file(req, &file, Caching::Immutable)
                    .await
                    .unwrap_or_else(not_found),
            );
        }
        if let Some(name) = path.strip_prefix('/')
            && safe_name(name)
            && name != "index.html"
            && let Some(r) = self.file(req, &self.dir.join(name), Caching::Hour).await
        {
            return Some(r);
        }
        let html = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if !html || path.starts_with("/api/") {
            return None;
        }
        let mut r = self
            .file(req, &self.dir.join("index.html"), Caching::Never)
            .await?;
        let host = videopick_app::api::request_host(req.headers());
        let h = r.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.csp(&host)) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "strict-origin-when-cross-origin"),
            (
                "permissions-policy",
                "camera=(), microphone=(), geolocation=()",
            ),
        ] {
            h.insert(name, HeaderValue::from_static(value));
        }
        Some(r)
    }

    /// The page's Content-Security-Policy: scripts, styles, fonts and workers from its own
    /// origin only (players run their workers from `blob:`), media and images from its
    /// origin and `blob:`/`data:`, connections to its origin and the chat's.
    fn csp(&self, host: &str) -> String {
        let media = self
            .media
            .as_deref()
            .map(|m| format!(" {}", m.replace("{host}", host)))
            .unwrap_or_default();
        let mut connect = format!("'self'{media}");
        for c in &self.connect {
            let url = c.replace("{host}", host);
            connect.push(' ');
            connect.push_str(&url);
            // The chat's WebSocket on the same host and port.
            if let Some(rest) = url.strip_prefix("http://") {
                connect.push_str(" ws://");
                connect.push_str(rest);
            } else if let Some(rest) = url.strip_prefix("https://") {
                connect.push_str(" wss://");
                connect.push_str(rest);
            }
        }
        format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:{media}; \
             media-src 'self' blob:{media}; font-src 'self'; worker-src 'self' blob:; connect-src {connect}; \
             object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
        )
    }

    /// A file of the build, precompressed when the client accepts it. `None`: not there.
    async fn file<B>(
        &self,
        req: &Request<B>,
        path: &Path,
        caching: Caching,
    ) -> Option<HttpResponse> {
        let accepts = req
            .headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let kind = content_type(path);
        let compressible = kind.starts_with("text/")
            || kind.starts_with("application/javascript")
            || kind.starts_with("application/json")
            || kind.starts_with("image/svg");
        let mut found = None;
        if compressible {
            for (enc, ext) in [("br", "br"), ("gzip", "gz")] {
                if accepts.split(',').any(|a| a.trim().starts_with(enc)) {
                    let mut p = path.as_os_str().to_os_string();
                    p.push(".");
                    p.push(ext);
                    if let Ok(data) = tokio::fs::read(&p).await {
                        found = Some((data, Some(enc)));
                        break;
                    }
                }
            }
        }
        if found.is_none() {
            let meta = tokio::fs::metadata(path).await.ok()?;
            if !meta.is_file() {
                return None;
            }
            found = Some((tokio::fs::read(path).await.ok()?, None));
        }
        let (data, encoding) = found?;
        let body = if req.method() == Method::HEAD {
            Vec::new()
        } else {
            data
        };
        let mut r = respond(StatusCode::OK, kind, body);
        let h = r.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(match caching {
                Caching::Immutable => "public, max-age=31536000, immutable",
                Caching::Hour => "public, max-age=3600",
                Caching::Never => "no-cache",
            }),
        );
        if let Some(enc) = encoding {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
        }
        if compressible {
            h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        Some(r)
    }
}

/// A file name of the build: letters, digits, `-`, `_` and `.` (not leading).
fn safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "application/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

fn not_found() -> HttpResponse {
    respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    fn get(path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::get(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    async fn body(r: HttpResponse) -> Vec<u8> {
        r.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn assets_pages_and_precompressed_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("assets")).unwrap();
        std::fs::write(d.join("index.html"), "<!doctype html><p>app").unwrap();
        std::fs::write(d.join("assets/app-1a2b.js"), "console.log(1)").unwrap();
        std::fs::write(d.join("assets/app-1a2b.js.br"), "BROTLI").unwrap();
        std::fs::write(d.join("favicon.svg"), "<svg/>").unwrap();
        assert!(WebApp::open(&d.join("nope"), vec![]).is_none());
        let web = WebApp::open(d, vec!["http://{host}:3001".into()]).unwrap();

        // A hashed asset: immutable, brotli when accepted, plain otherwise.
        let r = web
            .serve(&get(
                "/assets/app-1a2b.js",
                &[("accept-encoding", "gzip, br")],
            ))
            .await
            .unwrap();
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(r.headers()["content-encoding"], "br");
        assert_eq!(body(r).await, b"BROTLI");
        let r = web.serve(&get("/assets/app-1a2b.js", &[])).await.unwrap();
        assert!(r.headers().get("content-encoding").is_none());
        assert_eq!(body(r).await, b"console.log(1)");
        // Missing or hostile asset names: 404, never a file outside.
        for bad in ["/assets/nope.js", "/assets/../index.html", "/assets/.x"] {
            let r = web.serve(&get(bad, &[])).await.unwrap();
            assert_eq!(r.status(), 404, "{bad}");
        }
        // Root files.
        let r = web.serve(&get("/favicon.svg", &[])).await.unwrap();
        assert_eq!(r.headers()["content-type"], "image/svg+xml");
        // A page route: index.html with the policy; the chat's origin allowed.
        let r = web
            .serve(&get(
                "/c/minji-live",
                &[("accept", "text/html,*/*"), ("host", "10.0.0.5:8000")],
            ))
            .await
            .unwrap();
        assert_eq!(r.headers()["cache-control"], "no-cache");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(
            csp.contains("connect-src 'self' http://10.0.0.5:3001 ws://10.0.0.5:3001;"),
            "{csp}"
        );
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        assert_eq!(body(r).await, b"<!doctype html><p>app");
        // Media from another origin: the players may fetch it, pages show it.
        let web = web.with_media_origin(Some("https://media.example".into()));
        let r = web
            .serve(&get("/", &[("accept", "text/html")]))
            .await
            .unwrap();
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        for part in [
            "img-src 'self' data: blob: https://media.example;",
            "media-src 'self' blob: https://media.example;",
            "connect-src 'self' https://media.example http://localhost:3001",
        ] {
            assert!(csp.contains(part), "{part}: {csp}");
        }
        // Not a page: API paths, non-HTML requests, other methods.
        assert!(
            web.serve(&get("/api/v1/nope", &[("accept", "text/html")]))
                .await
                .is_none()
        );
        assert!(web.serve(&get("/live/x.flv", &[])).await.is_none());
        let post = Request::post("/").body(()).unwrap();
        assert!(web.serve(&post).await.is_none());
    }
}
