//! Turning server names into addresses, once at configuration and again on refresh.
//!
//! The selectors ([`ServerList`](crate::ServerList), [`Ketama`](crate::Ketama)) keep the names
//! they were given and the addresses those names resolved to. A name keeps *every* address it
//! resolves to, IPv4 first as Go's dialer prefers, so a client falls back to the next address
//! when one refuses connections. Refreshing re-resolves every name; a name that fails keeps its
//! last good addresses, so a DNS outage never empties a running client's server list.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::selector::Endpoint;
use crate::{Error, ServerAddr};

/// Looks a `host:port` name up. The default is the system resolver (`ToSocketAddrs`); a
/// custom one lets a selector be tested with fixed answers, or use another source of names.
pub type Resolver = Arc<dyn Fn(&str) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The system resolver: `getaddrinfo` through `ToSocketAddrs`. It blocks the calling thread
/// for as long as the lookup takes, so async clients call it on a blocking thread.
pub fn system() -> Resolver {
    Arc::new(|name: &str| name.to_socket_addrs().map(Iterator::collect))
}

/// Parses `name` into a server: one containing `/` is a Unix socket path; anything else is
/// looked up with `resolver`, keeping every address, IPv4 ones first (each family in the
/// resolver's order), duplicates dropped.
pub fn resolve(name: &str, resolver: &Resolver) -> Result<ServerAddr, Error> {
    if name.contains('/') {
        return Ok(ServerAddr::unix(PathBuf::from(name)));
    }
    let found = resolver(name).map_err(|e| Error::BadAddress(format!("{name}: {e}")))?;
    let mut addrs: Vec<SocketAddr> = Vec::with_capacity(found.len());
    for addr in found.iter().filter(|a| a.is_ipv4()).chain(found.iter().filter(|a| a.is_ipv6())) {
        if !addrs.contains(addr) {
            addrs.push(*addr);
        }
    }
    ServerAddr::with_addrs(name, addrs).ok_or_else(|| Error::BadAddress(format!("{name}: no address")))
}

/// How long one connection attempt may take when `left` of the connect timeout remains and
/// `addrs` addresses (this one included) are still to try: Go's rule (`net.Dialer`'s partial
/// deadline): an equal share of what is left, but at least 2 s (or all that is left), so a
/// blackholed first address cannot use up the time of the next.
pub fn attempt_timeout(left: Duration, addrs: usize) -> Duration {
    const SANE_MINIMUM: Duration = Duration::from_secs(2);
    let share = left / u32::try_from(addrs.max(1)).unwrap_or(u32::MAX);
    if share < SANE_MINIMUM { left.min(SANE_MINIMUM) } else { share }
}

/// Resolves every name, all or nothing: the first failure is returned.
pub(crate) fn resolve_all<S: AsRef<str>>(
    names: impl IntoIterator<Item = S>,
    resolver: &Resolver,
) -> Result<Vec<ServerAddr>, Error> {
    names.into_iter().map(|n| resolve(n.as_ref(), resolver)).collect()
}

/// The result of re-resolving a list of servers.
pub(crate) struct Refreshed {
    /// The servers, in the same order: re-resolved, or kept (unchanged, or failed to resolve).
    pub servers: Vec<ServerAddr>,
    /// Whether any server's addresses changed.
    pub changed: bool,
    /// The names that failed to resolve (they kept their last good addresses).
    pub failed: Vec<Error>,
}

impl Refreshed {
    /// `Ok` if every name resolved, else one error naming every failure.
    pub fn outcome(&self) -> Result<(), Error> {
        match self.failed.as_slice() {
            [] => Ok(()),
            [one] => Err(one.clone()),
            many => Err(Error::BadAddress(many.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))),
        }
    }
}

/// Re-resolves `current`. A server whose addresses did not change is kept as the same
/// [`ServerAddr`] (so its pooled connections and health stay); one that fails to resolve keeps
/// its last good addresses.
pub(crate) fn refresh(current: &[ServerAddr], resolver: &Resolver) -> Refreshed {
    let mut out =
        Refreshed { servers: Vec::with_capacity(current.len()), changed: false, failed: Vec::new() };
    for server in current {
        let kept = server.clone();
        let next = match server.endpoint() {
            Endpoint::Tcp(_) => match resolve(server.as_str(), resolver) {
                Ok(fresh) if fresh == *server => kept,
                Ok(fresh) => {
                    out.changed = true;
                    fresh
                }
                Err(e) => {
                    out.failed.push(e);
                    kept
                }
            },
            _ => kept,
        };
        out.servers.push(next);
    }
    out
}

/// A resolver in a selector's `Debug` output.
pub(crate) struct ShowResolver;

