//! The tokio RTMP client: publish tags (e.g. from an FLV file) or play a stream into tags.
//! Used by tests, load tools and relays.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use videopick_flv::{FlvDemuxer, FlvItem, Tag};

use videopick_rtmp::{ClientConfig, ClientEvent, ClientSession, PublishMode};

/// Why a client operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not `rtmp://host[:port]/app/stream[?query]`.
    #[error("bad RTMP URL {0:?}")]
    Url(String),
    /// A socket error.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The server broke the protocol.
    #[error(transparent)]
    Protocol(#[from] videopick_rtmp::RtmpError),
    /// The server refused (status code and description).
    #[error("refused: {code}: {description}")]
    Refused {
        /// Status code (`NetConnection.Connect.Rejected`, `NetStream.Publish.BadName`, …).
        code: String,
        /// Description.
        description: String,
    },
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// No answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// An FLV source could not be read.
    #[error("bad FLV source: {0}")]
    Flv(#[from] videopick_flv::FlvError),
}

/// The parts of an RTMP URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpUrl {
    /// `host:port` (port 1935 when absent).
    pub addr: String,
    /// Application.
    pub app: String,
    /// Stream name including any `?query`.
    pub stream: String,
}

impl RtmpUrl {
    /// Parse `rtmp://host[:port]/app/stream[?query]`.
    pub fn parse(url: &str) -> Result<RtmpUrl, ClientError> {
        let bad = || ClientError::Url(url.to_string());
        let rest = url.strip_prefix("rtmp://").ok_or_else(bad)?;
        let (host, path) = rest.split_once('/').ok_or_else(bad)?;
        let (app, stream) = path.split_once('/').ok_or_else(bad)?;
        if host.is_empty() || app.is_empty() || stream.is_empty() {
            return Err(bad());
        }
        let addr = if host.contains(':') {
            host.to_string()
        } else {
            format!("{host}:1935")
        };
        Ok(RtmpUrl {
            addr,
            app: app.to_string(),
            stream: stream.to_string(),
        })
    }

    /// The `tcUrl` sent in `connect`.
    pub fn tc_url(&self) -> String {
        format!("rtmp://{}/{}", self.addr, self.app)
    }
}

/// A connected RTMP client (after `connect` succeeded).
#[derive(Debug)]
pub struct RtmpClient {
    sock: TcpStream,
    session: ClientSession,
    buf: BytesMut,
    url: RtmpUrl,
    events: std::collections::VecDeque<ClientEvent>,
    timeout: Duration,
}

impl RtmpClient {
    /// Connect to `url` and complete the handshake and `connect` (within `timeout`).
    pub async fn connect(url: &str, timeout: Duration) -> Result<RtmpClient, ClientError> {
        let url = RtmpUrl::parse(url)?;
        let sock = tokio::time::timeout(timeout, TcpStream::connect(&url.addr))
            .await
            .map_err(|_| ClientError::Timeout("TCP connect"))??;
        sock.set_nodelay(true)?;
        let mut config = ClientConfig::new(url.app.clone(), url.tc_url());
        config.response_timeout = timeout;
        let session = ClientSession::new(config, Instant::now());
        let mut c = RtmpClient {
            sock,
            session,
            buf: BytesMut::with_capacity(64 * 1024),
            url,
            events: std::collections::VecDeque::new(),
            timeout,
        };
        c.flush().await?;
        match c
            .wait_for("connect", |e| {
                matches!(
                    e,
                    ClientEvent::Connected | ClientEvent::ConnectFailed { .. }
                )
            })
            .await?
        {
            ClientEvent::ConnectFailed { code, description } => {
                Err(ClientError::Refused { code, description })
            }
            _ => Ok(c),
        }
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        while let Some(b) = self.session.poll_transmit() {
            self.sock.write_all(&b).await?;
        }
        Ok(())
    }

    /// Read once from the socket and process it.
    async fn read_some(&mut self) -> Result<(), ClientError> {
        let n = self.sock.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        self.session.handle_input(Instant::now(), &mut self.buf)?;
        while let Some(e) = self.session.poll_event() {
            self.events.push_back(e);
        }
        self.flush().await
    }

    async fn wait_for(
        &mut self,
        what: &'static str,
        pred: impl Fn(&ClientEvent) -> bool,
    ) -> Result<ClientEvent, ClientError> {
        // The session says when its answer is overdue; the whole wait is bounded too.
        let limit = Instant::now() + self.timeout;
        loop {
            if let Some(i) = self.events.iter().position(&pred) {
                return Ok(self.events.remove(i).unwrap_or(ClientEvent::Connected));
            }
            let due = self.session.poll_timeout().map_or(limit, |d| d.min(limit));
            if let Ok(read) = tokio::time::timeout_at(due.into(), self.read_some()).await {
                read?;
            } else {
                let now = Instant::now();
                if self.session.handle_timeout(now).is_err() || now >= limit {
                    return Err(ClientError::Timeout(what));
                }
            }
        }
    }

