//! Grants: what the code of an entry may reach (modules.md, "Grants").
//!
//! Listing a module in `modules:` reaches nothing by itself: each database,
//! volume, variable, function of another namespace and network destination
//! must also be granted, statically, in the YAML of the entry that runs the
//! code or of the host it runs on. Warren keeps Wippy's action names
//! ([`ACTIONS`]); a [`Grants`] maps each action to the patterns it allows.
//! What code holds is its entry's grants ∪ its host's grants
//! ([`Grants::union`]); nothing passes from caller to callee or from parent
//! to child.
//!
//! Patterns:
//! - `http_client.request` and `http_client.insecure_tls` take
//!   *destinations* `[scheme://]host[:port][/path]` (see [`Grants::allows`]
//!   for the rules, those of modules.md §2 "Destinations"), matched against
//!   a URL;
//! - `http_client.private_ip` takes an IP address or a CIDR, matched
//!   against the address dialled;
//! - every other action takes a literal or a glob in which `*` matches any
//!   run of characters (`app.db:*`, `APP_*`, `*`).
//!
//! A grant set is bounded ([`MAX_PATTERNS_PER_ACTION`],
//! [`MAX_PATTERN_LEN`]), so a configuration cannot make each check of a
//! resource arbitrarily slow.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `db.get`: a database entry id (`sql.get`).
pub const DB_GET: &str = "db.get";
/// `fs.get`: a volume entry id (`fs.get`).
pub const FS_GET: &str = "fs.get";
/// `env.get`: a variable's public name or entry id (`env.get`, `env.get_all`).
pub const ENV_GET: &str = "env.get";
/// `env.set`: a variable's public name or entry id (`env.set`).
pub const ENV_SET: &str = "env.set";
/// `http_client.request`: a destination (each request and redirect hop).
pub const HTTP_REQUEST: &str = "http_client.request";
/// `http_client.private_ip`: an IP address or CIDR (each non-public address dialled).
pub const HTTP_PRIVATE_IP: &str = "http_client.private_ip";
/// `http_client.unix_socket`: a socket path on the host (option `unix_socket`).
pub const HTTP_UNIX_SOCKET: &str = "http_client.unix_socket";
/// `http_client.insecure_tls`: a destination (`tls.insecure_skip_verify`).
pub const HTTP_INSECURE_TLS: &str = "http_client.insecure_tls";
/// `funcs.call`: a function entry id of another namespace.
pub const FUNCS_CALL: &str = "funcs.call";
/// `process.spawn`: a process entry id outside the caller's namespace and
/// those nested in it (spawns, `exec`, `upgrade`; see [`runs_freely`]).
pub const PROCESS_SPAWN: &str = "process.spawn";

/// Every action a grant may name, in the order of modules.md's table.
pub const ACTIONS: [&str; 10] = [
    DB_GET,
    FS_GET,
    ENV_GET,
    ENV_SET,
    HTTP_REQUEST,
    HTTP_PRIVATE_IP,
    HTTP_UNIX_SOCKET,
    HTTP_INSECURE_TLS,
    FUNCS_CALL,
    PROCESS_SPAWN,
];

/// Patterns one action may hold in one grant set. Every check tries each
/// pattern of its action, so thousands of patterns (a generated or hostile
/// configuration) would make every `sql.get` or request pay for them; an
/// application that needs more should use a glob. A [`Grants::union`] of an
/// entry's and a host's grants may hold twice as many.
pub const MAX_PATTERNS_PER_ACTION: usize = 256;

/// Bytes one pattern may hold. Glob matching costs up to
/// `pattern length × resource length` steps (`*a*a*a*...`), so a pattern
/// of megabytes would make each check slow; real ids, names, paths and
/// destinations are far shorter.
pub const MAX_PATTERN_LEN: usize = 512;

/// Whether `action` is one of [`ACTIONS`].
pub fn is_action(action: &str) -> bool {
    ACTIONS.contains(&action)
}

/// The entry kinds the patterns of `action` name, for actions whose
/// patterns are entry ids (`warren check` verifies that a literal id names
/// an entry of one of these kinds). `env.get`/`env.set` patterns may also be
/// public names (no `:`), which are not entry ids.
pub fn entry_kinds(action: &str) -> Option<&'static [&'static str]> {
    match action {
        DB_GET => Some(&["db.sql.sqlite", "db.sql.postgres"]),
        FS_GET => Some(&["fs.directory"]),
        ENV_GET | ENV_SET => Some(&["env.variable"]),
        FUNCS_CALL => Some(&["function.lua"]),
        PROCESS_SPAWN => Some(&["process.lua", "process.wasm"]),
        _ => None,
    }
}

