//! Runtime-neutral pipelining for async adapters: one [`Connection`] shared by many callers.
//!
//! No runtime and no socket type appear here: an adapter implements [`Transport`] for its
//! stream (a few lines over `poll_read`/`poll_write`) and spawns the [`Driver`] future on its
//! runtime. Callers [`submit`](Pipe::submit) commands and await the returned [`Ticket`].
//!
//! Cancellation safety comes from ownership: one reader at a time (the driver, or a caller
//! alone on the connection reading its own reply) reads every reply in request order. A
//! caller that drops its ticket before any byte of its request was written takes the request
//! back (the server never sees it); once written, the reply is abandoned, then read and
//! discarded (drained), so no later caller can ever receive it. Every request, abandoned or
//! not, must be answered by its call's deadline: when the oldest unanswered one is late, the
//! driver [`fail`](Pipe::fail)s the pipe, because the server may be stalled; the socket is
//! closed, every caller still waiting on it gets [`Error::Timeout`] (a reply already read is
//! still delivered), and later calls get a fresh connection.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

mod driver;
#[cfg(test)]
pub(crate) mod tests;
mod ticket;

pub use driver::{Clock, Driver};
pub use ticket::Ticket;

use super::coalesce;
use crate::config::Config;
use crate::observe::CloseReason;
use crate::{Command, Connection, Error, Key, Keys, ProtoError, RequestId, Response};

/// A connected byte stream the client drives: one per connection, shared by the callers
/// pipelined on it. An adapter implements it for its runtime's sockets in a few lines.
pub trait Transport: Send + Unpin + 'static {
    /// Reads into `buf`'s spare capacity (appending), like `AsyncRead::poll_read`.
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<io::Result<usize>>;
    /// Writes some of `data`, like `AsyncWrite::poll_write`.
    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>>;
    /// Flushes buffered writes (a no-op for plain sockets, needed for TLS streams).
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Busy polling ([`Config::busy_poll`]): reads what the socket holds right now, with a
    /// system call even if the runtime believes the socket is not readable, and without
    /// keeping any wake-up registration. `WouldBlock` means nothing yet. The default does
    /// not support it (`Unsupported`), which turns busy polling off for this transport.
    fn read_now(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let _ = buf;
        Err(io::ErrorKind::Unsupported.into())
    }
    /// Whether a `poll_read` that follows one that returned bytes always makes a read system
    /// call (the runtime clears its readiness only when a read would block), so that it can
    /// serve as the check of an idle connection, which must not answer from a readiness
    /// cache that has not yet seen an end of stream. When true, a caller that read its own
    /// reply leaves the socket for the next call's check to re-arm: one read system call
    /// per call less. True of Tokio's and async-io's own sockets; false (the default) for
    /// streams that may answer from buffers (TLS, a connector's).
    fn fresh_reads(&self) -> bool {
        false
    }
}

/// Requests gathered into one write at most while earlier ones await replies.
const BATCH: usize = 128;

/// Requests in flight at which a connection counts as saturated, so that the pool opens
/// another rather than add to it. Below it, more callers on one connection only make its
/// batches larger (one write, one read for all of them); beyond it, a second connection
/// buys a second driver task and a second memcached worker thread, which pays more than
/// larger batches save. 32 callers thus share two connections whatever the cap.
pub(crate) const SATURATED: usize = 16;

/// The room [`Pipe::probe`] reads into: anything at all found there condemns the connection.
const PROBE_ROOM: usize = 4096;

/// What one [`Pipe::read_now`] found.
enum ReadNow {
    Bytes,
    Nothing,
    Unsupported,
}

/// The transport of a dead pipe.
struct Closed;

impl Transport for Closed {
    fn poll_read(&mut self, _: &mut Context<'_>, _: &mut BytesMut) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::NotConnected.into()))
    }
    fn poll_write(&mut self, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::NotConnected.into()))
    }
    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One pipelined connection, shared by its [`Driver`] and every caller's [`Ticket`].
