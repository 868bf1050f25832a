//! One connection: read its head without blocking the process (polling the
//! socket and, between polls, waiting on the inbox for a stop), answer it,
//! and close.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use crate::http::{self, MAX_HEAD, Response};

/// How long a client has to send its whole head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How a connection ended, for the accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It was answered (or closed by the client); serve the next one.
    Done,
    /// A stop arrived while it was being read: the server ends.
    Stop,
}

/// What reading a head gave.
enum Head {
    /// The complete head.
    Complete(Vec<u8>),
    /// An answer to send instead (431, 408).
    Refused(Response),
    /// The client closed or the socket failed: nothing to answer.
    Gone,
    /// A stop arrived.
    Stop,
}

/// Serves one accepted connection. `idle(d)` is called whenever the socket
/// has nothing to read; it waits up to `d` and says whether to stop.
pub(crate) fn serve(mut stream: TcpStream, idle: &mut impl FnMut(Duration) -> bool) -> Outcome {
    if stream.set_nonblocking(true).is_err() {
        return Outcome::Done;
    }
    let response = match read_head(&mut stream, idle) {
        Head::Complete(head) => http::respond(&head),
        Head::Refused(response) => response,
        Head::Gone => return Outcome::Done,
        Head::Stop => return Outcome::Stop,
    };
    answer(&mut stream, &response);
    Outcome::Done
}

/// Reads until the blank line ending the head, at most [`MAX_HEAD`] bytes.
fn read_head(stream: &mut TcpStream, idle: &mut impl FnMut(Duration) -> bool) -> Head {
    let deadline = Instant::now() + HEAD_TIMEOUT;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let room = (MAX_HEAD - buf.len()).min(chunk.len());
        match stream.read(&mut chunk[..room]) {
            Ok(0) => return Head::Gone,
            Ok(n) => {
                let searched = buf.len().saturating_sub(3);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(len) = http::head_len(&buf[searched..]) {
                    buf.truncate(searched + len);
                    return Head::Complete(buf);
                }
                if buf.len() >= MAX_HEAD {
                    return Head::Refused(Response::head_too_large());
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Head::Refused(Response::timed_out());
                }
                if idle(left.min(crate::POLL)) {
                    return Head::Stop;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Head::Gone,
        }
    }
}

/// Writes `response` (small: it fits the socket's buffer, so a blocking
/// write returns at once) and closes the sending side.
fn answer(stream: &mut TcpStream, response: &Response) {
    let sent = stream
        .set_nonblocking(false)
        .and_then(|()| stream.write_all(&response.to_bytes()))
        .and_then(|()| stream.flush());
    if let Err(e) = sent {
        let text = format!("httpd: cannot answer a client: {e}");
        warren_sdk::log(warren_sdk::Level::Debug, &text);
    }
    let _ = stream.shutdown(Shutdown::Write);
}
