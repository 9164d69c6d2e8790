//! Choosing the server for a key, bit for bit as gomemcache does.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::Error;
use crate::resolve::{self, Resolver};

/// A memcached server: a TCP address or a Unix socket path. Displays as the address it was
/// given; cheap to clone.
#[derive(Clone)]
pub struct ServerAddr(Arc<AddrInner>);

struct AddrInner {
    name: String,
    /// Where to connect, in the order to try: never empty. A name that resolves to several
    /// addresses keeps them all (IPv4 first), so a refused connection falls back to the next.
    endpoints: Vec<Endpoint>,
}

/// Where a [`ServerAddr`] is reached.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A resolved TCP address.
    Tcp(SocketAddr),
    /// A Unix domain socket.
    Unix(PathBuf),
    /// Reached only through a custom connector (a stream handed to the client).
    Custom,
}

impl ServerAddr {
    /// Parses `addr`: one containing `/` is a Unix socket path, anything else is resolved
    /// (now) as a TCP `host:port`, keeping every address it resolves to (IPv4 first).
    ///
    /// This name lookup is the only system call memcache-proto ever makes.
    pub fn resolve(addr: &str) -> Result<ServerAddr, Error> {
        crate::resolve::resolve(addr, &crate::resolve::system())
    }

    fn new(name: String, endpoints: Vec<Endpoint>) -> ServerAddr {
        ServerAddr(Arc::new(AddrInner { name, endpoints }))
    }

    /// A TCP server at `addr`.
    pub fn tcp(addr: SocketAddr) -> ServerAddr {
        ServerAddr::new(addr.to_string(), vec![Endpoint::Tcp(addr)])
    }

    /// A TCP server known by `name` (displayed as given) at `addrs`, tried in this order when
    /// connecting; `None` if `addrs` is empty. [`resolve`](Self::resolve) builds these from a
    /// name lookup; tests and custom resolvers can build them directly.
    pub fn with_addrs(name: &str, addrs: impl IntoIterator<Item = SocketAddr>) -> Option<ServerAddr> {
        let endpoints: Vec<Endpoint> = addrs.into_iter().map(Endpoint::Tcp).collect();
        (!endpoints.is_empty()).then(|| ServerAddr::new(name.to_owned(), endpoints))
    }

    /// A Unix socket server at `path`.
    pub fn unix(path: impl AsRef<Path>) -> ServerAddr {
        let path = path.as_ref();
        ServerAddr::new(path.to_string_lossy().into_owned(), vec![Endpoint::Unix(path.to_owned())])
    }

    /// A server reached only through a custom connector, known by `name`.
    pub fn custom(name: &str) -> ServerAddr {
        ServerAddr::new(name.to_owned(), vec![Endpoint::Custom])
    }

    /// Where to connect first.
    pub fn endpoint(&self) -> &Endpoint {
        &self.0.endpoints[0]
    }

    /// Every place this server can be reached, in the order to try them: a connection
    /// refused (or timed out) at one is retried at the next.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.0.endpoints
    }

    /// The address as it was given.
    pub fn as_str(&self) -> &str {
        &self.0.name
    }

    /// Whether `self` and `other` are the very same object (not just equal): a refresh that
    /// found the same addresses keeps the object.
    #[cfg(test)]
    pub(crate) fn is_same(&self, other: &ServerAddr) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)
    }
}

impl fmt::Debug for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerAddr({:?})", self.0.name)
    }
}

impl PartialEq for ServerAddr {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || (self.0.name == other.0.name && self.0.endpoints == other.0.endpoints)
    }
}

impl Eq for ServerAddr {}

impl Hash for ServerAddr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

/// Picks the server that holds a key. Implement it for custom sharding; [`ServerList`] is
/// gomemcache's default and [`Ketama`](crate::Ketama) the consistent hashing of libmemcached
/// and spymemcached.
///
/// Only `pick_server` and `servers` are required. The other methods let a client change the
/// servers while it runs, re-resolve names and skip servers that are down; their defaults
/// describe a fixed list.
pub trait ServerSelector: Send + Sync + fmt::Debug {
    /// The server for `key`.
    fn pick_server(&self, key: &[u8]) -> Result<ServerAddr, Error>;

    /// Every distinct server, in configuration order (for `flush_all`, `stats`, `ping`).
    fn servers(&self) -> Vec<ServerAddr>;

    /// Calls `f` for every distinct server, stopping at the first error.
    fn each(&self, f: &mut dyn FnMut(&ServerAddr) -> Result<(), Error>) -> Result<(), Error> {
        self.servers().iter().try_for_each(f)
    }

