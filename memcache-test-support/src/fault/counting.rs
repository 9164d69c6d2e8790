//! [`CountingProxy`]: counts the commands that reach a real server, and can lose a reply after
//! the server applied the command, which is how a client's retry rule is tested.

use std::collections::HashMap;
use std::fmt;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::net::{Background, connect_any, lock, read_chunk, wait_until};

/// Storage verbs, whose command line is followed by a data block.
const STORAGE: [&str; 6] = ["set", "add", "replace", "append", "prepend", "cas"];

/// A TCP proxy on `127.0.0.1` in front of a real server that counts every command it forwards,
/// by verb (`incr`, `set`, `gets`, ...), and that, once armed with
/// [`cut_next_reply`](Self::cut_next_reply), forwards the next command, waits until the
/// server answers it (so the server has applied it) and then closes the client's connection
/// instead of passing the answer on: the client's request may have taken effect, and it cannot
/// know. A client that sends such a request again shows up as a second arrival.
pub struct CountingProxy {
    state: Arc<State>,
    background: Background,
}

#[derive(Default)]
struct State {
    arrivals: Mutex<HashMap<String, usize>>,
    armed: AtomicBool,
}

impl fmt::Debug for CountingProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingProxy")
            .field("addr", &self.background.addr)
            .field("arrivals", &*lock(&self.state.arrivals))
            .finish()
    }
}

impl CountingProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (a TCP `host:port`).
    ///
    /// # Panics
    /// If `upstream` does not resolve.
    pub fn start(upstream: &str) -> CountingProxy {
        let targets: Vec<SocketAddr> = upstream
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("proxy upstream {upstream:?} does not resolve: {e}"))
            .collect();
        let state = Arc::new(State::default());
        let st = Arc::clone(&state);
        let background = Background::start("counting-proxy", move |client, registry, _stop| {
            let Some(upstream) = connect_any(&targets) else { return };
            let _ = client.set_nodelay(true);
            let Some(id) = registry.register(&[&client, &upstream]) else { return };
            let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
                registry.unregister(id);
                return;
            };
            let cut = Arc::new(AtomicBool::new(false));
            let (st, cut2) = (Arc::clone(&st), Arc::clone(&cut));
            let (reg, reg2) = (Arc::clone(registry), Arc::clone(registry));
            registry.spawn_worker("counting-c2s", move || {
                forward_requests(&st, &cut, client, upstream);
                reg.unregister(id);
            });
            registry.spawn_worker("counting-s2c", move || {
                forward_replies(&cut2, upstream2, client2);
                reg2.unregister(id);
            });
        });
        CountingProxy { state, background }
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        self.background.addr.to_string()
    }

    /// How many commands with this verb reached the server so far.
    pub fn arrivals(&self, verb: &str) -> usize {
        lock(&self.state.arrivals).get(verb).copied().unwrap_or(0)
    }

    /// Waits (bounded by `timeout`) until `verb` has arrived at least `n` times.
    pub fn wait_arrivals(&self, verb: &str, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.arrivals(verb) >= n)
    }

    /// The next command to arrive (on any connection) is forwarded, and the connection that
    /// carried it is closed as soon as the server's answer arrives, the answer discarded.
    pub fn cut_next_reply(&self) {
        self.state.armed.store(true, Ordering::SeqCst);
    }
}

/// Client -> server: counts complete commands; when armed, marks this connection's replies to
/// be cut before forwarding the command that takes the charge.
fn forward_requests(state: &State, cut: &AtomicBool, mut client: TcpStream, mut upstream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending = Vec::new();
    while let Some(n) = read_chunk(&mut client, &mut buf) {
        pending.extend_from_slice(&buf[..n]);
        let verbs = take_commands(&mut pending);
        if !verbs.is_empty() {
            let mut arrivals = lock(&state.arrivals);
            for verb in verbs {
                *arrivals.entry(verb).or_default() += 1;
            }
            drop(arrivals);
            if state.armed.swap(false, Ordering::SeqCst) {
                cut.store(true, Ordering::SeqCst);
            }
        }
        if std::io::Write::write_all(&mut upstream, &buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

/// Server -> client: passes replies on, unless the connection was marked to be cut: then the
/// first reply is discarded and both sides are closed.
fn forward_replies(cut: &AtomicBool, mut upstream: TcpStream, mut client: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Some(n) = read_chunk(&mut upstream, &mut buf) {
        if cut.load(Ordering::SeqCst) || std::io::Write::write_all(&mut client, &buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = upstream.shutdown(Shutdown::Both);
}

/// Removes the complete commands at the front of `pending` and returns their verbs. A storage
/// command is complete once its data block and its `\r\n` are there too.
fn take_commands(pending: &mut Vec<u8>) -> Vec<String> {
    let mut verbs = Vec::new();
    let mut at = 0;
    while let Some(nl) = pending[at..].iter().position(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(&pending[at..at + nl]).trim_end().to_string();
        let mut words = line.split(' ');
        let verb = words.next().unwrap_or("").to_string();
        let mut end = at + nl + 1;
        if STORAGE.contains(&verb.as_str()) {
            let len = words.nth(3).and_then(|l| l.parse::<usize>().ok()).unwrap_or(0);
            end += len + 2;
            if end > pending.len() {
                break;
            }
        }
        verbs.push(verb);
        at = end;
    }
    pending.drain(..at);
    verbs
}

#[cfg(test)]
mod tests {
    use super::take_commands;

    #[test]
    fn commands_are_counted_once_complete() {
        let mut p = b"incr n 1\r\nset k 0 0 5\r\nhel".to_vec();
        assert_eq!(take_commands(&mut p), ["incr"]);
        p.extend_from_slice(b"lo\r\ngets a b\r\n");
        assert_eq!(take_commands(&mut p), ["set", "gets"]);
        assert!(p.is_empty());
    }
}
