//! The HTTP client behind the `http_client` module (modules.md §2), free of
//! any guest language: the Lua bindings turn tables into a [`Request`] and
//! a [`Response`] back into tables.
//!
//! What it guarantees, whoever the caller:
//! - nothing leaves unless granted: each request's URL (with `query`
//!   appended) and every redirect hop is checked against
//!   `http_client.request` before any DNS lookup or connection, and at
//!   most [`MAX_REDIRECTS`] redirects are followed;
//! - every address dialled is checked after resolution: a non-public
//!   address needs `http_client.private_ip` (see [`is_non_public`]), so
//!   neither a name pointing inside nor DNS rebinding reaches internal
//!   services; proxy variables are ignored;
//! - nothing is unbounded: the `timeout` spans connect to the last body
//!   byte, bodies stop at `max_response_body`, response headers at
//!   [`MAX_RESPONSE_HEADERS`] / [`MAX_HEADER_LIST_BYTES`], a batch at
//!   [`MAX_BATCH_REQUESTS`];
//! - dropping a request future (its process was terminated) drops its
//!   connection; nothing keeps running on its behalf (except a DNS lookup
//!   already handed to the blocking pool, which cannot be interrupted).
//!
//! Option `unix_socket` (with the `http_client.unix_socket` grant for the
//! path) connects every hop to that socket; the URL is still checked
//! against `http_client.request`, and no address check applies since no
//! address is dialled.

#![warn(missing_docs)]

mod clients;
mod error;
mod exchange;
mod redirect;
mod request;
mod resolve;
mod response;
mod stream;
mod tls;
mod uri;

use futures_util::future::join_all;
use url::Url;
use warren_core::ProcError;
use warren_core::grants::Grants;

pub use clients::{MAX_CACHED_CLIENTS, MAX_HEADER_LIST_BYTES, MAX_RESPONSE_HEADERS};
pub use redirect::MAX_REDIRECTS;
pub use request::{DEFAULT_MAX_RESPONSE_BODY, DEFAULT_TIMEOUT, FilePart, Request, TlsOptions};
pub use resolve::{MAX_RESOLVED_ADDRESSES, is_non_public};
pub use response::Response;
pub use stream::BodyStream;
pub use uri::{decode_uri, encode_uri};

use crate::error::{invalid, redact, timeout};
use crate::exchange::{Prepared, check_first, exchange};

/// Requests one `request_batch` may hold: all are sent at once, each with
/// its own connection, so a batch of thousands would be a flood of
/// connections (and file descriptors) from one call.
pub const MAX_BATCH_REQUESTS: usize = 100;

/// The client of one runtime: shares connection pools and TLS setup
/// between callers; each call brings the caller's grants.
pub struct HttpClient {
    clients: clients::ClientCache,
}

impl HttpClient {
    /// The client, with rustls on ring and the bundled public roots.
    pub fn new() -> Result<HttpClient, ProcError> {
        Ok(HttpClient {
            clients: clients::ClientCache::new()?,
        })
    }

    /// Sends `req` for a caller holding `grants`: `INVALID` for a malformed
    /// request, then `PERMISSION_DENIED` if it is not granted, both before
    /// any DNS lookup or connection.
    pub async fn request(&self, req: Request, grants: &Grants) -> Result<Response, ProcError> {
        let url = req.validated_url()?;
        let prepared = self.prepare_url(&req, url, grants)?;
        self.send(prepared, &req, grants).await
    }

    /// Sends all of `reqs` at once and waits for all; one result per
    /// request, in order. `Err`, with nothing sent, for an empty list, more
    /// than [`MAX_BATCH_REQUESTS`], any `stream = true`, any malformed
    /// request (`INVALID`) or any request that is not granted
    /// (`PERMISSION_DENIED`).
    pub async fn request_batch(
        &self,
        reqs: Vec<Request>,
        grants: &Grants,
    ) -> Result<Vec<Result<Response, ProcError>>, ProcError> {
        if reqs.is_empty() {
            return Err(invalid("request_batch needs at least one request"));
        }
        if reqs.len() > MAX_BATCH_REQUESTS {
            return Err(invalid(format!(
                "request_batch takes at most {MAX_BATCH_REQUESTS} requests, not {}",
                reqs.len()
            )));
        }
        for (i, req) in reqs.iter().enumerate() {
            if req.stream {
                return Err(invalid(format!(
                    "request_batch: request {} sets stream",
                    i + 1
                )));
            }
            req.validate().map_err(|e| numbered(e, i))?;
        }
        let mut prepared = Vec::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            prepared.push(self.prepare(req, grants).map_err(|e| numbered(e, i))?);
        }
        let sends = prepared
            .into_iter()
            .zip(&reqs)
            .map(|(p, req)| self.send(p, req, grants));
        Ok(join_all(sends).await)
    }

    /// The checks of the first URL, and the client to send with.
    fn prepare(&self, req: &Request, grants: &Grants) -> Result<Prepared, ProcError> {
        self.prepare_url(req, req.full_url()?, grants)
    }

    /// [`HttpClient::prepare`] with the URL already parsed.
    fn prepare_url(&self, req: &Request, url: Url, grants: &Grants) -> Result<Prepared, ProcError> {
        let policy = check_first(req, &url, grants)?;
        let client = self.clients.client_for(req, &policy)?;
        Ok(Prepared {
            url,
            client,
            policy,
        })
    }

    /// Sends a prepared request within its timeout.
    async fn send(
        &self,
        prepared: Prepared,
        req: &Request,
        grants: &Grants,
    ) -> Result<Response, ProcError> {
        let limit = req.body_limit();
        let work = async {
            let (resp, url) = exchange(&prepared, req, grants).await?;
            let mut out = Response::head(&resp);
            if req.stream {
                out.stream = Some(BodyStream::new(resp, url, limit, req.timeout));
            } else {
                out.body = response::read_body(resp, &url, limit).await?;
            }
            Ok(out)
        };
        match tokio::time::timeout(req.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(timeout(format!(
                "request to {} timed out after {:?}",
                redact(&prepared.url),
                req.timeout
            ))),
        }
    }
}

/// `err` of the `i`th (0-based) request of a batch.
fn numbered(mut err: ProcError, i: usize) -> ProcError {
    err.message = format!("request_batch: request {}: {}", i + 1, err.message);
    err
}
