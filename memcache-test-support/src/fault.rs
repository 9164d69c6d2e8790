//! Fault injection on loopback: fake servers that misbehave ([`FaultServer`]) and a proxy in front
//! of a real server that can slow, hold, delay or cut its traffic ([`Proxy`]); a proxy that counts
//! the commands reaching a real server and can lose a reply after the server applied it
//! ([`CountingProxy`]).
//!
//! Everything runs on background threads: one accept thread per server/proxy, one thread per
//! accepted connection (two for the proxy, one per direction). Dropping a [`FaultServer`] or
//! [`Proxy`] stops accepting, shuts down every connection it still holds and joins its threads;
//! waits inside the proxy are sliced so that this takes at most a few milliseconds.

use std::fmt;
use std::io::{self, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod chaos;
mod counting;
mod net;
pub mod reversed;

pub use chaos::{Chaos, ChaosProxy, FAULTS};
pub use counting::CountingProxy;
pub use reversed::NOT_REQUESTED;

use net::{Background, Registry, connect_any, lock, read_chunk, wait_until};

/// What [`Fault::Garbage`] answers to every request: an HTTP error, binary junk and a line that
/// ends without `\r`. None of it is memcached protocol.
pub const GARBAGE_REPLY: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n\x00\x01\xfe\xff junk line without carriage return\n";

/// Total length [`Fault::HalfValue`] announces in its `VALUE` line.
pub const HALF_VALUE_ANNOUNCED: usize = 100;
/// How many data bytes [`Fault::HalfValue`] actually sends before closing.
pub const HALF_VALUE_SENT: usize = 40;

/// How long [`Fault::HalfValue`] and [`Fault::CloseImmediately`] keep reading (and discarding) after
/// they closed their sending side, so that the close is a clean FIN rather than a reset.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// Granularity of the proxy's waits (delays, stalls), i.e. how fast it reacts to drop/close.
const WAIT_SLICE: Duration = Duration::from_millis(5);

/// Behaviour of a standalone fake server (no real memcached behind it), see [`FaultServer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Accept, read requests (counting their bytes), never answer, never close.
    Stall,
    /// Accept, wait for the first request bytes, then close with a TCP RST (the client's read or
    /// write fails with `ConnectionReset`). Done with std only: the bytes are peeked, not read, and
    /// closing a socket with unread data makes the kernel send RST instead of FIN.
    Reset,
    /// Answer every request (every chunk read) with [`GARBAGE_REPLY`]; the connection stays open.
    Garbage,
    /// Answer the first request with `VALUE <key> 0 100\r\n` followed by only 40 bytes of data, then
    /// close (FIN). `<key>` is the first key of the request (the second word of its first line, if
    /// it is a valid key), else `k`.
    HalfValue,
    /// Accept and close at once (FIN): the client reads EOF.
    CloseImmediately,
    /// Answer `get`/`gets` as a proxy in front of several servers may: values in reverse
    /// request order (each value is its key; keys starting with `miss` are misses), plus a
    /// value for [`NOT_REQUESTED`] when a key starts with `stray`. See [`reversed`].
    ReversedValues,
    /// Answer every request (every chunk read) with [`WRONG_KEY_REPLY`]: a well-formed
    /// retrieval reply holding a value for a key nobody asked for. It decodes; only the
    /// operation that interprets it can tell that the stream is out of sync.
    WrongKey,
    /// Accept and never read nor answer: once the socket buffers are full, the client's writes
    /// block.
    Deaf,
    /// Answer the first request with an endless retrieval reply, `VALUE k 0 1000000` blocks
    /// (values of [`FLOOD_VALUE_LEN`] bytes) written as fast as the client takes them, never `END`.
    Flood,
    /// Answer the first request with the header of one [`HUGE_VALUE_LEN`]-byte value, then its
    /// bytes written by [`HUGE_VALUE_WRITERS`] threads at once on the one connection, for ever
    /// (past the announced length the stream is out of sync; the bytes are all alike, so how the
    /// writers' chunks interleave does not matter). Several writers keep the client's receive
    /// queue full on a loaded machine, where one writer is now and then off the CPU long enough
    /// for the client to empty it: this server streams faster than the client reads.
    HugeValueFlood,
}

