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
//! - the bytes of bodies being read are counted: against the caller's
//!   [`BodyRoom`] (what it may hold with its other calls in flight, and its
//!   host's `memory_total`) before each allocation grows, and for a batch
//!   against one running cap for all its members;
//! - dropping a request future (its process was terminated) drops its
//!   connection; nothing keeps running on its behalf (except a DNS lookup
//!   already handed to the blocking pool, which cannot be interrupted).
//!
//! Option `unix_socket` (with the `http_client.unix_socket` grant for the
//! path) connects every hop to that socket; the URL is still checked
//! against `http_client.request`, and no address check applies since no
//! address is dialled. The path must be absolute without `.` or `..`
//! components, and what it resolves to (links followed) must be granted
//! too; that resolved path is the one dialled (see `socket.rs`).

#![warn(missing_docs)]

mod clients;
mod error;
mod exchange;
mod redirect;
mod request;
mod resolve;
mod response;
mod room;
mod socket;
mod stream;
mod tls;
mod uri;

use futures_util::future::join_all;
use url::Url;
use warren_core::grants::{Grants, HTTP_REQUEST};
use warren_core::{ProcError, SYSTEM_QUEUE};

pub use clients::{MAX_CACHED_CLIENTS, MAX_HEADER_LIST_BYTES, MAX_RESPONSE_HEADERS};
pub use redirect::MAX_REDIRECTS;
pub use request::{DEFAULT_MAX_RESPONSE_BODY, DEFAULT_TIMEOUT, FilePart, Request, TlsOptions};
pub use resolve::{MAX_RESOLVED_ADDRESSES, is_non_public};
pub use response::{BodyHold, Response};
pub use room::BodyRoom;
pub use stream::BodyStream;
pub use uri::{decode_uri, encode_uri};

