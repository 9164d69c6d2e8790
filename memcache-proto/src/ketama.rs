//! Ketama consistent hashing, bit for bit as libmemcached and spymemcached place keys.
//!
//! Each server owns many points on a ring of `u32` values (MD5 of a per-server "point key");
//! a key goes to the first point at or after the MD5 of the key, wrapping around. Adding or
//! removing a server moves only the keys of the arcs it gains or loses (about `1/n` of them),
//! where gomemcache's `crc32 % n` moves almost every key. Fleets shared with PHP
//! (`php-memcached` with `OPT_LIBKETAMA_COMPATIBLE`), Python (`pylibmc` with
//! `ketama_weighted`) or Java (spymemcached's `KetamaNodeLocator`) clients must place keys
//! exactly as those do, or every client misses what the others stored: the golden tests hold
//! these selectors to rings recorded from the reference libraries.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use md5::{Digest, Md5};

use crate::resolve::{self, Resolver};
use crate::selector::{Endpoint, distinct};
use crate::{Error, ServerAddr, ServerSelector};

/// libmemcached's `MEMCACHED_POINTS_PER_SERVER_KETAMA`: points per server of average weight.
const POINTS_PER_SERVER: f32 = 160.0;

/// Whose ring to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    /// libmemcached's `MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`.
    Libmemcached,
    /// spymemcached's `KetamaNodeLocator` with `KETAMA_HASH`.
    Spymemcached,
}

/// One point of the ring: a hash value owned by a server (its index in the given order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Point {
    value: u32,
    server: u32,
}

/// The servers (in the order given, with their weights) and their sorted points.
#[derive(Debug, Default)]
struct Ring {
    servers: Vec<(ServerAddr, u32)>,
    points: Vec<Point>,
}

/// A consistent-hashing [`ServerSelector`] compatible with libmemcached or spymemcached.
///
/// Addresses are given as for [`ServerList`](crate::ServerList): `host:port` names are
/// resolved now (every address kept), a name containing `/` is a Unix socket, and a returned
/// [`ServerAddr`] displays as the address was given. The ring is computed from the names as
/// written, as the reference libraries do, so write them as the other clients of the fleet
/// do (`10.0.0.1:11211` and `cache1:11211` are different points).
///
/// ```
/// use memcache_proto::{Ketama, ServerSelector};
///
/// let ring = Ketama::libmemcached([("10.0.0.1:11211", 1), ("10.0.0.2:11211", 1), ("10.0.0.3:11211", 1)])?;
/// assert_eq!(ring.pick_server(b"user:2")?.to_string(), "10.0.0.3:11211");
/// # Ok::<(), memcache_proto::Error>(())
/// ```
///
/// As with `ServerList`, the ring is an immutable snapshot swapped whole on a change, so a
/// lookup is one lock-free load.
pub struct Ketama {
    flavor: Flavor,
    ring: ArcSwap<Ring>,
    resolver: Resolver,
    generation: AtomicU64,
}

impl fmt::Debug for Ketama {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.snapshot();
        f.debug_struct("Ketama")
            .field("flavor", &self.flavor)
            .field("servers", &ring.servers)
            .field("points", &ring.points.len())
            .field("resolver", &resolve::ShowResolver)
            .finish()
    }
}

impl Ketama {
    /// libmemcached's weighted ketama (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`, MD5), as used by
    /// php-memcached's `OPT_LIBKETAMA_COMPATIBLE` and pylibmc's `ketama_weighted`: each
    /// server is an address and its weight (at least 1). A server's share of the 160 points
    /// per server is proportional to its weight.
    pub fn libmemcached<S: AsRef<str>>(servers: impl IntoIterator<Item = (S, u32)>) -> Result<Ketama, Error> {
        let ketama = Ketama::empty(Flavor::Libmemcached, resolve::system());
        ketama.set_weighted_servers(servers)?;
        Ok(ketama)
    }

    /// spymemcached's `KetamaNodeLocator` (`KETAMA_HASH`, 160 points per server, no weights).
    ///
    /// spymemcached keys a server's points by `ip:port` of an address given as an IP, and
    /// by `host/ip:port` of a name (the address Java resolved), so give IPs, or names that
    /// resolve the same for both clients (the first address, IPv4 first, is used here).
    pub fn spymemcached<S: AsRef<str>>(servers: impl IntoIterator<Item = S>) -> Result<Ketama, Error> {
        let ketama = Ketama::empty(Flavor::Spymemcached, resolve::system());
        ketama.set_weighted_servers(servers.into_iter().map(|s| (s, 1)))?;
        Ok(ketama)
    }