/// The length of each value [`Fault::Flood`] sends.
pub const FLOOD_VALUE_LEN: usize = 1_000_000;

/// The length [`Fault::HugeValueFlood`] announces: 128 MiB, so that a client reading for a
/// bounded time is still inside the value when it stops.
pub const HUGE_VALUE_LEN: usize = 128 * 1024 * 1024;
/// How many threads write [`Fault::HugeValueFlood`]'s value bytes at once.
pub const HUGE_VALUE_WRITERS: usize = 16;

/// What [`Fault::WrongKey`] answers to every request.
pub const WRONG_KEY_REPLY: &[u8] = b"VALUE nobody-asked 0 1 7\r\nx\r\nEND\r\n";

/// A fake server on `127.0.0.1` (ephemeral port) that misbehaves as its [`Fault`] says.
pub struct FaultServer {
    fault: Fault,
    counters: Arc<Counters>,
    background: Background,
}

#[derive(Debug, Default)]
struct Counters {
    bytes: AtomicUsize,
    connections: AtomicUsize,
}

impl fmt::Debug for FaultServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultServer")
            .field("fault", &self.fault)
            .field("addr", &self.background.addr)
            .field("connections", &self.connections())
            .field("bytes_received", &self.bytes_received())
            .finish()
    }
}

impl FaultServer {
    /// Starts a fake server with the given behaviour on `127.0.0.1:0`.
    pub fn start(fault: Fault) -> FaultServer {
        let counters = Arc::new(Counters::default());
        let c = Arc::clone(&counters);
        let background = Background::start("fault-server", move |stream, registry, _stop| {
            c.connections.fetch_add(1, Ordering::SeqCst);
            let Some(id) = registry.register(&[&stream]) else { return };
            if fault == Fault::Deaf {
                return; // the registry's clone holds the socket open, unread, until drop
            }
            let c = Arc::clone(&c);
            let reg = Arc::clone(registry);
            registry.spawn_worker("fault-conn", move || {
                serve_fault(fault, stream, &c, &reg, id);
                reg.unregister(id);
            });
        });
        FaultServer { fault, counters, background }
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        self.background.addr.to_string()
    }

    /// Total bytes received from all clients so far.
    pub fn bytes_received(&self) -> usize {
        self.counters.bytes.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counters.connections.load(Ordering::SeqCst)
    }

    /// Waits (bounded by `timeout`) until at least `n` bytes have been received; returns whether they
    /// were. The server counts on its own threads, so a test that just wrote should wait with this
    /// rather than read [`FaultServer::bytes_received`] at once.
    pub fn wait_bytes_received(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.bytes_received() >= n)
    }

    /// Waits (bounded by `timeout`) until at least `n` connections have been accepted.
    pub fn wait_connections(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.connections() >= n)
    }
}