use crate::error::{invalid, redact, timeout};
use crate::exchange::{Prepared, check_first, exchange};
use crate::room::{Batch, Hold};

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
    /// any DNS lookup or connection. Its body counts against nothing but
    /// its own limit, and its lookups are no host's (see
    /// [`HttpClient::request_within`]).
    pub async fn request(&self, req: Request, grants: &Grants) -> Result<Response, ProcError> {
        self.request_within(req, grants, &BodyRoom::unbounded(), SYSTEM_QUEUE)
            .await
    }

    /// [`HttpClient::request`] for a caller of host `caller` (whose share
    /// of the DNS lane its lookups take, `warren_core::dns_lane`) whose
    /// response bodies take `room` while they are read (and until the
    /// [`Response`] is dropped): a body that does not fit fails with
    /// `RATE_LIMITED`.
    pub async fn request_within(
        &self,
        req: Request,
        grants: &Grants,
        room: &BodyRoom,
        caller: u16,
    ) -> Result<Response, ProcError> {
        let url = req.validated_url()?;
        let prepared = self.prepare_url(&req, url, grants, caller).await?;
        self.send(prepared, &req, grants, Hold::new(room, None))
            .await
    }

    /// Sends all of `reqs` at once and waits for all; one result per
    /// request, in order. `Err`, with nothing sent, for an empty list, more
    /// than [`MAX_BATCH_REQUESTS`], any `stream = true`, any malformed
    /// request (`INVALID`) or any request that is not granted
    /// (`PERMISSION_DENIED`). Bodies count against nothing but their own
    /// limits (see [`HttpClient::request_batch_within`]).
    pub async fn request_batch(
        &self,
        reqs: Vec<Request>,
        grants: &Grants,
    ) -> Result<Vec<Result<Response, ProcError>>, ProcError> {
        self.request_batch_within(reqs, grants, &BodyRoom::unbounded(), u64::MAX, SYSTEM_QUEUE)
            .await
    }

    /// [`HttpClient::request_batch`] whose bodies take `room` (as in
    /// [`HttpClient::request_within`]) and, all together, at most `cap`
    /// bytes: a member whose body would pass it fails with `INVALID`
    /// (details `limit`) and stops reading. Room goes to members in list
    /// order: an earlier member that needs it fails a later one that holds
    /// it, so which members fail does not depend on which server is faster.
    /// The lookups are host `caller`'s.
    pub async fn request_batch_within(
        &self,
        reqs: Vec<Request>,
        grants: &Grants,
        room: &BodyRoom,
        cap: u64,
        caller: u16,
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
            prepared.push(
                self.prepare(req, grants, caller)
                    .await
                    .map_err(|e| numbered(e, i))?,
            );
        }
        let batch = Batch::new(reqs.len(), cap);
        let sends = prepared
            .into_iter()
            .zip(&reqs)
            .enumerate()
            .map(|(i, (p, req))| self.send(p, req, grants, Hold::new(room, Some((&batch, i)))));
        let results = join_all(sends).await;
        // Each body read was kept by the batch (see `room::Batch::park`).
        Ok(results
            .into_iter()
            .enumerate()
            .map(|(i, result)| {
                let mut resp = result?;
                let url = Url::parse(&resp.url).map_err(|e| invalid(e.to_string()))?;
                let (body, held) = batch.unpark(i, &url)?;
                resp.body = body;
                resp.held = Some(held);
                Ok(resp)
            })
            .collect())
    }

    /// The checks of the first URL and socket, and the client to send
    /// with (host `caller`'s). The request's timeout starts here.
    async fn prepare(
        &self,
        req: &Request,
        grants: &Grants,
        caller: u16,
    ) -> Result<Prepared, ProcError> {
        self.prepare_url(req, req.full_url()?, grants, caller).await
    }

    /// [`HttpClient::prepare`] with the URL already parsed.
    async fn prepare_url(
        &self,
        req: &Request,
        url: Url,
        grants: &Grants,
        caller: u16,
    ) -> Result<Prepared, ProcError> {
        let deadline = tokio::time::Instant::now() + req.timeout;
        let policy = check_first(req, &url, grants)?;
        let socket = match &req.unix_socket {
            Some(path) => Some(socket::resolve(path, grants, caller, deadline).await?),
            None => None,
        };
        let client = self
            .clients
            .client_for(req, socket.as_deref(), &policy, caller)?;
        Ok(Prepared {
            url,
            client,
            policy,
            deadline,
        })
    }

    /// Sends a prepared request within its timeout, its body taking room
    /// through `hold` (a batch member's body is kept by its batch).
    async fn send(
        &self,
        prepared: Prepared,
        req: &Request,
        grants: &Grants,
        mut hold: Hold,
    ) -> Result<Response, ProcError> {
        let limit = req.body_limit();
        let work = async {
            let (resp, url) = exchange(&prepared, req, grants).await?;
            let mut out = Response::head(&resp);
            if req.stream {
                out.stream = Some(BodyStream::new(resp, url, limit, req.timeout));
                return Ok(out);
            }
            let body = response::read_body(resp, &url, limit, &mut hold).await?;
            match hold.member() {
                Some((batch, i)) => batch.park(i, body, hold, &url)?,
                None => {
                    out.body = body;
                    out.held = Some(hold);
                }
            }
            Ok(out)
        };
        match tokio::time::timeout_at(prepared.deadline, work).await {
            Ok(result) => result,
            Err(_) => Err(timeout(format!(
                "request to {} timed out after {:?}",
                redact(&prepared.url),
                req.timeout
            ))),
        }
    }
}

/// `PERMISSION_DENIED` unless `url`'s destination (scheme, host, port,
/// path) is granted by `http_client.request` in `grants`; `INVALID` if it
/// is not an `http`/`https` URL. The first check of a call, made before
/// anything else is copied out of the caller (its body, form, files,
/// headers), before an operation slot is taken and before any task is
/// spawned: an ungranted call costs the host no copy. The full checks
/// (the URL with its query, redirect hops, dialled addresses, sockets,
/// insecure TLS) still run when the request is sent.
pub fn check_destination(url: &str, grants: &Grants) -> Result<(), ProcError> {
    // The text as given first: a well-formed granted URL needs no parse.
    if grants.allows(HTTP_REQUEST, url) {
        return Ok(());
    }
    let parsed = request::parse_url(url)?;
    if grants.allows(HTTP_REQUEST, parsed.as_str()) {
        return Ok(());
    }
    Err(error::denied(format!(
        "http_client.request not granted for {}",
        redact(&parsed)
    )))
}

/// `err` of the `i`th (0-based) request of a batch.
fn numbered(mut err: ProcError, i: usize) -> ProcError {
    err.message = format!("request_batch: request {}: {}", i + 1, err.message);
    err
}
