//! The HTTP side, without any I/O: finding the end of a request head,
//! routing a head to its response, and writing a response out as bytes.

/// Most bytes a request head (request line, headers and the blank line)
/// may take; a longer one is answered 431.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// Items `1..=OK_ITEMS` exist and are served.
const OK_ITEMS: u32 = 50;

/// Items `OK_ITEMS + 1..=FAILING_ITEMS` always fail with 503.
const FAILING_ITEMS: u32 = 60;

/// A response, always sent with `Connection: close`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    fn json(body: String) -> Self {
        Response {
            status: 200,
            content_type: "application/json",
            body,
        }
    }

    /// 431: the head did not fit in [`MAX_HEAD`] bytes.
    pub(crate) fn head_too_large() -> Self {
        Response::text(431, "request header fields too large\n")
    }

    /// 408: the head did not arrive in time.
    pub(crate) fn timed_out() -> Self {
        Response::text(408, "request timeout\n")
    }

    /// The status line, headers and body as sent on the wire.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(self.body.as_bytes());
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The length of the head at the start of `buf` (through its blank line),
/// if it is all there.
pub(crate) fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The response to a complete request head.
pub(crate) fn respond(head: &[u8]) -> Response {
    match request_line(head) {
        Some(("GET", target)) => route(path_of(target)),
        Some(_) => not_found(),
        None => Response::text(400, "bad request\n"),
    }
}

/// The method and target of the request line, if it is well formed.
fn request_line(head: &[u8]) -> Option<(&str, &str)> {
    let end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..end]).ok()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = parts.next().is_none()
        && !method.is_empty()
        && target.starts_with('/')
        && version.starts_with("HTTP/1.");
    valid.then_some((method, target))
}

/// The target without its query string.
fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

fn route(path: &str) -> Response {
    if path == "/health" {
        return Response::text(200, "ok");
    }
    match path.strip_prefix("/items/").and_then(item_number) {
        Some(n) if (1..=OK_ITEMS).contains(&n) => Response::json(item_json(n)),
        Some(n) if (OK_ITEMS + 1..=FAILING_ITEMS).contains(&n) => {
            Response::text(503, format!("item {n} is temporarily unavailable\n"))
        }
        _ => not_found(),
    }
}

fn not_found() -> Response {
    Response::text(404, "not found\n")
}

/// `text` as an item number, only in its canonical decimal form (no sign,
/// no leading zeros), so each item has exactly one path.
fn item_number(text: &str) -> Option<u32> {
    let n: u32 = text.parse().ok()?;
    (n.to_string() == text).then_some(n)
}

/// Item `n` as JSON; its price is `n * 7 % 100 + 0.5`.
fn item_json(n: u32) -> String {
    format!(
        "{{\"id\":{n},\"name\":\"item-{n}\",\"price\":{}.5}}",
        n * 7 % 100
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(target: &str) -> Response {
        respond(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
    }

    #[test]
    fn items_one_to_fifty_are_json_and_fifty_one_to_sixty_fail() {
        let r = get("/items/3");
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.body, r#"{"id":3,"name":"item-3","price":21.5}"#);
        assert_eq!(
            get("/items/50").body,
            r#"{"id":50,"name":"item-50","price":50.5}"#
        );
        assert_eq!(
            get("/items/15").body,
            r#"{"id":15,"name":"item-15","price":5.5}"#
        );
        assert_eq!(get("/items/51").status, 503);
        assert_eq!(get("/items/60?x=1").status, 503);
        for missing in [
            "/items/0",
            "/items/61",
            "/items/03",
            "/items/+3",
            "/items/",
            "/nope",
        ] {
            assert_eq!(get(missing).status, 404, "{missing}");
        }
    }

    #[test]
    fn health_other_methods_and_malformed_heads() {
        assert_eq!(get("/health"), Response::text(200, "ok"));
        let post = respond(b"POST /health HTTP/1.1\r\n\r\n");
        assert_eq!(post.status, 404);
        assert_eq!(respond(b"GET /health\r\n\r\n").status, 400);
        assert_eq!(respond(b"GET  /health HTTP/1.1\r\n\r\n").status, 400);
        assert_eq!(respond(b"\xff /health HTTP/1.1\r\n\r\n").status, 400);
    }

    #[test]
    fn a_response_has_its_length_and_closes() {
        let bytes = get("/health").to_bytes();
        let text = String::from_utf8(bytes).expect("utf-8");
        assert_eq!(
            text,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
    }

    #[test]
    fn the_head_ends_at_the_blank_line() {
        assert_eq!(head_len(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_len(b"GET / HTTP/1.1\r\n"), None);
    }
}