fn serve_fault(fault: Fault, mut stream: TcpStream, counters: &Counters, registry: &Registry, id: u64) {
    let mut buf = vec![0u8; 16 * 1024];
    match fault {
        Fault::Stall => {
            while let Some(n) = read_chunk(&mut stream, &mut buf) {
                counters.bytes.fetch_add(n, Ordering::SeqCst);
            }
        }
        Fault::Garbage | Fault::WrongKey => {
            let reply = if fault == Fault::Garbage { GARBAGE_REPLY } else { WRONG_KEY_REPLY };
            while let Some(n) = read_chunk(&mut stream, &mut buf) {
                counters.bytes.fetch_add(n, Ordering::SeqCst);
                if stream.write_all(reply).is_err() {
                    break;
                }
            }
        }
        Fault::Reset => loop {
            match stream.peek(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    counters.bytes.fetch_add(n, Ordering::SeqCst);
                    // Our registry clone must go too, or the socket would not really close here.
                    registry.unregister(id);
                    drop(stream); // unread data in the receive queue: the kernel sends RST
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        },
        Fault::HalfValue => {
            let Some(n) = read_chunk(&mut stream, &mut buf) else { return };
            counters.bytes.fetch_add(n, Ordering::SeqCst);
            let key = first_key(&buf[..n]).unwrap_or("k");
            let mut reply = format!("VALUE {key} 0 {HALF_VALUE_ANNOUNCED}\r\n").into_bytes();
            reply.extend((0..HALF_VALUE_SENT).map(|i| b'0' + (i % 10) as u8));
            if stream.write_all(&reply).is_ok() {
                drain_then_close(stream, counters);
            }
        }
        Fault::CloseImmediately => drain_then_close(stream, counters),
        Fault::ReversedValues => reversed::serve(stream, counters),
        Fault::Flood => {
            let Some(n) = read_chunk(&mut stream, &mut buf) else { return };
            counters.bytes.fetch_add(n, Ordering::SeqCst);
            let mut block = format!("VALUE k 0 {FLOOD_VALUE_LEN}\r\n").into_bytes();
            block.resize(block.len() + FLOOD_VALUE_LEN, b'f');
            block.extend_from_slice(b"\r\n");
            while stream.write_all(&block).is_ok() {}
        }
        Fault::HugeValueFlood => {
            let Some(n) = read_chunk(&mut stream, &mut buf) else { return };
            counters.bytes.fetch_add(n, Ordering::SeqCst);
            if stream.write_all(format!("VALUE k 0 {HUGE_VALUE_LEN}\r\n").as_bytes()).is_ok() {
                flood_from_threads(&stream);
            }
        }
        Fault::Deaf => {}
    }
}

/// Writes `f` bytes on `stream` from [`HUGE_VALUE_WRITERS`] threads until the writes fail (the
/// client closed, or the server shut the connection down on drop).
fn flood_from_threads(stream: &TcpStream) {
    let chunk = vec![b'f'; 256 * 1024];
    thread::scope(|scope| {
        for _ in 0..HUGE_VALUE_WRITERS {
            let Ok(mut writer) = stream.try_clone() else { return };
            let chunk = &chunk;
            scope.spawn(move || while writer.write_all(chunk).is_ok() {});
        }
    });
}

/// Sends FIN, then discards what the client still sends (bounded), so the close is not a reset.
fn drain_then_close(mut stream: TcpStream, counters: &Counters) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match read_chunk(&mut stream, &mut buf) {
            Some(n) => {
                counters.bytes.fetch_add(n, Ordering::SeqCst);
            }
            None => return,
        }
    }
}

/// The first key of a request: the second word of its first line, if it is a valid memcached key.
fn first_key(request: &[u8]) -> Option<&str> {
    let line_end = request.iter().position(|&b| b == b'\n').unwrap_or(request.len());
    let line = request[..line_end].strip_suffix(b"\r").unwrap_or(&request[..line_end]);
    let word = line.split(|&b| b == b' ').filter(|w| !w.is_empty()).nth(1)?;
    let valid = (1..=250).contains(&word.len()) && word.iter().all(|&b| b > b' ' && b != 0x7f);
    if valid { std::str::from_utf8(word).ok() } else { None }
}

