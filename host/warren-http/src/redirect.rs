//! Redirects, followed by the client itself so that each hop is checked.
//!
//! [`next_hop`] decides where a 3xx response leads, the way browsers do:
//! 303 (and 301/302 after a POST) continue as GET without a body; 307/308
//! keep the method and body. Once a hop leaves the first URL's origin
//! (scheme, host, port), credentials are dropped for the rest of the chain:
//! Authorization, Proxy-Authorization and Cookie headers and the `auth` and
//! `cookies` options. The caller checks every hop's URL against the grants
//! before sending it and stops after [`MAX_REDIRECTS`] hops.

use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use url::Url;

/// Redirects followed before giving up with `UNAVAILABLE` "too many
/// redirects": a loop or an endless chain would otherwise hold the caller
/// and open a connection per hop forever.
pub const MAX_REDIRECTS: usize = 10;

/// Where one request of a redirect chain goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hop {
    /// The URL of this hop.
    pub(crate) url: Url,
    /// Its method.
    pub(crate) method: Method,
    /// Whether the request's body (body, form, files) is sent.
    pub(crate) with_body: bool,
    /// Whether credentials (auth, cookies, Authorization/Cookie headers)
    /// are sent.
    pub(crate) with_credentials: bool,
}

impl Hop {
    /// The first hop: everything sent.
    pub(crate) fn first(url: Url, method: Method) -> Hop {
        Hop {
            url,
            method,
            with_body: true,
            with_credentials: true,
        }
    }
}

/// The hop a response with `status` and `headers` to `current` leads to,
/// or `None` when it is not a redirect (or names no usable Location: then
/// the 3xx response itself is the answer). `origin` is the first URL's.
pub(crate) fn next_hop(
    current: &Hop,
    origin: &Url,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Hop> {
    let keeps_method = match status.as_u16() {
        301 | 302 => current.method != Method::POST,
        303 => current.method == Method::HEAD,
        307 | 308 => true,
        _ => return None,
    };
    let location = headers.get(LOCATION)?.to_str().ok()?;
    let url = current.url.join(location).ok()?;
    let (method, with_body) = if keeps_method {
        (current.method.clone(), current.with_body)
    } else {
        (Method::GET, false)
    };
    Some(Hop {
        with_credentials: current.with_credentials && same_origin(&url, origin),
        url,
        method,
        with_body,
    })
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.origin() == b.origin()
}

/// Whether header `name` carries credentials dropped on a cross-origin hop.
pub(crate) fn is_credential_header(name: &str) -> bool {
    ["authorization", "proxy-authorization", "cookie"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn hop(method: Method) -> Hop {
        Hop::first(Url::parse("https://a.example/x/y").expect("url"), method)
    }

    fn redirect(current: &Hop, status: u16, location: &str) -> Option<Hop> {
        let mut headers = HeaderMap::new();
        headers.insert(LOCATION, HeaderValue::from_str(location).expect("value"));
        let origin = Url::parse("https://a.example/").expect("url");
        let status = StatusCode::from_u16(status).expect("status");
        next_hop(current, &origin, status, &headers)
    }

    #[test]
    fn methods_follow_browsers() {
        let post = hop(Method::POST);
        let to = |s| redirect(&post, s, "/z").expect("a redirect");
        for status in [301, 302, 303] {
            let next = to(status);
            assert_eq!(
                (next.method, next.with_body),
                (Method::GET, false),
                "{status}"
            );
        }
        for status in [307, 308] {
            let next = to(status);
            assert_eq!(
                (next.method, next.with_body),
                (Method::POST, true),
                "{status}"
            );
        }
        let put = redirect(&hop(Method::PUT), 302, "/z").expect("a redirect");
        assert_eq!((put.method, put.with_body), (Method::PUT, true));
        let head = redirect(&hop(Method::HEAD), 303, "/z").expect("a redirect");
        assert_eq!(head.method, Method::HEAD);
        let put303 = redirect(&hop(Method::PUT), 303, "/z").expect("a redirect");
        assert_eq!(put303.method, Method::GET);
    }

    #[test]
    fn resolves_locations_and_credentials() {
        let get = hop(Method::GET);
        let next = redirect(&get, 302, "../z?q=1").expect("a redirect");
        assert_eq!(next.url.as_str(), "https://a.example/z?q=1");
        assert!(next.with_credentials, "same origin");
        let away = redirect(&get, 302, "https://b.example/").expect("a redirect");
        assert!(!away.with_credentials, "cross-origin");
        let back = redirect(&away, 302, "https://a.example/").expect("a redirect");
        assert!(!back.with_credentials, "dropped for the rest of the chain");
        let http = redirect(&get, 302, "http://a.example/x/y").expect("a redirect");
        assert!(!http.with_credentials, "another scheme is another origin");
        assert!(redirect(&get, 200, "/z").is_none());
        assert!(redirect(&get, 304, "/z").is_none());
        assert!(
            redirect(&get, 302, "http://[::1").is_none(),
            "unusable Location"
        );
        let odd = redirect(&get, 302, "file:///etc/passwd").expect("checked by grants");
        assert_eq!(odd.url.scheme(), "file");
    }

    #[test]
    fn credential_headers() {
        assert!(is_credential_header("Authorization"));
        assert!(is_credential_header("COOKIE"));
        assert!(!is_credential_header("X-Api-Key"));
    }
}
