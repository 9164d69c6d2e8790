//! The task that moves a pipe's bytes and enforces its requests' deadlines.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{Pipe, PipeState, Slot};
use crate::Error;

/// The runtime's time, handed to a pipe: the driver never reads the system clock itself, so
/// a runtime (or a test) that controls time controls every deadline.
#[derive(Clone, Copy)]
pub struct Clock {
    /// The current instant.
    pub now: fn() -> Instant,
    /// A future that completes once the given time has passed.
    pub sleep: fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// The future that moves a pipe's bytes; spawn it on the runtime. It ends when the pipe
/// dies (socket error, protocol error, [`Pipe::fail`], a request past its deadline) or every
/// handle to the pipe is gone.
pub struct Driver {
    pipe: Arc<Pipe>,
    /// Armed while requests may be waiting; see [`Driver::watch`].
    timer: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver").field("pipe", &self.pipe).field("armed", &self.timer.is_some()).finish()
    }
}

impl Driver {
    pub(super) fn new(pipe: Arc<Pipe>) -> Driver {
        Driver { pipe, timer: None }
    }

    /// Deadlines with one timer per connection instead of one per call: memcached answers in
    /// order, so the oldest waiting request is always the first to be late, and a late one
    /// fails the whole pipe anyway (its socket may be stalled). The timer, armed for the
    /// oldest deadline, is kept when that request is answered and re-armed when it fires:
    /// about once per timeout period under load, not once per call (a timer per call costs a
    /// wake-up of the reactor thread on some runtimes).
    fn watch(&mut self, cx: &mut Context<'_>) -> Result<(), Error> {
        loop {
            let oldest = self.pipe.lock().oldest_deadline(self.timer.is_some());
            let now = (self.pipe.clock.now)();
            if oldest.is_some_and(|deadline| deadline <= now) {
                return Err(Error::Timeout);
            }
            match (&mut self.timer, oldest) {
                (Some(timer), _) => match timer.as_mut().poll(cx) {
                    Poll::Pending => return Ok(()),
                    Poll::Ready(()) => self.timer = None,
                },
                (None, Some(deadline)) => self.timer = Some((self.pipe.clock.sleep)(deadline - now)),
                (None, None) => return Ok(()),
            }
        }
    }

    /// Reads replies, then writes the next batch when it is ready.
    fn step(&self, cx: &mut Context<'_>) -> Result<(), Error> {
        let pipe = &self.pipe;
        // Replies first: they may complete the batch in flight and so release the next one.
        pipe.read(cx)?;
        // Coalescing: when a batch is ready, yield once before writing it (a self-wake puts
        // the driver at the back of the run queue), so every caller that is ready to submit,
        // those just handed their replies included, joins the same write.
        let blocked = pipe.blocked();
        let write_now = {
            let mut state = pipe.lock();
            let ready = state.wants_write(blocked) && state.batch_ready(blocked);
            let now = ready && state.deferred;
            state.deferred = ready && !now;
            now
        };
        if write_now {
            pipe.write(cx)?;
        } else if pipe.lock().deferred {
            cx.waker().wake_by_ref();
        }
        Ok(())
    }
}

impl Drop for Driver {
    /// A driver that ends with its pipe still alive (every handle to it gone, or the runtime
    /// shutting down) closes the connection on the client's behalf.
    fn drop(&mut self) {
        self.pipe.closed(crate::observe::CloseReason::ClientClosed);
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let orphaned = Arc::strong_count(&self.pipe) == 1;
        {
            let mut state = self.pipe.lock();
            if state.dead.is_some() || (orphaned && state.slots.is_empty()) {
                return Poll::Ready(());
            }
            if !state.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                state.driver = Some(cx.waker().clone());
            }
        }
        match self.step(cx).and_then(|()| self.watch(cx)) {
            Ok(()) => Poll::Pending,
            Err(e) => {
                self.pipe.fail(e);
                Poll::Ready(())
            }
        }
    }
}

impl PipeState {
    /// The deadline of the oldest request still waiting for its reply, whether its caller
    /// still waits or abandoned it (the reply must come in time either way, or the server is
    /// stalled), forgetting those that were answered. Records whether the driver watches the deadlines (it
    /// does while it has a timer or a waiting request), under the same lock that
    /// [`Pipe::submit`] reads it under, so a submit never goes unwatched.
    fn oldest_deadline(&mut self, armed: bool) -> Option<Instant> {
        while let Some(&(id, deadline)) = self.deadlines.front() {
            if matches!(self.slots.get(&id), Some(Slot::Waiting(_) | Slot::Abandoned)) {
                self.watched = true;
                return Some(deadline);
            }
            self.deadlines.pop_front();
        }
        self.watched = armed;
        None
    }
}
