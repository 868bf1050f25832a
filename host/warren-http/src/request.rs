//! A request as the `http_client` module describes it, and its validation.
//!
//! [`Request::validate`] is the first check of every call (modules.md: the
//! shape of the arguments, then the grant): it refuses with `INVALID`
//! anything that would be sent malformed or that could smuggle a second
//! request or header (bad method token, control characters in names or
//! values, framing headers, a body together with a form, a cookie holding
//! `;`, a user name holding `:`, bad PEM), so what passes is sent as given.

use std::time::Duration;

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use url::Url;
use warren_core::ProcError;

use crate::error::{invalid, quoted};
use crate::tls;

/// The `timeout` of a request that does not set one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The body limit of a request whose `max_response_body` is 0 or absent:
/// a response body is built in the caller's memory, so an endless or huge
/// body must not be read without bound.
pub const DEFAULT_MAX_RESPONSE_BODY: u64 = 120 * 1024 * 1024;

/// Bytes a request's URL and its `query` pairs may take before they are
/// encoded (servers refuse far shorter URLs). Unbounded, the query was
/// encoded and the URL parsed on the shared I/O threads: 8 MiB of query
/// held one of the two for 148 ms, its caller charged 2 ms, and a tenant
/// looping on it stalled every other tenant's requests for seconds.
pub const MAX_URL_BYTES: usize = 64 << 10;

/// Headers the client sets itself from the URL and the body: given by the
/// caller they could desynchronise the message framing (request smuggling
/// through a shared connection) or switch protocols.
const FRAMING_HEADERS: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "host",
    "proxy-connection",
];

/// One part of a multipart body (option `files`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FilePart {
    /// The form field name.
    pub name: String,
    /// The file name sent with the part, if any.
    pub filename: Option<String>,
    /// The part's bytes.
    pub content: Vec<u8>,
    /// Its Content-Type; `application/octet-stream` if absent.
    pub content_type: Option<String>,
}

/// Option `tls`: PEM strings and verification switches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Client certificate chain (PEM), with `key`, for mutual TLS.
    pub cert: Option<String>,
    /// Client private key (PEM), with `cert`.
    pub key: Option<String>,
    /// Trusted roots (PEM) replacing the bundled public roots.
    pub ca: Option<String>,
    /// The name the server's certificate is verified against instead of
    /// the URL's host (SNI still carries the URL's host).
    pub server_name: Option<String>,
    /// Accept any server certificate; needs `http_client.insecure_tls` for
    /// every destination it is used with.
    pub insecure_skip_verify: bool,
}

impl TlsOptions {
    /// Whether the options change nothing (the shared client serves them).
    pub fn is_default(&self) -> bool {
        self == &TlsOptions::default()
    }
}

/// One HTTP request (modules.md §2, its options as fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method token, sent as given (`GET`, `PROPFIND`, ...).
    pub method: String,
    /// An absolute `http` or `https` URL.
    pub url: String,
    /// Request headers, in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// Pairs appended, form-encoded, to the URL's own query.
    pub query: Vec<(String, String)>,
    /// The raw body; not together with `form` or `files`.
    pub body: Option<Vec<u8>>,
    /// A url-encoded body, or with `files` the text parts of a multipart body.
    pub form: Vec<(String, String)>,
    /// Parts of a multipart/form-data body.
    pub files: Vec<FilePart>,
    /// Sent as one Cookie header.
    pub cookies: Vec<(String, String)>,
    /// Basic authentication (user, password).
    pub auth: Option<(String, String)>,
    /// Spans connect to the last body byte; with `stream`, up to the
    /// headers, then each read may wait that long again.
    pub timeout: Duration,
    /// Body limit in bytes; 0 means [`DEFAULT_MAX_RESPONSE_BODY`].
    pub max_response_body: u64,
    /// Return the body as a [`crate::BodyStream`].
    pub stream: bool,
    /// TLS options; `None` for the bundled public roots.
    pub tls: Option<TlsOptions>,
    /// Connect to this Unix socket instead of the URL's host.
    pub unix_socket: Option<String>,
}

