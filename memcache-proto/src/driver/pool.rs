//! Runtime-neutral connection pool for async adapters: a few pipelined connections per
//! server, a bound on requests in flight, and FIFO admission when the bound is reached.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::pipeline::{Pipe, SATURATED};
use crate::Error;
use crate::observe::{PoolCounters, PoolStats};

/// The pipelined connections to one server.
#[derive(Debug)]
pub struct ServerPool {
    max_conns: usize,
    max_requests: usize,
    state: Mutex<PoolState>,
    /// Shared with the pool's connections, which count their own closing.
    counters: Arc<PoolCounters>,
}

#[derive(Debug, Default)]
struct PoolState {
    pipes: Vec<Arc<Pipe>>,
    /// Connections being opened by callers admitted with [`Route::Open`].
    connecting: usize,
    /// Requests admitted and not yet finished.
    admitted: usize,
    /// Callers waiting for admission, oldest first.
    waiters: Waiters,
    closed: bool,
}

/// Callers waiting for admission, in FIFO order. Joining, leaving (from anywhere in the
/// line, when a caller gives up), finding the first and updating a waker are all O(1)
/// (amortized), so a long queue costs each waiter the same as a short one.
#[derive(Debug, Default)]
struct Waiters {
    /// Waiter ids in arrival order; ids that left are skipped when they reach the front.
    order: VecDeque<u64>,
    /// The waker of every waiter still in line.
    wakers: HashMap<u64, Waker>,
    next: u64,
}

impl Waiters {
    fn push(&mut self, waker: Waker) -> u64 {
        let id = self.next;
        self.next += 1;
        self.order.push_back(id);
        self.wakers.insert(id, waker);
        id
    }

    /// The first waiter still in line.
    fn front(&mut self) -> Option<u64> {
        while let Some(&id) = self.order.front() {
            if self.wakers.contains_key(&id) {
                return Some(id);
            }
            self.order.pop_front();
        }
        None
    }

    fn update(&mut self, id: u64, waker: &Waker) {
        if let Some(w) = self.wakers.get_mut(&id) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    fn remove(&mut self, id: u64) {
        self.wakers.remove(&id);
        // Ids that left from the middle wait in `order` until they reach the front; when
        // they outnumber those in line, one pass drops them (amortized O(1) per departure).
        if self.order.len() > 2 * self.wakers.len() + 16 {
            let wakers = &self.wakers;
            self.order.retain(|id| wakers.contains_key(id));
        }
    }

    fn wake_front(&mut self) {
        if let Some(id) = self.front() {
            if let Some(w) = self.wakers.get(&id) {
                w.wake_by_ref();
            }
        }
    }

    fn wake_all(&mut self) {
        self.order.clear();
        self.wakers.drain().for_each(|(_, w)| w.wake());
    }
}

/// What an admitted caller does: use a connection, or open one and hand it to
/// [`Lease::opened`].
#[derive(Debug)]
pub enum Route {
    /// Submit on this connection.
    Use(Arc<Pipe>),
    /// Open a new connection (the pool counted it as connecting).
    Open,
}

impl ServerPool {
    /// A pool of at most `max_conns` connections with at most `max_in_flight` requests each.
    pub fn new(max_conns: usize, max_in_flight: usize) -> ServerPool {
        let max_conns = max_conns.max(1);
        ServerPool {
            max_conns,
            max_requests: max_conns * max_in_flight.max(1),
            state: Mutex::new(PoolState::default()),
            counters: Arc::default(),
        }
    }

    /// The lifetime counters of this server's connections.
    pub fn counters(&self) -> &Arc<PoolCounters> {
        &self.counters
    }

