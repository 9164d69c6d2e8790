//! [`ChaosProxy`]: a proxy in front of a real server that injects faults at random (seeded):
//! stalls, resets, garbage, half replies and slow reads, for soak tests.

use std::fmt;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use super::GARBAGE_REPLY;
use super::net::{Background, connect_any, read_chunk};
use crate::conformance::XorShift;

/// How often and how hard a [`ChaosProxy`] misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    /// Seed of the fault choices (each connection draws from `seed` and its own index).
    pub seed: u64,
    /// Probability, in parts per million, that a reply chunk gets a fault.
    pub per_million: u64,
    /// How long a stalled reply is held before it is dropped with its connection; longer than
    /// the clients' timeout, so that the caller times out first.
    pub stall: Duration,
}

/// The faults, each tallied by [`ChaosProxy::injected`].
pub const FAULTS: [&str; 5] = ["stall", "reset", "garbage", "half", "slow"];

/// A TCP proxy on `127.0.0.1` in front of an upstream server. Requests pass unchanged and at
/// once (a delayed request could reach the server after a later one, which no client can
/// prevent); a reply chunk, with the probability [`Chaos::per_million`], instead:
/// - `stall`: is held for [`Chaos::stall`], then dropped with the connection;
/// - `reset`: is dropped and the connection cut at once;
/// - `garbage`: is replaced by bytes that are not the protocol, then the connection is cut;
/// - `half`: only its first half is passed on, then the connection is cut;
/// - `slow`: is passed on a few bytes per write with short pauses (the reply is intact).
pub struct ChaosProxy {
    injected: Arc<[AtomicUsize; 5]>,
    background: Background,
}

impl fmt::Debug for ChaosProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChaosProxy")
            .field("addr", &self.background.addr)
            .field("injected", &self.injected())
            .finish()
    }
}

impl ChaosProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (a TCP `host:port`).
    ///
    /// # Panics
    /// If `upstream` does not resolve.
    pub fn start(upstream: &str, chaos: Chaos) -> ChaosProxy {
        let targets: Vec<SocketAddr> = upstream
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("proxy upstream {upstream:?} does not resolve: {e}"))
            .collect();
        let injected: Arc<[AtomicUsize; 5]> = Arc::new(Default::default());
        let tally = Arc::clone(&injected);
        let accepted = AtomicUsize::new(0);
        let background = Background::start("chaos-proxy", move |client, registry, stop| {
            let index = accepted.fetch_add(1, Ordering::SeqCst) as u64;
            let Some(upstream) = connect_any(&targets) else { return };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let Some(id) = registry.register(&[&client, &upstream]) else { return };
            let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
                registry.unregister(id);
                return;
            };
            let (reg, reg2) = (Arc::clone(registry), Arc::clone(registry));
            let (tally, stop) = (Arc::clone(&tally), Arc::clone(stop));
            let rng = XorShift::new(chaos.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            registry.spawn_worker("chaos-c2s", move || {
                pass(client, upstream);
                reg.unregister(id);
            });
            registry.spawn_worker("chaos-s2c", move || {
                let mut link = Link { chaos, rng, tally, stop };
                link.replies(upstream2, client2);
                reg2.unregister(id);
            });
        });
        ChaosProxy { injected, background }
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        self.background.addr.to_string()
    }

    /// How many of each fault of [`FAULTS`] were injected so far.
    pub fn injected(&self) -> [(&'static str, usize); 5] {
        std::array::from_fn(|i| (FAULTS[i], self.injected[i].load(Ordering::Relaxed)))
    }
}

/// Client -> server, unchanged.
fn pass(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(n) = read_chunk(&mut from, &mut buf) {
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

struct Link {
    chaos: Chaos,
    rng: XorShift,
    tally: Arc<[AtomicUsize; 5]>,
    stop: Arc<AtomicBool>,
}

impl Link {
    /// Server -> client, with faults.
    fn replies(&mut self, mut upstream: TcpStream, mut client: TcpStream) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(n) = read_chunk(&mut upstream, &mut buf) {
            let chunk = &buf[..n];
            let fault =
                (self.rng.below(1_000_000) < self.chaos.per_million).then(|| self.rng.below(5) as usize);
            if let Some(f) = fault {
                self.tally[f].fetch_add(1, Ordering::Relaxed);
            }
            let go_on = match fault {
                None => client.write_all(chunk).is_ok(),
                Some(0) => {
                    self.pause(self.chaos.stall);
                    false
                }
                Some(1) => false,
                Some(2) => {
                    let _ = client.write_all(GARBAGE_REPLY);
                    false
                }
                Some(3) => {
                    let _ = client.write_all(&chunk[..n / 2]);
                    false
                }
                Some(_) => self.slowly(&mut client, chunk),
            };
            if !go_on {
                break;
            }
        }
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
    }

    /// Writes `chunk` in pieces of 1 to 64 bytes, pausing a little now and then.
    fn slowly(&mut self, client: &mut TcpStream, chunk: &[u8]) -> bool {
        let mut rest = chunk;
        while !rest.is_empty() {
            let n = (1 + self.rng.below(64) as usize).min(rest.len());
            if client.write_all(&rest[..n]).is_err() {
                return false;
            }
            rest = &rest[n..];
            if self.rng.below(8) == 0 {
                thread::sleep(Duration::from_micros(200));
            }
        }
        true
    }

    /// Waits `d` in slices, cut short when the proxy stops.
    fn pause(&self, d: Duration) {
        let slice = Duration::from_millis(5);
        let mut left = d;
        while !left.is_zero() && !self.stop.load(Ordering::SeqCst) {
            let step = left.min(slice);
            thread::sleep(step);
            left -= step;
        }
    }
}