impl Request {
    /// A request with the defaults: no headers, body or options, a timeout
    /// of [`DEFAULT_TIMEOUT`].
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            query: Vec::new(),
            body: None,
            form: Vec::new(),
            files: Vec::new(),
            cookies: Vec::new(),
            auth: None,
            timeout: DEFAULT_TIMEOUT,
            max_response_body: 0,
            stream: false,
            tls: None,
            unix_socket: None,
        }
    }

    /// `INVALID` for any malformed part; see the module documentation.
    pub fn validate(&self) -> Result<(), ProcError> {
        self.validated_url().map(drop)
    }

    /// [`Request::validate`], returning the full URL it parsed (so the
    /// client parses it once per request, not once per check).
    pub(crate) fn validated_url(&self) -> Result<Url, ProcError> {
        self.method()?;
        self.url_size()?;
        let url = self.full_url()?;
        self.validate_rest()?;
        Ok(url)
    }

    /// [`Request::validate`] but for the URL's full parse, which only the
    /// cheap check of [`Request::plausible_url`] stands in for: what a
    /// caller that hands the request to [`crate::HttpClient::request`] on
    /// another thread (which validates it all) checks first, so that
    /// garbage fails at once while a well-formed URL is parsed once.
    pub fn validate_cheaply(&self) -> Result<(), ProcError> {
        self.method()?;
        self.url_size()?;
        if !self.plausible_url() {
            self.full_url()?; // the precise error
        }
        self.validate_rest()
    }

    /// Encodes a `form` (without `files`) into the body, with its content
    /// type unless a header gives one: what a caller does on its own
    /// thread, so that the encoding (three bytes for each of the form's
    /// bytes, at worst) is its own work, done once, not the shared I/O
    /// threads' on every redirect hop (8 MiB took 88 ms a hop, 11 hops a
    /// request). Call it after validating: a form and a body together are
    /// refused there.
    pub fn encode_form(&mut self) {
        if self.body.is_some() || !self.files.is_empty() || self.form.is_empty() {
            return;
        }
        self.body = Some(crate::exchange::form_body(&self.form).into_bytes());
        self.form = Vec::new();
        let typed = (self.headers.iter()).any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        if !typed {
            let form = "application/x-www-form-urlencoded";
            self.headers.push(("Content-Type".into(), form.into()));
        }
    }

    /// Whether the URL starts with `http://` or `https://` (any case) and
    /// has something after it: most malformed URLs fail this.
    fn plausible_url(&self) -> bool {
        let url = self.url.as_bytes();
        [&b"http://"[..], &b"https://"[..]].iter().any(|scheme| {
            url.len() > scheme.len() && url[..scheme.len()].eq_ignore_ascii_case(scheme)
        })
    }

    /// `INVALID` when the URL with its query passes [`MAX_URL_BYTES`]:
    /// checked before the URL is parsed or quoted (parsing 12 MiB of a
    /// bad one took 28 ms of the caller's worker, which cannot preempt it).
    fn url_size(&self) -> Result<(), ProcError> {
        let url = (self.query.iter()).fold(self.url.len(), |n, (k, v)| {
            n.saturating_add(k.len())
                .saturating_add(v.len())
                .saturating_add(2)
        });
        if url > MAX_URL_BYTES {
            return Err(invalid(format!(
                "the URL with its query takes {url} bytes, more than {MAX_URL_BYTES}"
            )));
        }
        Ok(())
    }

    /// Everything [`Request::validate`] checks after the method and URL.
    fn validate_rest(&self) -> Result<(), ProcError> {
        self.validate_headers()?;
        self.validate_body()?;
        self.validate_credentials()?;
        if self.timeout.is_zero() {
            return Err(invalid("timeout must be positive"));
        }
        if let Some(path) = &self.unix_socket
            && (path.is_empty() || path.contains('\0'))
        {
            return Err(invalid(format!("unix_socket {path:?} is not a path")));
        }
        if let Some(opts) = &self.tls {
            tls::validate(opts)?;
        }
        Ok(())
    }

    /// The body limit in force.
    pub fn body_limit(&self) -> u64 {
        match self.max_response_body {
            0 => DEFAULT_MAX_RESPONSE_BODY,
            n => n,
        }
    }

    /// The method; `INVALID` unless it is a token (CONNECT, which turns
    /// the connection into a tunnel, is refused too).
    pub(crate) fn method(&self) -> Result<Method, ProcError> {
        let method = Method::from_bytes(self.method.as_bytes())
            .map_err(|_| invalid(format!("method {} is not a token", quoted(&self.method))))?;
        if method == Method::CONNECT {
            return Err(invalid("method CONNECT is not supported"));
        }
        Ok(method)
    }

    /// The URL with `query` appended; `INVALID` unless absolute `http` or
    /// `https` with a host.
    pub(crate) fn full_url(&self) -> Result<Url, ProcError> {
        let mut url = parse_url(&self.url)?;
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        Ok(url)
    }

    fn validate_headers(&self) -> Result<(), ProcError> {
        for (name, value) in &self.headers {
            let parsed = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("header name {} is not a token", quoted(name))))?;
            if FRAMING_HEADERS.contains(&parsed.as_str()) {
                return Err(invalid(format!(
                    "header {name:?} is set by the client, not by the caller"
                )));
            }
            HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("header {} has a bad value", quoted(name))))?;
        }
        Ok(())
    }

    fn validate_body(&self) -> Result<(), ProcError> {
        if self.body.is_some() && (!self.form.is_empty() || !self.files.is_empty()) {
            return Err(invalid("body cannot be combined with form or files"));
        }
        for part in &self.files {
            if part.name.is_empty() {
                return Err(invalid("a file part needs a name"));
            }
            if let Some(ct) = &part.content_type
                && reqwest::multipart::Part::bytes(Vec::new())
                    .mime_str(ct)
                    .is_err()
            {
                return Err(invalid(format!(
                    "file {}: content_type {} is not a media type",
                    quoted(&part.name),
                    quoted(ct)
                )));
            }
        }
        Ok(())
    }

    fn validate_credentials(&self) -> Result<(), ProcError> {
        for (name, value) in &self.cookies {
            if HeaderName::from_bytes(name.as_bytes()).is_err() || name.contains('=') {
                return Err(invalid(format!(
                    "cookie name {} is not a token",
                    quoted(name)
                )));
            }
            if value.contains(';') || value.chars().any(char::is_control) {
                return Err(invalid(format!("cookie {} has a bad value", quoted(name))));
            }
        }
        if let Some((user, pass)) = &self.auth
            && (user.contains(':')
                || user.chars().any(char::is_control)
                || pass.chars().any(char::is_control))
        {
            // The password is never quoted.
            return Err(invalid(
                "auth: the user must not contain ':' and neither part control characters",
            ));
        }
        Ok(())
    }
}