///
/// Two locks, always taken in this order: `io` (the socket and a partly written chunk), then
/// `state` (the protocol state and the callers' slots). `state` is never held during a system
/// call, so callers submitting or collecting replies don't wait on the socket.
pub struct Pipe {
    io: Mutex<IoHalf>,
    state: Mutex<PipeState>,
    /// Whether `io` holds bytes the socket would not take yet, or the stream holds bytes it
    /// did not flush yet: either way the driver must write again when the stream is ready.
    write_blocked: AtomicBool,
    /// [`Config::busy_poll`].
    busy_poll: Duration,
    /// [`Transport::fresh_reads`] of `io`.
    fresh_reads: bool,
    /// The runtime's time.
    clock: Clock,
    /// [`Pipe::load`], published whenever it changes, so that routing reads it without
    /// taking `state` ([`DEAD`] once the pipe failed).
    load: AtomicUsize,
    /// Told once, when the pipe dies, why (see [`Pipe::on_close`]).
    on_close: Mutex<Option<OnClose>>,
}

/// What a pipe calls when it dies, with the reason.
pub type OnClose = Box<dyn FnOnce(CloseReason) + Send>;

/// [`Pipe::load`] of a dead pipe.
const DEAD: usize = usize::MAX;

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipe").field("in_flight", &self.in_flight()).field("dead", &self.is_dead()).finish()
    }
}

struct IoHalf {
    io: Box<dyn Transport>,
    /// The rest of a chunk the socket did not take whole (empty, holding no buffer, otherwise).
    unsent: Bytes,
    /// Bytes the stream took but did not flush yet (its last `poll_flush` was pending).
    unflushed: bool,
    /// Callers to wake once `state` is unlocked (swapped with [`PipeState::woken`]).
    woken: Vec<Waker>,
    /// Where [`Pipe::probe`] reads: small, so that a transport that zeroes the room it reads
    /// into (safe code must) clears a few KiB per probe, not the read buffer's 16-64 KiB.
    scratch: BytesMut,
    /// Whether the last `poll_read` returned bytes rather than `Pending`: the runtime then
    /// still holds the socket as readable, and its next `poll_read` is a real read system
    /// call, not an answer from its readiness cache (which may not know of an end of stream
    /// that the kernel already has).
    readable: bool,
}

struct PipeState {
    conn: Connection,
    /// Each caller's reply, by slot.
    slots: HashMap<u64, Slot>,
    next_slot: u64,
    /// Who gets each reply of `conn`, in request order.
    targets: VecDeque<Target>,
    /// Single-key gets waiting to leave as one merged `gets` with the next write.
    gathered: Vec<(u64, Key)>,
    driver: Option<Waker>,
    dead: Option<Error>,
    /// Whether the driver already let other tasks run once since a batch became ready.
    deferred: bool,
    /// Requests handed to `conn` since the last write: not yet on the wire.
    queued: usize,
    /// Commands in the last write: 1 when callers take turns, more under concurrency.
    last_batch: usize,
    /// Callers whose replies came in the current read, woken after `state` is unlocked.
    woken: Vec<Waker>,
    /// Each request's slot and deadline, oldest first (see [`Driver`]).
    deadlines: VecDeque<(u64, Instant)>,
    /// Whether the driver is watching `deadlines`; a submit wakes it when not.
    watched: bool,
    /// Nobody waits for the socket's read wake-up: a caller took its reply and left the
    /// socket with nothing in flight, without polling it again for the driver (see the
    /// ticket's `stop_reading`). The next submit's [`Pipe::probe`] polls it for the driver.
    unarmed: bool,
}

/// The caller(s) a reply of the connection belongs to.
#[derive(Debug)]
enum Target {
    /// A caller's slot, and the connection's id for its request (see [`PipeState::withdraw`]).
    One(u64, RequestId),
    Merged(Vec<(u64, Key)>),
}

#[derive(Debug)]
enum Slot {
    /// The caller awaits the reply.
    Waiting(Option<Waker>),
    /// The caller dropped its ticket before the reply came. The request still counts
    /// against the deadline: its reply must be read (and discarded) in time, or the server
    /// is stalled and the pipe must go, whether anyone still waits or not.
    Abandoned,
    /// The reply (or the pipe's failure), until the caller takes it.
    Done(Result<Response, Error>),
    /// The pipe failed before any byte of the request was handed to the socket: it can
    /// safely go to another connection, whatever it is (see [`crate::retry`]).
    Unwritten(Error),
}