/// The namespace of entry id `id`: what comes before its first `:`
/// (`app.users:get` → `app.users`, as `funcs` reads an id; `""` for an id
/// without one). Entries added at run time may have more colons in their
/// name (`bench:cold:0:1` is of `bench`).
pub fn namespace_of(id: &str) -> &str {
    // A byte loop: `split_once`'s searcher cost about 100 instructions on
    // an id this short, four times per spawn.
    let at = id.bytes().position(|b| b == b':');
    at.and_then(|at| id.get(..at)).unwrap_or("")
}

/// Whether code of entry `caller` may run entry `target` as a process
/// (spawn, `exec`, `upgrade`) without the [`PROCESS_SPAWN`] grant: when
/// `target` is of the caller's namespace or of one nested in it (`app` runs
/// `app.workers:handler`, as Wippy code does; `app.workers` does not run
/// `app:main`, nor `apps.alice` run `apps.bob:store`). An entry runs with
/// its own grants, so without this rule a tenant ran another namespace's
/// entry on its own host and reached through it that entry's volumes.
pub fn runs_freely(caller: &str, target: &str) -> bool {
    if caller == target {
        return true;
    }
    let (own, other) = (namespace_of(caller), namespace_of(target));
    other == own
        || other
            .strip_prefix(own)
            .is_some_and(|rest| !own.is_empty() && rest.starts_with('.'))
}

/// Why a grant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The action is not one of [`ACTIONS`].
    #[error("unknown action '{action}' (known: {})", ACTIONS.join(", "))]
    UnknownAction {
        /// The action as written.
        action: String,
    },
    /// More than [`MAX_PATTERNS_PER_ACTION`] patterns for one action.
    #[error("more than {max} patterns for '{action}' (use a glob)")]
    TooManyPatterns {
        /// The action.
        action: String,
        /// [`MAX_PATTERNS_PER_ACTION`].
        max: usize,
    },
    /// A pattern longer than [`MAX_PATTERN_LEN`].
    #[error("a pattern of {len} bytes for '{action}' is longer than the limit of {max}")]
    PatternTooLong {
        /// The action.
        action: String,
        /// Its length.
        len: usize,
        /// [`MAX_PATTERN_LEN`].
        max: usize,
    },
    /// A pattern that does not parse for its action.
    #[error("pattern {pattern:?} of '{action}': {reason}")]
    BadPattern {
        /// The action.
        action: String,
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
}

/// What each action allows: action → patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    actions: BTreeMap<&'static str, Vec<Pattern>>,
}

