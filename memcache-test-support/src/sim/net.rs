//! Scripted servers and the in-memory streams that reach them.
//!
//! Each connection is a [`Wire`]: the bytes the client wrote (and, for a buffered stream,
//! has not flushed yet), and what the server queued for the client (bytes, then possibly an
//! end of stream or an error). The client side is a [`SimStream`]; the server side is moved
//! by [`Sim::run`](super::Sim::run), which parses the requests that arrived and asks the
//! server's [`Handler`] what to do with each.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use memcache_proto::driver::Transport;
use memcache_proto::{Endpoint, ServerAddr};

use super::store::{Handler, Store};

/// What a server does after reading one request; a [`Handler`] returns a list of these.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Sends these bytes (an answer, half of one, or garbage).
    Reply(Bytes),
    /// Closes the connection once what was sent before is read: the client reads EOF. Later
    /// requests on it are never read.
    Close,
    /// Resets the connection once what was sent before is read: the client's read fails with
    /// `ConnectionReset`. Later requests on it are never read.
    Reset,
    /// Stops reading this connection: later requests stay in its buffer, and once
    /// [`WireConfig::window`] bytes are waiting the client's writes block.
    Stall,
}

impl Action {
    /// [`Action::Reply`] with a copy of `bytes`.
    pub fn reply(bytes: impl AsRef<[u8]>) -> Action {
        Action::Reply(Bytes::copy_from_slice(bytes.as_ref()))
    }
}

/// One request as the server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Which connection of the server it came on (0 for the first accepted).
    pub conn: usize,
    /// The command line, without its `\r\n`.
    pub line: String,
    /// The data block of a storage command.
    pub data: Option<Bytes>,
}

impl Request {
    /// The command's name (`get`, `set`, `incr`, ...).
    pub fn verb(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }

    /// The words after the command's name.
    pub fn args(&self) -> Vec<&str> {
        self.line.split(' ').skip(1).filter(|a| !a.is_empty()).collect()
    }
}

/// How a new connection behaves; see [`SimServer::configure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireConfig {
    /// At most this many bytes per client read (1 delivers a reply byte by byte).
    pub read_chunk: usize,
    /// Bytes the server lets wait unread before the client's writes block (its socket
    /// buffers).
    pub window: usize,
    /// Whether the server reads requests at all (false: a server that accepts and never
    /// reads).
    pub reading: bool,
    /// Whether the stream buffers writes until flushed, as a TLS stream does.
    pub buffered: bool,
    /// How many of the next flushes return `Pending` (their waker is woken by the next run).
    pub pending_flushes: usize,
    /// Whether the stream can be read without a waker ([`Transport::read_now`]), as a
    /// socket can; false: like a stream that cannot be probed before a write (`Unsupported`).
    pub probe: bool,
    /// Whether the stream says [`Transport::fresh_reads`] (its reads are always real, as
    /// Tokio's and async-io's sockets' are), so that a caller that read its own reply leaves
    /// the stream for the next call's check to re-arm.
    pub fresh_reads: bool,
}

impl Default for WireConfig {
    fn default() -> Self {
        WireConfig {
            read_chunk: usize::MAX,
            window: 256 * 1024,
            reading: true,
            buffered: false,
            pending_flushes: 0,
            probe: true,
            fresh_reads: true,
        }
    }
}

/// What the server queued for the client.
#[derive(Debug)]
enum Out {
    Bytes(Bytes),
    Eof,
    Error(io::ErrorKind),
}

/// One connection, shared by its client [`SimStream`] and its server.
#[derive(Debug)]
struct Wire {
    id: usize,
    cfg: WireConfig,
    /// Written by the client and flushed: the server's receive buffer.
    inbound: BytesMut,
    /// Written by the client, waiting for a flush ([`WireConfig::buffered`]).
    unflushed: BytesMut,
    outbound: VecDeque<Out>,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
    flush_waker: Option<Waker>,
    /// The client dropped its stream.
    client_gone: bool,
    /// The server closed or reset the connection.
    server_gone: bool,
    /// Bytes the client wrote in all, flushed or not.
    written: usize,
}

type SharedWire = Arc<Mutex<Wire>>;

fn lock(wire: &SharedWire) -> MutexGuard<'_, Wire> {
    wire.lock().unwrap_or_else(|p| p.into_inner())
}

impl Wire {
    /// Moves what the server sent into `buf`, at most `read_chunk` bytes; `None` if nothing
    /// is there yet.
    fn read(&mut self, buf: &mut BytesMut) -> Option<io::Result<usize>> {
        let limit = self.cfg.read_chunk.max(1);
        let mut n = 0;
        while n < limit {
            match self.outbound.front_mut() {
                Some(Out::Bytes(b)) => {
                    let take = b.len().min(limit - n);
                    buf.extend_from_slice(&b[..take]);
                    b.advance(take);
                    n += take;
                    if b.is_empty() {
                        self.outbound.pop_front();
                    }
                }
                Some(Out::Eof) if n == 0 => return Some(Ok(0)),
                Some(Out::Error(kind)) if n == 0 => return Some(Err((*kind).into())),
                _ => break,
            }
        }
        (n > 0).then_some(Ok(n))
    }

