//! The `connection` target: `Connection` driven by an arbitrary sequence of calls.

use arbitrary::{Result, Unstructured};
use bytes::BytesMut;
use memcache_proto::{Command, Connection, Limits, ProtoError, ReplyKind, RequestId, Response};

use crate::{arb, request};

/// Values up to 64 KiB: room for every generated reply, small enough that a garbage header
/// cannot make each run reserve much.
fn limits() -> Limits {
    Limits::DEFAULT.with_max_value_len(64 * 1024)
}

/// The operations, one per input byte `tag % OPS`.
const SEND: u8 = 0;
const SEND_REQUEST: u8 = 1;
const TRANSMIT: u8 = 2;
const FEED_RAW: u8 = 3;
const FEED_REPLY: u8 = 4;
const POLL_ONCE: u8 = 5;
const POLL_ALL: u8 = 6;
const OPS: u8 = 7;

/// One call of a [`connection`] input: `SendRequest` sends what [`request::parse`] reads from
/// the request bytes, `FeedRaw` feeds bytes as they are (copied if `copy`, else through
/// `read_buf`), `PollAll` polls until `None`.
#[derive(Debug, Clone)]
pub enum Step<'a> {
    /// Send every command of a canonical request stream.
    SendRequest(&'a [u8]),
    /// Feed raw bytes.
    FeedRaw {
        /// Through `handle_input` rather than `read_buf`.
        copy: bool,
        /// The bytes (at most 65,535).
        bytes: &'a [u8],
    },
    /// Call `poll_transmit` up to `n` (1 to 4) times.
    Transmit(u8),
    /// Poll until `Ok(None)` or an error.
    PollAll,
}

/// Encodes `steps` as a [`connection`] input (for seeds).
pub fn connection_input(steps: &[Step<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    let len16 = |out: &mut Vec<u8>, b: &[u8]| {
        let n = b.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(n as u16).to_le_bytes());
        out.extend_from_slice(&b[..n]);
    };
    for step in steps {
        match *step {
            Step::SendRequest(bytes) => {
                out.push(SEND_REQUEST);
                len16(&mut out, bytes);
            }
            Step::FeedRaw { copy, bytes } => {
                out.push(FEED_RAW + if copy { 0 } else { OPS });
                len16(&mut out, bytes);
            }
            Step::Transmit(n) => out.extend([TRANSMIT, n.saturating_sub(1)]),
            Step::PollAll => out.push(POLL_ALL),
        }
    }
    out
}

/// The model the connection is checked against.
struct Harness {
    conn: Connection,
    /// Every request sent: its id and reply kind.
    sent: Vec<(RequestId, ReplyKind)>,
    /// The bytes of every command sent, encoded by `Command::encode`.
    encoded: Vec<u8>,
    /// What `poll_transmit` handed out.
    transmitted: Vec<u8>,
    /// How many requests completed.
    completed: usize,
    /// Requests `..fed` have their whole reply in the input (rendered ones in `expected`).
    fed: usize,
    expected: Vec<Option<Response>>,
    /// Whether every byte fed so far is a rendered reply to the requests in order; while it
    /// holds, the replies must come back exactly, with no error and no stall.
    clean: bool,
    poisoned: Option<ProtoError>,
}

impl Harness {
    fn send(&mut self, command: &Command) {
        let id = self.conn.send(command);
        if let Some(&(last, _)) = self.sent.last() {
            assert!(id > last, "request ids increase: {id:?} after {last:?}");
        }
        command.encode(&mut self.encoded);
        self.sent.push((id, command.reply_kind()));
        self.expected.push(None);
    }

    fn transmit(&mut self, polls: usize) {
        for _ in 0..polls {
            let Some(chunk) = self.conn.poll_transmit() else { break };
            assert!(!chunk.is_empty(), "poll_transmit handed out an empty chunk");
            self.transmitted.extend_from_slice(&chunk);
            assert!(
                self.encoded.starts_with(&self.transmitted),
                "transmitted bytes are the commands' encoding"
            );
        }
        let pending = self.transmitted.len() < self.encoded.len();
        assert_eq!(self.conn.wants_transmit(), pending, "wants_transmit");
    }

    fn feed(&mut self, copy: bool, bytes: &[u8]) {
        if copy {
            self.conn.handle_input(bytes);
        } else {
            self.conn.read_buf().extend_from_slice(bytes);
        }
    }

    /// Renders a valid reply to the next request whose reply is not yet in the input, and
    /// feeds it, in two parts with polls in between.
    fn feed_reply(&mut self, u: &mut Unstructured<'_>) -> Result<()> {
        while self.sent.get(self.fed).is_some_and(|&(_, kind)| kind == ReplyKind::None) {
            self.fed += 1;
        }
        let kind = match self.sent.get(self.fed) {
            Some(&(_, kind)) => kind,
            None => {
                // Nothing awaits a reply: this one is unsolicited.
                self.clean = false;
                arb::kind(u.arbitrary()?)
            }
        };
        let response = arb::response(u, kind)?;
        let mut bytes = BytesMut::new();
        response.encode(&mut bytes);
        // A proper prefix of a reply is never a whole reply: the first part must not complete.
        let cut = usize::from(u.arbitrary::<u16>()?) % bytes.len().max(1);
        let copy = u.arbitrary()?;
        self.feed(copy, &bytes[..cut]);
        self.poll_all();
        self.feed(!copy, &bytes[cut..]);
        if let Some(slot) = self.expected.get_mut(self.fed) {
            *slot = Some(response);
            self.fed += 1;
        }
        self.poll_all();
        Ok(())
    }

