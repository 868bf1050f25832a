//! How Warren connects to PostgreSQL: its own sockets, each read through
//! [`Capped`], which refuses a server message larger than
//! [`MAX_MESSAGE_BYTES`] before the driver buffers it.
//!
//! The abuse this prevents: the driver reads each protocol message whole
//! into memory before any row reaches Warren's accounting, so
//! `SELECT repeat('x', 900000000)` made the host buffer 900 MB for one
//! row (once per pooled connection at a time), whatever the process may
//! hold. The server announces a message's length in its first five bytes;
//! a data row past the bound is dropped unread and handed to the driver
//! as an error (SQLSTATE 54000, `INVALID`), so the statement fails, the
//! driver pages through the rest of its messages and the connection stays
//! usable; any other message past the bound fails the read and closes the
//! connection. A row holds at most as much as one SQLite value or row may
//! (16 MiB).
//!
//! Connections made this way carry no address for the driver's own cancel
//! requests, so [`Dial::cancel`] sends them on a socket it opens itself, to
//! every configured host (the server ignores a key it does not know).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use deadpool_postgres::Connect;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;
use tokio_postgres::{CancelToken, Client, Config, Error, NoTls};

/// Largest server message a connection reads (a data row with all its
/// fields, an error or notice text): the bound on what one row may make
/// the host buffer before Warren can count it.
pub(crate) const MAX_MESSAGE_BYTES: u32 = 16 << 20;

/// A socket to the server: TCP or a Unix-domain socket.
pub(crate) trait Socket: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send + Sync> Socket for S {}

/// Bytes read from the server at a time.
const READ_CHUNK: usize = 16 << 10;

/// SQLSTATE of the error a refused row becomes: `program_limit_exceeded`.
pub(crate) const ROW_TOO_BIG: &str = "54000";

/// Where the server's byte stream stands.
#[derive(Debug)]
enum At {
    /// Reading a header: its type byte and 4-byte length, `seen` of 5.
    Header([u8; 5], usize),
    /// Passing on this many more bytes of a message's body.
    Body(u64),
    /// Dropping this many more bytes of a refused row.
    Skip(u64),
}

/// Follows the server's message framing: passes messages within the
/// bound on whole, headers complete; replaces a data row over the bound
/// with an error message of its own (the statement fails, the server's
/// later messages for it are paged through by the driver and the
/// connection stays usable); fails at any other message over the bound.
#[derive(Debug)]
struct Framing {
    at: At,
}

impl Default for Framing {
    fn default() -> Self {
        Framing {
            at: At::Header([0; 5], 0),
        }
    }
}