impl Grants {
    /// No grants: nothing is allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is granted.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// Grants `pattern` for `action`, after checking the action, the
    /// pattern's form for that action and the bounds. Adding a pattern
    /// already there changes nothing.
    pub fn add(&mut self, action: &str, pattern: &str) -> Result<(), GrantError> {
        let Some(action) = ACTIONS.iter().copied().find(|a| *a == action) else {
            return Err(GrantError::UnknownAction {
                action: action.to_owned(),
            });
        };
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(GrantError::PatternTooLong {
                action: action.to_owned(),
                len: pattern.len(),
                max: MAX_PATTERN_LEN,
            });
        }
        let parsed = Pattern::parse(action, pattern).map_err(|reason| GrantError::BadPattern {
            action: action.to_owned(),
            pattern: pattern.to_owned(),
            reason,
        })?;
        let list = self.actions.entry(action).or_default();
        if list.iter().any(|p| p.text == parsed.text) {
            return Ok(());
        }
        if list.len() >= MAX_PATTERNS_PER_ACTION {
            return Err(GrantError::TooManyPatterns {
                action: action.to_owned(),
                max: MAX_PATTERNS_PER_ACTION,
            });
        }
        list.push(parsed);
        Ok(())
    }

    /// The patterns granted for `action`, as written (empty if none).
    pub fn patterns(&self, action: &str) -> impl Iterator<Item = &str> {
        self.actions
            .get(action)
            .into_iter()
            .flatten()
            .map(|p| p.text.as_str())
    }

    /// Every (action, pattern) pair, actions in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.actions
            .iter()
            .flat_map(|(a, ps)| ps.iter().map(move |p| (*a, p.text.as_str())))
    }

    /// Whether `action` on `resource` is granted. An unknown action is
    /// never granted.
    ///
    /// - Entry ids, variable names and socket paths: a pattern without `*`
    ///   must equal the resource; `*` matches any run of characters
    ///   (including none, and `:`). For `env.get`/`env.set` the caller
    ///   asks for the public name and for the entry id: either suffices.
    /// - `http_client.private_ip`: `resource` is an IP address (IPv6 with or
    ///   without brackets; an IPv4-mapped IPv6 address counts as its IPv4
    ///   form); a pattern is an address or a CIDR containing it.
    /// - `http_client.request` / `http_client.insecure_tls`: `resource` is
    ///   a URL `http[s]://[user@]host[:port][/path][?query][#fragment]`
    ///   (as the client has normalised it); a URL whose path holds a `.`
    ///   or `..` segment, or a percent sign in its host, is never granted.
    ///   A destination pattern `[scheme://]host[:port][/path]`:
    ///   - scheme `http` or `https`; absent means both;
    ///   - host: a DNS name (case-insensitive; a trailing `.` ignored);
    ///     `*.name` for its subdomains at any depth, not `name` itself; an
    ///     IP literal (IPv6 in brackets) or a CIDR (`10.0.0.0/8`,
    ///     `[fd00::/8]`) matching URLs whose host is such an address; `*`
    ///     for any host;
    ///   - port: absent means the scheme's default (80, 443); `:*` any;
    ///   - path: absent means any; otherwise a prefix on `/` boundaries
    ///     (`/v1` allows `/v1` and `/v1/x`, not `/v10`; `/v1/` allows
    ///     `/v1/` and below).
    ///
    ///   Not done yet: IDNA — a non-ASCII host pattern is refused by
    ///   [`Grants::add`] (write its ASCII `xn--` form), a non-ASCII URL
    ///   host matches only `*`.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        let Some(patterns) = self.actions.get(action) else {
            return false;
        };
        match action {
            HTTP_REQUEST | HTTP_INSECURE_TLS => match Url::parse(resource) {
                Some(url) => patterns.iter().any(|p| p.matches_url(&url)),
                None => false,
            },
            HTTP_PRIVATE_IP => match parse_ip(resource) {
                Some(ip) => patterns.iter().any(|p| p.matches_ip(ip)),
                None => false,
            },
            _ => patterns.iter().any(|p| glob(&p.text, resource)),
        }
    }

    /// The grants of both: what code holds is its entry's grants ∪ its
    /// host's grants. Duplicates are kept once; the result may hold up to
    /// twice [`MAX_PATTERNS_PER_ACTION`] patterns per action.
    pub fn union(&self, other: &Grants) -> Grants {
        let mut out = self.clone();
        for (action, patterns) in &other.actions {
            let list = out.actions.entry(action).or_default();
            for p in patterns {
                if !list.iter().any(|q| q.text == p.text) {
                    list.push(p.clone());
                }
            }
        }
        out
    }
}

/// One granted pattern, parsed for its action.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    text: String,
    form: Form,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Form {
    /// A literal or a `*` glob (matched on `text`).
    Glob,
    /// An IP address or CIDR.
    Net(Net),
    /// A destination.
    Destination(Destination),
}

impl Pattern {
    fn parse(action: &str, text: &str) -> Result<Pattern, String> {
        if text.is_empty() {
            return Err("a pattern must not be empty".into());
        }
        if text.chars().any(char::is_control) {
            return Err("a pattern must not contain control characters".into());
        }
        let form = match action {
            HTTP_REQUEST | HTTP_INSECURE_TLS => Form::Destination(Destination::parse(text)?),
            HTTP_PRIVATE_IP => Form::Net(
                Net::parse(text.trim_start_matches('[').trim_end_matches(']'))
                    .ok_or("expected an IP address or a CIDR such as 10.0.0.0/8")?,
            ),
            _ => Form::Glob,
        };
        Ok(Pattern {
            text: text.to_owned(),
            form,
        })
    }

