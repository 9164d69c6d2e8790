//! A caller's side of a pipe: the [`Ticket`] that resolves to its reply.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::{Pipe, PipeState, ReadNow, Slot, Target};
use crate::config::deadline;
use crate::{Error, Response};

/// A caller's claim on one reply. Dropping it before it resolves abandons the reply, which
/// the driver then reads and discards.
#[derive(Debug)]
pub struct Ticket {
    pipe: Arc<Pipe>,
    id: u64,
    finished: bool,
    /// Whether this ticket read the socket itself (and so may hold its read wake-up).
    reading: bool,
    /// Whether this ticket already busy-polled (once per request: a caller woken again after
    /// a spin was left waiting for a slow server; spinning again would only burn CPU).
    spun: bool,
    /// Whether the request may have reached the server: false once the pipe failed before
    /// any byte of it was taken for writing.
    written: bool,
    /// Whether the caller wrote the request whole itself when it submitted it.
    sent: bool,
}

impl Ticket {
    pub(super) fn new(pipe: Arc<Pipe>, id: u64, sent: bool) -> Ticket {
        Ticket { pipe, id, finished: false, reading: false, spun: false, written: true, sent }
    }

    /// Whether the request was handed to the socket whole before [`Pipe::submit`] returned
    /// (the caller wrote it itself, on a connection it had to itself). Work the caller does
    /// now overlaps the server's; when this is false, the driver task has the request to
    /// write, and a caller on a single-threaded runtime should let it run first.
    pub fn sent(&self) -> bool {
        self.sent
    }

    /// Whether the request may have reached the server (see [`crate::retry::Attempt`]):
    /// known `false` only for a request the pipe failed before writing any of it.
    pub fn written(&self) -> bool {
        self.written
    }

    /// Hands reading back to the driver if this ticket was doing it. With requests still in
    /// flight the driver is woken to read them. With none, waking it would only have it poll
    /// the socket to re-arm its own read wake-up: a task hop per call, across threads when the
    /// caller is not a runtime worker (`block_on`). The ticket polls the socket once with
    /// the driver's waker instead, so a caller alone on a connection costs one wake-up per
    /// reply (its own). On a transport with [`fresh_reads`](super::Transport::fresh_reads)
    /// even that read is saved: the socket is left unarmed, and the next submit's probe (a
    /// read it makes anyway) re-arms it. A connection the server closes meanwhile is found
    /// by that probe, before anything is written to it, as the blocking client finds it
    /// when it takes the connection from its pool.
    fn stop_reading(&mut self) {
        if !std::mem::take(&mut self.reading) {
            return;
        }
        let driver = {
            let mut state = self.pipe.lock();
            if state.conn.in_flight() > 0 || !state.gathered.is_empty() || state.driver.is_none() {
                state.wake_driver();
                return;
            }
            // Every request was answered: the deadlines the driver would pop go now, so that
            // they do not pile up between its polls.
            state.deadlines.clear();
            state.unarmed = self.pipe.fresh_reads;
            state.driver.clone().filter(|_| !state.unarmed)
        };
        if let Some(driver) = driver {
            if let Err(e) = self.pipe.read(&mut Context::from_waker(&driver)) {
                self.pipe.fail(e);
            }
        }
    }

    /// The reply if it is in; otherwise registers `cx` to be woken when it is.
    fn take_reply(&mut self, cx: &mut Context<'_>) -> Option<Result<Response, Error>> {
        let id = self.id;
        let mut state = self.pipe.lock();
        let result = match state.slots.get_mut(&id) {
            Some(Slot::Waiting(w)) => {
                if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *w = Some(cx.waker().clone());
                }
                return None;
            }
            Some(Slot::Done(_) | Slot::Unwritten(_)) => match state.slots.remove(&id) {
                Some(Slot::Done(result)) => result,
                Some(Slot::Unwritten(e)) => {
                    self.written = false;
                    Err(e)
                }
                _ => Err(Error::Closed),
            },
            Some(Slot::Abandoned) | None => Err(Error::Closed),
        };
        self.finished = true;
        Some(result)
    }
}

