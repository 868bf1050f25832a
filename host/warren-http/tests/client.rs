//! The client against a real HTTP/1.1 server on 127.0.0.1: grants, dialled
//! addresses, redirects, limits, timeouts, streams, batches and bodies.

mod server;

use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use server::Server;
use warren_core::grants::Grants;
use warren_core::{ErrorKind, ProcError, Value};
use warren_http::{FilePart, HttpClient, Request, Response, TlsOptions};

/// The longest any test waits for something that should happen at once.
const DEADLINE: Duration = Duration::from_secs(5);

fn grants(pairs: &[(&str, &str)]) -> Grants {
    let mut g = Grants::new();
    for (action, pattern) in pairs {
        g.add(action, pattern).expect("valid grant");
    }
    g
}

/// Any port of 127.0.0.1, which is loopback and so needs `private_ip`.
fn local() -> Grants {
    grants(&[
        ("http_client.request", "http://127.0.0.1:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ])
}

fn client() -> HttpClient {
    HttpClient::new().expect("client")
}

async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .expect("finished within the deadline")
}

async fn get(url: &str, g: &Grants) -> Result<Response, ProcError> {
    within(client().request(Request::new("GET", url), g)).await
}

fn text(resp: &Response) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

fn expect_kind(result: Result<Response, ProcError>, kind: ErrorKind) -> ProcError {
    match result {
        Ok(resp) => panic!("expected {kind:?}, got status {}", resp.status_code),
        Err(err) => {
            assert_eq!(err.kind, kind, "{}", err.message);
            err
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_echoes_and_any_status_is_a_response() {
    let server = Server::start().await;
    let resp = get(&server.url("/echo?a=1"), &local()).await.expect("ok");
    assert_eq!(resp.status_code, 200);
    assert!(text(&resp).contains("METHOD GET"), "{}", text(&resp));
    assert_eq!(resp.header("content-type"), Some("text/plain"));
    assert!(resp.headers.iter().any(|(n, _)| n == "Content-Type"));
    assert_eq!(resp.body_size(), resp.body.len() as i64);
    assert_eq!(resp.url, server.url("/echo?a=1"));
    let resp = get(&server.url("/status/503"), &local())
        .await
        .expect("a response");
    assert_eq!(resp.status_code, 503);
    assert_eq!(text(&resp), "status 503");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_reach_the_server() {
    let server = Server::start().await;
    let mut req = Request::new("PATCH", server.url("/echo?x=1"));
    req.headers = vec![("X-Api-Key".into(), "k1".into())];
    req.query = vec![("q".into(), "a b&c".into())];
    req.cookies = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
    req.auth = Some(("user".into(), "pass".into()));
    req.body = Some(b"raw body".to_vec());
    let resp = within(client().request(req, &local())).await.expect("ok");
    let echo = text(&resp);
    assert!(echo.contains("METHOD PATCH"), "{echo}");
    assert!(echo.contains("TARGET /echo?x=1&q=a+b%26c"), "{echo}");
    assert!(echo.contains("H x-api-key: k1"), "{echo}");
    assert!(echo.contains("H cookie: a=1; b=2"), "{echo}");
    assert!(
        echo.contains("H authorization: Basic dXNlcjpwYXNz"),
        "{echo}"
    );
    assert!(echo.ends_with("BODY\nraw body"), "{echo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_and_multipart_bodies() {
    let server = Server::start().await;
    let mut req = Request::new("POST", server.url("/echo"));
    req.form = vec![("a".into(), "1".into()), ("b".into(), "x y&z".into())];
    let echo = text(
        &within(client().request(req.clone(), &local()))
            .await
            .expect("ok"),
    );
    assert!(
        echo.contains("H content-type: application/x-www-form-urlencoded"),
        "{echo}"
    );
    assert!(echo.ends_with("BODY\na=1&b=x+y%26z"), "{echo}");

    req.files = vec![
        FilePart {
            name: "doc".into(),
            filename: Some("a.txt".into()),
            content: b"file content".to_vec(),
            content_type: Some("text/plain".into()),
        },
        FilePart {
            name: "blob".into(),
            filename: None,
            content: vec![0, 1, 2],
            content_type: None,
        },
    ];
    let echo = text(&within(client().request(req, &local())).await.expect("ok"));
    assert!(
        echo.contains("H content-type: multipart/form-data; boundary="),
        "{echo}"
    );
    assert!(echo.contains("name=\"doc\"; filename=\"a.txt\""), "{echo}");
    assert!(
        echo.contains("Content-Type: text/plain\r\n\r\nfile content"),
        "{echo}"
    );
    assert!(echo.contains("name=\"blob\""), "{echo}");
    assert!(echo.contains("application/octet-stream"), "{echo}");
    assert!(echo.contains("name=\"b\"\r\n\r\nx y&z"), "{echo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_and_canonical_headers() {
    let server = Server::start().await;
    let resp = get(&server.url("/cookies"), &local()).await.expect("ok");
    assert_eq!(
        resp.cookies,
        vec![
            ("session".to_owned(), "abc".to_owned()),
            ("theme".to_owned(), "dark".to_owned())
        ]
    );
    assert_eq!(resp.header("X-CUSTOM-THING"), Some("one"), "first value");
    assert!(
        resp.headers
            .iter()
            .any(|(n, v)| n == "X-Custom-Thing" && v == "one")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ungranted_destination_opens_no_connection() {
    let server = Server::start().await;
    let other_port = grants(&[
        ("http_client.request", "http://127.0.0.1:1"),
        ("http_client.private_ip", "127.0.0.1"),
    ]);
    let err = expect_kind(
        get(&server.url("/echo"), &other_port).await,
        ErrorKind::PermissionDenied,
    );
    assert!(
        err.message.contains(&server.url("/echo")),
        "{}",
        err.message
    );
    assert!(!err.retryable);
    expect_kind(
        get(&server.url("/echo"), &Grants::new()).await,
        ErrorKind::PermissionDenied,
    );
    assert_eq!(server.accepts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_needs_the_private_ip_grant() {
    let server = Server::start().await;
    let no_private = grants(&[("http_client.request", "*:*")]);
    let err = expect_kind(
        get(&server.url("/echo"), &no_private).await,
        ErrorKind::PermissionDenied,
    );
    assert!(err.message.contains("127.0.0.1"), "{}", err.message);
    for url in [
        format!("http://localhost:{}/echo", server.port),
        format!("http://[::ffff:127.0.0.1]:{}/echo", server.port),
        format!("http://0.0.0.0:{}/echo", server.port),
        format!("http://2130706433:{}/echo", server.port),
        format!("http://127.1:{}/echo", server.port),
        format!("http://[::1]:{}/echo", server.port),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        "http://100.64.0.1/".to_owned(),
    ] {
        expect_kind(get(&url, &no_private).await, ErrorKind::PermissionDenied);
    }
    // The grant names 127.0.0.1, not the unspecified address.
    let mut zero = local();
    zero.add("http_client.request", "http://0.0.0.0:*")
        .expect("grant");
    let url = format!("http://0.0.0.0:{}/echo", server.port);
    expect_kind(get(&url, &zero).await, ErrorKind::PermissionDenied);
    assert_eq!(server.accepts(), 0, "no connection was opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_a_granted_address_is_dialled() {
    let server = Server::start().await;
    let g = grants(&[
        ("http_client.request", "http://localhost:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ]);
    let resp = get(&format!("http://localhost:{}/echo", server.port), &g)
        .await
        .expect("granted");
    assert!(text(&resp).contains(&format!("H host: localhost:{}", server.port)));
    assert_eq!(server.accepts(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_followed_and_checked_at_each_hop() {
    let server = Server::start().await;
    let resp = get(&server.url("/chain/3"), &local()).await.expect("ok");
    assert_eq!(text(&resp), "end of chain");
    assert_eq!(resp.url, server.url("/chain/0"));
    let resp = get(&server.url("/chain/10"), &local())
        .await
        .expect("10 hops");
    assert_eq!(resp.status_code, 200);

    let err = expect_kind(
        get(&server.url("/chain/11"), &local()).await,
        ErrorKind::Unavailable,
    );
    assert!(
        err.message.contains("too many redirects"),
        "{}",
        err.message
    );
    assert!(err.retryable);
    let err = expect_kind(
        get(&server.url("/loop"), &local()).await,
        ErrorKind::Unavailable,
    );
    assert!(
        err.message.contains("too many redirects"),
        "{}",
        err.message
    );

    let before = server.accepts();
    for target in [
        "http://example.com/x",
        "file:///etc/passwd",
        "http://169.254.169.254/latest",
    ] {
        let url = server.url(&format!(
            "/redirect?to={}",
            warren_http::encode_uri(target.as_bytes())
        ));
        let err = expect_kind(get(&url, &local()).await, ErrorKind::PermissionDenied);
        assert!(err.message.contains(target), "{}", err.message);
    }
    assert_eq!(
        server.accepts(),
        before + 3,
        "only the first hops connected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_to_a_private_address_needs_its_grant() {
    let server = Server::start().await;
    let g = grants(&[
        ("http_client.request", "*:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ]);
    let target = format!("http://127.0.0.2:{}/echo", server.port);
    let url = server.url(&format!(
        "/redirect?to={}",
        warren_http::encode_uri(target.as_bytes())
    ));
    let err = expect_kind(get(&url, &g).await, ErrorKind::PermissionDenied);
    assert!(err.message.contains("127.0.0.2"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_methods_and_credentials() {
    let server = Server::start().await;
    let redirect = |to: &str, code: u16| {
        server.url(&format!(
            "/redirect?code={code}&to={}",
            warren_http::encode_uri(to.as_bytes())
        ))
    };
    let mut post = Request::new("POST", redirect("/echo", 303));
    post.body = Some(b"payload".to_vec());
    post.headers = vec![("Content-Type".into(), "text/plain".into())];
    let echo = text(
        &within(client().request(post.clone(), &local()))
            .await
            .expect("ok"),
    );
    assert!(echo.contains("METHOD GET"), "{echo}");
    assert!(echo.ends_with("BODY\n"), "{echo}");
    assert!(!echo.contains("content-type"), "{echo}");

    post.url = redirect("/echo", 307);
    let echo = text(
        &within(client().request(post.clone(), &local()))
            .await
            .expect("ok"),
    );
    assert!(echo.contains("METHOD POST"), "{echo}");
    assert!(echo.ends_with("BODY\npayload"), "{echo}");

    // Same origin keeps credentials; another origin (localhost) drops them.
    let mut with_creds = Request::new("GET", redirect("/echo", 302));
    with_creds.auth = Some(("u".into(), "p".into()));
    with_creds.cookies = vec![("sid".into(), "s".into())];
    with_creds.headers = vec![
        ("Authorization".into(), "Bearer t".into()),
        ("X-Keep".into(), "1".into()),
    ];
    let echo = text(
        &within(client().request(with_creds.clone(), &local()))
            .await
            .expect("ok"),
    );
    assert!(echo.contains("H cookie: sid=s"), "{echo}");
    assert!(echo.contains("H authorization:"), "{echo}");
    let mut both = local();
    both.add("http_client.request", "http://localhost:*")
        .expect("grant");
    with_creds.url = redirect(&format!("http://localhost:{}/echo", server.port), 302);
    let echo = text(
        &within(client().request(with_creds, &both))
            .await
            .expect("ok"),
    );
    assert!(echo.contains("H x-keep: 1"), "{echo}");
    assert!(!echo.contains("cookie"), "{echo}");
    assert!(!echo.contains("authorization"), "{echo}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_fires_before_the_server_answers() {
    let server = Server::start().await;
    let mut req = Request::new("GET", server.url("/slow-headers"));
    req.timeout = Duration::from_millis(300);
    let start = Instant::now();
    let err = expect_kind(
        within(client().request(req, &local())).await,
        ErrorKind::Timeout,
    );
    assert!(err.retryable);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );

    // The timeout spans the body too.
    let mut req = Request::new("GET", server.url("/dribble"));
    req.timeout = Duration::from_millis(200);
    expect_kind(
        within(client().request(req, &local())).await,
        ErrorKind::Timeout,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_limit_abort() {
    let server = Server::start().await;
    let mut req = Request::new("GET", server.url("/endless"));
    req.max_response_body = 100_000;
    let err = expect_kind(
        within(client().request(req, &local())).await,
        ErrorKind::Invalid,
    );
    assert_eq!(
        err.details.as_ref().and_then(|d| d.get("limit")),
        Some(&Value::Int(100_000))
    );

    let mut req = Request::new("GET", server.url("/lie"));
    req.max_response_body = 1 << 20;
    expect_kind(
        within(client().request(req, &local())).await,
        ErrorKind::Invalid,
    );

    let mut req = Request::new("GET", server.url("/big?n=1000"));
    req.max_response_body = 1000;
    let resp = within(client().request(req.clone(), &local()))
        .await
        .expect("at the limit");
    assert_eq!(resp.body.len(), 1000);
    req.max_response_body = 999;
    expect_kind(
        within(client().request(req.clone(), &local())).await,
        ErrorKind::Invalid,
    );
    // HEAD announces a length it does not send.
    req.method = "HEAD".into();
    req.max_response_body = 10;
    let resp = within(client().request(req, &local()))
        .await
        .expect("no body");
    assert_eq!((resp.status_code, resp.body_size()), (200, 0));
    assert_eq!(resp.header("Content-Length"), Some("1000"));

    let err = expect_kind(
        get(&server.url("/short"), &local()).await,
        ErrorKind::Unavailable,
    );
    assert!(err.retryable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_response_headers_fail() {
    let server = Server::start().await;
    let err = get(&server.url("/many-headers"), &local())
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_read_in_pieces_within_limits() {
    let server = Server::start().await;
    let mut req = Request::new("GET", server.url("/dribble"));
    req.stream = true;
    // Each read may wait the timeout again: the whole body takes longer.
    req.timeout = Duration::from_millis(400);
    let mut resp = within(client().request(req, &local())).await.expect("ok");
    assert_eq!(resp.body_size(), -1);
    let mut stream = resp.stream.take().expect("a stream");
    let mut body = Vec::new();
    while let Some(piece) = within(stream.read(1)).await.expect("read") {
        assert_eq!(piece.len(), 1);
        body.extend(piece);
    }
    assert_eq!(body, b"0123456789");
    assert_eq!(within(stream.read(0)).await.expect("end"), None);
    stream.close();
    stream.close();
    expect_kind_stream(within(stream.read(0)).await, ErrorKind::Invalid);

    let mut req = Request::new("GET", server.url("/endless"));
    req.stream = true;
    req.max_response_body = 50_000;
    let mut resp = within(client().request(req, &local())).await.expect("ok");
    let mut stream = resp.stream.take().expect("a stream");
    let mut total = 0;
    let err = loop {
        match within(stream.read(0)).await {
            Ok(Some(piece)) => total += piece.len(),
            Ok(None) => panic!("an endless body ended"),
            Err(err) => break err,
        }
    };
    assert_eq!(err.kind, ErrorKind::Invalid, "{}", err.message);
    assert!(total <= 50_000, "{total}");

    let mut req = Request::new("GET", server.url("/never"));
    req.stream = true;
    req.timeout = Duration::from_millis(200);
    expect_kind(
        within(client().request(req, &local())).await,
        ErrorKind::Timeout,
    );
}

fn expect_kind_stream(result: Result<Option<Vec<u8>>, ProcError>, kind: ErrorKind) {
    let err = result.expect_err("an error");
    assert_eq!(err.kind, kind, "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_drops_its_connection() {
    let server = Server::start().await;
    let url = server.url("/never");
    let task =
        tokio::spawn(async move { client().request(Request::new("GET", url), &local()).await });
    let start = Instant::now();
    while server.accepts() == 0 {
        assert!(start.elapsed() < DEADLINE, "never connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    task.abort();
    while server.counters.never_closed.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < DEADLINE, "the connection stayed open");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failures_are_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let err = expect_kind(
        get(&format!("http://127.0.0.1:{port}/"), &local()).await,
        ErrorKind::Unavailable,
    );
    assert!(err.retryable);
    let any = grants(&[("http_client.request", "*")]);
    let err = expect_kind(
        get("http://no-such-host.invalid/", &any).await,
        ErrorKind::Unavailable,
    );
    assert!(
        err.message.contains("no-such-host.invalid"),
        "{}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_options_are_checked() {
    let server = Server::start().await;
    let https = format!("https://127.0.0.1:{}/echo", server.port);
    let mut g = local();
    g.add("http_client.request", "https://127.0.0.1:*")
        .expect("grant");
    let mut req = Request::new("GET", https.clone());
    req.tls = Some(TlsOptions {
        insecure_skip_verify: true,
        ..TlsOptions::default()
    });
    let err = expect_kind(
        within(client().request(req.clone(), &g)).await,
        ErrorKind::PermissionDenied,
    );
    assert!(err.message.contains("insecure_tls"), "{}", err.message);
    assert_eq!(server.accepts(), 0);
    g.add("http_client.insecure_tls", "https://127.0.0.1:*")
        .expect("grant");
    // Granted, but the server speaks plain HTTP: a TLS failure.
    expect_kind(
        within(client().request(req, &g)).await,
        ErrorKind::Unavailable,
    );
    expect_kind(get(&https, &g).await, ErrorKind::Unavailable);
    let mut bad = Request::new("GET", https);
    bad.tls = Some(TlsOptions {
        ca: Some("not a certificate".into()),
        ..TlsOptions::default()
    });
    expect_kind(
        within(client().request(bad, &Grants::new())).await,
        ErrorKind::Invalid,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_comes_before_permission() {
    let mut req = Request::new("GET", "http://example.com/");
    req.body = Some(b"x".to_vec());
    req.form = vec![("a".into(), "b".into())];
    expect_kind(
        within(client().request(req, &Grants::new())).await,
        ErrorKind::Invalid,
    );
    expect_kind(
        within(client().request(Request::new("G\nET", "http://example.com/"), &Grants::new()))
            .await,
        ErrorKind::Invalid,
    );
    let mut secret = Request::new("GET", "http://user:hunter2@example.com/");
    secret.auth = Some(("u".into(), "hunter3".into()));
    let err = expect_kind(
        within(client().request(secret, &Grants::new())).await,
        ErrorKind::PermissionDenied,
    );
    assert!(!err.message.contains("hunter"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_sockets_need_their_grant() {
    let dir = std::env::temp_dir().join(format!("warren-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let server = Server::start_unix(&path).await;
    let path_text = path.to_str().expect("utf-8 path").to_owned();
    let mut req = Request::new("GET", "http://localhost/echo");
    req.unix_socket = Some(path_text.clone());
    let only_url = grants(&[("http_client.request", "http://localhost")]);
    let err = expect_kind(
        within(client().request(req.clone(), &only_url)).await,
        ErrorKind::PermissionDenied,
    );
    assert!(err.message.contains("unix_socket"), "{}", err.message);
    assert_eq!(server.accepts(), 0);
    let mut g = only_url.clone();
    g.add("http_client.unix_socket", &path_text).expect("grant");
    let resp = within(client().request(req, &g))
        .await
        .expect("over the socket");
    assert!(text(&resp).contains("TARGET /echo"), "{}", text(&resp));
    assert_eq!(server.accepts(), 1);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A request to `http://localhost/echo` over the socket `path`.
fn over_socket(path: &str) -> Request {
    let mut req = Request::new("GET", "http://localhost/echo");
    req.unix_socket = Some(path.to_owned());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_paths_are_checked_as_they_resolve() {
    // Only `granted/*` is granted; `secret.sock` sits next to the folder.
    let base = std::env::temp_dir().join(format!("warren-http-dots-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(base.join("granted")).expect("temp dir");
    let dir = std::fs::canonicalize(&base).expect("canonical temp dir");
    let dir_text = dir.to_str().expect("utf-8 path").to_owned();
    let granted = Server::start_unix(&dir.join("granted/ok.sock")).await;
    let secret = Server::start_unix(&dir.join("secret.sock")).await;
    let link = |name: &str, to: &str| {
        std::os::unix::fs::symlink(dir.join(to), dir.join("granted").join(name)).expect("symlink")
    };
    link("out.sock", "secret.sock");
    link("up", "");
    link("alias.sock", "granted/ok.sock");
    let g = grants(&[
        ("http_client.request", "http://localhost"),
        ("http_client.unix_socket", &format!("{dir_text}/granted/*")),
    ]);

    for path in ["granted/ok.sock", "granted/alias.sock"] {
        let resp = within(client().request(over_socket(&format!("{dir_text}/{path}")), &g))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(text(&resp).contains("TARGET /echo"), "{}", text(&resp));
    }
    assert_eq!(granted.accepts(), 2);

    for path in [
        "granted/../secret.sock",
        "granted/./../secret.sock",
        "granted//../secret.sock",
        "granted/./ok.sock",
    ] {
        let given = format!("{dir_text}/{path}");
        let err = expect_kind(
            within(client().request(over_socket(&given), &g)).await,
            ErrorKind::PermissionDenied,
        );
        assert!(
            err.message.contains(&format!("{given:?}")) && err.message.contains("absolute"),
            "{given}: {}",
            err.message
        );
    }
    // A relative path is refused whatever is granted.
    let everything = grants(&[
        ("http_client.request", "http://localhost"),
        ("http_client.unix_socket", "*"),
    ]);
    expect_kind(
        within(client().request(over_socket("secret.sock"), &everything)).await,
        ErrorKind::PermissionDenied,
    );

    // Links out of the folder: refused, naming the path and its target.
    let target = format!("{:?}", dir.join("secret.sock"));
    for path in ["granted/out.sock", "granted/up/secret.sock"] {
        let given = format!("{dir_text}/{path}");
        let err = expect_kind(
            within(client().request(over_socket(&given), &g)).await,
            ErrorKind::PermissionDenied,
        );
        assert!(
            err.message.contains(&format!("{given:?}")) && err.message.contains(&target),
            "{given}: {}",
            err.message
        );
    }
    // Nor through a batch, which sends nothing then.
    let batch = vec![
        over_socket(&format!("{dir_text}/granted/ok.sock")),
        over_socket(&format!("{dir_text}/granted/out.sock")),
    ];
    let err = within(client().request_batch(batch, &g))
        .await
        .expect_err("one member resolves outside");
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{}", err.message);
    assert!(err.message.contains("request 2"), "{}", err.message);

    assert_eq!(secret.accepts(), 0, "the ungranted socket was reached");
    assert_eq!(granted.accepts(), 2, "a refused batch sent something");
    drop((granted, secret));
    let _ = std::fs::remove_dir_all(&base);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_socket_is_unavailable() {
    let path = std::env::temp_dir().join(format!("warren-http-none-{}.sock", std::process::id()));
    let path_text = path.to_str().expect("utf-8 path").to_owned();
    let g = grants(&[
        ("http_client.request", "http://localhost"),
        ("http_client.unix_socket", &path_text),
    ]);
    let err = expect_kind(
        within(client().request(over_socket(&path_text), &g)).await,
        ErrorKind::Unavailable,
    );
    assert!(err.retryable);
    assert!(err.message.contains(&path_text), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_send_all_or_nothing() {
    let server = Server::start().await;
    let http = client();
    let reqs = vec![
        Request::new("GET", server.url("/echo?n=1")),
        Request::new("GET", server.url("/status/404")),
        Request::new("GET", server.url("/echo?n=3")),
    ];
    let results = within(http.request_batch(reqs, &local()))
        .await
        .expect("sent");
    let statuses: Vec<u16> = results
        .iter()
        .map(|r| r.as_ref().expect("ok").status_code)
        .collect();
    assert_eq!(statuses, vec![200, 404, 200]);
    assert!(text(results[2].as_ref().expect("ok")).contains("TARGET /echo?n=3"));

    let reqs = vec![
        Request::new("GET", server.url("/echo")),
        Request::new("GET", server.url("/short")),
    ];
    let results = within(http.request_batch(reqs, &local()))
        .await
        .expect("sent");
    assert!(results[0].is_ok());
    let err = results[1].as_ref().expect_err("failed");
    assert_eq!(err.kind, ErrorKind::Unavailable);

    let before = server.accepts();
    let ungranted = vec![
        Request::new("GET", server.url("/echo")),
        Request::new("GET", "http://example.com/"),
    ];
    let err = within(http.request_batch(ungranted, &local()))
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert!(err.message.contains("request 2"), "{}", err.message);
    let mut streamed = Request::new("GET", server.url("/echo"));
    streamed.stream = true;
    let err = within(http.request_batch(
        vec![Request::new("GET", server.url("/echo")), streamed],
        &local(),
    ))
    .await
    .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Invalid);
    let err = within(http.request_batch(Vec::new(), &local()))
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Invalid);
    let many = vec![Request::new("GET", server.url("/echo")); warren_http::MAX_BATCH_REQUESTS + 1];
    let err = within(http.request_batch(many, &local()))
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Invalid);
    assert_eq!(server.accepts(), before, "nothing was sent");
}

#[test]
fn uri_encoding_round_trips() {
    assert_eq!(
        warren_http::encode_uri(b"a b+c/d?e=f"),
        "a+b%2Bc%2Fd%3Fe%3Df"
    );
    assert_eq!(
        warren_http::decode_uri("a+b%2Bc%2fd").expect("valid"),
        b"a b+c/d"
    );
    let err = warren_http::decode_uri("100%").expect_err("bad escape");
    assert_eq!(err.kind, ErrorKind::Invalid);
}

#[test]
fn client_and_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let http = client();
    send_sync(&http);
    let g = local();
    let one = http.request(Request::new("GET", "http://127.0.0.1:1/"), &g);
    send(&one);
    let batch = http.request_batch(vec![Request::new("GET", "http://127.0.0.1:1/")], &g);
    send(&batch);
}

/// Holds the jobs that wait on it until it is opened (or dropped, so a
/// failing test does not leave lane threads held).
#[derive(Clone, Default)]
struct Gate(std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn wait(&self) {
        let (open, turn) = &*self.0;
        let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = turn.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open(&self) {
        let (open, turn) = &*self.0;
        *open.lock().unwrap_or_else(|e| e.into_inner()) = true;
        turn.notify_all();
    }
}

struct OpenOnDrop(Gate);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_lookups_hang_delays_its_own_lookups_not_another_hosts() {
    // Host numbers no other test of this binary uses: the lane is the
    // process's.
    const SLOW: u16 = 40_001;
    const OTHER: u16 = 40_002;
    let server = Server::start().await;
    let url = format!("http://localhost:{}/echo", server.port);
    let g = grants(&[
        ("http_client.request", "http://localhost:*"),
        ("http_client.private_ip", "127.0.0.1"),
    ]);
    // SLOW's whole share of the DNS lane taken by lookups that do not
    // return, as names whose servers never answer hold their threads.
    let gate = Gate::default();
    let _release = OpenOnDrop(gate.clone());
    let (started, running) = std::sync::mpsc::channel();
    for _ in 0..warren_core::DNS_LANE_PER_HOST {
        let (gate, started) = (gate.clone(), started.clone());
        warren_core::dns_lane().spawn(SLOW, move || {
            let _ = started.send(());
            gate.wait();
        });
    }
    for _ in 0..warren_core::DNS_LANE_PER_HOST {
        running
            .recv_timeout(DEADLINE)
            .expect("each hanging lookup took a thread");
    }
    let http = std::sync::Arc::new(client());
    let room = warren_http::BodyRoom::unbounded();
    // Another host resolves `localhost` and is answered at once.
    let resp = within(http.request_within(Request::new("GET", &url), &g, &room, OTHER))
        .await
        .expect("another host's request");
    assert_eq!(resp.status_code, 200);
    // SLOW's own request waits for a thread of its share...
    let slow = {
        let (http, url, g) = (http.clone(), url.clone(), g.clone());
        tokio::spawn(async move {
            let room = warren_http::BodyRoom::unbounded();
            http.request_within(Request::new("GET", &url), &g, &room, SLOW)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!slow.is_finished(), "SLOW's lookup ran past its share");
    assert_eq!(server.accepts(), 1, "only the other host connected");
    // ...and goes on once one is free.
    gate.open();
    let resp = within(slow)
        .await
        .expect("joined")
        .expect("SLOW's request once its lookups return");
    assert_eq!(resp.status_code, 200);
}
