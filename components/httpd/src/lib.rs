//! A tiny HTTP/1.1 server on loopback, for examples and tests: `GET
//! /items/<n>` is a JSON item for `n` in 1..=50 and a 503 for 51..=60,
//! `GET /health` is "ok", anything else 404; every response closes its
//! connection. It needs `wasi: { network: true }`.
//!
//! Arguments: the pid (string) to tell the address to, optional, and the
//! port, optional (0, the default, takes any free one). Once listening it
//! sends `"http://127.0.0.1:PORT"` on topic `httpd.ready` to that pid,
//! then serves one connection at a time until a message on topic `stop`
//! or a CANCEL event; it returns how many connections it served.
//!
//! A blocking accept could not also watch the inbox, so the listener is
//! non-blocking: when nobody is connecting the process waits up to
//! [`POLL`] on its inbox and events (a Warren wait, which lets the other
//! processes of its worker run) and polls again.

mod conn;
mod http;

use std::io::ErrorKind as IoKind;
use std::net::TcpListener;
use std::time::Duration;

use warren_sdk::{Args, Error, ErrorKind, EventKind, Level, Payload, Process, Wake};

/// How long the server waits on its inbox between two polls of a socket.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// The topic the address is sent on.
const READY_TOPIC: &str = "httpd.ready";

/// The topic that stops the server.
const STOP_TOPIC: &str = "stop";

struct Httpd;

impl Process for Httpd {
    fn run(args: Args) -> Result<Payload, Error> {
        let (notify, port) = parse_args(&args)?;
        let listener = listen(port)?;
        let url = format!("http://127.0.0.1:{}", local_port(&listener)?);
        warren_sdk::log(Level::Info, &format!("httpd: listening on {url}"));
        if let Some(pid) = notify {
            warren_sdk::send(&pid, READY_TOPIC, &url)?;
        }
        let served = serve(&listener);
        warren_sdk::log(
            Level::Info,
            &format!("httpd: stopped after {served} connections"),
        );
        warren_sdk::payload(&served)
    }
}

warren_sdk::export!(Httpd);

/// The pid to notify (absent, nil or empty: nobody) and the port (absent
/// or nil: 0); the port may be a number or a decimal string, as
/// `warren run` passes its arguments as strings.
fn parse_args(args: &Args) -> Result<(Option<String>, u16), Error> {
    let notify = match args.len() {
        0 => None,
        _ => args.get::<Option<String>>(0)?.filter(|pid| !pid.is_empty()),
    };
    let port = match args.len() {
        0 | 1 => 0,
        _ => parse_port(args)?,
    };
    Ok((notify, port))
}

fn parse_port(args: &Args) -> Result<u16, Error> {
    if let Ok(port) = args.get::<Option<u16>>(1) {
        return Ok(port.unwrap_or(0));
    }
    let text: String = args
        .get(1)
        .map_err(|_| invalid("the port must be a number from 0 to 65535"))?;
    text.trim().parse().map_err(|_| {
        invalid(format!(
            "the port must be a number from 0 to 65535, not {text:?}"
        ))
    })
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Invalid, message)
}

/// A non-blocking listener on `127.0.0.1:port`.
fn listen(port: u16) -> Result<TcpListener, Error> {
    let io = |what: &str, e: std::io::Error| {
        Error::new(
            ErrorKind::Unavailable,
            format!("httpd: cannot {what} 127.0.0.1:{port}: {e}"),
        )
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| io("bind", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| io("set non-blocking", e))?;
    Ok(listener)
}

fn local_port(listener: &TcpListener) -> Result<u16, Error> {
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| Error::new(ErrorKind::Internal, format!("httpd: no local address: {e}")))
}

/// Accepts and answers connections until told to stop; returns how many
/// it served. Between two connections it only looks at the inbox, so a
/// stream of clients cannot keep a stop out.
fn serve(listener: &TcpListener) -> u64 {
    let mut served = 0;
    let mut idle = stop_requested;
    loop {
        let wait = match listener.accept() {
            Ok((stream, _)) => {
                served += 1;
                if conn::serve(stream, &mut idle) == conn::Outcome::Stop {
                    return served;
                }
                Duration::ZERO
            }
            Err(e) if e.kind() == IoKind::WouldBlock || e.kind() == IoKind::Interrupted => POLL,
            Err(e) => {
                warren_sdk::log(Level::Warn, &format!("httpd: accept failed: {e}"));
                POLL
            }
        };
        if stop_requested(wait) {
            return served;
        }
    }
}

/// Waits up to `timeout` for a message or an event; true for a message on
/// [`STOP_TOPIC`] or a CANCEL. Other messages and events are dropped.
fn stop_requested(timeout: Duration) -> bool {
    match warren_sdk::wait(Some(timeout)) {
        Wake::Message(m) => m.topic == STOP_TOPIC,
        Wake::Event(e) => e.kind == EventKind::Cancel,
        Wake::Timeout => false,
    }
}