    fn empty(flavor: Flavor, resolver: Resolver) -> Ketama {
        Ketama { flavor, ring: ArcSwap::default(), resolver, generation: AtomicU64::new(0) }
    }

    /// The same selector, looking names up with `resolver` from now on (in
    /// [`set_weighted_servers`](Self::set_weighted_servers) and [`refresh`](Self::refresh)).
    pub fn with_resolver(mut self, resolver: Resolver) -> Ketama {
        self.resolver = resolver;
        self
    }

    /// Replaces the servers and their weights, all or nothing: if a name fails to resolve
    /// or a weight is 0 (or not 1 for spymemcached, which has no weights), nothing changes.
    pub fn set_weighted_servers<S: AsRef<str>>(
        &self,
        servers: impl IntoIterator<Item = (S, u32)>,
    ) -> Result<(), Error> {
        let (names, weights): (Vec<S>, Vec<u32>) = servers.into_iter().unzip();
        if let Some(bad) =
            weights.iter().find(|&&w| w == 0 || (self.flavor == Flavor::Spymemcached && w != 1))
        {
            return Err(Error::InvalidConfig(format!(
                "ketama weight {bad}: {:?} weights must be >= 1",
                self.flavor
            )));
        }
        let addrs = resolve::resolve_all(names, &self.resolver)?;
        self.install(addrs.into_iter().zip(weights).collect());
        Ok(())
    }

    /// Replaces the servers, each with weight 1; see
    /// [`set_weighted_servers`](Self::set_weighted_servers).
    pub fn set_servers<S: AsRef<str>>(&self, servers: impl IntoIterator<Item = S>) -> Result<(), Error> {
        self.set_weighted_servers(servers.into_iter().map(|s| (s, 1)))
    }

    /// Looks every name up again; see [`ServerSelector::refresh`]. The ring changes only for
    /// spymemcached servers given by name, whose points depend on the address.
    pub fn refresh(&self) -> Result<(), Error> {
        let ring = self.snapshot();
        let current: Vec<ServerAddr> = ring.servers.iter().map(|(a, _)| a.clone()).collect();
        let refreshed = resolve::refresh(&current, &self.resolver);
        if refreshed.changed {
            let weights = ring.servers.iter().map(|(_, w)| *w);
            self.install(refreshed.servers.iter().cloned().zip(weights).collect());
        }
        refreshed.outcome()
    }

    /// The hash of `key` that is looked up on the ring: the little-endian `u32` of the first
    /// four bytes of its MD5.
    pub fn hash(key: &[u8]) -> u32 {
        word(&Md5::digest(key), 0)
    }

    /// The ring, sorted: each point's value and the index (in the order given) of the server
    /// that owns it. For checking compatibility with another client's ring.
    pub fn continuum(&self) -> Vec<(u32, usize)> {
        self.snapshot().points.iter().map(|p| (p.value, p.server as usize)).collect()
    }

    fn install(&self, servers: Vec<(ServerAddr, u32)>) {
        self.ring.store(Arc::new(Ring::build(self.flavor, servers)));
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn snapshot(&self) -> Arc<Ring> {
        self.ring.load_full()
    }

    /// The server owning the first point at or after `key`'s hash for which `skip` is false;
    /// the first point's server if `skip` excludes everything.
    fn locate(&self, key: &[u8], skip: &dyn Fn(&ServerAddr) -> bool) -> Result<ServerAddr, Error> {
        self.ring.load().locate(key, skip).cloned()
    }
}

impl Ring {
    /// [`Ketama::locate`] on this ring.
    fn locate(&self, key: &[u8], skip: &dyn Fn(&ServerAddr) -> bool) -> Result<&ServerAddr, Error> {
        match self.servers.len() {
            0 => return Err(Error::NoServers),
            // libmemcached short-circuits one server (so does any ring of one).
            1 => return Ok(&self.servers[0].0),
            _ => {}
        }
        let hash = Ketama::hash(key);
        let n = self.points.len();
        let start = self.points.partition_point(|p| p.value < hash);
        let server = |i: usize| &self.servers[self.points[(start + i) % n].server as usize].0;
        match (0..n).map(server).find(|s| !skip(s)) {
            Some(found) => Ok(found),
            None if n == 0 => Err(Error::NoServers),
            None => Ok(server(0)),
        }
    }