impl Pipe {
    /// A pipe with `config`'s decoder limits, busy polling and timeout, and the driver that
    /// moves its bytes over `io` and times requests out by `clock`.
    pub fn new(io: impl Transport, config: &Config, clock: Clock) -> (Arc<Pipe>, Driver) {
        let state = PipeState {
            conn: Connection::with_limits(config.limits),
            slots: HashMap::new(),
            next_slot: 0,
            targets: VecDeque::new(),
            gathered: Vec::new(),
            driver: None,
            dead: None,
            deferred: false,
            queued: 0,
            last_batch: 0,
            woken: Vec::new(),
            deadlines: VecDeque::new(),
            watched: false,
            unarmed: false,
        };
        let fresh_reads = io.fresh_reads();
        let pipe = Arc::new(Pipe {
            io: Mutex::new(IoHalf {
                io: Box::new(io),
                unsent: Bytes::new(),
                unflushed: false,
                woken: Vec::new(),
                scratch: BytesMut::new(),
                readable: false,
            }),
            state: Mutex::new(state),
            write_blocked: AtomicBool::new(false),
            fresh_reads,
            busy_poll: config.busy_poll,
            clock,
            load: AtomicUsize::new(0),
            on_close: Mutex::new(None),
        });
        (pipe.clone(), Driver::new(pipe))
    }

    fn lock(&self) -> MutexGuard<'_, PipeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_io(&self) -> MutexGuard<'_, IoHalf> {
        self.io.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn blocked(&self) -> bool {
        self.write_blocked.load(Ordering::Acquire)
    }

    /// Queues `command`, to be answered by `deadline` (the call's, which may have started
    /// before this pipe was chosen); the ticket resolves to its reply. Fails if the pipe is
    /// dead.
    pub fn submit(self: &Arc<Self>, command: &Command, deadline: Instant) -> Result<Ticket, Error> {
        if self.load() == Some(0) {
            self.probe()?;
        }
        let blocked = self.blocked();
        let (id, idle) = {
            let mut state = self.lock();
            if let Some(e) = &state.dead {
                return Err(e.clone());
            }
            // Write at once only on a connection used one call at a time; when its last write
            // carried several calls, more are likely on their way: let them join the next one.
            let idle =
                state.conn.in_flight() == 0 && state.gathered.is_empty() && !blocked && state.last_batch <= 1;
            let id = state.next_slot;
            state.next_slot += 1;
            state.slots.insert(id, Slot::Waiting(None));
            // Oldest first, as the driver watches only the front: a request that waited for
            // admission (its call's deadline started earlier) may not jump ahead of one
            // submitted before it, whose reply comes first anyway.
            let deadline = state.deadlines.back().map_or(deadline, |&(_, last)| last.max(deadline));
            state.deadlines.push_back((id, deadline));
            match coalesce::mergeable(command) {
                Some(key) if !idle => state.gathered.push((id, key.clone())),
                _ => {
                    let request = state.conn.send(command);
                    state.targets.push_back(Target::One(id, request));
                    state.queued += 1;
                }
            }
            if !idle || !state.watched {
                state.wake_driver();
            }
            self.publish_load(&state);
            (id, idle)
        };
        let mut sent = false;
        if idle {
            // An idle connection: write from the caller, saving a hop through the driver.
            // With a no-op waker, a socket that would block is left to the driver. A failed
            // write fails the pipe, and so this ticket, like any other.
            let wrote = self.write(&mut Context::from_waker(Waker::noop()));
            sent = wrote.is_ok();
            if let Err(e) = wrote {
                self.fail(e);
            }
            if self.blocked() {
                sent = false;
                self.lock().wake_driver();
            }
        }
        Ok(Ticket::new(self.clone(), id, sent))
    }

    /// Checks an idle pipe before a request is written onto it. Nothing may arrive while
    /// nothing is in flight, so an end of stream (the server restarted, a proxy or an idle
    /// timeout closed the connection), an error or stray bytes found now mean the connection
    /// is unusable: the pipe fails, and the caller, told before writing, sends its request
    /// on a fresh connection instead of losing it with this one (see [`crate::retry`]).
    /// The driver usually sees such an end first; this closes the race with it. Costs one
    /// non-blocking read, on transports that support [`Transport::read_now`].
    fn probe(&self) -> Result<(), Error> {
        if let Some(driver) = self.take_unarmed() {
            // Re-arm the driver's wake-up. When the last read returned bytes, the runtime
            // reads the socket for real here, and that one system call is the check too.
            let readable = self.lock_io().readable;
            let rearmed = self.read(&mut Context::from_waker(&driver));
            if rearmed.is_err() || readable {
                return rearmed.inspect_err(|e| self.fail(e.clone()));
            }
        }
        let mut io = self.lock_io();
        let mut scratch = std::mem::take(&mut io.scratch);
        scratch.clear();
        scratch.reserve(PROBE_ROOM);
        let read = io.io.read_now(&mut scratch);
        let result = match read {
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Unsupported) => Ok(()),
            // Bytes may be replies to requests submitted since the load was read: the decoder
            // tells them from stray ones, as it does for every read.
            read => {
                let mut state = self.lock();
                if !scratch.is_empty() {
                    let mut buf = state.conn.take_read_buf();
                    buf.extend_from_slice(&scratch);
                    state.conn.put_read_buf(buf);
                }
                self.received(&mut io, state, read, None)
            }
        };
        io.scratch = scratch;
        drop(io);
        result.inspect_err(|e| self.fail(e.clone()))
    }

