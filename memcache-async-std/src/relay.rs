//! One waker per direction for a futures-io stream that two tasks poll.
//!
//! A connection's reply is read by whichever is waiting for it: the caller's task (alone on
//! the connection, it reads its own reply) or the connection's driver task. Both poll the
//! same stream. async-io keeps one waker per direction and *wakes the one it replaces*, so
//! two tasks polling in turn wake each other in turn: a loop of wake-ups, 30 futile reads per
//! call on async-std's executor and six cross-thread wake-ups per call from `block_on`, until
//! the reply arrives. Tokio instead lets the last poller's waker replace the previous one
//! quietly, and the pipeline is built for that: whoever polled last is woken.
//!
//! A [`Direction`] gives futures-io those semantics. The stream is always polled with the
//! same waker, so async-io never sees a replacement (nor re-registers interest for one); the
//! task that polled last is kept here and woken when the stream's waker fires.

use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};

/// The task to wake for one direction of a stream.
#[derive(Debug, Default)]
struct Relay {
    task: Mutex<Option<Waker>>,
}

impl Relay {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Waker>> {
        self.task.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let task = self.lock().take();
        if let Some(task) = task {
            task.wake();
        }
    }
}

/// One direction (read, or write and flush) of a stream: the stream's one waker, and the
/// task it wakes.
#[derive(Debug)]
pub(crate) struct Direction {
    relay: Arc<Relay>,
    waker: Waker,
}

impl Direction {
    pub(crate) fn new() -> Direction {
        let relay = Arc::new(Relay::default());
        Direction { waker: Waker::from(relay.clone()), relay }
    }

    /// Makes `task` the one to wake, and returns the context to poll the stream with.
    pub(crate) fn register(&self, task: &Waker) -> Context<'_> {
        let mut slot = self.relay.lock();
        if !slot.as_ref().is_some_and(|w| w.will_wake(task)) {
            *slot = Some(task.clone());
        }
        drop(slot);
        self.context()
    }

    /// The context to poll the stream with, leaving the task to wake as it is: for a read
    /// that must not take the wake-up from whoever waits.
    pub(crate) fn context(&self) -> Context<'_> {
        Context::from_waker(&self.waker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// What async-io needs to see to keep quiet: the same waker from every registration, so
    /// it never wakes one it replaces. What the pipeline needs: the last task to register is
    /// the one woken, once.
    #[test]
    fn the_stream_sees_one_waker_and_the_last_task_to_register_is_woken() {
        let direction = Direction::new();
        let (caller, caller_waker) = counting();
        let (driver, driver_waker) = counting();
        let first = direction.register(&caller_waker).waker().clone();
        let second = direction.register(&driver_waker).waker().clone();
        assert!(first.will_wake(&second), "the stream is polled with one waker");
        second.wake_by_ref();
        second.wake_by_ref();
        assert_eq!(caller.0.load(Ordering::SeqCst), 0, "the replaced task is not woken");
        assert_eq!(driver.0.load(Ordering::SeqCst), 1, "the last task is woken once per registration");
        let _ = direction.context();
        first.wake_by_ref();
        assert_eq!(driver.0.load(Ordering::SeqCst), 1, "a poll without a task registers none");
    }
}