    fn build(flavor: Flavor, servers: Vec<(ServerAddr, u32)>) -> Ring {
        let mut points = Vec::new();
        let total: u64 = servers.iter().map(|(_, w)| u64::from(*w)).sum();
        for (index, (addr, weight)) in servers.iter().enumerate() {
            let (base, hashes) = match flavor {
                Flavor::Libmemcached => {
                    (libmemcached_point_key(addr), hashes_for(*weight, total, servers.len()))
                }
                Flavor::Spymemcached => (spymemcached_point_key(addr), POINTS_PER_SERVER as u32 / 4),
            };
            for i in 0..hashes {
                let digest = Md5::digest(format!("{base}-{i}").as_bytes());
                points.extend((0..4).map(|w| Point { value: word(&digest, w), server: index as u32 }));
            }
        }
        points.sort_unstable();
        if flavor == Flavor::Spymemcached {
            // spymemcached's ring is a TreeMap: a later server's equal point replaces the
            // earlier one's. Sorted by (value, server), the last of each run is that one.
            points.reverse();
            points.dedup_by_key(|p| p.value);
            points.reverse();
        }
        Ring { servers, points }
    }
}

/// How many MD5 digests (4 points each) a server of `weight` gets in libmemcached's weighted
/// ketama: `floor(pct * 160 / 4 * n + 1e-10)`, computed in 32-bit float as the C code does
/// (its `float` arithmetic decides the rounding, so it must be reproduced, not improved).
fn hashes_for(weight: u32, total: u64, servers: usize) -> u32 {
    let pct = weight as f32 / total as f32;
    (pct * POINTS_PER_SERVER / 4.0 * servers as f32 + 0.000_000_000_1_f32).floor() as u32
}

/// The little-endian `u32` in bytes `4w..4w+4` of an MD5 digest.
fn word(digest: &[u8], w: usize) -> u32 {
    let mut bytes = [0u8; 4];
    bytes.copy_from_slice(&digest[4 * w..4 * w + 4]);
    u32::from_le_bytes(bytes)
}

/// `host` and `port` of a `host:port` name, brackets of an IPv6 literal removed; `None` for
/// a name without a port.
fn split_host_port(name: &str) -> Option<(&str, u16)> {
    let (host, port) = name.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// libmemcached's point key base: `host` on the default port 11211, `host:port` otherwise, and
/// `path:0` for a Unix socket (libmemcached gives sockets port 0).
fn libmemcached_point_key(addr: &ServerAddr) -> String {
    let name = addr.as_str();
    match (addr.endpoint(), split_host_port(name)) {
        (Endpoint::Tcp(_), Some((host, 11211))) => host.to_owned(),
        (Endpoint::Tcp(_), Some((host, port))) => format!("{host}:{port}"),
        _ => format!("{name}:0"),
    }
}

/// spymemcached's point key base: Java's `InetSocketAddress.toString()` without its leading
/// `/`: `ip:port` for an address given as an IP (IPv6 in Java's uncompressed form), and
/// `host/ip:port` for a name. Other servers (Unix sockets, which spymemcached does not
/// support) use their name.
fn spymemcached_point_key(addr: &ServerAddr) -> String {
    let name = addr.as_str();
    let (Endpoint::Tcp(resolved), Some((host, port))) = (addr.endpoint(), split_host_port(name)) else {
        return name.to_owned();
    };
    match host.parse::<IpAddr>() {
        Ok(ip) => format!("{}:{port}", java_ip(ip)),
        Err(_) => format!("{host}/{}:{port}", java_ip(resolved.ip())),
    }
}

/// An IP as Java's `InetAddress.getHostAddress()` writes it (IPv6 uncompressed).
fn java_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => ip.segments().iter().map(|s| format!("{s:x}")).collect::<Vec<_>>().join(":"),
    }
}

impl ServerSelector for Ketama {
    fn pick_server(&self, key: &[u8]) -> Result<ServerAddr, Error> {
        self.locate(key, &|_| false)
    }

    fn servers(&self) -> Vec<ServerAddr> {
        let ring = self.snapshot();
        distinct(&ring.servers.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>())
    }