/// How a [`Proxy`] treats the traffic. Changed at any time with [`Proxy::set_mode`]; the mode in
/// force when a chunk is forwarded decides what happens to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways unchanged.
    Pass,
    /// Server -> client bytes are written one byte per write (TCP_NODELAY is on), no delays.
    /// Slow for big values (one system call per byte).
    Dribble,
    /// Server -> client: each chunk read from the server is written to the client only after this
    /// delay (chunks of one connection stay in order, so delays add up).
    SlowWrites(Duration),
    /// Same mechanism as `SlowWrites`: a reply read from the server is written to the client only
    /// after this delay. If the client closed its end meanwhile, the late bytes are discarded, so
    /// they can never reach a later request (which gets a fresh proxied connection).
    DelayReplies(Duration),
    /// Stop forwarding server -> client: hold the bytes (and, by TCP back-pressure, the server)
    /// until the mode changes; then they are forwarded per the new mode.
    Stall,
    /// Per connection, the first N client -> server chunks (requests) are forwarded; when chunk
    /// N+1 arrives it is dropped and the client connection is closed (the client reads EOF while
    /// waiting for its reply). Chunks are counted from the start of each connection.
    CloseAfter(usize),
    /// Delay only the `n`-th server -> client chunk (counting from 1 across all connections of the
    /// proxy, from the moment this mode is set) by `delay`; every other chunk passes unchanged.
    /// A chunk is what one read from the server returned: usually one whole small reply.
    DelayNth {
        /// Which chunk to delay (1 = the first one after `set_mode`).
        n: usize,
        /// How long to hold it.
        delay: Duration,
    },
}

/// A TCP proxy on `127.0.0.1` (ephemeral port) in front of an upstream server, with switchable
/// misbehaviour ([`ProxyMode`]). Each client connection gets its own upstream connection.
pub struct Proxy {
    upstream: String,
    state: Arc<ProxyState>,
    background: Background,
}

struct ProxyState {
    /// The mode and the `DelayNth` chunk counter, changed together.
    mode: Mutex<(ProxyMode, usize)>,
    connections: AtomicUsize,
    bytes_from_clients: AtomicUsize,
    bytes_to_clients: AtomicUsize,
    writes_to_clients: AtomicUsize,
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.background.addr)
            .field("upstream", &self.upstream)
            .field("mode", &lock(&self.state.mode).0)
            .field("connections", &self.connections())
            .finish()
    }
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `upstream` (a TCP `host:port`), in
    /// [`ProxyMode::Pass`]. If the upstream refuses a connection, the client connection is closed.
    ///
    /// # Panics
    /// If `upstream` does not resolve.
    pub fn start(upstream: &str) -> Proxy {
        let targets: Vec<SocketAddr> = upstream
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("proxy upstream {upstream:?} does not resolve: {e}"))
            .collect();
        assert!(!targets.is_empty(), "proxy upstream {upstream:?} resolves to no address");
        let state = Arc::new(ProxyState {
            mode: Mutex::new((ProxyMode::Pass, 0)),
            connections: AtomicUsize::new(0),
            bytes_from_clients: AtomicUsize::new(0),
            bytes_to_clients: AtomicUsize::new(0),
            writes_to_clients: AtomicUsize::new(0),
        });
        let st = Arc::clone(&state);
        let background = Background::start("proxy", move |client, registry, stop| {
            st.connections.fetch_add(1, Ordering::SeqCst);
            let Some(upstream) = connect_any(&targets) else { return };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            let Some(id) = registry.register(&[&client, &upstream]) else { return };
            let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
                registry.unregister(id);
                return;
            };
            let closed = Arc::new(AtomicBool::new(false));
            let link = Link {
                id,
                registry: Arc::clone(registry),
                stop: Arc::clone(stop),
                closed,
                state: Arc::clone(&st),
            };
            let link2 = link.clone();
            registry.spawn_worker("proxy-c2s", move || link.client_to_server(client, upstream));
            registry.spawn_worker("proxy-s2c", move || link2.server_to_client(upstream2, client2));
        });
        Proxy { upstream: upstream.to_string(), state, background }
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        self.background.addr.to_string()
    }

    /// The upstream address given to [`Proxy::start`].
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Changes the mode for every chunk forwarded from now on, on existing and new connections
    /// (a chunk already waiting out a delay keeps its delay). Resets the `DelayNth` counter.
    pub fn set_mode(&self, mode: ProxyMode) {
        *lock(&self.state.mode) = (mode, 0);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        lock(&self.state.mode).0
    }

    /// Client connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Total bytes read from clients (including chunks dropped by `CloseAfter`).
    pub fn bytes_from_clients(&self) -> usize {
        self.state.bytes_from_clients.load(Ordering::SeqCst)
    }

    /// Total bytes written to clients.
    pub fn bytes_to_clients(&self) -> usize {
        self.state.bytes_to_clients.load(Ordering::SeqCst)
    }

    /// Number of successful write calls towards clients (one per byte under `Dribble`).
    pub fn writes_to_clients(&self) -> usize {
        self.state.writes_to_clients.load(Ordering::SeqCst)
    }

    /// Shuts down every current client connection and its upstream connection, as when the server
    /// goes away. The proxy keeps accepting new connections.
    pub fn close_all(&self) {
        self.background.registry.shutdown_all();
    }
}

