//! The response a request returns, and reading a whole body within its limit.
//!
//! Header names come in canonical case (`Content-Type`), the first value of
//! each name, at most [`crate::MAX_RESPONSE_HEADERS`] names; cookies are the
//! `name=value` of each Set-Cookie (the last one of a name wins). A body is
//! read chunk by chunk with the running total checked against the limit
//! before it grows, and memory is reserved fallibly: a server-supplied
//! Content-Length is never used to pre-allocate, only to fail early when it
//! already announces more than the limit.

use reqwest::header::{HeaderMap, SET_COOKIE};
use url::Url;
use warren_core::ProcError;

use crate::clients::MAX_RESPONSE_HEADERS;
use crate::error::{body_too_large, from_reqwest, internal};
use crate::stream::BodyStream;

/// A response: any HTTP status is one.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status_code: u16,
    /// Canonical-case names, the first value of each.
    pub headers: Vec<(String, String)>,
    /// `name=value` of each Set-Cookie.
    pub cookies: Vec<(String, String)>,
    /// The body (empty when streaming).
    pub body: Vec<u8>,
    /// The final URL, after redirects.
    pub url: String,
    /// The body, with `stream = true`.
    pub stream: Option<BodyStream>,
}

impl Response {
    /// The body's size, `-1` when streaming.
    pub fn body_size(&self) -> i64 {
        if self.stream.is_some() {
            return -1;
        }
        i64::try_from(self.body.len()).unwrap_or(i64::MAX)
    }

    /// The first value of header `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The parts of `resp` other than its body.
    pub(crate) fn head(resp: &reqwest::Response) -> Response {
        Response {
            status_code: resp.status().as_u16(),
            headers: headers(resp.headers()),
            cookies: cookies(resp.headers()),
            body: Vec::new(),
            url: resp.url().to_string(),
            stream: None,
        }
    }
}

/// `Content-Type` for `content-type`: each `-`-separated word capitalised.
pub(crate) fn canonical_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

fn headers(map: &HeaderMap) -> Vec<(String, String)> {
    map.keys()
        .take(MAX_RESPONSE_HEADERS)
        .filter_map(|name| {
            let value = map.get(name)?;
            let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
            Some((canonical_name(name.as_str()), text))
        })
        .collect()
}

fn cookies(map: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for value in map.get_all(SET_COOKIE).iter().take(MAX_RESPONSE_HEADERS) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let pair = text.split(';').next().unwrap_or_default();
        let Some((name, value)) = pair.split_once('=') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            continue;
        }
        out.retain(|(n, _)| n != name);
        out.push((name.to_owned(), value.to_owned()));
    }
    out
}

/// Reads the whole body of `resp`; `INVALID` (details `limit`) beyond
/// `limit` bytes.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    url: &Url,
    limit: u64,
) -> Result<Vec<u8>, ProcError> {
    // The exact length hyper will deliver (0 for HEAD, 204, 304), never
    // used to allocate.
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(body_too_large(url, limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| from_reqwest(&e, url))? {
        append_within(&mut body, &chunk, url, limit)?;
    }
    Ok(body)
}

/// Appends `chunk` to `body` unless that would pass `limit`.
pub(crate) fn append_within(
    body: &mut Vec<u8>,
    chunk: &[u8],
    url: &Url,
    limit: u64,
) -> Result<(), ProcError> {
    let total = body.len() as u64 + chunk.len() as u64;
    if total > limit {
        return Err(body_too_large(url, limit));
    }
    body.try_reserve(chunk.len()).map_err(|_| {
        internal(format!(
            "out of memory reading {}",
            crate::error::redact(url)
        ))
    })?;
    body.extend_from_slice(chunk);
    Ok(())
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn canonical_names() {
        assert_eq!(canonical_name("content-type"), "Content-Type");
        assert_eq!(canonical_name("x-API-key"), "X-Api-Key");
        assert_eq!(canonical_name("etag"), "Etag");
        assert_eq!(canonical_name("a--b"), "A--B");
    }

    #[test]
    fn first_values_and_cookies() {
        let mut map = HeaderMap::new();
        map.append("x-one", HeaderValue::from_static("1"));
        map.append("x-one", HeaderValue::from_static("2"));
        map.append(SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
        map.append(SET_COOKIE, HeaderValue::from_static("b = 2 ;HttpOnly"));
        map.append(SET_COOKIE, HeaderValue::from_static("a=3"));
        map.append(SET_COOKIE, HeaderValue::from_static("novalue"));
        let h = headers(&map);
        assert!(h.contains(&("X-One".into(), "1".into())), "{h:?}");
        assert_eq!(
            cookies(&map),
            vec![("b".into(), "2".into()), ("a".into(), "3".into())]
        );
    }

    #[test]
    fn append_checks_the_total() {
        let url = Url::parse("http://example.org/").expect("url");
        let mut body = Vec::new();
        append_within(&mut body, b"12345", &url, 8).expect("within");
        let err = append_within(&mut body, b"6789", &url, 8).expect_err("beyond");
        assert_eq!(err.kind, warren_core::ErrorKind::Invalid);
        assert_eq!(
            err.details.as_ref().and_then(|d| d.get("limit")),
            Some(&warren_core::Value::Int(8))
        );
        assert_eq!(body, b"12345");
    }
}