    fn waiting(&self) -> usize {
        self.inbound.len() + self.unflushed.len()
    }

    fn send(&mut self, out: Out) {
        if self.queue(out) {
            self.read_waker.take().into_iter().for_each(Waker::wake);
        }
    }

    /// Queues `out` for the client without waking it; whether it was queued.
    fn queue(&mut self, out: Out) -> bool {
        if self.server_gone {
            return false;
        }
        self.server_gone = !matches!(out, Out::Bytes(_));
        self.outbound.push_back(out);
        true
    }
}

/// The client's end of a simulated connection: the [`Transport`] the driver moves bytes over.
#[derive(Debug)]
pub struct SimStream {
    wire: SharedWire,
}

impl Transport for SimStream {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>> {
        let mut wire = lock(&self.wire);
        match wire.read(buf) {
            Some(read) => Poll::Ready(read),
            None => {
                wire.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// What is there now, without registering for more: `WouldBlock` if nothing. (Busy
    /// polling would spin forever in the simulated world, whose clock never moves by itself:
    /// leave [`Config::busy_poll`](memcache_proto::config::Config::busy_poll) at zero.)
    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut wire = lock(&self.wire);
        if !wire.cfg.probe {
            return Err(io::ErrorKind::Unsupported.into());
        }
        wire.read(buf).unwrap_or_else(|| Err(io::ErrorKind::WouldBlock.into()))
    }

    fn fresh_reads(&self) -> bool {
        lock(&self.wire).cfg.fresh_reads
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut wire = lock(&self.wire);
        if wire.server_gone {
            // As TCP's first write after the peer closed: accepted, and lost.
            return Poll::Ready(Ok(data.len()));
        }
        let room = wire.cfg.window.saturating_sub(wire.waiting());
        if room == 0 {
            wire.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        if wire.cfg.buffered {
            wire.unflushed.extend_from_slice(&data[..n]);
        } else {
            wire.inbound.extend_from_slice(&data[..n]);
        }
        wire.written += n;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut wire = lock(&self.wire);
        if wire.cfg.pending_flushes > 0 {
            wire.cfg.pending_flushes -= 1;
            wire.flush_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let unflushed = wire.unflushed.split();
        wire.inbound.unsplit(unflushed);
        Poll::Ready(Ok(()))
    }
}

impl Drop for SimStream {
    fn drop(&mut self) {
        lock(&self.wire).client_gone = true;
    }
}

/// A scripted server; cheap to clone (clones share it).
#[derive(Clone)]
pub struct SimServer {
    addr: String,
    inner: Arc<Mutex<ServerState>>,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer").field("addr", &self.addr).finish()
    }
}

struct ServerState {
    handler: Handler,
    store: Store,
    wires: Vec<SharedWire>,
    log: Vec<Request>,
    cfg: WireConfig,
    refuse: bool,
}

impl SimServer {
    pub(super) fn new(addr: String, handler: Handler) -> SimServer {
        let state = ServerState {
            handler,
            store: Store::default(),
            wires: Vec::new(),
            log: Vec::new(),
            cfg: WireConfig::default(),
            refuse: false,
        };
        SimServer { addr, inner: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The address to give a client.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    pub(super) fn endpoint(&self) -> Endpoint {
        ServerAddr::resolve(&self.addr).expect("an IP literal resolves").endpoint().clone()
    }

    /// Sets how connections accepted from now on behave.
    pub fn configure(&self, f: impl FnOnce(&mut WireConfig)) {
        f(&mut self.lock().cfg);
    }

    /// Replaces the script.
    pub fn set_handler(&self, handler: Handler) {
        self.lock().handler = handler;
    }

    /// Runs `f` on the server's items (to seed or inspect them).
    pub fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        f(&mut self.lock().store)
    }

    /// Whether new connections are refused.
    pub fn refuse(&self, refuse: bool) {
        self.lock().refuse = refuse;
    }

    pub(super) fn accept(&self) -> io::Result<SimStream> {
        let mut state = self.lock();
        if state.refuse {
            return Err(io::ErrorKind::ConnectionRefused.into());
        }
        let wire = Wire {
            id: state.wires.len(),
            cfg: state.cfg,
            inbound: BytesMut::new(),
            unflushed: BytesMut::new(),
            outbound: VecDeque::new(),
            read_waker: None,
            write_waker: None,
            flush_waker: None,
            client_gone: false,
            server_gone: false,
            written: 0,
        };
        let wire = Arc::new(Mutex::new(wire));
        state.wires.push(wire.clone());
        Ok(SimStream { wire })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.lock().wires.len()
    }

    /// Connection `i` (in order of acceptance).
    pub fn conn(&self, i: usize) -> SimConn {
        SimConn { wire: self.lock().wires[i].clone() }
    }

    /// Every request read so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().log.clone()
    }

    /// How many requests named `verb` were read.
    pub fn count(&self, verb: &str) -> usize {
        self.lock().log.iter().filter(|r| r.verb() == verb).count()
    }

    /// Reads the requests that arrived on every connection and acts on them; whether anything
    /// moved.
    pub(super) fn step(&self) -> bool {
        let mut state = self.lock();
        let state = &mut *state;
        let mut moved = false;
        for wire in &state.wires {
            let mut wire = lock(wire);
            if let Some(w) = wire.flush_waker.take() {
                w.wake();
                moved = true;
            }
            if !wire.reading() {
                continue;
            }
            let before = wire.inbound.len();
            while let Some(request) = parse(&mut wire) {
                state.log.push(request.clone());
                for action in (state.handler)(&request, &mut state.store) {
                    act(&mut wire, action);
                }
                if !wire.reading() {
                    break;
                }
            }
            if wire.inbound.len() != before {
                moved = true;
                wire.write_waker.take().into_iter().for_each(Waker::wake);
            }
        }
        moved
    }
}

impl Wire {
    fn reading(&self) -> bool {
        self.cfg.reading && !self.server_gone && !self.client_gone
    }
}

fn act(wire: &mut Wire, action: Action) {
    match action {
        Action::Reply(bytes) => wire.send(Out::Bytes(bytes)),
        Action::Close => wire.send(Out::Eof),
        Action::Reset => wire.send(Out::Error(io::ErrorKind::ConnectionReset)),
        Action::Stall => wire.cfg.reading = false,
    }
}

/// Storage commands carry a data block whose length is their fifth word.
const STORAGE: [&str; 6] = ["set", "add", "replace", "append", "prepend", "cas"];

/// Takes the next complete request out of the wire's inbound bytes.
fn parse(wire: &mut Wire) -> Option<Request> {
    let end = wire.inbound.windows(2).position(|w| w == b"\r\n")?;
    let line = String::from_utf8_lossy(&wire.inbound[..end]).into_owned();
    let verb = line.split(' ').next().unwrap_or("");
    let len = STORAGE
        .contains(&verb)
        .then(|| line.split(' ').nth(4).and_then(|n| n.parse::<usize>().ok()))
        .flatten();
    let data = match len {
        Some(len) if wire.inbound.len() < end + 2 + len + 2 => return None,
        Some(len) => {
            wire.inbound.advance(end + 2);
            let data = wire.inbound.split_to(len).freeze();
            wire.inbound.advance(2);
            Some(data)
        }
        None => {
            wire.inbound.advance(end + 2);
            None
        }
    };
    Some(Request { conn: wire.id, line, data })
}

/// The server's end of one connection, for a test to act on directly.
#[derive(Debug, Clone)]
pub struct SimConn {
    wire: SharedWire,
}

impl SimConn {
    /// Sends `bytes` to the client.
    pub fn push(&self, bytes: impl AsRef<[u8]>) {
        lock(&self.wire).send(Out::Bytes(Bytes::copy_from_slice(bytes.as_ref())));
    }

    /// Closes the connection (the client reads EOF after what was sent).
    pub fn close(&self) {
        lock(&self.wire).send(Out::Eof);
    }

    /// Closes the connection without waking the client: its end of stream is there to be
    /// read, but the runtime has not told the reader yet (a race real runtimes have).
    pub fn close_unnoticed(&self) {
        lock(&self.wire).queue(Out::Eof);
    }

    /// Resets the connection (the client's read fails after what was sent).
    pub fn reset(&self) {
        lock(&self.wire).send(Out::Error(io::ErrorKind::ConnectionReset));
    }

    /// Stops or resumes reading requests.
    pub fn set_reading(&self, reading: bool) {
        let mut wire = lock(&self.wire);
        wire.cfg.reading = reading;
        wire.write_waker.take().into_iter().for_each(Waker::wake);
    }

    /// Bytes the client wrote on this connection, flushed or not.
    pub fn written(&self) -> usize {
        lock(&self.wire).written
    }

    /// Bytes the client wrote and flushed that the server has not read.
    pub fn unread(&self) -> usize {
        lock(&self.wire).inbound.len()
    }

    /// Bytes the client wrote but did not flush.
    pub fn unflushed(&self) -> usize {
        lock(&self.wire).unflushed.len()
    }

    /// Whether the client dropped its end (the driver closed the socket).
    pub fn closed_by_client(&self) -> bool {
        lock(&self.wire).client_gone
    }
}