impl fmt::Debug for ShowResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arc_swap::ArcSwap;

    use super::*;

    type Table = Arc<ArcSwap<HashMap<String, Vec<SocketAddr>>>>;

    /// Changes the resolver's table, as DNS changes between lookups.
    fn edit(table: &Table, change: impl FnOnce(&mut HashMap<String, Vec<SocketAddr>>)) {
        let mut next = HashMap::clone(&table.load());
        change(&mut next);
        table.store(Arc::new(next));
    }

    /// A resolver answering from a table that the test can change.
    fn table(entries: &[(&str, &[&str])]) -> (Resolver, Table) {
        let map: HashMap<String, Vec<SocketAddr>> = entries
            .iter()
            .map(|(n, a)| (n.to_string(), a.iter().map(|s| s.parse().expect("literal")).collect()))
            .collect();
        let map = Arc::new(ArcSwap::from_pointee(map));
        let lookup = map.clone();
        let resolver: Resolver = Arc::new(move |name: &str| {
            lookup
                .load()
                .get(name)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such host"))
        });
        (resolver, map)
    }

    fn tcp(server: &ServerAddr) -> Vec<String> {
        server
            .endpoints()
            .iter()
            .map(|e| match e {
                Endpoint::Tcp(a) => a.to_string(),
                other => panic!("not tcp: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn keeps_every_address_ipv4_first_without_duplicates() {
        let (r, _) =
            table(&[("cache:11211", &["[::1]:11211", "10.0.0.2:11211", "10.0.0.1:11211", "10.0.0.2:11211"])]);
        let s = resolve("cache:11211", &r).expect("resolves");
        assert_eq!(s.to_string(), "cache:11211", "displays as given");
        assert_eq!(tcp(&s), ["10.0.0.2:11211", "10.0.0.1:11211", "[::1]:11211"]);
        assert_eq!(s.endpoint(), &s.endpoints()[0]);
    }

    #[test]
    fn attempts_share_the_connect_timeout_as_go_does() {
        let s = Duration::from_secs;
        assert_eq!(attempt_timeout(s(10), 2), s(5));
        assert_eq!(attempt_timeout(s(10), 1), s(10));
        assert_eq!(attempt_timeout(s(3), 3), s(2), "at least 2 s");
        assert_eq!(
            attempt_timeout(Duration::from_millis(100), 2),
            Duration::from_millis(100),
            "or all that is left"
        );
        assert_eq!(attempt_timeout(s(1), 0), s(1));
    }

    #[test]
    fn unix_paths_are_not_looked_up() {
        let (r, _) = table(&[]);
        let s = resolve("/run/mc.sock", &r).expect("a path");
        assert_eq!(s.endpoints(), [Endpoint::Unix("/run/mc.sock".into())]);
    }

    #[test]
    fn empty_answers_and_failures_are_bad_addresses() {
        let (r, _) = table(&[("empty:1", &[])]);
        assert!(matches!(resolve("empty:1", &r), Err(Error::BadAddress(m)) if m.contains("no address")));
        assert!(matches!(resolve("gone:1", &r), Err(Error::BadAddress(m)) if m.contains("gone:1")));
        assert!(resolve_all(["empty:1", "/x"], &r).is_err(), "all or nothing");
    }

    #[test]
    fn refresh_keeps_unchanged_and_failed_names_and_reports_failures() {
        let (r, map) = table(&[("a:1", &["10.0.0.1:1"]), ("b:1", &["10.0.0.2:1"]), ("c:1", &["10.0.0.3:1"])]);
        let servers = resolve_all(["a:1", "b:1", "c:1", "/sock"], &r).expect("resolve");

        let same = refresh(&servers, &r);
        assert!(!same.changed);
        assert!(same.outcome().is_ok());
        assert!(same.servers.iter().zip(&servers).all(|(a, b)| a.is_same(b)), "same objects kept");

        edit(&map, |m| {
            m.remove("a:1");
            m.insert("b:1".into(), vec!["10.0.0.9:1".parse().expect("literal")]);
        });
        let next = refresh(&servers, &r);
        assert!(next.changed);
        assert_eq!(tcp(&next.servers[0]), ["10.0.0.1:1"], "a failed name keeps its last good address");
        assert_eq!(tcp(&next.servers[1]), ["10.0.0.9:1"], "a moved name gets its new address");
        assert!(next.servers[2].is_same(&servers[2]));
        assert_eq!(next.servers[3], servers[3]);
        assert!(matches!(next.outcome(), Err(Error::BadAddress(m)) if m.contains("a:1")));

        edit(&map, |m| drop(m.remove("c:1")));
        let two = refresh(&next.servers, &r);
        assert!(matches!(two.outcome(), Err(Error::BadAddress(m)) if m.contains("a:1") && m.contains("c:1")));
    }
}
