//! Choosing the server for a key, bit for bit as gomemcache does.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::Error;

/// A memcached server: a TCP address or a Unix socket path. Displays as the address it was
/// given; cheap to clone.
#[derive(Clone)]
pub struct ServerAddr(Arc<AddrInner>);

struct AddrInner {
    name: String,
    endpoint: Endpoint,
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
    /// (once, now) as a TCP `host:port`.
    ///
    /// This name lookup is the only system call memcache-proto ever makes.
    pub fn resolve(addr: &str) -> Result<ServerAddr, Error> {
        let endpoint = if addr.contains('/') {
            Endpoint::Unix(PathBuf::from(addr))
        } else {
            let mut addrs = addr.to_socket_addrs().map_err(|e| Error::BadAddress(format!("{addr}: {e}")))?;
            Endpoint::Tcp(addrs.next().ok_or_else(|| Error::BadAddress(format!("{addr}: no address")))?)
        };
        Ok(ServerAddr(Arc::new(AddrInner { name: addr.to_owned(), endpoint })))
    }

    /// A TCP server at `addr`.
    pub fn tcp(addr: SocketAddr) -> ServerAddr {
        ServerAddr(Arc::new(AddrInner { name: addr.to_string(), endpoint: Endpoint::Tcp(addr) }))
    }

    /// A Unix socket server at `path`.
    pub fn unix(path: impl AsRef<Path>) -> ServerAddr {
        let path = path.as_ref();
        let name = path.to_string_lossy().into_owned();
        ServerAddr(Arc::new(AddrInner { name, endpoint: Endpoint::Unix(path.to_owned()) }))
    }

    /// A server reached only through a custom connector, known by `name`.
    pub fn custom(name: &str) -> ServerAddr {
        ServerAddr(Arc::new(AddrInner { name: name.to_owned(), endpoint: Endpoint::Custom }))
    }

    /// Where to connect.
    pub fn endpoint(&self) -> &Endpoint {
        &self.0.endpoint
    }

    /// The address as it was given.
    pub fn as_str(&self) -> &str {
        &self.0.name
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
        Arc::ptr_eq(&self.0, &other.0) || (self.0.name == other.0.name && self.0.endpoint == other.0.endpoint)
    }
}

impl Eq for ServerAddr {}

impl Hash for ServerAddr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

/// Picks the server that holds a key. Implement it for custom sharding (consistent hashing,
/// failover); [`ServerList`] is gomemcache's default.
pub trait ServerSelector: Send + Sync + fmt::Debug {
    /// The server for `key`.
    fn pick_server(&self, key: &[u8]) -> Result<ServerAddr, Error>;

    /// Every distinct server, in configuration order (for `flush_all`, `stats`, `ping`).
    fn servers(&self) -> Vec<ServerAddr>;

    /// Calls `f` for every distinct server, stopping at the first error.
    fn each(&self, f: &mut dyn FnMut(&ServerAddr) -> Result<(), Error>) -> Result<(), Error> {
        self.servers().iter().try_for_each(f)
    }
}

/// gomemcache's `ServerList`: `crc32_ieee(key) % n` over the servers in the order given.
///
/// A server listed twice gets twice the share of keys. `Default` is an empty list, which
/// answers [`Error::NoServers`] until [`set_servers`](Self::set_servers) is called.
#[derive(Debug, Default)]
pub struct ServerList {
    addrs: RwLock<Arc<[ServerAddr]>>,
}

impl ServerList {
    /// A list of `servers` (see [`set_servers`](Self::set_servers)).
    pub fn new<S: AsRef<str>>(servers: impl IntoIterator<Item = S>) -> Result<ServerList, Error> {
        let list = ServerList::default();
        list.set_servers(servers)?;
        Ok(list)
    }

    /// Replaces the servers. Each is resolved now (an address containing `/` is a Unix
    /// socket); if any fails, nothing changes. No connection is attempted. Thread-safe:
    /// calls in progress finish with the list they started with.
    pub fn set_servers<S: AsRef<str>>(&self, servers: impl IntoIterator<Item = S>) -> Result<(), Error> {
        let addrs =
            servers.into_iter().map(|s| ServerAddr::resolve(s.as_ref())).collect::<Result<Arc<[_]>, _>>()?;
        *self.addrs.write().unwrap_or_else(|p| p.into_inner()) = addrs;
        Ok(())
    }

    fn snapshot(&self) -> Arc<[ServerAddr]> {
        self.addrs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ServerSelector for ServerList {
    fn pick_server(&self, key: &[u8]) -> Result<ServerAddr, Error> {
        let addrs = self.addrs.read().unwrap_or_else(|p| p.into_inner());
        match addrs.len() {
            0 => Err(Error::NoServers),
            1 => Ok(addrs[0].clone()),
            n => Ok(addrs[crc32fast::hash(key) as usize % n].clone()),
        }
    }

    fn servers(&self) -> Vec<ServerAddr> {
        let mut out: Vec<ServerAddr> = Vec::new();
        for a in self.snapshot().iter() {
            if !out.contains(a) {
                out.push(a.clone());
            }
        }
        out
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
}