    /// The driver's waker, if the socket was left unarmed (and is no longer).
    fn take_unarmed(&self) -> Option<Waker> {
        let mut state = self.lock();
        std::mem::take(&mut state.unarmed).then(|| state.driver.clone()).flatten()
    }

    /// Requests awaiting their reply.
    pub fn in_flight(&self) -> usize {
        let state = self.lock();
        state.conn.in_flight() + state.gathered.len()
    }

    /// Requests awaiting their reply, or `None` if the pipe is dead: one look for routing.
    pub fn load(&self) -> Option<usize> {
        let load = self.load.load(Ordering::Relaxed);
        (load != DEAD).then_some(load)
    }

    /// Whether the pipe carries as much as it usefully can: [`SATURATED`] requests in flight,
    /// or bytes the socket would not take yet. Only then does the pool open another
    /// connection (see `ServerPool::route`).
    pub fn saturated(&self) -> bool {
        self.load().is_some_and(|n| n >= SATURATED) || self.blocked()
    }

    /// Whether the pipe failed and must be replaced.
    pub fn is_dead(&self) -> bool {
        self.load.load(Ordering::Relaxed) == DEAD
    }

    /// Publishes the load `state` holds now (called with `state` locked).
    fn publish_load(&self, state: &PipeState) {
        let load = if state.dead.is_some() { DEAD } else { state.conn.in_flight() + state.gathered.len() };
        self.load.store(load, Ordering::Relaxed);
    }

    /// Kills the pipe: every waiting caller gets `error` (a reply already received is still
    /// delivered), and the socket is closed now, not when the driver next runs, so the
    /// server sees it go even if the runtime is busy.
    pub fn fail(&self, error: Error) {
        let mut io = self.lock_io();
        let mut state = self.lock();
        let first = state.dead.is_none();
        let reason = CloseReason::of(&error);
        state.fail(error);
        self.publish_load(&state);
        // Reported before `state` is unlocked: a caller failed with the pipe sees its error
        // only after the close is counted.
        if first {
            self.closed(reason);
        }
        drop(state);
        io.io = Box::new(Closed);
        io.unsent = Bytes::new();
        io.unflushed = false;
        self.write_blocked.store(false, Ordering::Release);
    }