impl Future for Ticket {
    type Output = Result<Response, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(result) = self.take_reply(cx) {
            self.stop_reading();
            return Poll::Ready(result);
        }
        if !self.pipe.lock().is_solo() {
            self.stop_reading();
            return Poll::Pending;
        }
        // The only request in flight: read its reply here rather than through the driver,
        // which saves a task hop per call on a connection used one call at a time. This task
        // may now be the one the socket wakes, so whenever it stops reading (done, dropped,
        // or joined by other requests) it wakes the driver to take reading back.
        self.reading = true;
        if let Err(e) = self.pipe.read_until(cx, Some(self.id)) {
            self.pipe.fail(e);
        }
        let mut reply = self.take_reply(cx);
        if reply.is_none() && !self.spun && !self.pipe.busy_poll.is_zero() {
            self.spun = true;
            reply = self.spin(cx);
        }
        match reply {
            Some(result) => {
                self.stop_reading();
                Poll::Ready(result)
            }
            None => Poll::Pending,
        }
    }
}

impl Ticket {
    /// Busy polling: reads without yielding until the reply is in, or no byte arrived for a
    /// `busy_poll` window. Then reads once more through `cx`, so that the task is woken when
    /// the rest arrives (`read_now` keeps no registration).
    fn spin(&mut self, cx: &mut Context<'_>) -> Option<Result<Response, Error>> {
        let mut until = deadline((self.pipe.clock.now)(), self.pipe.busy_poll);
        loop {
            match self.pipe.read_now() {
                Ok(ReadNow::Bytes) => until = deadline((self.pipe.clock.now)(), self.pipe.busy_poll),
                Ok(ReadNow::Nothing) if (self.pipe.clock.now)() < until => std::hint::spin_loop(),
                Ok(_) => break,
                Err(e) => {
                    self.pipe.fail(e);
                    break;
                }
            }
            // Checked on every turn, not only when this ticket read bytes: the driver may
            // have read the reply meanwhile, or failed the pipe at its deadline.
            if let Some(reply) = self.take_reply(cx) {
                return Some(reply);
            }
        }
        if let Err(e) = self.pipe.read(cx) {
            self.pipe.fail(e);
        }
        self.take_reply(cx)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.finished {
            // A request not written yet is withdrawn; a reply still to come is abandoned,
            // not forgotten: it is read and discarded, and its deadline still holds (see
            // `Slot::Abandoned`).
            let mut state = self.pipe.lock();
            state.abandon(self.id);
            self.pipe.publish_load(&state);
        }
        self.stop_reading();
    }
}

impl PipeState {
    /// A caller gave up on request `id` (dropped its ticket before the reply). A request no
    /// byte of which was taken for writing is withdrawn: the server never sees it, so a write
    /// the caller cancelled cannot be applied later, after writes the caller made since. One
    /// already (partly) written stays, and its reply is read and discarded in turn
    /// ([`Slot::Abandoned`]).
    fn abandon(&mut self, id: u64) {
        let waiting = matches!(self.slots.get(&id), Some(Slot::Waiting(_)));
        if waiting && !self.withdraw(id) {
            self.slots.insert(id, Slot::Abandoned);
        } else {
            self.slots.remove(&id);
        }
    }

    /// Takes request `id` back if it is still gathered, or still whole in the connection's
    /// output; whether it was. Its deadline entry is skipped once its slot is gone.
    fn withdraw(&mut self, id: u64) -> bool {
        if let Some(i) = self.gathered.iter().position(|&(g, _)| g == id) {
            self.gathered.remove(i);
            return true;
        }
        // Unwritten requests are the newest: search from the back.
        let Some(pos) = self.targets.iter().rposition(|t| matches!(t, Target::One(slot, _) if *slot == id))
        else {
            return false;
        };
        let Target::One(_, request) = self.targets[pos] else { return false };
        if !self.conn.withdraw(request) {
            return false;
        }
        let queued_from = self.targets.len().saturating_sub(self.queued);
        self.targets.remove(pos);
        if pos >= queued_from {
            self.queued -= 1;
        }
        true
    }
}