impl Framing {
    /// Appends to `out` what the driver gets of `bytes`.
    fn follow(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.at {
                At::Body(left) | At::Skip(left) => {
                    let take = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len());
                    *left -= take as u64;
                    if matches!(self.at, At::Body(_)) {
                        out.extend_from_slice(&bytes[..take]);
                    }
                    bytes = &bytes[take..];
                    if matches!(self.at, At::Body(0) | At::Skip(0)) {
                        self.at = At::Header([0; 5], 0);
                    }
                }
                At::Header(header, seen) => {
                    header[*seen] = bytes[0];
                    *seen += 1;
                    bytes = &bytes[1..];
                    if *seen == header.len() {
                        let header = *header;
                        self.at = self.admit(header, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// What follows a complete `header`.
    fn admit(&self, header: [u8; 5], out: &mut Vec<u8>) -> io::Result<At> {
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let body = u64::from(len.saturating_sub(4));
        if len <= MAX_MESSAGE_BYTES.saturating_add(4) {
            out.extend_from_slice(&header);
            return Ok(if body == 0 {
                At::Header([0; 5], 0)
            } else {
                At::Body(body)
            });
        }
        if header[0] != b'D' {
            return Err(too_big(header[0], len));
        }
        let text = format!(
            "the server sent a row of {len} bytes, over the {MAX_MESSAGE_BYTES} one row may hold"
        );
        tracing::warn!("postgres: {text}; the row is dropped and its statement fails");
        out.extend_from_slice(&error_response(&text));
        Ok(At::Skip(body))
    }
}

/// A backend `ErrorResponse` with SQLSTATE [`ROW_TOO_BIG`] and `text`.
fn error_response(text: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (code, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', ROW_TOO_BIG),
        (b'M', text),
    ] {
        fields.push(code);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut m = vec![b'E'];
    let len = u32::try_from(fields.len() + 4).unwrap_or(u32::MAX);
    m.extend_from_slice(&len.to_be_bytes());
    m.extend_from_slice(&fields);
    m
}

fn too_big(kind: u8, len: u32) -> io::Error {
    let text = format!(
        "the server sent a message of {len} bytes (type {:?}), over the {MAX_MESSAGE_BYTES} one message may hold",
        char::from(kind)
    );
    tracing::warn!("postgres: {text}; the connection is closed");
    io::Error::new(io::ErrorKind::InvalidData, text)
}

/// A socket read through [`Framing`]: what the server sends is read in
/// chunks of [`READ_CHUNK`] and handed to the driver as framing lets it.
pub(crate) struct Capped {
    inner: Box<dyn Socket>,
    framing: Framing,
    chunk: Box<[u8]>,
    /// Bytes for the driver not yet handed over, from `given` on.
    ready: Vec<u8>,
    given: usize,
}

impl Capped {
    fn new(inner: Box<dyn Socket>) -> Capped {
        Capped {
            inner,
            framing: Framing::default(),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            ready: Vec::new(),
            given: 0,
        }
    }
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.given == this.ready.len() {
            this.ready.clear();
            this.given = 0;
            let mut chunk = ReadBuf::new(&mut this.chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => this.framing.follow(chunk.filled(), &mut this.ready)?,
                other => return other,
            }
        }
        let n = buf.remaining().min(this.ready.len() - this.given);
        buf.put_slice(&this.ready[this.given..this.given + n]);
        this.given += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Opens the pool's connections (deadpool's [`Connect`]) and sends cancel
/// requests, to the hosts of one entry's config.
pub(crate) struct Dial {
    config: Config,
}

impl Dial {
    pub(crate) fn new(config: Config) -> Dial {
        Dial { config }
    }

    /// The configured places to connect to, in order: `(host, port)`.
    fn places(&self) -> Vec<(Host, u16)> {
        let ports = self.config.get_ports();
        let hosts = self.config.get_hosts();
        let addrs = self.config.get_hostaddrs();
        let n = hosts.len().max(addrs.len());
        (0..n)
            .map(|i| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                let host = match addrs.get(i) {
                    Some(ip) => Host::Tcp(ip.to_string()),
                    None => hosts[i].clone(),
                };
                (host, port)
            })
            .collect()
    }

    /// A socket to the first place that answers.
    async fn open(&self) -> io::Result<Box<dyn Socket>> {
        let timeout = self.config.get_connect_timeout().copied();
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no host configured");
        for (host, port) in self.places() {
            match within(timeout, open_one(&host, port)).await {
                Ok(socket) => return Ok(socket),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Asks every configured host to cancel what `token`'s connection
    /// runs (only the server holding its key acts on it).
    pub(crate) async fn cancel(&self, token: &CancelToken) {
        let timeout = self.config.get_connect_timeout().copied();
        for (host, port) in self.places() {
            let sent = match within(timeout, open_one(&host, port)).await {
                Ok(socket) => token.cancel_query_raw(socket, NoTls).await,
                Err(e) => {
                    tracing::warn!(error = %e, "postgres: cannot reach the server to cancel");
                    continue;
                }
            };
            if let Err(e) = sent {
                tracing::warn!(error = %e, "postgres: cancel request failed");
            }
        }
    }
}

/// `work` within `timeout`, if any.
async fn within<T>(
    timeout: Option<Duration>,
    work: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match timeout {
        None => work.await,
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))),
    }
}

async fn open_one(host: &Host, port: u16) -> io::Result<Box<dyn Socket>> {
    Ok(match host {
        Host::Tcp(name) => {
            let stream = TcpStream::connect((name.as_str(), port)).await?;
            stream.set_nodelay(true)?;
            Box::new(stream)
        }
        Host::Unix(dir) => {
            Box::new(UnixStream::connect(dir.join(format!(".s.PGSQL.{port}"))).await?)
        }
    })
}

impl Connect for Dial {
    fn connect(
        &self,
        pg_config: &Config,
    ) -> BoxFuture<'_, Result<(Client, tokio::task::JoinHandle<()>), Error>> {
        let config = pg_config.clone();
        Box::pin(async move {
            let socket = match self.open().await {
                Ok(socket) => socket,
                Err(e) => return Err(driver_error(&config, e).await),
            };
            let (client, connection) = config.connect_raw(Capped::new(socket), NoTls).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "postgres: connection ended");
                }
            });
            Ok((client, task))
        })
    }
}

