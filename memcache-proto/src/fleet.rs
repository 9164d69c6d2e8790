//! A client's servers: the selector, their health, and changes to the list while it runs.
//!
//! Both clients (the blocking one and the async driver) hold one [`Fleet`] shared by all
//! their clones, and ask it, for every call: where does this key go now ([`Fleet::route`]),
//! how did it go ([`Fleet::record`]), did the server list change under me
//! ([`Fleet::departed`]: the servers whose connections to close), and is a periodic
//! re-resolution due ([`Fleet::refresh_due`]). Every decision is here, once; the clients only
//! act on the answers. Sans-IO: time is passed in.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::health::{Health, Permit, Transition};
use crate::observe::{ConnectionEvent, Observer};
use crate::op::GetMulti;
use crate::{Error, FailurePolicy, ServerAddr, ServerSelector};

/// The selector's servers at one of its generations.
struct Known {
    generation: u64,
    servers: Vec<ServerAddr>,
}

/// The servers a client talks to, and what it knows about them. Lock-free, like the
/// selectors and [`Health`]: every call reads atomics and immutable snapshots.
pub struct Fleet {
    selector: Arc<dyn ServerSelector>,
    health: Health,
    /// The servers as last seen, swapped whole when a caller notices a change.
    known: ArcSwap<Known>,
    /// The newest generation installed in `known` (raised with `fetch_max` after the swap):
    /// equal to the selector's, it proves nothing changed without loading `known`.
    seen: AtomicU64,
    resolve_every: Option<Duration>,
    /// When the fleet was made: the origin of `next_resolve`.
    origin: Instant,
    /// Nanoseconds after `origin` at which the next re-resolution is due.
    next_resolve: AtomicU64,
    /// Hears a server marked down or back up.
    observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("selector", &self.selector)
            .field("policy", self.health.policy())
            .field("resolve_every", &self.resolve_every)
            .finish()
    }
}

impl Fleet {
    /// A fleet over `selector`, applying `policy`; re-resolved every `resolve_every` if set.
    /// (`Builder::build` has already refused ejection with a selector that cannot eject: see
    /// [`Health::validate`].)
    pub fn new(
        selector: Arc<dyn ServerSelector>,
        policy: FailurePolicy,
        resolve_every: Option<Duration>,
        now: Instant,
    ) -> Fleet {
        let first = resolve_every.map_or(u64::MAX, nanos);
        let generation = selector.generation();
        Fleet {
            seen: AtomicU64::new(generation),
            known: ArcSwap::from_pointee(Known { generation, servers: selector.servers() }),
            selector,
            health: Health::new(policy),
            resolve_every,
            origin: now,
            next_resolve: AtomicU64::new(first),
            observer: None,
        }
    }

    /// The fleet a client built from `config` uses.
    pub fn from_config(config: &crate::config::Config, now: Instant) -> Fleet {
        let fleet = Fleet::new(config.selector.clone(), config.failure_policy, config.resolve_every, now);
        Fleet { observer: config.observer.clone(), ..fleet }
    }

    /// The selector.
    pub fn selector(&self) -> &dyn ServerSelector {
        self.selector.as_ref()
    }

    /// The health tracker.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Where a call for `key` goes now (see [`Health::route`]).
    pub fn route(&self, key: &[u8], now: Instant) -> Result<(ServerAddr, Permit), Error> {
        self.health.route(self.selector.as_ref(), key, now)
    }

    /// Records how a call to `server` under `permit` ended, and tells the observer if that
    /// marked the server down or back up.
    pub fn record<T>(&self, server: &ServerAddr, permit: Permit, result: &Result<T, Error>, now: Instant) {
        let change = self.health.record(server, permit, result.as_ref().map(drop), now);
        if let (Some(change), Some(observer)) = (change, &self.observer) {
            observer.connection(&match change {
                Transition::Down => ConnectionEvent::MarkedDown { server },
                Transition::Up => ConnectionEvent::MarkedUp { server },
            });
        }
    }