    fn matches_url(&self, url: &Url) -> bool {
        match &self.form {
            Form::Destination(d) => d.matches(url),
            _ => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        match &self.form {
            Form::Net(net) => net.contains(ip),
            _ => false,
        }
    }
}

/// Whether glob `pattern` (`*` matches any run of bytes) matches `text`:
/// the two-pointer algorithm, backtracking only to the last `*`, so at most
/// `pattern.len() × text.len()` steps.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

/// An IP address or a CIDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `addr` or `addr/prefix` (IPv6 without brackets).
    fn parse(text: &str) -> Option<Net> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr = addr.parse::<IpAddr>().ok()?.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|n| *n <= max)?
            }
            Some(_) => return None,
        };
        Some(Net { addr, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `width` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let shift = u32::from(width - prefix.min(width));
    a.checked_shr(shift).unwrap_or(0) == b.checked_shr(shift).unwrap_or(0)
}

/// An IP address, IPv6 with or without brackets, in canonical form.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let inner = match text.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']')?,
        None => text,
    };
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// `*`.
    Any,
    /// `*.name`: held as `.name`.
    Subdomains(String),
    /// A DNS name, lowercase.
    Name(String),
    /// An IP literal or CIDR.
    Net(Net),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PortPattern {
    /// The scheme's default.
    Default,
    /// `:*`.
    Any,
    /// `:n`.
    Exact(u16),
}

/// `[scheme://]host[:port][/path]`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Destination {
    scheme: Option<Scheme>,
    host: HostPattern,
    port: PortPattern,
    path: Option<String>,
}

impl Destination {
    fn parse(text: &str) -> Result<Destination, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some((s, rest)) => (
                Some(Scheme::parse(s).ok_or_else(|| {
                    format!("scheme '{s}' is not http or https (omit it for both)")
                })?),
                rest,
            ),
            None => (None, text),
        };
        if rest.contains(['?', '#', '@']) || rest.contains(char::is_whitespace) {
            return Err("a destination has no user, query, fragment or spaces".into());
        }
        let (host, rest) = if let Some(inner) = rest.strip_prefix('[') {
            let (inside, after) = inner
                .split_once(']')
                .ok_or("an IPv6 address opened with '[' is not closed")?;
            let net = Net::parse(inside)
                .filter(|n| n.addr.is_ipv6())
                .ok_or_else(|| format!("'[{inside}]' is not an IPv6 address or CIDR"))?;
            (HostPattern::Net(net), after)
        } else {
            let end = rest.find([':', '/']).unwrap_or(rest.len());
            let (name, mut after) = rest.split_at(end);
            let host = if let Ok(v4) = name.parse::<Ipv4Addr>() {
                let mut prefix = 32;
                // `10.0.0.0/8`: a prefix length, not a path.
                if let Some(bits) = after.strip_prefix('/') {
                    let len = bits.find([':', '/']).unwrap_or(bits.len());
                    if len > 0 && bits[..len].bytes().all(|b| b.is_ascii_digit()) {
                        prefix = bits[..len]
                            .parse::<u8>()
                            .ok()
                            .filter(|n| *n <= 32)
                            .ok_or_else(|| format!("'/{}' is not a prefix length", &bits[..len]))?;
                        after = &bits[len..];
                    }
                }
                HostPattern::Net(Net {
                    addr: IpAddr::V4(v4),
                    prefix,
                })
            } else {
                host_pattern(name)?
            };
            (host, after)
        };
        let (port, rest) = match rest.strip_prefix(':') {
            Some(p) => {
                let end = p.find('/').unwrap_or(p.len());
                let port = match &p[..end] {
                    "*" => PortPattern::Any,
                    n => PortPattern::Exact(
                        n.parse::<u16>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| format!("port '{n}' is not 1-65535 or *"))?,
                    ),
                };
                (port, &p[end..])
            }
            None => (PortPattern::Default, rest),
        };
        let path = match rest {
            "" => None,
            p if p.starts_with('/') => {
                if p.split('/').any(|s| s == "." || s == "..") || p.contains('*') {
                    return Err(format!(
                        "path '{p}' is a plain prefix: no '.', '..' or '*' segments"
                    ));
                }
                Some(p.to_owned())
            }
            other => return Err(format!("unexpected '{other}' after the host")),
        };
        Ok(Destination {
            scheme,
            host,
            port,
            path,
        })
    }

    fn matches(&self, url: &Url) -> bool {
        if self.scheme.is_some_and(|s| s != url.scheme) {
            return false;
        }
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Default => url.port == url.scheme.default_port(),
            PortPattern::Exact(n) => url.port == n,
        };
        let host_ok = match (&self.host, &url.host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Net(net), UrlHost::Ip(ip)) => net.contains(*ip),
            (HostPattern::Name(name), UrlHost::Name(host)) => name == host,
            (HostPattern::Subdomains(suffix), UrlHost::Name(host)) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
            _ => false,
        };
        let path_ok = match &self.path {
            None => true,
            Some(prefix) if prefix.ends_with('/') => url.path.starts_with(prefix.as_str()),
            Some(prefix) => url
                .path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        };
        port_ok && host_ok && path_ok
    }
}