    /// Replaces the servers, all or nothing: if a name fails to resolve, nothing changes.
    /// The default refuses with [`Error::InvalidConfig`]: a fixed selector. (Named apart
    /// from the selectors' own `set_servers` so that `Arc<ServerList>` handles keep calling
    /// those, which take any list of strings.)
    fn replace_servers(&self, servers: &[&str]) -> Result<(), Error> {
        let _ = servers;
        Err(Error::InvalidConfig(format!("{self:?} cannot change its servers")))
    }

    /// Looks every server name up again (blocking the calling thread for the lookups). A name
    /// that fails keeps its last good addresses and the failure is returned; the others are
    /// updated anyway. The default has nothing to refresh.
    fn refresh(&self) -> Result<(), Error> {
        Ok(())
    }

    /// A number that changes whenever the servers or their addresses change, so a client can
    /// notice a change made through another handle and close connections to servers that
    /// left. The default never changes.
    fn generation(&self) -> u64 {
        0
    }

    /// Whether [`pick_server_skipping`](Self::pick_server_skipping) moves only the keys of the
    /// skipped servers (consistent hashing). A client refuses ejection with a selector that
    /// cannot: with `crc32 % n`, taking a server out would move almost every key.
    fn supports_ejection(&self) -> bool {
        false
    }

    /// The server for `key` when the servers for which `skip` is true are taken out: the next
    /// one along a consistent-hashing ring. If every server is skipped, the server
    /// `pick_server` gives. The default ignores `skip`.
    fn pick_server_skipping(
        &self,
        key: &[u8],
        skip: &dyn Fn(&ServerAddr) -> bool,
    ) -> Result<ServerAddr, Error> {
        let _ = skip;
        self.pick_server(key)
    }

    /// The server of every key of a multi-key call, handed to `each` with its key, in the
    /// keys' order, stopping at the first error. Answers what `pick_server` would for each
    /// key, from one view of the servers for the whole batch: a `get_multi` of 100 keys then
    /// pays one snapshot of the list instead of 100, and no [`ServerAddr`] clone per key. The
    /// default calls `pick_server` for each key.
    fn pick_servers(
        &self,
        keys: &mut dyn Iterator<Item = &[u8]>,
        each: &mut PickEach<'_>,
    ) -> Result<(), Error> {
        for key in keys {
            each(key, &self.pick_server(key)?)?;
        }
        Ok(())
    }
}

/// What [`ServerSelector::pick_servers`] hands each key and its server to.
pub type PickEach<'a> = dyn FnMut(&[u8], &ServerAddr) -> Result<(), Error> + 'a;

/// A selector shared with its owner: give the builder `handle.clone()` and keep `handle` to
/// change the servers of the running client (`handle.set_servers(..)`).
impl<S: ServerSelector + ?Sized> ServerSelector for Arc<S> {
    fn pick_server(&self, key: &[u8]) -> Result<ServerAddr, Error> {
        (**self).pick_server(key)
    }
    fn servers(&self) -> Vec<ServerAddr> {
        (**self).servers()
    }
    fn each(&self, f: &mut dyn FnMut(&ServerAddr) -> Result<(), Error>) -> Result<(), Error> {
        (**self).each(f)
    }
    fn replace_servers(&self, servers: &[&str]) -> Result<(), Error> {
        (**self).replace_servers(servers)
    }
    fn refresh(&self) -> Result<(), Error> {
        (**self).refresh()
    }
    fn generation(&self) -> u64 {
        (**self).generation()
    }
    fn supports_ejection(&self) -> bool {
        (**self).supports_ejection()
    }
    fn pick_server_skipping(
        &self,
        key: &[u8],
        skip: &dyn Fn(&ServerAddr) -> bool,
    ) -> Result<ServerAddr, Error> {
        (**self).pick_server_skipping(key, skip)
    }
    fn pick_servers(
        &self,
        keys: &mut dyn Iterator<Item = &[u8]>,
        each: &mut PickEach<'_>,
    ) -> Result<(), Error> {
        (**self).pick_servers(keys, each)
    }
}

/// Every distinct server of `list`, in order.
pub(crate) fn distinct(list: &[ServerAddr]) -> Vec<ServerAddr> {
    let mut out: Vec<ServerAddr> = Vec::with_capacity(list.len());
    for a in list {
        if !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

/// gomemcache's `ServerList`: `crc32_ieee(key) % n` over the servers in the order given.
///
/// A server listed twice gets twice the share of keys. `Default` is an empty list, which
/// answers [`Error::NoServers`] until [`set_servers`](Self::set_servers) is called.
///
/// The list is an immutable snapshot swapped whole on a change: every `pick_server` is one
/// lock-free load, so threads never wait on each other to route a key, and a call keeps the
/// snapshot it started with while the list changes under it.
pub struct ServerList {
    addrs: ArcSwap<Vec<ServerAddr>>,
    resolver: Resolver,
    generation: AtomicU64,
}

impl Default for ServerList {
    fn default() -> Self {
        ServerList::with_resolver(resolve::system())
    }
}

impl fmt::Debug for ServerList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerList").field("addrs", &self.snapshot()).finish()
    }
}

