//! The pipe's hand-offs, on a scripted transport.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
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
