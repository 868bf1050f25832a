//! The reqwest clients: how every connection is made.
//!
//! Every client built here ignores proxy variables, follows no redirect by
//! itself (the hop loop checks each one), retries nothing, decompresses
//! nothing, bounds response headers ([`MAX_RESPONSE_HEADERS`],
//! [`MAX_HEADER_LIST_BYTES`]) and resolves names through a
//! [`GuardedResolver`] holding its caller's `http_client.private_ip` grants
//! and host (whose share of the DNS lane its lookups take). Callers of one
//! host with the same private-IP grants (most hold none) share one client
//! and its connection pool; tenants share none. At most
//! [`MAX_CACHED_CLIENTS`] such clients are kept. Option `tls` and
//! `unix_socket` get a client of their own, dropped with the request.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Client;
use warren_core::{ProcError, SYSTEM_QUEUE};

use crate::error::internal;
use crate::resolve::{AddressPolicy, GuardedResolver};
use crate::{Request, tls};

/// Shared clients kept, one per host and distinct set of
/// `http_client.private_ip` patterns, least recently used evicted first.
/// Each holds a connection pool; tenants with many distinct grant sets
/// must not make the runtime keep a pool for each.
pub const MAX_CACHED_CLIENTS: usize = 64;

/// Response header fields accepted over HTTP/1 (hyper's default is 100);
/// a response with more fails. Together with hyper's read buffer (about
/// 400 KiB for the head of an HTTP/1 response) this bounds what a server
/// can make the client hold before the body.
pub const MAX_RESPONSE_HEADERS: usize = 128;

/// Bytes of one HTTP/2 response header list (hyper's default is 16 KiB);
/// a larger list fails the request.
pub const MAX_HEADER_LIST_BYTES: u32 = 64 * 1024;

/// Idle pooled connections kept per host, and for how long. Many
/// processes each making requests in turn need about one connection each
/// kept between their calls (a process is resumed before it sends its
/// next request): with 8, a thousand such processes opened a new TCP
/// connection for three requests in four and ran at 0.35× a plain tokio
/// program. The in-flight side is bounded by `max_ops_per_host`; idle
/// sockets are bounded by this per destination and closed after the
/// timeout, so a tenant still cannot build an unbounded reservoir.
const POOL_MAX_IDLE_PER_HOST: usize = 1_024;
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The User-Agent sent unless the request sets one.
const USER_AGENT: &str = concat!("warren/", env!("CARGO_PKG_VERSION"));

/// What a shared client is kept under: its callers' host and their
/// private-IP patterns (`AddressPolicy::key`).
type ClientKey = (u16, Vec<String>);

/// The shared clients, most recent last.
pub(crate) struct ClientCache {
    public_tls: rustls::ClientConfig,
    clients: Mutex<Vec<(ClientKey, Client)>>,
}

impl ClientCache {
    pub(crate) fn new() -> Result<ClientCache, ProcError> {
        let public_tls = tls::public_config()?;
        // Built once up front so a broken TLS setup fails `HttpClient::new`.
        build(
            public_tls.clone(),
            AddressPolicy::default(),
            None,
            SYSTEM_QUEUE,
        )?;
        Ok(ClientCache {
            public_tls,
            clients: Mutex::new(Vec::new()),
        })
    }

    /// The client for `req` sent by a caller of host `caller` with
    /// `policy`, connecting to `socket` (the checked, resolved path of its
    /// `unix_socket`) if given.
    pub(crate) fn client_for(
        &self,
        req: &Request,
        socket: Option<&Path>,
        policy: &AddressPolicy,
        caller: u16,
    ) -> Result<Client, ProcError> {
        let custom_tls = req.tls.as_ref().filter(|t| !t.is_default());
        if custom_tls.is_some() || socket.is_some() {
            let config = match custom_tls {
                Some(opts) => tls::custom_config(opts)?,
                None => self.public_tls.clone(),
            };
            return build(config, policy.clone(), socket, caller);
        }
        self.shared(policy, caller)
    }

    fn shared(&self, policy: &AddressPolicy, caller: u16) -> Result<Client, ProcError> {
        let key = (caller, policy.key());
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| internal("HTTP client cache poisoned"))?;
        if let Some(i) = clients.iter().position(|(k, _)| *k == key) {
            let entry = clients.remove(i);
            let client = entry.1.clone();
            clients.push(entry);
            return Ok(client);
        }
        let client = build(self.public_tls.clone(), policy.clone(), None, caller)?;
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.remove(0);
        }
        clients.push((key, client.clone()));
        Ok(client)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.clients.lock().map(|c| c.len()).unwrap_or_default()
    }
}

fn build(
    tls: rustls::ClientConfig,
    policy: AddressPolicy,
    unix_socket: Option<&Path>,
    caller: u16,
) -> Result<Client, ProcError> {
    let mut builder = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .referer(false)
        .user_agent(USER_AGENT)
        .tls_backend_preconfigured(tls)
        .dns_resolver(GuardedResolver::new(policy, caller))
        .http1_max_headers(MAX_RESPONSE_HEADERS)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT);
    if let Some(path) = unix_socket {
        builder = builder.unix_socket(path.to_path_buf());
    }
    builder
        .build()
        .map_err(|e| internal(format!("cannot build the HTTP client: {e}")))
}

#[cfg(test)]
mod tests {
    use warren_core::grants::{Grants, HTTP_PRIVATE_IP};

    use super::*;

    #[test]
    fn cache_is_bounded() {
        let cache = ClientCache::new().expect("client cache");
        let req = Request::new("GET", "http://example.org/");
        cache
            .client_for(&req, None, &AddressPolicy::default(), 1)
            .expect("shared client");
        cache
            .client_for(&req, None, &AddressPolicy::default(), 1)
            .expect("shared client");
        assert_eq!(
            cache.len(),
            1,
            "one client for a host's callers without grants"
        );
        cache
            .client_for(&req, None, &AddressPolicy::default(), 2)
            .expect("another host's client");
        assert_eq!(cache.len(), 2, "hosts share no client");
        for i in 0..(MAX_CACHED_CLIENTS + 5) {
            let mut grants = Grants::new();
            grants
                .add(HTTP_PRIVATE_IP, &format!("10.0.{}.{}", i / 256, i % 256))
                .expect("valid pattern");
            cache
                .client_for(&req, None, &AddressPolicy::from_grants(&grants), 1)
                .expect("client");
        }
        assert_eq!(cache.len(), MAX_CACHED_CLIENTS);
    }
}