impl ServerList {
    /// A list of `servers` (see [`set_servers`](Self::set_servers)).
    pub fn new<S: AsRef<str>>(servers: impl IntoIterator<Item = S>) -> Result<ServerList, Error> {
        let list = ServerList::default();
        list.set_servers(servers)?;
        Ok(list)
    }

    /// An empty list that looks names up with `resolver` instead of the system's.
    pub fn with_resolver(resolver: Resolver) -> ServerList {
        ServerList { addrs: ArcSwap::from_pointee(Vec::new()), resolver, generation: AtomicU64::new(0) }
    }

    /// Replaces the servers. Each is resolved now (an address containing `/` is a Unix
    /// socket); if any fails, nothing changes. No connection is attempted. Thread-safe:
    /// calls in progress finish with the list they started with.
    pub fn set_servers<S: AsRef<str>>(&self, servers: impl IntoIterator<Item = S>) -> Result<(), Error> {
        let addrs = resolve::resolve_all(servers, &self.resolver)?;
        self.replace(addrs);
        Ok(())
    }

    /// Looks every name up again; see [`ServerSelector::refresh`].
    pub fn refresh(&self) -> Result<(), Error> {
        let refreshed = resolve::refresh(&self.snapshot(), &self.resolver);
        if refreshed.changed {
            self.replace(refreshed.servers.clone());
        }
        refreshed.outcome()
    }

    /// Installs `addrs`, then moves the generation on: whoever sees the new generation
    /// finds the new list (a reader may see the new list a moment before the new number,
    /// which only delays its noticing the change to its next call).
    fn replace(&self, addrs: Vec<ServerAddr>) {
        self.addrs.store(Arc::new(addrs));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn snapshot(&self) -> Arc<Vec<ServerAddr>> {
        self.addrs.load_full()
    }
}

impl ServerSelector for ServerList {
    fn pick_server(&self, key: &[u8]) -> Result<ServerAddr, Error> {
        let addrs = self.addrs.load();
        pick_index(addrs.len(), key).map(|i| addrs[i].clone())
    }

    fn pick_servers(
        &self,
        keys: &mut dyn Iterator<Item = &[u8]>,
        each: &mut PickEach<'_>,
    ) -> Result<(), Error> {
        let addrs = self.addrs.load();
        for key in keys {
            each(key, &addrs[pick_index(addrs.len(), key)?])?;
        }
        Ok(())
    }

    fn servers(&self) -> Vec<ServerAddr> {
        distinct(&self.snapshot())
    }

    fn replace_servers(&self, servers: &[&str]) -> Result<(), Error> {
        ServerList::set_servers(self, servers)
    }

    fn refresh(&self) -> Result<(), Error> {
        ServerList::refresh(self)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// gomemcache's choice among `n` servers: none is an error, one takes every key (no hash),
/// otherwise `crc32_ieee(key) % n`.
fn pick_index(n: usize, key: &[u8]) -> Result<usize, Error> {
    match n {
        0 => Err(Error::NoServers),
        1 => Ok(0),
        n => Ok(crc32fast::hash(key) as usize % n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_single() {
        let l = ServerList::default();
        assert!(matches!(l.pick_server(b"k"), Err(Error::NoServers)));
        l.set_servers(["127.0.0.1:1"]).expect("resolves");
        assert_eq!(l.pick_server(b"anything").expect("one").to_string(), "127.0.0.1:1");
        assert!(l.set_servers(["127.0.0.1:1", "not a host:::"]).is_err());
        assert_eq!(l.servers().len(), 1, "failed set_servers changes nothing");
        l.set_servers(["/tmp/mc.sock", "/tmp/mc.sock"]).expect("unix");
        assert_eq!(l.servers().len(), 1, "duplicates are visited once");
        assert!(matches!(l.pick_server(b"x").expect("unix").endpoint(), Endpoint::Unix(_)));
    }

    #[test]
    fn an_owner_changes_a_shared_list_and_the_generation_says_so() {
        let owner = Arc::new(ServerList::new(["127.0.0.1:1"]).expect("resolves"));
        let given: Box<dyn ServerSelector> = Box::new(owner.clone());
        let before = given.generation();
        owner.set_servers(["127.0.0.1:2", "127.0.0.1:3"]).expect("resolves");
        assert_ne!(given.generation(), before);
        assert_eq!(given.servers().len(), 2);
        let at = given.generation();
        assert!(given.replace_servers(&["127.0.0.1:4", "bad host:::"]).is_err());
        assert_eq!(given.generation(), at, "a failed change changes nothing");
        given.refresh().expect("literals resolve");
        assert_eq!(given.generation(), at, "a refresh that finds the same addresses is no change");
        assert!(!given.supports_ejection());
    }
}
