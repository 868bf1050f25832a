//! A small real HTTP/1.1 server for the client's tests: one request per
//! connection (`Connection: close`), listening on 127.0.0.1 only (or a Unix
//! socket), counting the connections it accepts.
//!
//! Routes: `/echo` (method, path, headers and body as text), `/status/N`,
//! `/redirect?to=URL&code=N`, `/chain/N` (N redirects then 200), `/loop`,
//! `/slow-headers`, `/dribble` (10 bytes, one every 50 ms), `/endless`,
//! `/lie` (a Content-Length of 10^15, 5 bytes, close), `/short` (a
//! Content-Length of 100, 10 bytes, close), `/never` (reads, never
//! answers, counts the client's disconnect), `/cookies`, `/many-headers`,
//! `/big?n=N`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Bytes of a request head the server reads before giving up.
const MAX_HEAD: usize = 64 * 1024;

/// What the server has seen.
#[derive(Default)]
pub struct Counters {
    /// Connections accepted.
    pub accepts: AtomicUsize,
    /// `/never` connections the client closed.
    pub never_closed: AtomicUsize,
}

/// A running server; stopped when dropped.
pub struct Server {
    pub port: u16,
    pub counters: Arc<Counters>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// A server on 127.0.0.1, port chosen by the system.
    pub async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                shared.accepts.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(conn, Arc::clone(&shared)));
            }
        });
        Server {
            port,
            counters,
            task,
        }
    }

    /// A server on the Unix socket `path`.
    pub async fn start_unix(path: &std::path::Path) -> Server {
        let listener = tokio::net::UnixListener::bind(path).expect("bind unix socket");
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                shared.accepts.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(conn, Arc::clone(&shared)));
            }
        });
        Server {
            port: 0,
            counters,
            task,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn accepts(&self) -> usize {
        self.counters.accepts.load(Ordering::SeqCst)
    }
}

/// A parsed request.
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn query(&self, key: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            (k == key)
                .then(|| warren_http::decode_uri(v).ok())?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        })
    }
}

async fn handle<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, counters: Arc<Counters>) {
    let Some(req) = read_request(&mut conn).await else {
        return;
    };
    let path = req.target.split('?').next().unwrap_or("").to_owned();
    let _ = route(&mut conn, &req, &path, &counters).await;
}

async fn route<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut S,
    req: &Req,
    path: &str,
    counters: &Counters,
) -> std::io::Result<()> {
    match path {
        "/echo" => respond(conn, 200, &[], &echo(req)).await,
        "/redirect" => {
            let to = req.query("to").unwrap_or_default();
            let code: u16 = req
                .query("code")
                .and_then(|c| c.parse().ok())
                .unwrap_or(302);
            respond(conn, code, &[("Location", &to)], b"").await
        }
        "/loop" => respond(conn, 302, &[("Location", "/loop")], b"").await,
        "/slow-headers" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            respond(conn, 200, &[], b"late").await
        }
        "/big" => {
            let n: usize = req.query("n").and_then(|n| n.parse().ok()).unwrap_or(0);
            respond(conn, 200, &[], &vec![b'b'; n]).await
        }
        "/dribble" | "/endless" | "/lie" | "/short" | "/never" | "/cookies" | "/many-headers" => {
            raw_route(conn, path, counters).await
        }
        _ => match path.strip_prefix("/status/") {
            Some(code) => {
                let code = code.parse().unwrap_or(500);
                respond(conn, code, &[], format!("status {code}").as_bytes()).await
            }
            None => match path.strip_prefix("/chain/") {
                Some(n) => chain(conn, n.parse().unwrap_or(0)).await,
                None => respond(conn, 404, &[], b"no such route").await,
            },
        },
    }
}

/// Routes that write their response by hand, to misbehave.
async fn raw_route<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut S,
    path: &str,
    counters: &Counters,
) -> std::io::Result<()> {
    match path {
        "/dribble" => {
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\n")
                .await?;
            for i in 0..10u8 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                conn.write_all(&[b'0' + i]).await?;
                conn.flush().await?;
            }
            Ok(())
        }
        "/endless" => {
            conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").await?;
            let chunk = vec![b'x'; 16 * 1024];
            loop {
                conn.write_all(&chunk).await?;
            }
        }
        "/lie" => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\nConnection: close\r\n\r\nhello",
            )
            .await
        }
        "/short" => {
            conn.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n0123456789",
            )
            .await
        }
        "/never" => {
            let mut buf = [0u8; 64];
            while conn.read(&mut buf).await? > 0 {}
            counters.never_closed.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        "/cookies" => {
            let head = "HTTP/1.1 200 OK\r\nSet-Cookie: session=abc; Path=/; HttpOnly\r\n\
                        Set-Cookie: theme=dark\r\nX-Custom-Thing: one\r\nx-custom-thing: two\r\n\
                        Content-Length: 2\r\nConnection: close\r\n\r\nok";
            conn.write_all(head.as_bytes()).await
        }
        "/many-headers" => {
            let mut head = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..500 {
                head.push_str(&format!("X-H{i}: v\r\n"));
            }
            head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
            conn.write_all(head.as_bytes()).await
        }
        _ => Ok(()),
    }
}

async fn chain<S: AsyncWrite + Unpin>(conn: &mut S, n: u32) -> std::io::Result<()> {
    if n == 0 {
        return respond(conn, 200, &[], b"end of chain").await;
    }
    let next = format!("/chain/{}", n - 1);
    respond(conn, 302, &[("Location", &next)], b"").await
}

/// `METHOD ...`, `TARGET ...`, one `H name: value` line per header
/// (lowercase names), then `BODY` and the body.
fn echo(req: &Req) -> Vec<u8> {
    let mut out = format!("METHOD {}\nTARGET {}\n", req.method, req.target);
    for (name, value) in &req.headers {
        out.push_str(&format!("H {}: {}\n", name.to_ascii_lowercase(), value));
    }
    out.push_str("BODY\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&req.body);
    out
}

async fn respond<S: AsyncWrite + Unpin>(
    conn: &mut S,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} Whatever\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body).await?;
    conn.flush().await
}

async fn read_request<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut S) -> Option<Req> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf[0] == 0x16 {
            // A TLS ClientHello: answer in plain HTTP, as such servers do.
            let _ = conn
                .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                .await;
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut req = Req {
        method,
        target,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        read_chunked(conn, &mut req.body).await?;
    } else {
        let len: usize = req
            .header("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        while req.body.len() < len {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            req.body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(req)
}

/// Reads until the terminating chunk, then decodes `body` in place.
async fn read_chunked<S: AsyncRead + Unpin>(conn: &mut S, body: &mut Vec<u8>) -> Option<()> {
    while find(body, b"0\r\n\r\n").is_none() {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let mut decoded = Vec::new();
    let mut rest = &body[..];
    loop {
        let line_end = find(rest, b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?, 16).ok()?;
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        decoded.extend_from_slice(rest.get(start..start + size)?);
        rest = rest.get(start + size + 2..)?;
    }
    *body = decoded;
    Some(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
