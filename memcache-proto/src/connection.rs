//! The pipelined connection state machine.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::{Command, ZERO_COPY_VALUE};
use crate::decode::Decoder;
use crate::response::{ReplyKind, Response};
use crate::{Limits, ProtoError};

/// Identifies a request sent on a [`Connection`]; its [`Completed`] carries the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A reply matched to the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completed {
    /// The request this answers.
    pub id: RequestId,
    /// The reply.
    pub response: Response,
}

/// One memcached connection, without the socket.
///
/// memcached answers the requests of one connection in order, so any number may be in
/// flight: `Connection` keeps a FIFO of what each one expects and tells the decoder, which is
/// what makes the text protocol parseable at all. The caller moves bytes:
///
/// 1. [`send`](Self::send) queues a command and returns its [`RequestId`];
/// 2. [`poll_transmit`](Self::poll_transmit) hands out the bytes to write, until `None`;
/// 3. bytes read from the socket go in through [`handle_input`](Self::handle_input) (a copy)
///    or straight into [`read_buf`](Self::read_buf) (no copy);
/// 4. [`poll_response`](Self::poll_response) returns completed replies in request order,
///    until `None`.
///
/// After a protocol error the connection is poisoned: every later `poll_response` returns that
/// error, and the caller should drop the socket. A request that asked for no reply
/// (`noreply`, `quit`) completes with [`Response::NoReply`] in its turn.
#[derive(Debug)]
pub struct Connection {
    decoder: Decoder,
    in_flight: VecDeque<(RequestId, ReplyKind)>,
    /// Bytes not yet handed out by `poll_transmit`, small commands coalesced.
    out: BytesMut,
    /// Chunks that go before `out`: large values, handed out without a copy.
    out_chunks: VecDeque<Bytes>,
    /// Total length of `out_chunks`.
    chunks_len: usize,
    /// Bytes handed out by `poll_transmit` since the connection began.
    handed_out: u64,
    /// Each request none of whose bytes was handed out yet, with its place in the stream of
    /// encoded bytes (`start..end`, counted like `handed_out`), oldest first: what
    /// [`withdraw`](Self::withdraw) may still take back.
    unsent: VecDeque<(RequestId, u64, u64)>,
    input: BytesMut,
    next_id: u64,
    poisoned: Option<ProtoError>,
}

/// The write buffer's size: small commands are encoded into it back to back. A driver that
/// lets each chunk go once written lets the buffer be reused in place when it fills.
pub(crate) const WRITE_BUF: usize = 4096;

impl Default for Connection {
    fn default() -> Self {
        Connection::new()
    }
}

impl Connection {
    /// A connection with the default [`Limits`].
    pub fn new() -> Connection {
        Connection::with_limits(Limits::default())
    }

    /// A connection whose decoder enforces `limits`.
    pub fn with_limits(limits: Limits) -> Connection {
        Connection {
            decoder: Decoder::new(limits),
            in_flight: VecDeque::new(),
            out: BytesMut::with_capacity(WRITE_BUF),
            out_chunks: VecDeque::new(),
            chunks_len: 0,
            handed_out: 0,
            unsent: VecDeque::new(),
            input: BytesMut::with_capacity(16 * 1024),
            next_id: 0,
            poisoned: None,
        }
    }

    /// Queues `command` and returns the id its reply will carry.
    pub fn send(&mut self, command: &Command) -> RequestId {
        let start = self.handed_out + self.pending_len() as u64;
        if let Some(value) = command.encode_head(&mut self.out) {
            if value.len() >= ZERO_COPY_VALUE {
                let head = self.out.split().freeze();
                self.push_chunk(head);
                self.push_chunk(value.clone());
            } else {
                self.out.put_slice(value);
            }
            self.out.put_slice(b"\r\n");
        }
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.in_flight.push_back((id, command.reply_kind()));
        self.unsent.push_back((id, start, self.handed_out + self.pending_len() as u64));
        id
    }

    /// Takes back request `id` if none of its bytes was handed out by
    /// [`poll_transmit`](Self::poll_transmit) yet: its bytes are cut from what is left to
    /// write (the requests around it keep theirs, byte for byte) and no reply is expected for
    /// it. Returns whether it was withdrawn; `false` once any byte of it may have been
    /// written, or if it is unknown. A caller that gives up on a request not yet written
    /// uses it so that the server never sees the request.
    pub fn withdraw(&mut self, id: RequestId) -> bool {
        let Some(i) = self.unsent.iter().rposition(|&(r, ..)| r == id) else {
            return false;
        };
        let Some(j) = self.in_flight.iter().rposition(|&(r, _)| r == id) else {
            return false;
        };
        let (_, start, end) = self.unsent.remove(i).unwrap_or((id, 0, 0));
        self.in_flight.remove(j);
        let len = end - start;
        for entry in self.unsent.range_mut(i..) {
            entry.1 -= len;
            entry.2 -= len;
        }
        // Offsets past `handed_out` are within what is pending, so they fit in usize.
        let from = (start - self.handed_out) as usize;
        self.cut(from, from + len as usize);
        true
    }