    /// Replaces the servers, each with weight 1; see [`Ketama::set_weighted_servers`].
    fn replace_servers(&self, servers: &[&str]) -> Result<(), Error> {
        self.set_weighted_servers(servers.iter().map(|s| (*s, 1)))
    }

    fn refresh(&self) -> Result<(), Error> {
        Ketama::refresh(self)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn supports_ejection(&self) -> bool {
        true
    }

    /// The next server along the ring that `skip` does not exclude: only the skipped
    /// servers' keys move, and each to the server that would take it if the skipped server
    /// were removed (for equal weights; libmemcached's own auto-eject also rescales the
    /// remaining servers' weights, moving a few more keys).
    fn pick_server_skipping(
        &self,
        key: &[u8],
        skip: &dyn Fn(&ServerAddr) -> bool,
    ) -> Result<ServerAddr, Error> {
        self.locate(key, skip)
    }

    fn pick_servers(
        &self,
        keys: &mut dyn Iterator<Item = &[u8]>,
        each: &mut crate::selector::PickEach<'_>,
    ) -> Result<(), Error> {
        let ring = self.ring.load();
        for key in keys {
            each(key, ring.locate(key, &|_| false)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_keys_follow_each_library() {
        let lib = |s: &str| libmemcached_point_key(&ServerAddr::resolve(s).expect("literal"));
        assert_eq!(lib("10.0.0.1:11211"), "10.0.0.1");
        assert_eq!(lib("127.0.0.1:11212"), "127.0.0.1:11212");
        assert_eq!(lib("[::1]:11211"), "::1");
        assert_eq!(lib("/run/mc.sock"), "/run/mc.sock:0");
        let spy = |s: &str| spymemcached_point_key(&ServerAddr::resolve(s).expect("literal"));
        assert_eq!(spy("10.0.0.1:11211"), "10.0.0.1:11211");
        assert_eq!(spy("[::1]:11211"), "0:0:0:0:0:0:0:1:11211");
        let named = ServerAddr::with_addrs("cache:11211", ["10.0.0.7:11211".parse().expect("literal")]);
        assert_eq!(spymemcached_point_key(&named.expect("one address")), "cache/10.0.0.7:11211");
    }

    #[test]
    fn weights_follow_the_float32_rule() {
        assert_eq!(hashes_for(1, 3, 3), 40);
        assert_eq!(hashes_for(1, 6, 3), 20);
        assert_eq!(hashes_for(3, 6, 3), 60);
        // 1/3 * 40 * 2 = 26.67: rounded down, as libmemcached does.
        assert_eq!(hashes_for(1, 3, 2), 26);
    }

    #[test]
    fn bad_weights_and_empty_rings() {
        assert!(matches!(Ketama::libmemcached([("10.0.0.1:1", 0)]), Err(Error::InvalidConfig(_))));
        let spy = Ketama::spymemcached(["10.0.0.1:1"]).expect("one");
        assert!(spy.set_weighted_servers([("10.0.0.1:1", 2)]).is_err(), "spymemcached has no weights");
        let empty = Ketama::libmemcached(Vec::<(&str, u32)>::new()).expect("empty");
        assert!(matches!(empty.pick_server(b"k"), Err(Error::NoServers)));
        assert!(empty.continuum().is_empty());
    }

    #[test]
    fn skipping_moves_only_the_skipped_servers_keys() {
        let names = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "10.0.0.4:11211"];
        let ring = Ketama::libmemcached(names.iter().map(|n| (*n, 1))).expect("literals");
        let down = ring.servers()[1].clone();
        let mut moved = 0;
        for i in 0..2000 {
            let key = format!("key:{i}");
            let before = ring.pick_server(key.as_bytes()).expect("servers");
            let after = ring.pick_server_skipping(key.as_bytes(), &|s| *s == down).expect("servers");
            if before == down {
                assert_ne!(after, down);
                moved += 1;
            } else {
                assert_eq!(after, before, "{key} of a live server stayed");
            }
        }
        assert!(moved > 300, "about a quarter of the keys were on the skipped server: {moved}");
        let all = ring.pick_server_skipping(b"k", &|_| true).expect("servers");
        assert_eq!(all, ring.pick_server(b"k").expect("servers"), "nothing left: the usual server");
    }
}