    /// May a call go to `server` now (see [`Health::check`])? The multi-server calls ask
    /// this once per server, and record the answer with [`record`](Self::record).
    pub fn admit(&self, server: &ServerAddr, now: Instant) -> Result<Permit, Error> {
        self.health.check(server, now)
    }

    /// Validates every key (one bad key fails the whole call) and groups them by server.
    /// With ejection, a down server's keys (unless its probe is due) go to the next live
    /// server on the ring; otherwise they stay with their server, and [`admit`](Self::admit)
    /// fails that server's group at once.
    pub fn plan_get_multi<S: AsRef<str>>(
        &self,
        keys: impl IntoIterator<Item = S>,
        now: Instant,
    ) -> Result<Vec<(ServerAddr, GetMulti)>, Error> {
        let eject = self.health.policy().eject;
        let groups = crate::grouping::group(keys, &*self.selector, |key, server| {
            if !(eject && self.health.is_resting(server, now)) {
                return Ok(None);
            }
            self.selector.pick_server_skipping(key, &|s| self.health.is_resting(s, now)).map(Some)
        })?;
        Ok(groups.into_iter().map(|(s, keys)| (s, GetMulti::of(keys))).collect())
    }

    /// Replaces the servers (all or nothing, see [`ServerSelector::replace_servers`]).
    pub fn set_servers(&self, servers: &[&str]) -> Result<(), Error> {
        self.selector.replace_servers(servers)
    }

    /// Looks every name up again (blocking the calling thread: async clients call this on a
    /// blocking thread). See [`ServerSelector::refresh`].
    pub fn refresh(&self) -> Result<(), Error> {
        self.selector.refresh()
    }

    /// What a client does on each call to follow its fleet: `forget` receives the servers
    /// that left the list (their pools go; calls in flight keep theirs until done), and the
    /// job returned, if any, is a due re-resolution of the names, to run off the call path (it
    /// blocks on DNS). A failed lookup keeps a name's last good addresses, so nobody waits for
    /// the job's result.
    pub fn tend(
        self: &Arc<Self>,
        now: Instant,
        forget: impl FnOnce(&[ServerAddr]),
    ) -> Option<impl FnOnce() + Send + 'static> {
        let departed = self.departed();
        if !departed.is_empty() {
            forget(&departed);
        }
        let fleet = self.clone();
        self.refresh_due(now).then_some(move || drop(fleet.refresh()))
    }

    /// The servers that left the list since the last call (through
    /// [`set_servers`](Self::set_servers), a refresh that found new addresses, or the owner
    /// of a shared selector): the client closes their connections once their requests in
    /// flight are done. Their health is forgotten. One atomic load when nothing changed.
    ///
    /// Of concurrent callers that notice the same change, the one whose compare-and-swap
    /// installs the new list reports it; the others get nothing, so each departure is
    /// reported once.
    pub fn departed(&self) -> Vec<ServerAddr> {
        if self.selector.generation() == self.seen.load(Ordering::Acquire) {
            return Vec::new();
        }
        let known = self.known.load();
        let generation = self.selector.generation();
        if generation == known.generation {
            return Vec::new();
        }
        let servers = self.selector.servers();
        let gone: Vec<ServerAddr> = known.servers.iter().filter(|s| !servers.contains(s)).cloned().collect();
        let next = Arc::new(Known { generation, servers });
        let previous = self.known.compare_and_swap(&*known, next.clone());
        if !Arc::ptr_eq(&*previous, &*known) {
            return Vec::new();
        }
        self.seen.fetch_max(generation, Ordering::AcqRel);
        self.health.retain(&next.servers);
        gone
    }

    /// Whether this caller should start a periodic re-resolution now (true for exactly one
    /// caller per interval). The caller runs [`refresh`](Self::refresh) off the call path.
    pub fn refresh_due(&self, now: Instant) -> bool {
        let Some(every) = self.resolve_every else { return false };
        let elapsed = nanos(now.saturating_duration_since(self.origin));
        let due = self.next_resolve.load(Ordering::Acquire);
        elapsed >= due
            && self
                .next_resolve
                .compare_exchange(
                    due,
                    elapsed.saturating_add(nanos(every)),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
