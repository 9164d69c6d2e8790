//! Small helpers of the suite: a deterministic PRNG, direct server checks, dead addresses.

use std::net::TcpListener;
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use memcache_proto::{ServerList, ServerSelector};

use crate::memcached::Memcached;

/// A tiny xorshift64* PRNG: deterministic per seed, good enough to pick operations and keys.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (any value, 0 included).
    pub fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so that neighbouring seeds give unrelated streams; never 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// The remaining TTL of `key` as the server reports it (`mg <key> t`): `Some(-1)` for "never
/// expires", `None` on a miss.
pub(crate) fn ttl(m: &Memcached, key: &str) -> Option<i64> {
    let reply = m.request(format!("mg {key} t\r\n").as_bytes());
    let text = String::from_utf8_lossy(&reply).into_owned();
    if text == "EN\r\n" {
        return None;
    }
    let t = text
        .strip_prefix("HD ")
        .and_then(|rest| rest.trim_end().split(' ').find_map(|flag| flag.strip_prefix('t')))
        .unwrap_or_else(|| panic!("unexpected reply to `mg {key} t`: {text:?}"));
    Some(t.parse().unwrap_or_else(|e| panic!("TTL {t:?} of {key:?}: {e}")))
}

/// Which of `servers` gomemcache's `ServerList` picks for `key` (its index).
pub(crate) fn owner(servers: &[String], key: &str) -> usize {
    let list = ServerList::new(servers).expect("the test's server list resolves");
    let picked = list.pick_server(key.as_bytes()).expect("a server for the key");
    servers
        .iter()
        .position(|s| *s == picked.to_string())
        .unwrap_or_else(|| panic!("pick_server gave {picked}, not one of {servers:?}"))
}

/// Keys `"{prefix}{i}"` whose owner among `servers` is `index`, `n` of them.
pub(crate) fn keys_owned_by(servers: &[String], index: usize, prefix: &str, n: usize) -> Vec<String> {
    (0..100_000).map(|i| format!("{prefix}{i}")).filter(|k| owner(servers, k) == index).take(n).collect()
}

/// A loopback address nobody listens on (bound, then released): connecting is refused.
pub(crate) fn closed_port_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local_addr").to_string();
    drop(listener);
    addr
}

/// Polls `cond` (the state of another process, e.g. a server's connection count) until it holds
/// or `timeout` passes; returns whether it held. Not a synchronisation between our own threads:
/// there is no event to wait on for "the server noticed a close". Yields to the executor between
/// polls, so a client's background tasks (on a single-threaded runtime too) keep running.
pub(crate) async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        yield_now().await;
        thread::sleep(Duration::from_millis(1));
        yield_now().await;
    }
}

/// `curr_connections` once the launcher's own probe connections are seen closed: memcached 1.6
/// counts the asking connection itself, so an otherwise idle server reports 1. A single reading
/// is not a baseline: the previous probe's close may not be processed yet (it is handled by
/// another worker thread than the next connection's `stats`), which reads one too many.
pub(crate) async fn settled_connections(m: &Memcached) -> u64 {
    let mut low = u64::MAX;
    eventually(Duration::from_secs(5), || {
        low = low.min(m.stat_u64("curr_connections"));
        low <= 1
    })
    .await;
    low
}

/// Lets the executor run other tasks once (works on any executor, including a trivial one).
pub(crate) async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Stores `items` directly on `m` with one pipelined request, checking every `STORED`.
pub(crate) fn store_direct(m: &Memcached, items: &[(String, Vec<u8>)]) {
    for chunk in items.chunks(200) {
        let mut req = Vec::new();
        for (k, v) in chunk {
            req.extend_from_slice(format!("set {k} 0 0 {}\r\n", v.len()).as_bytes());
            req.extend_from_slice(v);
            req.extend_from_slice(b"\r\n");
        }
        let reply = m.request(&req);
        assert_eq!(
            reply,
            b"STORED\r\n".repeat(chunk.len()),
            "direct set of {} items on {}",
            chunk.len(),
            m.addr()
        );
    }
}