/// `e` as the driver's error (it has no public constructor): what the
/// driver returns when a connection's first write fails with `e`, which
/// it reports as "error communicating with the server: ..." (mapped to
/// `UNAVAILABLE`, retryable, like its own connect failures).
async fn driver_error(config: &Config, e: io::Error) -> Error {
    match config.connect_raw(Failing(Some(e)), NoTls).await {
        Err(err) => err,
        Ok(_) => unreachable!("a socket that fails every write cannot connect"),
    }
}

/// A socket whose every read and write fails with its error.
struct Failing(Option<io::Error>);

impl Failing {
    fn error(&mut self) -> io::Error {
        self.0
            .take()
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }
}

impl AsyncRead for Failing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.error()))
    }
}

impl AsyncWrite for Failing {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        _: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(self.error()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(self.error()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u8, body: usize) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&u32::try_from(body + 4).expect("len").to_be_bytes());
        m.resize(5 + body, b'x');
        m
    }

    /// What the driver gets of `stream` read in pieces of `chunk`.
    fn through(stream: &[u8], chunk: usize) -> io::Result<Vec<u8>> {
        let (mut f, mut out) = (Framing::default(), Vec::new());
        for part in stream.chunks(chunk) {
            f.follow(part, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn messages_within_the_bound_pass_unchanged_in_any_split() {
        let mut stream = message(b'T', 10);
        stream.extend(message(b'D', 1000));
        stream.extend(message(b'C', 0));
        for chunk in [1, 2, 3, 5, 7, 1024] {
            assert_eq!(
                through(&stream, chunk).expect("within"),
                stream,
                "split {chunk}"
            );
        }
    }

    #[test]
    fn a_row_over_the_bound_becomes_an_error_and_the_rest_passes() {
        let big = usize::try_from(MAX_MESSAGE_BYTES).expect("usize") + 1;
        let mut stream = message(b'T', 3);
        stream.extend(message(b'D', big));
        stream.extend(message(b'D', 2));
        stream.extend(message(b'Z', 1));
        for chunk in [1, 4096, READ_CHUNK] {
            let out = through(&stream, chunk).expect("a row is not fatal");
            let mut want = message(b'T', 3);
            want.extend(error_response(&format!(
                "the server sent a row of {} bytes, over the {MAX_MESSAGE_BYTES} one row may hold",
                big + 4
            )));
            want.extend(message(b'D', 2));
            want.extend(message(b'Z', 1));
            assert_eq!(out, want, "split {chunk}");
        }
    }

    #[test]
    fn another_message_over_the_bound_fails_the_read() {
        let mut header = vec![b'N'];
        header.extend_from_slice(&(MAX_MESSAGE_BYTES + 5).to_be_bytes());
        let err = through(&header, 2).expect_err("over");
        assert!(err.to_string().contains("type 'N'"), "{err}");
        // Exactly at the bound passes.
        let mut at = vec![b'N'];
        at.extend_from_slice(&(MAX_MESSAGE_BYTES + 4).to_be_bytes());
        assert_eq!(through(&at, 5).expect("at the bound"), at);
    }
}
