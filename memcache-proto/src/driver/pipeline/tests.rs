//! The pipe's hand-offs, on a scripted transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::{Clock, Pipe, Transport};
use crate::config::Config;
use crate::{Command, Item, Limits, Response, ServerList};

/// Answers each write with `STORED` on the next read; no reply waits otherwise.
#[derive(Default)]
struct Answers {
    replies: usize,
}

impl Transport for Answers {
    fn poll_read(&mut self, _: &mut Context<'_>, buf: &mut BytesMut) -> Poll<std::io::Result<usize>> {
        if self.replies == 0 {
            return Poll::Pending;
        }
        self.replies -= 1;
        buf.extend_from_slice(b"STORED\r\n");
        Poll::Ready(Ok(8))
    }
    fn poll_write(&mut self, _: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.replies += 1;
        Poll::Ready(Ok(data.len()))
    }
    fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Answers like [`Answers`], and records where each write's bytes lie in memory.
#[derive(Default)]
struct Addresses {
    answers: Answers,
    writes: Arc<Mutex<Vec<usize>>>,
}

impl Transport for Addresses {
    fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut BytesMut) -> Poll<std::io::Result<usize>> {
        self.answers.poll_read(cx, buf)
    }
    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.writes.lock().expect("not poisoned").push(data.as_ptr() as usize);
        self.answers.poll_write(cx, data)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.answers.poll_flush(cx)
    }
}

/// Counts its wake-ups.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A config for pipes under test: 1 s timeouts, nothing else set.
pub(crate) fn config() -> Config {
    Config {
        selector: Arc::new(ServerList::default()),
        timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        max_idle_conns: 1,
        max_conns_per_server: None,
        max_in_flight: 1,
        limits: Limits::default(),
        busy_poll: Duration::ZERO,
        observer: None,
        failure_policy: crate::FailurePolicy::default(),
        resolve_every: None,
        #[cfg(any(feature = "tls", feature = "tls-aws-lc-rs"))]
        tls: None,
        #[cfg(feature = "tracing")]
        record_keys: false,
    }
}

fn set(key: &str) -> Command {
    use crate::op::{Op, Store};
    let store = Store::new(crate::command::StoreVerb::Set, &Item::new(key, "v")).expect("a valid key");
    store.command().clone()
}

/// A caller alone on its connection reads its own reply; the read that completes it must not
/// wake the caller's task as well (it is running, and takes the reply at once): on Tokio's
/// multi-thread runtime that wake-up scheduled the task again and woke a second worker to
/// steal it, a futex call and a context switch per call.
#[test]
fn a_caller_reading_its_own_reply_is_not_woken_by_it() {
    let clock = Clock { now: Instant::now, sleep: |_| Box::pin(std::future::pending()) };
    let (pipe, _driver) = Pipe::new(Answers::default(), &config(), clock);
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(counter.clone());
    for key in ["a", "b"] {
        let mut ticket = pipe.submit(&set(key), Instant::now() + Duration::from_secs(1)).expect("submit");
        let got = Pin::new(&mut ticket).poll(&mut Context::from_waker(&waker));
        assert!(matches!(got, Poll::Ready(Ok(Response::Stored))), "{key}: {got:?}");
    }
    assert_eq!(counter.0.load(SeqCst), 0, "the caller's own read woke it");
}

/// Every command is encoded into the connection's write buffer and written from there; once
/// written, the pipe must let go of it, so that the buffer, when full, is reused in place.
/// A pipe that kept its last chunk until the next write made every refill a new buffer (and
/// a shared header for it): 0.06 allocations per set and 0.01 per get that the blocking
/// client did not make. Each of these writes starts at most a buffer's length from the first
/// one: a second buffer, live while the first still was, would lie wholly outside it.
#[test]
fn writes_reuse_the_connection_write_buffer() {
    let clock = Clock { now: Instant::now, sleep: |_| Box::pin(std::future::pending()) };
    let transport = Addresses::default();
    let writes = transport.writes.clone();
    let (pipe, _driver) = Pipe::new(transport, &config(), clock);
    let waker = Waker::from(Arc::new(Counter::default()));
    for i in 0..1000 {
        let key = format!("key{i}");
        let mut ticket = pipe.submit(&set(&key), Instant::now() + Duration::from_secs(1)).expect("submit");
        let got = Pin::new(&mut ticket).poll(&mut Context::from_waker(&waker));
        assert!(matches!(got, Poll::Ready(Ok(Response::Stored))), "{key}: {got:?}");
    }
    let writes = writes.lock().expect("not poisoned");
    assert_eq!(writes.len(), 1000, "one write per set");
    let first = writes[0];
    let outside = writes.iter().filter(|&&at| at.wrapping_sub(first) >= crate::connection::WRITE_BUF).count();
    assert_eq!(
        outside,
        0,
        "writes from a buffer other than the first (of {} bytes)",
        crate::connection::WRITE_BUF
    );
}