    /// Removes bytes `from..to` of those pending (`out_chunks`, then `out`).
    fn cut(&mut self, from: usize, to: usize) {
        if from >= self.chunks_len {
            // All in `out`, the usual case: close the gap.
            let tail = self.out.split_off(to - self.chunks_len);
            self.out.truncate(from - self.chunks_len);
            self.out.unsplit(tail);
            return;
        }
        // The range touches a chunk (a large value, or commands before one): rebuild the
        // chunks from the slices outside it, sharing their bytes.
        let mut segments: Vec<Bytes> = self.out_chunks.drain(..).collect();
        segments.push(self.out.split().freeze());
        self.chunks_len = 0;
        let mut pos = 0;
        for seg in segments {
            let (s, e) = (pos, pos + seg.len());
            pos = e;
            if e <= from || s >= to {
                self.push_chunk(seg);
                continue;
            }
            if s < from {
                self.push_chunk(seg.slice(..from - s));
            }
            if e > to {
                self.push_chunk(seg.slice(to - s..));
            }
        }
    }

    fn push_chunk(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.chunks_len += chunk.len();
            self.out_chunks.push_back(chunk);
        }
    }

    /// Bytes encoded and not handed out yet.
    fn pending_len(&self) -> usize {
        self.chunks_len + self.out.len()
    }

    /// The next bytes to write, or `None` when everything queued was handed out. Commands
    /// sent back to back come out coalesced in one chunk; large values come out as their own
    /// chunk, sharing the caller's `Bytes`.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        let chunk = match self.out_chunks.pop_front() {
            Some(chunk) => {
                self.chunks_len -= chunk.len();
                chunk
            }
            None if self.out.is_empty() => return None,
            None => self.out.split().freeze(),
        };
        self.handed_out += chunk.len() as u64;
        // Requests with a byte handed out can no longer be withdrawn.
        while self.unsent.front().is_some_and(|&(_, start, _)| start < self.handed_out) {
            self.unsent.pop_front();
        }
        Some(chunk)
    }

    /// Whether `poll_transmit` has bytes to hand out.
    pub fn wants_transmit(&self) -> bool {
        !self.out_chunks.is_empty() || !self.out.is_empty()
    }

    /// Copies bytes read from the socket into the connection.
    pub fn handle_input(&mut self, data: &[u8]) {
        self.input.extend_from_slice(data);
    }

    /// The read buffer, for reading from the socket without an intermediate copy: append to
    /// it (e.g. with `read_buf`), never remove from it. The decoder reserves room in it for a
    /// value whose length it knows, so a large value lands in place.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        if self.input.capacity() - self.input.len() < 4096 {
            self.input.reserve(16 * 1024);
        }
        &mut self.input
    }

    /// Takes the read buffer out (with room reserved, as [`read_buf`](Self::read_buf) does), to
    /// fill it without holding whatever guards the connection. Give it back with
    /// [`put_read_buf`](Self::put_read_buf), appended to only, before the next
    /// [`poll_response`](Self::poll_response).
    pub fn take_read_buf(&mut self) -> BytesMut {
        self.read_buf();
        std::mem::take(&mut self.input)
    }

    /// Returns the buffer [`take_read_buf`](Self::take_read_buf) took.
    pub fn put_read_buf(&mut self, buf: BytesMut) {
        self.input = buf;
    }

    /// The next completed reply, in request order, or `Ok(None)` when more input is needed
    /// (or nothing is in flight). Call until `Ok(None)` after each input.
    pub fn poll_response(&mut self) -> Result<Option<Completed>, ProtoError> {
        if let Some(e) = &self.poisoned {
            return Err(e.clone());
        }
        let Some(&(id, kind)) = self.in_flight.front() else {
            if self.input.is_empty() {
                return Ok(None);
            }
            return Err(self.poison(ProtoError::UnsolicitedReply));
        };
        match self.decoder.decode(kind, &mut self.input) {
            Ok(Some(response)) => {
                self.in_flight.pop_front();
                Ok(Some(Completed { id, response }))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(self.poison(e)),
        }
    }

    /// How many requests await their reply.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The error this connection was poisoned with, if any.
    pub fn poisoned(&self) -> Option<&ProtoError> {
        self.poisoned.as_ref()
    }

    /// Whether the connection is idle and in sync: nothing in flight, nothing unsent, no
    /// unread input, not poisoned. Only such a connection may be reused by another caller.
    pub fn is_idle(&self) -> bool {
        self.in_flight.is_empty()
            && !self.wants_transmit()
            && self.input.is_empty()
            && self.poisoned.is_none()
    }

    fn poison(&mut self, e: ProtoError) -> ProtoError {
        self.poisoned = Some(e.clone());
        e
    }
}