    async fn create_stream(&mut self) -> Result<u32, ClientError> {
        let tid = self.session.create_stream()?;
        self.flush().await?;
        let ev = self
            .wait_for("createStream", |e| {
                matches!(e, ClientEvent::StreamCreated { transaction_id, .. } if transaction_id.to_bits() == tid.to_bits())
            })
            .await?;
        match ev {
            ClientEvent::StreamCreated { stream_id, .. } => Ok(stream_id),
            _ => Err(ClientError::Closed),
        }
    }

    async fn wait_status(&mut self, ok_code: &'static str) -> Result<(), ClientError> {
        let ev = self
            .wait_for(ok_code, |e| matches!(e, ClientEvent::Status { .. }))
            .await?;
        match ev {
            ClientEvent::Status { code, .. } if code == ok_code => Ok(()),
            ClientEvent::Status {
                code,
                level,
                description,
                ..
            } if level == "error" => Err(ClientError::Refused { code, description }),
            // Other statuses (e.g. Play.Reset) precede the one we want.
            _ => Box::pin(self.wait_status(ok_code)).await,
        }
    }

    /// Start publishing the URL's stream.
    pub async fn publish(mut self) -> Result<RtmpPublisher, ClientError> {
        let sid = self.create_stream().await?;
        let name = self.url.stream.clone();
        self.session.publish(sid, &name, PublishMode::Live)?;
        self.flush().await?;
        self.wait_status("NetStream.Publish.Start").await?;
        Ok(RtmpPublisher { client: self, sid })
    }

    /// Start playing the URL's stream.
    pub async fn play(mut self) -> Result<RtmpPlayer, ClientError> {
        let sid = self.create_stream().await?;
        let name = self.url.stream.clone();
        self.session.play(sid, &name)?;
        self.flush().await?;
        self.wait_status("NetStream.Play.Start").await?;
        Ok(RtmpPlayer {
            client: self,
            ended: false,
        })
    }
}

/// A publishing client.
#[derive(Debug)]
pub struct RtmpPublisher {
    client: RtmpClient,
    sid: u32,
}

impl RtmpPublisher {
    /// Send one tag (audio, video or script data).
    pub async fn send(&mut self, tag: &Tag) -> Result<(), ClientError> {
        self.client.session.send_tag(self.sid, tag)?;
        self.client.flush().await
    }

    /// Send every tag of an FLV byte stream; with `realtime`, pace by tag timestamps.
    pub async fn send_flv(&mut self, flv: &[u8], realtime: bool) -> Result<usize, ClientError> {
        let mut buf = BytesMut::from(flv);
        let mut d = FlvDemuxer::new();
        let start = Instant::now();
        let mut first_ts = None;
        let mut n = 0;
        while let Some(item) = d.decode(&mut buf)? {
            if let FlvItem::Tag(tag) = item {
                if realtime {
                    let base = *first_ts.get_or_insert(tag.timestamp);
                    let at =
                        start + Duration::from_millis(u64::from(tag.timestamp.wrapping_sub(base)));
                    tokio::time::sleep_until(at.into()).await;
                }
                self.send(&tag).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Stop publishing (`deleteStream`) and close the connection cleanly.
    pub async fn finish(mut self) -> Result<(), ClientError> {
        self.client.session.delete_stream(self.sid)?;
        self.client.flush().await?;
        self.client.sock.shutdown().await?;
        Ok(())
    }
}

/// A playing client.
#[derive(Debug)]
pub struct RtmpPlayer {
    client: RtmpClient,
    ended: bool,
}

impl RtmpPlayer {
    /// The next media or script tag; `None` when the publisher left
    /// (`NetStream.Play.UnpublishNotify`) or the server closed the connection.
    pub async fn next_tag(&mut self) -> Result<Option<Tag>, ClientError> {
        loop {
            while let Some(e) = self.client.events.pop_front() {
                match e {
                    ClientEvent::Media { tag, .. } => return Ok(Some(tag)),
                    ClientEvent::Status { code, .. }
                        if code == "NetStream.Play.UnpublishNotify"
                            || code == "NetStream.Play.Stop" =>
                    {
                        self.ended = true;
                        return Ok(None);
                    }
                    _ => {}
                }
            }
            if self.ended {
                return Ok(None);
            }
            match self.client.read_some().await {
                Ok(()) => {}
                Err(ClientError::Closed) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        assert_eq!(
            RtmpUrl::parse("rtmp://h:19/live/cam?key=1").unwrap(),
            RtmpUrl {
                addr: "h:19".into(),
                app: "live".into(),
                stream: "cam?key=1".into()
            }
        );
        assert_eq!(RtmpUrl::parse("rtmp://h/live/a/b").unwrap().stream, "a/b");
        assert_eq!(
            RtmpUrl::parse("rtmp://h/live/x").unwrap().tc_url(),
            "rtmp://h:1935/live"
        );
        for bad in [
            "http://h/live/x",
            "rtmp://h/live",
            "rtmp:///live/x",
            "rtmp://h//x",
        ] {
            assert!(RtmpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
