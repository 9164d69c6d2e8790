//! A deterministic world for the async driver: scripted in-memory servers, a manual clock and
//! a single-threaded executor, so that a test decides every interleaving and time moves only
//! when the test moves it.
//!
//! The async client's trickiest code (pipelining, deadlines, pooling, cancellation) is
//! runtime-neutral: it reaches the outside world only through
//! [`Runtime`] and
//! [`Transport`](memcache_proto::driver::Transport). [`SimRuntime`] implements both over
//! this module, so a test runs the real client against [`SimServer`]s that answer from a
//! script, stall, split replies, close, reset, send garbage or leave a flush pending, with
//! no socket, no thread and no sleep. As in quinn-proto's `Pair::drive`, the test owns the
//! loop: [`Sim::run`] polls every task and moves every byte until nothing can make progress,
//! [`Sim::advance`] moves the clock (firing timers in order), and [`Sim::block_on`] does both
//! until a future completes, jumping the clock from one timer to the next as a paused Tokio
//! clock does.
//!
//! ```
//! use memcache_proto::driver::Client;
//! use memcache_test_support::sim::{Sim, SimRuntime, memcached};
//!
//! let sim = Sim::new();
//! let server = sim.server(memcached());
//! let client = Client::<SimRuntime>::new([server.addr()]).expect("client");
//! let n = sim.block_on(async move { client.increment("n", 1).await });
//! assert!(n.is_err(), "a miss: the counter does not exist");
//! assert_eq!(server.count("incr"), 1);
//! ```
//!
//! The world lives in a thread local (the runtime trait has no `self`), so one [`Sim`] exists
//! per thread at a time and everything it runs stays on that thread; tests run in parallel
//! on their own threads.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use memcache_proto::Endpoint;
use memcache_proto::driver::Runtime;

mod net;
mod store;

pub use net::{Action, Request, SimConn, SimServer, SimStream, WireConfig};
pub use store::{Handler, Store, memcached};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    static WORLD: RefCell<Option<World>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's world. Panics without a [`Sim`]: the simulated runtime has
/// nothing to run on.
fn with<T>(f: impl FnOnce(&mut World) -> T) -> T {
    WORLD.with(|w| f(w.borrow_mut().as_mut().expect("no Sim on this thread: create one with Sim::new()")))
}

/// Like [`with`], but does nothing when the world is gone or busy (for destructors).
fn try_with(f: impl FnOnce(&mut World)) {
    let _ = WORLD.try_with(|w| {
        if let Ok(mut w) = w.try_borrow_mut() {
            if let Some(w) = w.as_mut() {
                f(w);
            }
        }
    });
}

struct World {
    start: Instant,
    now: Instant,
    /// Pending timers by deadline (and a tie-breaking id).
    timers: BTreeMap<(Instant, u64), Waker>,
    next_timer: u64,
    tasks: HashMap<u64, BoxFuture>,
    next_task: u64,
    ready: Arc<ReadyQueue>,
    servers: HashMap<Endpoint, SimServer>,
    next_addr: u32,
}

/// Tasks woken since they were last polled.
#[derive(Default)]
struct ReadyQueue(Mutex<VecDeque<u64>>);

impl ReadyQueue {
    fn push(&self, id: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push_back(id);
    }
    fn pop(&self) -> Option<u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }
}

struct TaskWaker {
    id: u64,
    ready: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.ready.push(self.id);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.push(self.id);
    }
}

impl World {
    fn spawn(&mut self, task: BoxFuture) -> u64 {
        let id = self.next_task;
        self.next_task += 1;
        self.tasks.insert(id, task);
        self.ready.push(id);
        id
    }

    /// Wakes every timer due at `now`; whether there was one.
    fn fire_timers(&mut self) -> bool {
        let mut fired = false;
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            entry.remove().wake();
            fired = true;
        }
        fired
    }
}

/// The simulated world of one test; see the [module docs](self). Dropping it drops every
/// task still running.
#[derive(Debug)]
pub struct Sim {
    /// Bound to its thread, like the world it owns.
    _thread: PhantomData<*const ()>,
}

impl Default for Sim {
    fn default() -> Self {
        Sim::new()
    }
}

impl Sim {
    /// Installs a new world on this thread. Panics if one is installed already.
    pub fn new() -> Sim {
        let start = Instant::now();
        WORLD.with(|w| {
            let mut w = w.borrow_mut();
            assert!(w.is_none(), "one Sim per thread at a time");
            *w = Some(World {
                start,
                now: start,
                timers: BTreeMap::new(),
                next_timer: 0,
                tasks: HashMap::new(),
                next_task: 0,
                ready: Arc::default(),
                servers: HashMap::new(),
                next_addr: 1,
            });
        });
        Sim { _thread: PhantomData }
    }

    /// The simulated clock.
    pub fn now(&self) -> Instant {
        with(|w| w.now)
    }

    /// Simulated time since the world was made.
    pub fn elapsed(&self) -> Duration {
        with(|w| w.now - w.start)
    }

    /// A new server answering with `handler`, reachable at its own [`SimServer::addr`].
    pub fn server(&self, handler: Handler) -> SimServer {
        with(|w| {
            let addr = format!("192.0.2.{}:11211", w.next_addr);
            w.next_addr += 1;
            let server = SimServer::new(addr, handler);
            w.servers.insert(server.endpoint(), server.clone());
            server
        })
    }

    /// Runs `f` as a task; its output is kept in the returned [`Task`].
    pub fn spawn<F>(&self, f: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let out = Arc::new(Mutex::new(None));
        let slot = out.clone();
        let id = with(|w| {
            w.spawn(Box::pin(async move {
                let v = f.await;
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
            }))
        });
        Task { id, out }
    }