    /// Sets what the pipe calls, once, when it dies (failed, or its driver ended because
    /// every handle to it was gone): the pool's counters and the observer's `Closed` event.
    pub fn on_close(&self, f: OnClose) {
        *self.on_close.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Runs the [`on_close`](Self::on_close) callback, if it has not run yet.
    fn closed(&self, reason: CloseReason) {
        let f = self.on_close.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(f) = f {
            f(reason);
        }
    }

    /// Writes queued bytes until the socket would block, then flushes them. A write or flush
    /// left pending marks the pipe blocked, so that the driver, woken by the stream, comes
    /// back to finish it (a buffered stream such as TLS holds the bytes until flushed).
    fn write(&self, cx: &mut Context<'_>) -> Result<(), Error> {
        let mut io = self.lock_io();
        let mut wrote = io.unflushed;
        loop {
            if io.unsent.is_empty() {
                let chunk = {
                    let mut state = self.lock();
                    let chunk = state.take_transmit();
                    self.publish_load(&state);
                    chunk
                };
                match chunk {
                    Some(chunk) => io.unsent = chunk,
                    None => break,
                }
            }
            let IoHalf { io: stream, unsent, .. } = &mut *io;
            match stream.poll_write(cx, unsent) {
                Poll::Ready(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                // A chunk written whole is let go at once: it shares the connection's write
                // buffer, which the next commands can then reuse in place, where one kept
                // until the next write made the buffer's refill a fresh allocation (two, with
                // its shared header) every few KiB of commands.
                Poll::Ready(Ok(n)) if n >= unsent.len() => {
                    *unsent = Bytes::new();
                    wrote = true;
                }
                Poll::Ready(Ok(n)) => {
                    unsent.advance(n);
                    wrote = true;
                }
                Poll::Ready(Err(e)) => return Err(e.into()),
                Poll::Pending => {
                    io.unflushed = wrote;
                    self.write_blocked.store(true, Ordering::Release);
                    return Ok(());
                }
            }
        }
        io.unflushed = wrote
            && match io.io.poll_flush(cx) {
                Poll::Ready(result) => result.map(|()| false)?,
                Poll::Pending => true,
            };
        self.write_blocked.store(io.unflushed, Ordering::Release);
        Ok(())
    }

    /// Reads and dispatches replies until the socket would block. The read buffer is taken
    /// out of the state for the system call, so `state` stays free meanwhile.
    fn read(&self, cx: &mut Context<'_>) -> Result<(), Error> {
        self.read_until(cx, None)
    }

    /// Like [`read`](Self::read), but stops as soon as the reply of request `until` (if
    /// given) is in: a caller reading its own reply leaves the socket there, and when it is
    /// done, [`Ticket`]'s `stop_reading` polls it once more for the driver. Reading on to
    /// "would block" first would cost one more futile read system call per call.
    fn read_until(&self, cx: &mut Context<'_>, until: Option<u64>) -> Result<(), Error> {
        let mut io = self.lock_io();
        loop {
            let mut buf = self.lock().conn.take_read_buf();
            let read = io.io.poll_read(cx, &mut buf);
            io.readable = read.is_ready();
            let mut state = self.lock();
            state.conn.put_read_buf(buf);
            // Whoever polled now holds the wake-up; a caller that did hands it back in
            // `stop_reading`, which decides afresh.
            state.unarmed &= io.readable;
            let answered = |state: &PipeState, id| !matches!(state.slots.get(&id), Some(Slot::Waiting(_)));
            match read {
                Poll::Ready(read) => {
                    let stop = read.as_ref().is_ok_and(|&n| n > 0);
                    self.received(&mut io, state, read, Some(cx.waker()))?;
                    if stop && until.is_some_and(|id| answered(&self.lock(), id)) {
                        return Ok(());
                    }
                }
                Poll::Pending => return Ok(()),
            }
        }
    }

    /// Hands the replies `read` completed to their callers, then wakes those callers once
    /// `state` is unlocked, so that a caller running at once on another thread finds it free.
    fn received(
        &self,
        io: &mut IoHalf,
        mut state: MutexGuard<'_, PipeState>,
        read: io::Result<usize>,
        reader: Option<&Waker>,
    ) -> Result<(), Error> {
        let result = state.received(read);
        self.publish_load(&state);
        std::mem::swap(&mut io.woken, &mut state.woken);
        drop(state);
        // The task reading (a caller reading its own reply) is running: it takes its reply
        // when the read returns. Waking it as well would schedule it again for nothing, and
        // on Tokio's multi-thread runtime wake a second worker to steal it.
        let others = io.woken.drain(..).filter(|w| !reader.is_some_and(|r| r.will_wake(w)));
        others.for_each(Waker::wake);
        result
    }

    /// One [`Transport::read_now`].
    fn read_now(&self) -> Result<ReadNow, Error> {
        let mut io = self.lock_io();
        let mut buf = self.lock().conn.take_read_buf();
        let read = io.io.read_now(&mut buf);
        let mut state = self.lock();
        state.conn.put_read_buf(buf);
        match read {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(ReadNow::Nothing),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => Ok(ReadNow::Unsupported),
            read => self.received(&mut io, state, read, None).map(|()| ReadNow::Bytes),
        }
    }
}

impl PipeState {
    /// Handles the outcome of a read that did not block.
    fn received(&mut self, read: io::Result<usize>) -> Result<(), Error> {
        match read {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection").into()),
            Ok(_) => self.dispatch(),
            Err(e) => Err(e.into()),
        }
    }

    /// Fails every request still waiting for its reply. Replies already received stay for
    /// their callers to take: they arrived, and the failure (an end of stream or garbage read
    /// after them, a later request's deadline, `close()`) happened after them. Abandoned
    /// requests are forgotten, and the buffers go now rather than with the last handle.
    fn fail(&mut self, error: Error) {
        if self.dead.is_some() {
            return;
        }
        for id in self.unwritten() {
            if let Some(slot @ Slot::Waiting(_)) = self.slots.get_mut(&id) {
                if let Slot::Waiting(w) = std::mem::replace(slot, Slot::Unwritten(error.clone())) {
                    w.into_iter().for_each(Waker::wake);
                }
            }
        }
        self.slots.retain(|_, slot| match slot {
            Slot::Waiting(w) => {
                w.take().into_iter().for_each(Waker::wake);
                *slot = Slot::Done(Err(error.clone()));
                true
            }
            Slot::Abandoned => false,
            Slot::Done(_) | Slot::Unwritten(_) => true,
        });
        // A dead pipe never decodes again: its replacement connection only frees the buffers.
        self.conn = Connection::default();
        self.targets = VecDeque::new();
        self.gathered = Vec::new();
        self.deadlines = VecDeque::new();
        self.dead = Some(error);
        if let Some(w) = self.driver.take() {
            w.wake();
        }
    }

    /// The slots of requests no byte of which was taken for writing yet: the gathered gets,
    /// and the last `queued` requests handed to `conn`.
    fn unwritten(&self) -> Vec<u64> {
        let queued = self.targets.iter().rev().take(self.queued);
        let ids = queued.flat_map(|t| match t {
            Target::One(id, _) => vec![*id],
            Target::Merged(gathered) => gathered.iter().map(|(id, _)| *id).collect(),
        });
        ids.chain(self.gathered.iter().map(|(id, _)| *id)).collect()
    }

    /// Exactly one request on the wire and nothing else queued.
    fn is_solo(&self) -> bool {
        self.conn.in_flight() == 1 && self.gathered.is_empty() && self.queued == 0
    }

    fn wake_driver(&self) {
        if let Some(w) = &self.driver {
            w.wake_by_ref();
        }
    }

    fn wants_write(&self, blocked: bool) -> bool {
        blocked || self.conn.wants_transmit() || !self.gathered.is_empty()
    }

    /// Whether the next batch should go out now. While an earlier batch awaits its replies,
    /// new requests gather (up to [`BATCH`]) and leave when those replies arrive: each write
    /// then carries every request that became ready meanwhile, so under load a connection
    /// makes a few large writes instead of many small ones, and an idle one writes at once.
    fn batch_ready(&self, blocked: bool) -> bool {
        let answered_all_written = self.conn.in_flight() <= self.queued;
        answered_all_written || self.queued + self.gathered.len() >= BATCH || blocked
    }

    /// Everything queued, as bytes to write (the gathered gets become one command first).
    fn take_transmit(&mut self) -> Option<Bytes> {
        let gathered = self.gathered.len();
        self.flush_gathered();
        let chunk = self.conn.poll_transmit();
        if chunk.is_some() {
            self.last_batch = self.queued + gathered.saturating_sub(1);
            self.queued = 0;
        }
        chunk
    }

    /// Sends the gathered single-key gets as one command (or as itself, if alone).
    fn flush_gathered(&mut self) {
        let target = match self.gathered.len() {
            0 => return,
            1 => {
                let Some((id, key)) = self.gathered.pop() else { return };
                let request = self.conn.send(&Command::Get { keys: Keys::one(key), cas: true, touch: None });
                Target::One(id, request)
            }
            _ => {
                self.conn.send(&coalesce::command(&self.gathered));
                Target::Merged(std::mem::take(&mut self.gathered))
            }
        };
        self.targets.push_back(target);
        self.queued += 1;
    }

    /// Hands every complete reply to its caller; replies of abandoned tickets are dropped.
    fn dispatch(&mut self) -> Result<(), Error> {
        while let Some(done) = self.conn.poll_response()? {
            match self.targets.pop_front() {
                Some(Target::One(id, _)) => self.complete(id, done.response),
                Some(Target::Merged(gathered)) => {
                    for (id, response) in coalesce::split(gathered, done.response)? {
                        self.complete(id, response);
                    }
                }
                None => return Err(ProtoError::UnsolicitedReply.into()),
            }
        }
        Ok(())
    }

    fn complete(&mut self, id: u64, response: Response) {
        match self.slots.get_mut(&id) {
            Some(Slot::Abandoned) => {
                self.slots.remove(&id);
            }
            Some(slot) => {
                if let Slot::Waiting(w) = std::mem::replace(slot, Slot::Done(Ok(response))) {
                    self.woken.extend(w);
                }
            }
            None => {}
        }
    }
}
