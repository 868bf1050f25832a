//! A real HTTP/1.1 server on 127.0.0.1 for the `http_client` tests: one
//! thread per connection, a few routes with slow, failing, huge (of a
//! size the URL asks for) and never-answering responses, and a count of
//! accepted connections.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A running server; it stops accepting when the test process ends.
pub struct Server {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(conn, port));
            }
        });
        Server { port, accepted }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn read_request(conn: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    conn.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        conn.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(1 << 20)];
    conn.read_exact(&mut body).ok()?;
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}

fn respond(out: &mut TcpStream, status: &str, extra: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body);
}

fn serve(conn: TcpStream, port: u16) {
    let mut out = conn.try_clone().expect("clone");
    let mut reader = BufReader::new(conn);
    let Some(req) = read_request(&mut reader) else {
        return;
    };
    let (path, query) = req.path.split_once('?').unwrap_or((req.path.as_str(), ""));
    match path {
        "/json" => respond(
            &mut out,
            "200 OK",
            "Content-Type: application/json\r\nX-Custom: yes\r\nSet-Cookie: session=abc; Path=/\r\n",
            br#"{"ok":true,"n":42}"#,
        ),
        "/echo" => {
            let headers: Vec<String> = req
                .headers
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let text = format!(
                "{} {} {}\n{}\n{}",
                req.method,
                path,
                query,
                headers.join("\n"),
                String::from_utf8_lossy(&req.body)
            );
            respond(
                &mut out,
                "200 OK",
                "Content-Type: text/plain\r\n",
                text.as_bytes(),
            );
        }
        "/status/500" => respond(&mut out, "500 Internal Server Error", "", b"boom"),
        "/redirect" => {
            let extra = format!("Location: http://127.0.0.1:{port}/json\r\n");
            respond(&mut out, "302 Found", &extra, b"");
        }
        "/redirect-out" => respond(
            &mut out,
            "302 Found",
            "Location: http://example.com/\r\n",
            b"",
        ),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(3));
            respond(&mut out, "200 OK", "", b"late");
        }
        "/never" => {
            // Holds the connection open and never answers.
            let mut sink = [0u8; 64];
            let _ = reader
                .get_mut()
                .set_read_timeout(Some(Duration::from_secs(30)));
            let _ = reader.read(&mut sink);
        }
        "/endless" => {
            let _ = out.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
            let chunk = vec![b'x'; 64 * 1024];
            while out.write_all(&chunk).is_ok() {}
        }
        "/lines" => respond(&mut out, "200 OK", "", b"one\ntwo\nthree\n"),
        // `?N[&...]`: N bytes of `x`, announced by Content-Length (`/big`;
        // `/big-slow`, whose body starts 1.5 s after its head; `/big-late`,
        // whose head comes after 1 s) or not, the end of the body being
        // the end of the connection (`/big-unannounced`); written as the
        // client reads them.
        "/big" | "/big-slow" | "/big-late" | "/big-unannounced" => {
            let n: usize = query.split('&').next().unwrap_or("").parse().unwrap_or(0);
            let head = if path == "/big-unannounced" {
                "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned()
            } else {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n")
            };
            if path == "/big-late" {
                std::thread::sleep(Duration::from_secs(1));
            }
            let _ = out.write_all(head.as_bytes());
            if path == "/big-slow" {
                std::thread::sleep(Duration::from_millis(1500));
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = n;
            while left > 0 {
                let k = left.min(chunk.len());
                if out.write_all(&chunk[..k]).is_err() {
                    break;
                }
                left -= k;
            }
        }
        _ => respond(&mut out, "404 Not Found", "", b"no such route"),
    }
}