    /// Polls every woken task and moves every byte between clients and servers, until
    /// nothing more can happen without time passing. Returns the number of task polls.
    pub fn run(&self) -> usize {
        let mut polls = 0;
        loop {
            while let Some(id) = with(|w| w.ready.pop()) {
                polls += poll_task(id) as usize;
            }
            let servers: Vec<SimServer> = with(|w| w.servers.values().cloned().collect());
            let moved = servers.iter().fold(false, |moved, s| s.step() | moved);
            let idle = with(|w| w.ready.0.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
            if !moved && idle {
                return polls;
            }
        }
    }

    /// Moves the clock forward by `d`, firing every timer due on the way in deadline order
    /// and running the world after each, then runs it at the final time.
    pub fn advance(&self, d: Duration) {
        let target = with(|w| w.now + d);
        self.run();
        while let Some(next) = self.next_timer().filter(|t| *t <= target) {
            with(|w| {
                w.now = w.now.max(next);
                w.fire_timers();
            });
            self.run();
        }
        with(|w| w.now = target);
        self.run();
    }

    /// The earliest pending timer.
    pub fn next_timer(&self) -> Option<Instant> {
        with(|w| w.timers.keys().next().map(|(t, _)| *t))
    }

    /// Runs `f` to completion, jumping the clock to the next timer whenever nothing else can
    /// happen. Panics if `f` can never complete (no progress and no timer left).
    pub fn block_on<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = self.spawn(f);
        loop {
            self.run();
            if let Some(v) = task.take() {
                return v;
            }
            let next = self.next_timer().expect("deadlock: the future waits and no timer is pending");
            with(|w| {
                w.now = w.now.max(next);
                w.fire_timers();
            });
        }
    }

    /// Tasks not finished yet.
    pub fn tasks(&self) -> usize {
        with(|w| w.tasks.len())
    }
}

/// Polls task `id` once if it still exists; whether it did.
fn poll_task(id: u64) -> bool {
    let Some((mut task, ready)) = with(|w| w.tasks.remove(&id).map(|t| (t, w.ready.clone()))) else {
        return false;
    };
    let waker = Waker::from(Arc::new(TaskWaker { id, ready }));
    match task.as_mut().poll(&mut Context::from_waker(&waker)) {
        Poll::Ready(()) => drop(task),
        Poll::Pending => {
            with(|w| w.tasks.insert(id, task));
        }
    }
    true
}

impl Drop for Sim {
    fn drop(&mut self) {
        // Tasks are dropped after the world is uninstalled: their destructors may look for it.
        let world = WORLD.with(|w| w.borrow_mut().take());
        drop(world);
    }
}

/// A task spawned with [`Sim::spawn`].
#[derive(Debug)]
pub struct Task<T> {
    id: u64,
    out: Arc<Mutex<Option<T>>>,
}

impl<T> Task<T> {
    /// Whether the task finished (and its output was not taken yet).
    pub fn is_done(&self) -> bool {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The output, once the task finished.
    pub fn take(&self) -> Option<T> {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Drops the task's future where it stands, as a caller that gives up does.
    pub fn abort(self) {
        let task = with(|w| w.tasks.remove(&self.id));
        drop(task);
    }
}

/// The [`Runtime`] of the simulated world: [`SimStream`]s to [`SimServer`]s, tasks on the
/// [`Sim`]'s executor, and timers on its manual clock.
#[derive(Debug, Clone, Copy)]
pub struct SimRuntime;

impl Runtime for SimRuntime {
    type Io = SimStream;

    fn connect(endpoint: &Endpoint) -> impl Future<Output = io::Result<SimStream>> + Send {
        let server = with(|w| w.servers.get(endpoint).cloned());
        let stream = match server {
            Some(server) => server.accept(),
            None => Err(io::ErrorKind::ConnectionRefused.into()),
        };
        std::future::ready(stream)
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(task: F) {
        with(|w| w.spawn(Box::pin(task)));
    }

    fn timeout<F: Future + Send>(d: Duration, f: F) -> impl Future<Output = Option<F::Output>> + Send {
        Timeout { f: Box::pin(f), timer: Timer::after(d) }
    }

    fn now() -> Instant {
        now()
    }
}

/// A timer on the manual clock.
#[derive(Debug)]
pub struct Timer {
    deadline: Instant,
    id: u64,
}

impl Timer {
    /// A timer that fires `d` from now on the simulated clock.
    pub fn after(d: Duration) -> Timer {
        let now = with(|w| w.now);
        Timer { deadline: now.checked_add(d).unwrap_or(now + Duration::from_secs(1 << 32)), id: 0 }
    }

    fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        with(|w| {
            if w.now >= self.deadline {
                w.timers.remove(&(self.deadline, self.id));
                return Poll::Ready(());
            }
            if self.id == 0 {
                w.next_timer += 1;
                self.id = w.next_timer;
            }
            w.timers.insert((self.deadline, self.id), cx.waker().clone());
            Poll::Pending
        })
    }
}

impl Future for Timer {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_elapsed(cx)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        let key = (self.deadline, self.id);
        try_with(|w| {
            w.timers.remove(&key);
        });
    }
}

/// [`SimRuntime::timeout`]'s future.
struct Timeout<F: Future> {
    f: Pin<Box<F>>,
    timer: Timer,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.f.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        self.timer.poll_elapsed(cx).map(|()| None)
    }
}

/// The simulated clock, from inside a task (or anywhere on the [`Sim`]'s thread).
pub fn now() -> Instant {
    with(|w| w.now)
}

/// Sleeps `d` on the simulated clock.
pub async fn sleep(d: Duration) {
    Timer::after(d).await
}
