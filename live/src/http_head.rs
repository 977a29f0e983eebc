//! A bounded, sans-IO reader of HTTP/1.x request heads (httparse underneath): what a
//! server that answers some requests ahead of its HTTP library — a connection taken over
//! for HTTP-FLV, live HLS written straight to the socket — needs to know about a request.
//!
//! ```
//! use videopick_live::http_head::parse_request_head;
//!
//! let buf = b"GET /live/cam.m3u8?_HLS_msn=4 HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
//! let head = parse_request_head(buf).unwrap().unwrap();
//! assert_eq!((head.method, head.target, head.plain), ("GET", "/live/cam.m3u8?_HLS_msn=4", true));
//! assert_eq!(&buf[head.len..], b"GET /next"); // a pipelined request stays in the buffer
//! assert!(parse_request_head(b"GET / HTTP/1.1\r\nHo").unwrap().is_none()); // incomplete
//! let put = parse_request_head(b"PATCH /files/a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").unwrap().unwrap();
//! assert_eq!((put.plain, put.body_length), (false, Some(5)));
//! ```

/// A request head as far as a server reading ahead of its HTTP library needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead<'b> {
    /// Bytes of the head, including the blank line.
    pub len: usize,
    /// The method, as sent.
    pub method: &'b str,
    /// The request target (path and query).
    pub target: &'b str,
    /// HTTP/1.0 (else HTTP/1.1).
    pub http10: bool,
    /// Whether it is a plain request: GET or HEAD over HTTP/1.1 with no body, no upgrade
    /// and no expectation — one that needs nothing but its target to be answered.
    pub plain: bool,
    /// `Connection: close`.
    pub close: bool,
    /// `Forwarded`, joined with `, ` when repeated.
    pub forwarded: Option<String>,
    /// `X-Forwarded-For`, joined with `, ` when repeated.
    pub x_forwarded_for: Option<String>,
    /// The body's length when it is given by exactly one valid `Content-Length` and no
    /// `Transfer-Encoding` (a body a server may read itself, byte for byte), or 0 when
    /// neither header is there (no body); `None` otherwise.
    pub body_length: Option<u64>,
}

/// Most header lines read; a head with more is [`NotPlain`].
pub const MAX_HEADERS: usize = 48;

/// A head this reader does not take (malformed, or more than [`MAX_HEADERS`] lines): the
/// caller's full HTTP implementation should answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPlain;

/// The head at the start of `buf`: `Ok(None)` while incomplete (the caller bounds how much
/// it reads), `Err` when it is not one this reader takes.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<RequestHead<'_>>, NotPlain> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(NotPlain),
    };
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(NotPlain);
    };
    let mut plain = version == 1 && (method == "GET" || method == "HEAD");
    let mut close = version == 0;
    let (mut forwarded, mut xff) = (None::<String>, None::<String>);
    let (mut lengths, mut length, mut encoded) = (0, None::<u64>, false);
    let join = |slot: &mut Option<String>, v: &str| match slot {
        Some(s) => {
            s.push_str(", ");
            s.push_str(v);
        }
        None => *slot = Some(v.to_owned()),
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).unwrap_or("").trim();
        let name = h.name;
        if name.eq_ignore_ascii_case("connection") {
            close |= value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
            plain &= !value
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        } else if name.eq_ignore_ascii_case("content-length") {
            plain &= value == "0";
            lengths += 1;
            length = value
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| value.parse().ok())
                .flatten();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            plain = false;
            encoded = true;
        } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
            plain = false;
        } else if name.eq_ignore_ascii_case("forwarded") {
            join(&mut forwarded, value);
        } else if name.eq_ignore_ascii_case("x-forwarded-for") {
            join(&mut xff, value);
        }
    }
    Ok(Some(RequestHead {
        len,
        method,
        target,
        http10: version == 0,
        plain,
        close,
        forwarded,
        x_forwarded_for: xff,
        body_length: match (lengths, encoded) {
            (0, false) => Some(0),
            (1, false) => length,
            _ => None,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_lengths_only_when_framed_by_one_content_length() {
        let len = |head: &[u8]| parse_request_head(head).unwrap().unwrap().body_length;
        assert_eq!(
            len(b"PATCH /f/a HTTP/1.1\r\nContent-Length: 42\r\n\r\n"),
            Some(42)
        );
        assert_eq!(len(b"POST /f/ HTTP/1.1\r\nHost: x\r\n\r\n"), Some(0));
        for unframed in [
            &b"PATCH /f/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"PATCH /f/a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"PATCH /f/a HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
            b"PATCH /f/a HTTP/1.1\r\nContent-Length: +4\r\n\r\n",
            b"PATCH /f/a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        ] {
            assert_eq!(len(unframed), None, "{}", String::from_utf8_lossy(unframed));
        }
    }

    #[test]
    fn heads_the_plain_path_takes_and_declines() {
        let h = parse_request_head(b"GET /live/a.m3u8?_HLS_msn=3 HTTP/1.1\r\nHost: x\r\n\r\nGET")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.method, h.target, h.plain, h.close),
            ("GET", "/live/a.m3u8?_HLS_msn=3", true, false)
        );
        assert_eq!(h.len, 49);
        assert!(
            parse_request_head(b"GET /live/a.m3u8 HTTP/1.1\r\nHost")
                .unwrap()
                .is_none()
        );
        let close =
            parse_request_head(b"HEAD /a/b.m4s HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n");
        assert!(close.unwrap().unwrap().close);
        for declined in [
            &b"POST /a/b.m4s HTTP/1.1\r\n\r\n"[..],
            b"GET /a/b.m4s HTTP/1.0\r\n\r\n",
            b"GET /a/b.m4s HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
            b"GET /a/b.m4s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /a/b.m4s HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET /a/b.m4s HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        ] {
            assert!(
                !parse_request_head(declined).unwrap().unwrap().plain,
                "{declined:?}"
            );
        }
        let fwd = parse_request_head(
            b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\nx-forwarded-for: 5.6.7.8\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(fwd.x_forwarded_for.as_deref(), Some("1.2.3.4, 5.6.7.8"));
        assert!(parse_request_head(b"\x00\x01garbage\r\n\r\n").is_err());
    }
}
