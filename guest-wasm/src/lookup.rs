//! `wasi:sockets/ip-name-lookup` for components granted the network, on
//! Warren's DNS lane as the process's host instead of wasmtime-wasi's.
//!
//! wasmtime-wasi resolves names with `tokio::net::lookup_host` on its
//! ambient runtime's blocking pool, shared by every tenant and bounded
//! only by that pool's 512 threads: a component whose lookups hang (names
//! served by a name server that never answers) took threads without
//! bound and delayed every other tenant's lookups behind its own. Here a
//! lookup is a job of the DNS lane ([`warren_core::dns_lane`]), which
//! runs at most `DNS_LANE_PER_HOST` lookups of one host at once and
//! serves the hosts in turn, as it does for `http_client`'s lookups; a
//! lookup whose stream is dropped before a thread takes it never runs.
//!
//! Guarantees: the WASI semantics of wasmtime-wasi's implementation (an
//! IP literal answers at once; a name is validated and converted to
//! punycode first, `invalid-argument` otherwise; an answer's addresses
//! come back canonical, IPv4-mapped IPv6 as IPv4), at most
//! [`MAX_LOOKUP_ADDRESSES`] of them; a lookup in flight holds one handle
//! of the process's capped table (its stream), so a process cannot queue
//! more lookups than it may hold handles.

use std::net::{IpAddr, ToSocketAddrs};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, Pollable, SocketError, subscribe};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/lookup",
        world: "warren:lookup/lookup",
        imports: { default: trappable },
        require_store_data_send: true,
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": super::Lookup,
        },
        trappable_error_type: {
            "wasi:sockets/network.error-code" => wasmtime_wasi::p2::SocketError,
        },
    });
}

use bindings::wasi::sockets::ip_name_lookup::{Host, HostResolveAddressStream};

/// Addresses kept from one answer: a hostile name server can answer with
/// hundreds of records (as `http_client` keeps 16).
pub const MAX_LOOKUP_ADDRESSES: usize = 16;

/// What a lookup's job answers.
type Answer = Result<Vec<IpAddr>, ErrorCode>;

/// A lookup's stream of addresses (the `resolve-address-stream` resource).
pub struct Lookup {
    state: State,
}

enum State {
    /// On the DNS lane (`Lane::run`: withdrawn if dropped before it
    /// starts); `None` if the lane dropped it unrun.
    Pending(Pin<Box<dyn Future<Output = Option<Answer>> + Send>>),
    /// Answered: the addresses not yet read, or the error.
    Done(Result<std::vec::IntoIter<IpAddr>, ErrorCode>),
}

impl Lookup {
    /// Moves to `Done` once the answer is in (`Pending` until then).
    fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let State::Pending(lookup) = &mut self.state {
            let answer = match lookup.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(answer)) => answer,
                // Dropped unrun (the lane shutting down).
                Poll::Ready(None) => Err(ErrorCode::TemporaryResolverFailure),
            };
            self.state = State::Done(answer.map(Vec::into_iter));
        }
        Poll::Ready(())
    }
}

impl Pollable for Lookup {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::poll_fn(|cx| self.poll_answer(cx)))
    }
}

/// The lookups of one process: its handle table and its host.
pub(crate) struct LookupView<'a> {
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) host: u16,
}

/// [`HasData`] for the generated `add_to_linker`.
pub(crate) struct Lookups;

impl HasData for Lookups {
    type Data<'a> = LookupView<'a>;
}

/// Adds `wasi:sockets/ip-name-lookup` to `linker`, each process's lookups
/// reached through `view`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> LookupView<'_>,
) -> wasmtime::Result<()> {
    bindings::wasi::sockets::ip_name_lookup::add_to_linker::<T, Lookups>(linker, view)
}

/// The name a lookup resolves, or its addresses when it is an IP
/// literal (wasmtime-wasi's rules: `url`'s host parser validates and
/// converts to punycode; a bare IPv6 address is accepted too).
fn parse(name: &str) -> Result<Result<String, IpAddr>, ErrorCode> {
    match url::Host::parse(name) {
        Ok(url::Host::Domain(domain)) => Ok(Ok(domain)),
        Ok(url::Host::Ipv4(a)) => Ok(Err(IpAddr::V4(a))),
        Ok(url::Host::Ipv6(a)) => Ok(Err(IpAddr::V6(a))),
        Err(_) => match name.parse::<std::net::Ipv6Addr>() {
            Ok(a) => Ok(Err(IpAddr::V6(a))),
            Err(_) => Err(ErrorCode::InvalidArgument),
        },
    }
}

/// Starts looking `domain` up on the DNS lane as `host`.
fn start(host: u16, domain: String) -> State {
    State::Pending(Box::pin(warren_core::dns_lane().run(host, move || {
        (domain.as_str(), 0)
            .to_socket_addrs()
            .map(|addrs| {
                addrs
                    .take(MAX_LOOKUP_ADDRESSES)
                    .map(|a| a.ip().to_canonical())
                    .collect()
            })
            .map_err(|e| {
                tracing::debug!(%domain, error = %e, "name lookup failed");
                ErrorCode::NameUnresolvable
            })
    })))
}

// The generated lookup traits require `wasi:sockets/network`'s: only
// `convert_error_code` is reached from here (the lookups' errors); the
// network interface itself is linked from wasmtime-wasi's implementation.
impl network::Host for LookupView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    fn network_error_code(
        &mut self,
        _err: Resource<wasmtime_wasi::p2::bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        Ok(None)
    }
}

impl network::HostNetwork for LookupView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

impl Host for LookupView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> Result<Resource<Lookup>, SocketError> {
        // The network resource is the capability: it must be the process's.
        self.table.get(&network)?;
        let state = match parse(&name)? {
            Ok(domain) => start(self.host, domain),
            Err(ip) => State::Done(Ok(vec![ip].into_iter())),
        };
        Ok(self.table.push(Lookup { state })?)
    }
}

impl HostResolveAddressStream for LookupView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<Lookup>,
    ) -> Result<Option<IpAddress>, SocketError> {
        let lookup = self.table.get_mut(&stream)?;
        if lookup
            .poll_answer(&mut Context::from_waker(Waker::noop()))
            .is_pending()
        {
            return Err(ErrorCode::WouldBlock.into());
        }
        match &mut lookup.state {
            State::Done(Ok(addrs)) => Ok(addrs.next().map(IpAddress::from)),
            State::Done(Err(e)) => Err((*e).into()),
            State::Pending(_) => Err(ErrorCode::WouldBlock.into()),
        }
    }

    fn subscribe(&mut self, stream: Resource<Lookup>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(self.table, stream)
    }

    fn drop(&mut self, stream: Resource<Lookup>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