/// An absolute `http`/`https` URL with a host; `INVALID` otherwise.
pub(crate) fn parse_url(text: &str) -> Result<Url, ProcError> {
    let url = Url::parse(text).map_err(|e| {
        let shown = crate::error::redact_text(text);
        invalid(format!("bad URL {shown:?}: {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "URL {:?} is not http or https",
            crate::error::redact(&url)
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!(
            "URL {:?} has no host",
            crate::error::redact(&url)
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use warren_core::ErrorKind;

    use super::*;

    fn refused(req: &Request) -> String {
        let err = req.validate().expect_err("invalid");
        assert_eq!(err.kind, ErrorKind::Invalid, "{}", err.message);
        err.message
    }

    #[test]
    fn a_url_with_its_query_past_the_bound_is_refused_on_the_callers_side() {
        let mut req = Request::new("GET", "http://example.com/");
        req.query = vec![("q".into(), "\0".repeat(MAX_URL_BYTES))];
        let cheap = req.validate_cheaply().expect_err("too long");
        assert!(
            cheap.message.contains("more than 65536"),
            "{}",
            cheap.message
        );
        assert_eq!(cheap.message, refused(&req));
        // At the bound (19 bytes of URL, 3 of the pair's own): accepted.
        req.query = vec![("q".into(), "x".repeat(MAX_URL_BYTES - 19 - 3))];
        assert!(req.validate_cheaply().is_ok());
        let long = format!("http://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(Request::new("GET", long).validate_cheaply().is_err());
        // A bad URL past the bound is refused for its size, unparsed.
        let garbage = Request::new("GET", "%".repeat(MAX_URL_BYTES + 1));
        for err in [garbage.validate_cheaply(), garbage.validate()] {
            let message = err.expect_err("too long").message;
            assert!(message.contains("more than 65536"), "{message}");
        }
    }

    #[test]
    fn a_form_is_encoded_once_into_the_body_with_its_type() {
        let mut req = Request::new("POST", "http://example.com/");
        req.form = vec![("a b".into(), "c&d=é".into()), ("x".into(), String::new())];
        req.encode_form();
        assert!(req.form.is_empty());
        let body = String::from_utf8(req.body.clone().expect("a body")).expect("text");
        assert_eq!(body, "a+b=c%26d%3D%C3%A9&x=");
        let ct = (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        );
        assert_eq!(req.headers, [ct]);
        // A type the caller gave is kept; files leave the form to multipart.
        let mut typed = Request::new("POST", "http://example.com/");
        typed.headers = vec![("content-type".into(), "text/plain".into())];
        typed.form = vec![("k".into(), "v".into())];
        typed.encode_form();
        assert_eq!(typed.headers.len(), 1);
        assert_eq!(typed.body.as_deref(), Some(&b"k=v"[..]));
        let mut with_files = Request::new("POST", "http://example.com/");
        with_files.form = vec![("k".into(), "v".into())];
        with_files.files = vec![FilePart {
            name: "f".into(),
            filename: None,
            content_type: None,
            content: b"x".to_vec(),
        }];
        with_files.encode_form();
        assert!(with_files.body.is_none() && with_files.form.len() == 1);
    }

    #[test]
    fn the_cheap_check_refuses_garbage_as_validate_does_and_leaves_the_rest_to_it() {
        for url in [
            "not a url",
            "",
            "ftp://example.com/",
            "http://",
            "mailto:a@b",
        ] {
            let req = Request::new("GET", url);
            let cheap = req.validate_cheaply().expect_err(url);
            assert_eq!(cheap.message, refused(&req), "{url}");
        }
        // Well-formed-looking: only the full parse refuses it.
        let req = Request::new("GET", "http://exa mple.com/");
        assert!(req.validate_cheaply().is_ok());
        assert!(refused(&req).contains("URL"));
        assert!(
            Request::new("GET", "HTTPS://example.com/")
                .validate_cheaply()
                .is_ok()
        );
        // The other checks still run.
        let mut req = Request::new("GET", "http://example.com/");
        req.headers.push(("Content-Length".into(), "1".into()));
        let err = req.validate_cheaply().expect_err("framing header");
        assert_eq!(err.message, refused(&req));
        let req = Request::new("BAD METHOD", "http://example.com/");
        assert!(req.validate_cheaply().is_err());
    }

    #[test]
    fn defaults() {
        let req = Request::new("GET", "https://example.org/");
        assert_eq!(req.timeout, DEFAULT_TIMEOUT);
        assert_eq!(req.body_limit(), DEFAULT_MAX_RESPONSE_BODY);
        req.validate().expect("valid");
        let mut custom = Request::new("PROPFIND", "http://example.org");
        custom.max_response_body = 10;
        custom.validate().expect("any token");
        assert_eq!(custom.body_limit(), 10);
    }

    #[test]
    fn refuses_bad_shapes() {
        let base = Request::new("GET", "https://example.org/");
        let with = |f: &dyn Fn(&mut Request)| {
            let mut r = base.clone();
            f(&mut r);
            r
        };
        assert!(refused(&with(&|r| r.method = "GE T".into())).contains("GE T"));
        assert!(refused(&with(&|r| r.method = String::new())).contains("token"));
        refused(&with(&|r| r.method = "CONNECT".into()));
        assert!(refused(&with(&|r| r.url = "ftp://x.org/".into())).contains("ftp://x.org/"));
        refused(&with(&|r| r.url = "not a url".into()));
        refused(&with(&|r| r.url = "/relative".into()));
        let msg = refused(&with(&|r| r.url = "file://u:secret@/etc".into()));
        assert!(!msg.contains("secret"), "{msg}");
        let msg = refused(&with(&|r| r.url = "http://u:secret@[::1/".into()));
        assert!(!msg.contains("secret"), "{msg}");
        let msg = refused(&with(&|r| r.url = "ftp://u:secret@x.org/".into()));
        assert!(!msg.contains("secret"), "{msg}");
        refused(&with(&|r| r.headers = vec![("X\nY".into(), "v".into())]));
        refused(&with(&|r| {
            r.headers = vec![("X".into(), "a\r\nB: c".into())]
        }));
        refused(&with(&|r| {
            r.headers = vec![("Content-Length".into(), "5".into())]
        }));
        refused(&with(&|r| {
            r.headers = vec![("transfer-encoding".into(), "chunked".into())]
        }));
        refused(&with(&|r| {
            r.headers = vec![("Host".into(), "internal".into())]
        }));
        assert!(
            refused(&with(&|r| {
                r.body = Some(b"x".to_vec());
                r.form = vec![("a".into(), "b".into())];
            }))
            .contains("body")
        );
        refused(&with(&|r| {
            r.body = Some(b"x".to_vec());
            r.files = vec![FilePart {
                name: "f".into(),
                ..FilePart::default()
            }];
        }));
        refused(&with(&|r| r.files = vec![FilePart::default()]));
        refused(&with(&|r| {
            r.files = vec![FilePart {
                name: "f".into(),
                content_type: Some("not a type".into()),
                ..FilePart::default()
            }]
        }));
        refused(&with(&|r| {
            r.cookies = vec![("a".into(), "b; admin=1".into())]
        }));
        refused(&with(&|r| r.cookies = vec![("a b".into(), "c".into())]));
        let msg = refused(&with(&|r| r.auth = Some(("a:b".into(), "hunter2".into()))));
        assert!(!msg.contains("hunter2"), "{msg}");
        refused(&with(&|r| r.timeout = Duration::ZERO));
        refused(&with(&|r| r.unix_socket = Some(String::new())));
    }

    #[test]
    fn appends_the_query() {
        let mut req = Request::new("GET", "http://example.org/p?a=1");
        req.query = vec![("b c".into(), "d&e".into())];
        assert_eq!(
            req.full_url().expect("valid").as_str(),
            "http://example.org/p?a=1&b+c=d%26e"
        );
        req.url = "http://example.org/p".into();
        req.query.clear();
        assert_eq!(
            req.full_url().expect("valid").as_str(),
            "http://example.org/p"
        );
    }

    #[test]
    fn a_refusal_quotes_the_callers_text_cut_short() {
        // 1 MB of control bytes as a method, a header name or a URL made
        // messages of up to 5 MB (each byte escaped).
        let junk = "\u{1}".repeat(1 << 20);
        let mut req = Request::new("GET", "http://example.com/");
        req.method = junk.clone();
        let err = req.validate_cheaply().expect_err("bad method");
        assert!(err.message.len() < 600, "{} bytes", err.message.len());
        assert!(
            err.message.contains("(1048576 bytes in all)"),
            "{}",
            err.message
        );
        let mut req = Request::new("GET", "http://example.com/");
        req.headers.push((junk.clone(), "v".into()));
        let err = req.validate_cheaply().expect_err("bad header");
        assert!(err.message.len() < 600, "{} bytes", err.message.len());
        let err = parse_url(&format!("ftp://example.com/{}", "\u{e9}".repeat(1 << 20)))
            .expect_err("not http");
        assert!(err.message.len() < 2000, "{} bytes", err.message.len());
    }
}
