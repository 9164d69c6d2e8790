//! Running blocking work (a name lookup) off the executor: the default of
//! [`Runtime::spawn_blocking`](super::Runtime::spawn_blocking), for runtimes without a
//! blocking pool of their own.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// What the thread left: its result (or panic) and the waker of the task awaiting it.
struct Slot<T> {
    result: Option<Result<T, Box<dyn Any + Send>>>,
    waker: Option<Waker>,
}

/// Future of [`on_thread`]: resolves to the thread's result, re-raising its panic.
#[derive(Debug)]
pub struct OnThread<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot").field("done", &self.result.is_some()).finish()
    }
}

/// Runs `f` on a new OS thread; the returned future resolves to its result.
pub fn on_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> OnThread<T> {
    let slot = Arc::new(Mutex::new(Slot { result: None, waker: None }));
    let theirs = slot.clone();
    std::thread::spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(f));
        let mut slot = theirs.lock().unwrap_or_else(|p| p.into_inner());
        slot.result = Some(result);
        if let Some(waker) = slot.waker.take() {
            drop(slot);
            waker.wake();
        }
    });
    OnThread { slot }
}

impl<T> Future for OnThread<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        match slot.result.take() {
            Some(Ok(value)) => Poll::Ready(value),
            Some(Err(panic)) => resume_unwind(panic),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::task::Wake;

    struct Signal(mpsc::Sender<()>);

    impl Wake for Signal {
        fn wake(self: Arc<Self>) {
            let _ = self.0.send(());
        }
    }

    #[test]
    fn resolves_to_the_threads_result_after_waking_the_task() {
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let mut fut = on_thread(move || {
            go_rx.recv().expect("test signal");
            42
        });
        let waker = Waker::from(Arc::new(Signal(tx)));
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        go_tx.send(()).expect("thread waits");
        rx.recv().expect("woken");
        assert_eq!(Pin::new(&mut fut).poll(&mut cx), Poll::Ready(42));
    }
}
