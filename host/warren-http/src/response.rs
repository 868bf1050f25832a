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

use futures_util::future::Either;

use crate::clients::MAX_RESPONSE_HEADERS;
use crate::error::{body_too_large, from_reqwest, internal};
use crate::room::{Hold, batch_too_large};
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
    /// The body's bytes, held against the caller's room (see
    /// [`crate::BodyRoom`]) for as long as the response lives.
    pub(crate) held: Option<Hold>,
}

/// A body's bytes held against its caller's room (see
/// [`Response::take_hold`]), given back when dropped.
#[derive(Debug)]
pub struct BodyHold(#[expect(dead_code, reason = "held for its Drop")] Hold);

impl Response {
    /// What keeps the body's bytes counted against the caller's room (and
    /// the host's `memory_total`), taken out to live on after the
    /// response: until the caller has the body. `None` when nothing is
    /// held (a streamed or empty body).
    pub fn take_hold(&mut self) -> Option<BodyHold> {
        self.held.take().map(BodyHold)
    }

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
            held: None,
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
/// `limit` bytes. Every byte of capacity the body grows to is taken from
/// `hold` first (its error, `RATE_LIMITED` or a batch's `INVALID`, ends
/// the read): an announced length at once, so a body that cannot fit
/// fails before it is read; and a batch member failed to make room for an
/// earlier one stops reading at once.
pub(crate) async fn read_body(
    mut resp: reqwest::Response,
    url: &Url,
    limit: u64,
    hold: &mut Hold,
) -> Result<Vec<u8>, ProcError> {
    // The exact length hyper will deliver (0 for HEAD, 204, 304), never
    // used to allocate.
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > limit) {
        return Err(body_too_large(url, limit));
    }
    if let Some(n) = announced {
        hold.grow_to(n, url).await?;
    }
    let batch = hold.member();
    let mut body = Vec::new();
    loop {
        let chunk = match &batch {
            None => resp.chunk().await,
            Some((batch, i)) => {
                let evicted = std::pin::pin!(batch.until_evicted(*i));
                let chunk = std::pin::pin!(resp.chunk());
                match futures_util::future::select(chunk, evicted).await {
                    Either::Left((chunk, _)) => chunk,
                    Either::Right(((), _)) => return Err(batch_too_large(url, batch.cap())),
                }
            }
        };
        let Some(chunk) = chunk.map_err(|e| from_reqwest(&e, url))? else {
            break;
        };
        let mut grown = grown_capacity(body.len(), body.capacity(), chunk.len(), announced, limit);
        if let Some(capacity) = grown {
            grown = Some(grow(hold, body.len(), body.len() + chunk.len(), capacity, url).await?);
        }
        append_within(&mut body, &chunk, url, limit, grown.unwrap_or(0))?;
    }
    Ok(body)
}

/// Holds room for a body of `len` bytes to grow to `capacity`, or, if there
/// is no room for that, to less (a quarter more, then just `needed`, what
/// the next chunk needs): the capacity it may grow to, or the error of
/// the room.
async fn grow(
    hold: &mut Hold,
    len: usize,
    needed: usize,
    capacity: usize,
    url: &Url,
) -> Result<usize, ProcError> {
    let quarter = len.saturating_add(len / 4).max(needed);
    for target in [capacity, quarter] {
        if target > needed && hold.try_grow_to(target as u64, url).await.is_ok() {
            return Ok(target);
        }
    }
    hold.grow_to(needed as u64, url).await?;
    Ok(needed)
}

/// The capacity a body of `len` bytes (in `capacity`) grows to for a
/// chunk of `add` bytes: `None` if it fits already; otherwise twice the
/// capacity (amortised growth) but never past the announced length or the
/// limit, and at least what the chunk needs.
fn grown_capacity(
    len: usize,
    capacity: usize,
    add: usize,
    announced: Option<u64>,
    limit: u64,
) -> Option<usize> {
    let needed = len.saturating_add(add);
    if needed <= capacity {
        return None;
    }
    let ceiling = usize::try_from(announced.unwrap_or(limit).min(limit)).unwrap_or(usize::MAX);
    Some(capacity.saturating_mul(2).min(ceiling).max(needed))
}

/// Appends `chunk` to `body` unless that would pass `limit`, growing its
/// capacity (when it must) to `capacity` or what the chunk needs,
/// whichever is more.
pub(crate) fn append_within(
    body: &mut Vec<u8>,
    chunk: &[u8],
    url: &Url,
    limit: u64,
    capacity: usize,
) -> Result<(), ProcError> {
    let total = body.len() as u64 + chunk.len() as u64;
    if total > limit {
        return Err(body_too_large(url, limit));
    }
    if body.capacity() < body.len() + chunk.len() {
        let target = capacity.max(body.len() + chunk.len());
        body.try_reserve_exact(target - body.len()).map_err(|_| {
            internal(format!(
                "out of memory reading {}",
                crate::error::redact(url)
            ))
        })?;
    }
    body.extend_from_slice(chunk);
    Ok(())
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    /// A body's hold taken out of its response keeps the room taken after
    /// the response is gone, until the hold itself is dropped (the Lua
    /// front-end drops it once the process has the body).
    #[test]
    fn a_taken_hold_outlives_its_response() {
        let held = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let room = crate::BodyRoom::new(held.clone(), 100, None);
        let mut hold = Hold::new(&room, None);
        let url = Url::parse("http://example.org/").expect("url");
        let grown = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(hold.grow_to(40, &url));
        grown.expect("40 fits in 100");
        let mut resp = Response {
            status_code: 200,
            headers: Vec::new(),
            cookies: Vec::new(),
            body: vec![0; 40],
            url: url.to_string(),
            stream: None,
            held: Some(hold),
        };
        let taken = resp.take_hold().expect("the body is held");
        assert!(resp.take_hold().is_none(), "one hold, taken once");
        drop(resp);
        let count = || held.load(std::sync::atomic::Ordering::Acquire);
        assert_eq!(count(), 40, "still counted after the response");
        drop(taken);
        assert_eq!(count(), 0);
    }

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
        append_within(&mut body, b"12345", &url, 8, 0).expect("within");
        let err = append_within(&mut body, b"6789", &url, 8, 0).expect_err("beyond");
        assert_eq!(err.kind, warren_core::ErrorKind::Invalid);
        assert_eq!(
            err.details.as_ref().and_then(|d| d.get("limit")),
            Some(&warren_core::Value::Int(8))
        );
        assert_eq!(body, b"12345");
    }
}