    /// One `poll_response`, checked against the model. Returns whether a reply completed.
    fn poll(&mut self) -> bool {
        let result = self.conn.poll_response();
        if let Some(e) = &self.poisoned {
            assert_eq!(result.as_ref(), Err(e), "a poisoned connection repeats its error");
            assert_eq!(self.conn.poisoned(), Some(e));
            return false;
        }
        let progressed = match result {
            Err(e) => {
                assert!(!self.clean, "error {e:?} on a stream of valid replies");
                assert_eq!(self.conn.poisoned(), Some(&e));
                self.poisoned = Some(e);
                false
            }
            Ok(None) => {
                if self.clean
                    && let Some(&(_, kind)) = self.sent.get(self.completed)
                {
                    assert!(
                        self.completed >= self.fed && kind != ReplyKind::None,
                        "stalled on request {} of {} whose reply is in (fed {})",
                        self.completed,
                        self.sent.len(),
                        self.fed
                    );
                }
                false
            }
            Ok(Some(done)) => {
                let Some(&(id, kind)) = self.sent.get(self.completed) else {
                    panic!("completion {done:?} beyond the {} requests sent", self.sent.len());
                };
                assert_eq!(done.id, id, "replies complete in request order");
                assert!(arb::fits(kind, &done.response), "{:?} answers a {kind:?} request", done.response);
                if self.clean && kind != ReplyKind::None {
                    assert!(
                        self.completed < self.fed,
                        "request {} completed before its reply",
                        self.completed
                    );
                    assert_eq!(Some(&done.response), self.expected[self.completed].as_ref());
                }
                self.completed += 1;
                true
            }
        };
        assert_eq!(self.conn.in_flight(), self.sent.len() - self.completed, "in_flight");
        if self.conn.is_idle() {
            assert!(self.poisoned.is_none() && self.completed == self.sent.len(), "idle with work left");
        }
        progressed
    }

    fn poll_all(&mut self) {
        // Each round completes a request or stops.
        for _ in 0..=self.sent.len() {
            if !self.poll() {
                return;
            }
        }
        panic!("poll_response kept completing beyond the requests sent");
    }

    fn finish(mut self) {
        self.transmit(usize::MAX);
        assert_eq!(self.transmitted, self.encoded, "everything sent was transmitted");
        self.poll_all();
        if self.clean {
            assert!(self.completed >= self.fed, "replies fed but not completed");
        }
        // Poisoning is permanent.
        if let Some(e) = self.poisoned.clone() {
            self.conn.send(&Command::Version);
            assert_eq!(self.conn.poll_response(), Err(e));
        }
    }
}

/// Target `connection`: an arbitrary sequence of sends, partial transmits, raw or rendered
/// reply bytes (copied or through `read_buf`) and polls. Checked: request ids increase, the
/// transmitted bytes are exactly the commands' encoding, replies complete in request order with
/// the right shape and never outnumber the requests, `in_flight` is right, a stream of valid
/// replies decodes exactly (no error, no stall), and once an error is returned every later
/// poll returns that same error.
pub fn connection(data: &[u8]) {
    let mut h = Harness {
        conn: Connection::with_limits(limits()),
        sent: Vec::new(),
        encoded: Vec::new(),
        transmitted: Vec::new(),
        completed: 0,
        fed: 0,
        expected: Vec::new(),
        clean: true,
        poisoned: None,
    };
    let mut u = Unstructured::new(data);
    // An exhausted `Unstructured` keeps yielding zeros: stop when it is empty.
    while !u.is_empty() {
        let Ok(tag) = u.arbitrary::<u8>() else { break };
        if step(&mut h, &mut u, tag).is_err() {
            break;
        }
    }
    h.finish();
}

fn step(h: &mut Harness, u: &mut Unstructured<'_>, tag: u8) -> Result<()> {
    let len16 = |u: &mut Unstructured<'_>| -> Result<usize> {
        let len = usize::from(u.arbitrary::<u8>()?) | usize::from(u.arbitrary::<u8>()?) << 8;
        Ok(len.min(u.len()))
    };
    match tag % OPS {
        SEND => {
            let command = arb::command(u)?;
            h.send(&command);
        }
        SEND_REQUEST => {
            let len = len16(u)?;
            for command in request::parse(u.bytes(len)?).unwrap_or_default() {
                h.send(&command);
            }
        }
        TRANSMIT => {
            let n = u.arbitrary::<u8>()? % 4 + 1;
            h.transmit(usize::from(n));
        }
        FEED_RAW => {
            let len = len16(u)?;
            let bytes = u.bytes(len)?;
            h.clean &= bytes.is_empty();
            h.feed((tag / OPS).is_multiple_of(2), bytes);
        }
        FEED_REPLY => h.feed_reply(u)?,
        POLL_ONCE => {
            h.poll();
        }
        _ => h.poll_all(),
    }
    Ok(())
}