    /// What `pool_stats` reports for this server: a connection is idle when nothing is in
    /// flight on it; a dead one not yet replaced is no longer counted as open.
    pub fn stats(&self) -> PoolStats {
        let state = self.lock();
        let mut stats = PoolStats::default();
        for load in state.pipes.iter().filter_map(|p| p.load()) {
            stats.open += 1;
            stats.idle += usize::from(load == 0);
            stats.in_flight += load;
        }
        stats.in_use = stats.open - stats.idle;
        stats.waiting = state.waiters.wakers.len();
        stats.created = self.counters.created();
        stats.closed = self.counters.closed_by_reason();
        stats
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits (in FIFO order) until a request may go to this server.
    pub fn admit(self: &Arc<Self>) -> Admit {
        Admit { pool: self.clone(), ticket: None, fresh: false }
    }

    /// [`admit`](Self::admit) for a request whose pooled connection just proved dead (found
    /// so before writing, or failing as a stale one): it opens a new connection while the
    /// bound allows, rather than taking another idle one. After a server restart every
    /// pooled connection is dead, and the ones the client has not yet seen die look idle:
    /// handed one of those, the caller would fail a second time.
    pub fn admit_fresh(self: &Arc<Self>) -> Admit {
        Admit { pool: self.clone(), ticket: None, fresh: true }
    }

    /// Closes every connection; later requests fail with [`Error::Closed`].
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for pipe in state.pipes.drain(..) {
            pipe.fail(Error::Closed);
        }
        state.waiters.wake_all();
    }

    /// Connections currently open.
    #[cfg(test)]
    pub fn connections(&self) -> usize {
        self.lock().pipes.len()
    }