/// One proxied connection, shared by its two forwarding threads.
#[derive(Clone)]
struct Link {
    id: u64,
    registry: Arc<Registry>,
    stop: Arc<AtomicBool>,
    /// Set when either side ended: the other direction discards what it still holds.
    closed: Arc<AtomicBool>,
    state: Arc<ProxyState>,
}

impl Link {
    fn client_to_server(&self, mut client: TcpStream, mut upstream: TcpStream) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut chunks = 0usize;
        while let Some(n) = read_chunk(&mut client, &mut buf) {
            self.state.bytes_from_clients.fetch_add(n, Ordering::SeqCst);
            chunks += 1;
            if let ProxyMode::CloseAfter(limit) = lock(&self.state.mode).0 {
                if chunks > limit {
                    break;
                }
            }
            if upstream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        self.close(&client, &upstream);
    }

    fn server_to_client(&self, mut upstream: TcpStream, mut client: TcpStream) {
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(n) = read_chunk(&mut upstream, &mut buf) {
            // Hold the chunk while stalled.
            let (mode, index) = loop {
                let mut guard = lock(&self.state.mode);
                if guard.0 != ProxyMode::Stall {
                    guard.1 += 1;
                    break *guard;
                }
                drop(guard);
                if !self.pause(WAIT_SLICE) {
                    return self.close(&client, &upstream);
                }
            };
            let delay = match mode {
                ProxyMode::SlowWrites(d) | ProxyMode::DelayReplies(d) => Some(d),
                ProxyMode::DelayNth { n, delay } if n == index => Some(delay),
                _ => None,
            };
            if let Some(d) = delay {
                if !self.pause(d) {
                    break; // the client left meanwhile: the late bytes are discarded
                }
            }
            if !self.write_to_client(&mut client, &buf[..n], mode == ProxyMode::Dribble) {
                break;
            }
        }
        self.close(&client, &upstream);
    }

    fn write_to_client(&self, client: &mut TcpStream, data: &[u8], dribble: bool) -> bool {
        let pieces: Box<dyn Iterator<Item = &[u8]>> =
            if dribble { Box::new(data.chunks(1)) } else { Box::new(std::iter::once(data)) };
        for piece in pieces {
            if self.closed.load(Ordering::SeqCst) || client.write_all(piece).is_err() {
                return false;
            }
            self.state.bytes_to_clients.fetch_add(piece.len(), Ordering::SeqCst);
            self.state.writes_to_clients.fetch_add(1, Ordering::SeqCst);
        }
        true
    }

    /// Waits `d` in slices; false if the proxy stopped or the connection closed meanwhile.
    fn pause(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        loop {
            if self.stop.load(Ordering::SeqCst) || self.closed.load(Ordering::SeqCst) {
                return false;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(WAIT_SLICE));
        }
    }

    /// Ends the connection both ways; wakes the other direction's thread.
    fn close(&self, client: &TcpStream, upstream: &TcpStream) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        self.registry.unregister(self.id);
    }
}