/// A host pattern that is not an IPv4 literal: `*`, `*.name` or a name.
fn host_pattern(text: &str) -> Result<HostPattern, String> {
    if text == "*" {
        return Ok(HostPattern::Any);
    }
    let (subdomains, name) = match text.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, text),
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.is_empty() {
        return Err("the host is missing".into());
    }
    if !name.is_ascii() {
        return Err(format!(
            "host '{name}' is not ASCII: write its xn-- form (IDNA is not applied yet)"
        ));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name.split('.').all(label_ok) {
        return Err(format!(
            "host '{text}' is not a DNS name, *.name, an IP address, a CIDR or *"
        ));
    }
    Ok(if subdomains {
        HostPattern::Subdomains(format!(".{name}"))
    } else {
        HostPattern::Name(name)
    })
}

#[derive(Debug, PartialEq, Eq)]
enum UrlHost {
    Name(String),
    Ip(IpAddr),
}

/// The parts of a URL a destination is matched against.
#[derive(Debug)]
struct Url {
    scheme: Scheme,
    host: UrlHost,
    port: u16,
    path: String,
}

impl Url {
    fn parse(text: &str) -> Option<Url> {
        let (scheme, rest) = text.split_once("://")?;
        let scheme = Scheme::parse(scheme)?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (inside, after) = inner.split_once(']')?;
            let ip = inside.parse::<Ipv6Addr>().ok()?;
            (UrlHost::Ip(IpAddr::V6(ip).to_canonical()), after)
        } else {
            let end = authority.find(':').unwrap_or(authority.len());
            let (name, after) = authority.split_at(end);
            let name = name.strip_suffix('.').unwrap_or(name);
            if name.is_empty() || name.contains('%') {
                return None;
            }
            let host = match name.parse::<Ipv4Addr>() {
                Ok(v4) => UrlHost::Ip(IpAddr::V4(v4)),
                Err(_) => UrlHost::Name(name.to_ascii_lowercase()),
            };
            (host, after)
        };
        let port = match port {
            "" | ":" => scheme.default_port(),
            p => p.strip_prefix(':')?.parse::<u16>().ok()?,
        };
        let end = rest.find(['?', '#']).unwrap_or(rest.len());
        let path = if end == 0 { "/" } else { &rest[..end] };
        let dot = |s: &str| {
            let s = s.to_ascii_lowercase().replace("%2e", ".");
            s == "." || s == ".."
        };
        if path.split('/').any(dot) {
            return None;
        }
        Some(Url {
            scheme,
            host,
            port,
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants(pairs: &[(&str, &str)]) -> Grants {
        let mut g = Grants::new();
        for (a, p) in pairs {
            g.add(a, p).expect("valid grant");
        }
        g
    }

    #[test]
    fn globs_and_literals() {
        assert!(glob("app.db:main", "app.db:main"));
        assert!(!glob("app.db:main", "app.db:main2"));
        assert!(glob("app.db:*", "app.db:main"));
        assert!(glob("app.db:*", "app.db:"));
        assert!(!glob("app.db:*", "app.dbx:main"));
        assert!(glob("APP_*", "APP_MODE"));
        assert!(glob("*", ""));
        assert!(glob("*", "anything:at all"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(glob("a*b*c", "abc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("*:main", "x.y:main"));
        assert!(glob("a**b", "ab"));
        // Backtracking stays bounded on a hostile pattern.
        let pattern = "*a".repeat(200) + "b";
        assert!(!glob(&pattern, &"a".repeat(5000)));
    }

    #[test]
    fn allows_by_action() {
        let g = grants(&[
            ("db.get", "app.db:main"),
            ("fs.get", "app.files:*"),
            ("env.get", "APP_*"),
            ("env.get", "DATABASE_URL"),
            ("funcs.call", "other:get_user"),
            ("http_client.unix_socket", "/run/*.sock"),
        ]);
        assert!(g.allows("db.get", "app.db:main"));
        assert!(!g.allows("db.get", "app.db:other"));
        assert!(!g.allows("fs.get", "app.db:main"), "per action");
        assert!(g.allows("fs.get", "app.files:uploads"));
        assert!(g.allows("env.get", "APP_MODE"));
        assert!(g.allows("env.get", "DATABASE_URL"));
        assert!(!g.allows("env.set", "DATABASE_URL"));
        assert!(g.allows("funcs.call", "other:get_user"));
        assert!(g.allows("http_client.unix_socket", "/run/docker.sock"));
        assert!(!g.allows("nope", "x"));
        assert!(!Grants::new().allows("db.get", "app.db:main"));
    }

    #[test]
    fn destinations() {
        let g = grants(&[
            ("http_client.request", "https://api.stripe.com"),
            ("http_client.request", "*.example.org:8443/v1/"),
            ("http_client.request", "http://files.test/pub"),
        ]);
        let ok = |u: &str| g.allows("http_client.request", u);
        assert!(ok("https://api.stripe.com"));
        assert!(ok("https://API.Stripe.com./v1/charges?x=1"));
        assert!(ok("https://user@api.stripe.com:443/"));
        assert!(!ok("http://api.stripe.com/"), "https only");
        assert!(!ok("https://api.stripe.com:8443/"), "default port only");
        assert!(!ok("https://evil.api.stripe.com/"));
        assert!(!ok("https://api.stripe.com.evil.net/"));
        assert!(!ok("ftp://api.stripe.com/"));
        assert!(ok("https://a.example.org:8443/v1/x"));
        assert!(ok("http://a.b.example.org:8443/v1/"));
        assert!(!ok("https://example.org:8443/v1/x"), "not the name itself");
        assert!(!ok("https://a.example.org:8443/v2/x"));
        assert!(!ok("https://a.example.org:8443/v1"), "prefix /v1/");
        assert!(!ok("https://a.example.org/v1/x"), "port 8443 only");
        assert!(ok("http://files.test/pub"));
        assert!(ok("http://files.test/pub/a.txt"));
        assert!(!ok("http://files.test/public"), "on / boundaries");
        assert!(!ok("http://files.test/pub/../admin"), "dot segments");
        assert!(!ok("http://files.test/pub/%2E%2E/admin"), "encoded dots");
        assert!(!ok("not a url"));
        let any = grants(&[("http_client.request", "*")]);
        assert!(any.allows("http_client.request", "http://x.y/"));
        assert!(any.allows("http_client.request", "https://10.0.0.1/"));
        assert!(!any.allows("http_client.request", "https://x.y:8080/"));
        let ports = grants(&[("http_client.request", "localhost:*")]);
        assert!(ports.allows("http_client.request", "http://localhost:9000/"));
        assert!(ports.allows("http_client.request", "https://localhost/"));
    }

    #[test]
    fn destination_ip_hosts() {
        let g = grants(&[
            ("http_client.request", "10.0.0.0/8:*"),
            ("http_client.request", "https://[fd00::/8]"),
            ("http_client.request", "http://192.168.1.5/api"),
        ]);
        let ok = |u: &str| g.allows("http_client.request", u);
        assert!(ok("http://10.1.2.3:9000/x"));
        assert!(!ok("http://11.1.2.3/"));
        assert!(ok("https://[fd00::1]/"));
        assert!(!ok("https://[fe80::1]/"));
        assert!(ok("http://192.168.1.5/api/v1"));
        assert!(!ok("http://192.168.1.6/api"));
        assert!(!ok("http://192.168.1.5/apix"));
    }

    #[test]
    fn private_ips() {
        let g = grants(&[
            ("http_client.private_ip", "10.20.0.0/16"),
            ("http_client.private_ip", "127.0.0.1"),
            ("http_client.private_ip", "fd00::/8"),
        ]);
        let ok = |ip: &str| g.allows("http_client.private_ip", ip);
        assert!(ok("10.20.3.4"));
        assert!(!ok("10.21.0.1"));
        assert!(ok("127.0.0.1"));
        assert!(!ok("127.0.0.2"));
        assert!(ok("::ffff:10.20.0.9"), "IPv4-mapped counts as IPv4");
        assert!(ok("[fd12::1]"));
        assert!(!ok("fe80::1"));
        assert!(!ok("localhost"));
    }

    #[test]
    fn bad_grants_are_refused() {
        let mut g = Grants::new();
        let err = g.add("db.read", "x").expect_err("unknown action");
        assert!(
            err.to_string().contains("unknown action 'db.read'"),
            "{err}"
        );
        assert!(err.to_string().contains("db.get"), "{err}");
        for (action, pattern) in [
            ("db.get", ""),
            ("http_client.request", "ftp://x.org"),
            ("http_client.request", "x.org:70000"),
            ("http_client.request", "x.*.org"),
            ("http_client.request", "https://x.org/a/../b"),
            ("http_client.request", "https://user@x.org"),
            ("http_client.request", "[::1"),
            ("http_client.request", "10.0.0.0/33"),
            ("http_client.request", "bücher.de"),
            ("http_client.private_ip", "10.0.0.0/40"),
            ("http_client.private_ip", "example.org"),
        ] {
            let err = g.add(action, pattern).expect_err(pattern);
            assert!(
                matches!(err, GrantError::BadPattern { .. }),
                "{pattern}: {err}"
            );
        }
        let long = "x".repeat(MAX_PATTERN_LEN + 1);
        assert!(matches!(
            g.add("db.get", &long),
            Err(GrantError::PatternTooLong { .. })
        ));
        for i in 0..MAX_PATTERNS_PER_ACTION {
            g.add("db.get", &format!("app:db{i}"))
                .expect("within bound");
        }
        g.add("db.get", "app:db0")
            .expect("a duplicate adds nothing");
        assert!(matches!(
            g.add("db.get", "app:one_more"),
            Err(GrantError::TooManyPatterns { .. })
        ));
        assert_eq!(g.patterns("db.get").count(), MAX_PATTERNS_PER_ACTION);
    }

    #[test]
    fn union_holds_both() {
        let entry = grants(&[("db.get", "app.db:main"), ("env.get", "A")]);
        let host = grants(&[
            ("db.get", "app.db:main"),
            ("http_client.request", "https://telemetry.example.net"),
        ]);
        let both = entry.union(&host);
        assert!(both.allows("db.get", "app.db:main"));
        assert!(both.allows("env.get", "A"));
        assert!(both.allows("http_client.request", "https://telemetry.example.net/"));
        assert_eq!(both.patterns("db.get").count(), 1, "deduplicated");
        assert_eq!(both, host.union(&entry).union(&both), "same set");
        assert_eq!(entry.union(&Grants::new()), entry);
        assert!(!entry.allows("http_client.request", "https://telemetry.example.net/"));
        let pairs: Vec<_> = both.iter().collect();
        assert_eq!(pairs.len(), 3, "{pairs:?}");
    }

    #[test]
    fn known_actions() {
        for a in ACTIONS {
            assert!(is_action(a));
        }
        assert!(!is_action("db.put"));
        assert_eq!(entry_kinds("funcs.call"), Some(&["function.lua"][..]));
        assert_eq!(entry_kinds("http_client.request"), None);
        assert_eq!(
            entry_kinds("process.spawn"),
            Some(&["process.lua", "process.wasm"][..])
        );
    }

    #[test]
    fn a_namespace_runs_its_own_entries_and_those_nested_in_it() {
        assert!(runs_freely("app:main", "app:worker"));
        assert!(runs_freely("app:main", "app.workers:handler"));
        assert!(runs_freely("app:main", "app.workers.deep:x"));
        // A sibling, a parent, a namespace that only starts alike, another tenant.
        assert!(!runs_freely("app.api:get", "app.workers:handler"));
        assert!(!runs_freely("app.workers:handler", "app:main"));
        assert!(!runs_freely("app:main", "apps:x"));
        assert!(!runs_freely("app:main", "appx.y:z"));
        assert!(!runs_freely("apps.alice:main", "apps.bob:store"));
        assert!(!runs_freely("a:atk", "b:store"));
        // Ids without a namespace never reach one that has one.
        assert!(!runs_freely("main", "app:x"));
        assert_eq!(namespace_of("app.users:get"), "app.users");
        assert_eq!(namespace_of("bench:cold:0:1"), "bench");
        assert!(runs_freely("bench:spawner", "bench:cold:0:1"));
        assert!(!runs_freely("a:x", "b:a:x"));
        assert_eq!(namespace_of("nons"), "");
    }
}