    /// Where the next request goes. Callers are packed onto the busiest live connection that
    /// is not [saturated](Pipe::saturated), so that their requests leave in shared batches;
    /// a new connection is opened only when every open one is saturated (and the bound
    /// allows), and at the bound the least loaded one takes the request. A high cap thus
    /// changes nothing until the load needs it: spreading callers over as many connections
    /// as permitted would make each write and each read carry one request. A `fresh` request
    /// opens a connection first, and takes an open one only at the bound.
    fn route(&self, state: &mut PoolState, fresh: bool) -> Option<Route> {
        let mut open: Option<(usize, &Arc<Pipe>)> = None;
        let mut least: Option<(usize, &Arc<Pipe>)> = None;
        let mut dead = false;
        for pipe in &state.pipes {
            let Some(n) = pipe.load() else {
                dead = true;
                continue;
            };
            if least.is_none_or(|(m, _)| n < m) {
                least = Some((n, pipe));
            }
            if open.is_none_or(|(m, _)| n > m) && !pipe.saturated() {
                open = Some((n, pipe));
            }
        }
        let (open, least) = (open.map(|(_, p)| p.clone()), least.map(|(_, p)| p.clone()));
        if dead {
            state.pipes.retain(|p| !p.is_dead());
        }
        // A connection being opened will take the next callers: they wait for it rather
        // than each open one of their own (a burst on a cold pool would otherwise open as
        // many as the cap permits), unless more wait than it can carry.
        let absorbed = state.connecting * SATURATED;
        let below_cap = state.pipes.len() + state.connecting < self.max_conns;
        let room = below_cap && (fresh || state.connecting == 0 || state.waiters.wakers.len() >= absorbed);
        match (open, least) {
            (Some(p), _) if !fresh => Some(Route::Use(p)),
            _ if room => {
                state.connecting += 1;
                Some(Route::Open)
            }
            (_, least) => least.map(Route::Use),
        }
    }
}

impl Drop for ServerPool {
    fn drop(&mut self) {
        self.close();
    }
}

impl PoolState {
    fn wake_front(&mut self) {
        self.waiters.wake_front();
    }
}

/// Future of [`ServerPool::admit`]: resolves to a [`Lease`] holding the caller's place.
#[derive(Debug)]
pub struct Admit {
    pool: Arc<ServerPool>,
    ticket: Option<u64>,
    /// See [`ServerPool::admit_fresh`].
    fresh: bool,
}

impl Future for Admit {
    type Output = Result<Lease, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pool = self.pool.clone();
        let mut state = pool.lock();
        if state.closed {
            return Poll::Ready(Err(Error::Closed));
        }
        let first = match (self.ticket, state.waiters.front()) {
            (_, None) => true,
            (Some(t), Some(front)) => t == front,
            (None, Some(_)) => false,
        };
        if first && state.admitted < pool.max_requests {
            if let Some(route) = pool.route(&mut state, self.fresh) {
                state.admitted += 1;
                if let Some(t) = self.ticket.take() {
                    state.waiters.remove(t);
                }
                // Let the next waiter try too: admission may have room for several.
                state.wake_front();
                return Poll::Ready(Ok(Lease { pool: pool.clone(), route: Some(route), fresh: false }));
            }
        }
        match self.ticket {
            Some(t) => state.waiters.update(t, cx.waker()),
            None => self.ticket = Some(state.waiters.push(cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl Drop for Admit {
    fn drop(&mut self) {
        if let Some(t) = self.ticket {
            let mut state = self.pool.lock();
            state.waiters.remove(t);
            state.wake_front();
        }
    }
}

/// An admitted request's place in a server's bound; released on drop.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<ServerPool>,
    route: Option<Route>,
    fresh: bool,
}

impl Lease {
    /// The connection to send on, once admitted to use one or [`opened`](Self::opened).
    pub fn pipe(&self) -> Option<&Arc<Pipe>> {
        match &self.route {
            Some(Route::Use(pipe)) => Some(pipe),
            _ => None,
        }
    }

    /// Whether the request rides on a connection that was already open (and so may have gone
    /// stale while idle), rather than one opened for it.
    pub fn reused(&self) -> bool {
        !self.fresh
    }

    /// Adds the connection this lease was admitted to open ([`Route::Open`]) to the pool.
    /// If the lease is dropped without it, the pool counts the attempt as failed.
    pub fn opened(&mut self, pipe: Arc<Pipe>) {
        let mut state = self.pool.lock();
        if let Some(Route::Open) = self.route {
            state.connecting -= 1;
        }
        if state.closed {
            pipe.fail(Error::Closed);
        } else {
            state.pipes.push(pipe.clone());
        }
        self.route = Some(Route::Use(pipe));
        self.fresh = true;
        state.wake_front();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.pool.lock();
        if let Some(Route::Open) = self.route {
            // Admitted to open a connection that never came: release the slot.
            state.connecting -= 1;
        }
        state.admitted -= 1;
        state.wake_front();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::task::Wake;
    use std::time::Duration;

    use bytes::BytesMut;

    use super::*;
    use crate::driver::pipeline::{Clock, Transport};
    use std::time::Instant;

    /// A socket that never moves a byte.
    struct Silent;

    impl Transport for Silent {
        fn poll_read(&mut self, _: &mut Context<'_>, _: &mut BytesMut) -> Poll<std::io::Result<usize>> {
            Poll::Pending
        }
        fn poll_write(&mut self, _: &mut Context<'_>, _: &[u8]) -> Poll<std::io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A socket that takes every write and never answers.
    struct Sink;

    impl Transport for Sink {
        fn poll_read(&mut self, _: &mut Context<'_>, _: &mut BytesMut) -> Poll<std::io::Result<usize>> {
            Poll::Pending
        }
        fn poll_write(&mut self, _: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn pipe() -> Arc<Pipe> {
        pipe_on(Silent)
    }

    fn pipe_on(io: impl Transport) -> Arc<Pipe> {
        let config = crate::driver::pipeline::tests::config();
        let clock = Clock { now: Instant::now, sleep: |_| Box::pin(std::future::pending()) };
        Pipe::new(io, &config, clock).0
    }

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn poll(admit: &mut Admit, counter: &Arc<Counter>) -> Poll<Result<Lease, Error>> {
        let waker = Waker::from(counter.clone());
        Pin::new(admit).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_full_pool_admits_in_order_as_places_free_up() {
        let pool = Arc::new(ServerPool::new(1, 1));
        let (c1, c2, c3) =
            (Arc::new(Counter::default()), Arc::new(Counter::default()), Arc::new(Counter::default()));
        let Poll::Ready(Ok(mut first)) = poll(&mut pool.admit(), &c1) else { panic!("an empty pool admits") };
        assert!(first.pipe().is_none(), "the first request opens the connection");
        first.opened(pipe());

        let (mut second, mut third) = (pool.admit(), pool.admit());
        assert!(poll(&mut second, &c2).is_pending(), "the bound of one request is reached");
        assert!(poll(&mut third, &c3).is_pending(), "the third waits behind the second");
        assert_eq!(c2.0.load(SeqCst), 0, "nobody woke the second yet");

        drop(first);
        assert_eq!(c2.0.load(SeqCst), 1, "the finished request woke the oldest waiter");
        let Poll::Ready(Ok(second)) = poll(&mut second, &c2) else {
            panic!("the freed place goes to the second")
        };
        assert!(second.pipe().is_some(), "it rides on the open connection");
        assert!(poll(&mut third, &c3).is_pending(), "the bound still holds for the third");

        drop(third);
        drop(second);
        let Poll::Ready(Ok(_)) = poll(&mut pool.admit(), &c1) else { panic!("an idle pool admits at once") };
        assert_eq!(pool.connections(), 1, "one connection served everyone");
    }

    #[test]
    fn a_high_cap_opens_a_second_connection_only_when_the_first_is_saturated() {
        use crate::{Command, Key, Keys};
        let pool = Arc::new(ServerPool::new(32, 1024));
        let c = Arc::new(Counter::default());
        let get =
            Command::Get { keys: Keys::one(Key::copy_from(b"k").expect("key")), cas: true, touch: None };
        let deadline = Instant::now() + Duration::from_secs(60);
        let Poll::Ready(Ok(mut lease)) = poll(&mut pool.admit(), &c) else { panic!("an empty pool admits") };
        assert!(lease.pipe().is_none(), "the first request opens the connection");
        let first = pipe_on(Sink);
        lease.opened(first.clone());
        let mut held = vec![(first.submit(&get, deadline).expect("live pipe"), lease)];
        for n in 1..SATURATED {
            let Poll::Ready(Ok(lease)) = poll(&mut pool.admit(), &c) else { panic!("room to admit") };
            let pipe = lease.pipe().unwrap_or_else(|| panic!("request {n} opened a connection"));
            assert!(Arc::ptr_eq(pipe, &first), "request {n} joins the open connection");
            held.push((pipe.submit(&get, deadline).expect("live pipe"), lease));
        }
        assert_eq!(pool.connections(), 1, "{SATURATED} callers share one connection under a cap of 32");
        assert!(first.saturated());
        let Poll::Ready(Ok(lease)) = poll(&mut pool.admit(), &c) else { panic!("room to admit") };
        assert!(lease.pipe().is_none(), "a saturated connection makes the pool open another");
    }

    #[test]
    fn a_burst_on_a_cold_pool_waits_for_the_connection_being_opened() {
        let pool = Arc::new(ServerPool::new(32, 1024));
        let c = Arc::new(Counter::default());
        let Poll::Ready(Ok(mut opener)) = poll(&mut pool.admit(), &c) else { panic!("an empty pool admits") };
        assert!(opener.pipe().is_none(), "the first request opens the connection");
        let mut burst: Vec<Admit> = (0..8).map(|_| pool.admit()).collect();
        for admit in &mut burst {
            assert!(poll(admit, &c).is_pending(), "the others wait for the connection being opened");
        }
        opener.opened(pipe_on(Sink));
        let mut leases = vec![opener];
        for admit in &mut burst {
            let Poll::Ready(Ok(lease)) = poll(admit, &c) else {
                panic!("admitted once the connection is open")
            };
            assert!(lease.pipe().is_some(), "it rides on the opened connection");
            leases.push(lease);
        }
        assert_eq!(pool.connections(), 1);
    }

    #[test]
    fn waiters_who_leave_from_the_middle_keep_the_line_in_order() {
        let pool = Arc::new(ServerPool::new(1, 1));
        let c = Arc::new(Counter::default());
        let Poll::Ready(Ok(mut held)) = poll(&mut pool.admit(), &c) else { panic!("an empty pool admits") };
        held.opened(pipe());
        let mut line: Vec<(usize, Admit)> = (0..1000).map(|i| (i, pool.admit())).collect();
        line.iter_mut().for_each(|(_, a)| assert!(poll(a, &c).is_pending()));
        // Two thirds give up, from everywhere in the line (which compacts the queue).
        line.retain(|(i, _)| i % 3 == 0);
        let mut admitted = Vec::new();
        for _ in 0..line.len() {
            drop(held);
            let mut got = None;
            for (i, admit) in line.iter_mut() {
                if let Poll::Ready(lease) = poll(admit, &c) {
                    assert!(got.is_none(), "one freed place, one admission");
                    got = Some((*i, lease.expect("admitted")));
                }
            }
            let (i, lease) = got.expect("the freed place went to someone");
            line.retain(|(j, _)| *j != i);
            admitted.push(i);
            held = lease;
        }
        assert_eq!(
            admitted,
            (0..1000).filter(|i| i % 3 == 0).collect::<Vec<_>>(),
            "first come, first served"
        );
    }
}
