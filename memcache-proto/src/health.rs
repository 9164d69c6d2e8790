//! Dead-server handling: which servers are down, when to try them again, and where their
//! keys go meanwhile.
//!
//! Without it, every call for a dead server's keys waits out a connect timeout. With it, a
//! server that failed `failure_limit` times in a row is *down*: calls for its keys fail at
//! once with [`Error::ServerUnavailable`] without touching the network, until its retry time,
//! when exactly one caller is let through to probe it. The probe's success brings the server
//! back; its failure doubles the wait (up to a cap). Only transport failures count (see
//! [`Error::is_transport_failure`]): a miss or a `SERVER_ERROR` is the server answering.
//!
//! [`Health`] is sans-IO: it never reads a clock, every call takes `now`. One instance is
//! shared by all clones of a client.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use crate::config::deadline;
use crate::{Error, ServerAddr, ServerSelector};

/// When a server counts as down, and what happens to its keys. Set with
/// `Builder::failure_policy`; build one with struct update syntax:
///
/// ```
/// use memcache_proto::FailurePolicy;
/// use std::time::Duration;
///
/// let policy = FailurePolicy { retry_after: Duration::from_millis(250), ..FailurePolicy::default() };
/// assert_eq!(policy.failure_limit, 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailurePolicy {
    /// Consecutive transport failures after which a server is down (default 3). Zero turns
    /// dead-server handling off: every call tries the network, as gomemcache does.
    pub failure_limit: u32,
    /// How long a down server is left alone before one caller probes it (default 1 s). Each
    /// failed probe doubles the wait, up to `max_retry_after`; each wait is shortened by up
    /// to a fifth, by an amount derived from the server's name, so servers that went down
    /// together are not all probed at the same instant.
    pub retry_after: Duration,
    /// The longest wait between probes (default 30 s).
    pub max_retry_after: Duration,
    /// Send a down server's keys to the next server on a consistent-hashing ring (default
    /// false). Only [`Ketama`](crate::Ketama) (or a selector whose
    /// [`supports_ejection`](ServerSelector::supports_ejection) is true) can: a client
    /// refuses it with CRC32 `ServerList`, where it would move nearly every key.
    ///
    /// **Stale data hazard**: while a server is ejected, its keys are read and written on
    /// another server. When it returns, its keys go back to it, and it may still hold values
    /// written before it went down that were changed or deleted elsewhere meanwhile. Use
    /// short expirations, or flush a server that comes back, if stale reads matter.
    pub eject: bool,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            failure_limit: 3,
            retry_after: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(30),
            eject: false,
        }
    }
}

impl FailurePolicy {
    /// No dead-server handling: every call goes to the network (gomemcache's behaviour).
    pub fn disabled() -> Self {
        FailurePolicy { failure_limit: 0, ..FailurePolicy::default() }
    }

    /// Whether servers can be marked down at all.
    pub fn is_enabled(&self) -> bool {
        self.failure_limit > 0
    }

    /// The wait before probe number `probe` (0 for the first) of `server`: `retry_after`
    /// doubled per failed probe, capped, then shortened by a deterministic jitter of up to
    /// 20% (so the first probe is never later than `retry_after`).
    pub fn backoff(&self, server: &ServerAddr, probe: u32) -> Duration {
        let doubled = self.retry_after.saturating_mul(1u32 << probe.min(20));
        let wait = doubled.min(self.max_retry_after.max(self.retry_after));
        let mut seed = server.as_str().as_bytes().to_vec();
        seed.extend_from_slice(&probe.to_le_bytes());
        let permille = crc32fast::hash(&seed) % 1000;
        wait - wait.mul_f64(f64::from(permille) / 5000.0)
    }
}

/// What [`Health::check`] lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Permit {
    /// The server is up (or not known to be down): go ahead.
    Normal,
    /// The server is down and due for a retry: this caller is the one probe. Its outcome,
    /// recorded with this permit, decides whether the server is back.
    Probe,
}

/// A change of whether a server is down, made by one recorded outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transition {
    /// The server is now down: calls for it fail fast until a probe succeeds.
    Down,
    /// The server, down until now, answered (a probe succeeded): it is back.
    Up,
}

/// One server's trouble. Healthy servers have no entry.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Up, with this many consecutive transport failures (fewer than the limit).
    Failing(u32),
    /// Down until `retry_at`; `probes` failed probes so far (for the backoff).
    Down { retry_at: Instant, probes: u32 },
}

/// Every troubled server's state; healthy servers have no entry.
type States = HashMap<ServerAddr, State>;

/// One version of [`States`], replaced whole on a change. `seq` counts the changes.
#[derive(Debug, Default)]
struct Snapshot {
    seq: u64,
    states: States,
}

impl Snapshot {
    /// What [`Health::published`] holds for this snapshot.
    fn summary(&self) -> u64 {
        self.seq << 1 | u64::from(!self.states.is_empty())
    }
}

/// The health of a client's servers. Shared by every clone of a client, and lock-free: the
/// troubled servers are an immutable map that a change replaces whole (copy, edit, then
/// compare-and-swap, again if another thread changed it meanwhile). Calls never wait on each
/// other: with every server healthy a call reads one atomic, otherwise it loads the map; only
/// failures and probes, rare by nature, copy the map, which holds only the servers in trouble.
#[derive(Debug)]
pub struct Health {
    policy: FailurePolicy,
    states: ArcSwap<Snapshot>,
    /// The newest installed snapshot's `seq << 1 | troubled`, raised with `fetch_max` by
    /// each writer after its swap, so that the usual call (every server healthy) reads this
    /// one atomic instead of loading the map. A later snapshot is derived from the earlier
    /// ones, so the newest published one tells whether any server is in trouble; a writer's
    /// own change is published before its call returns.
    published: AtomicU64,
}

impl Health {
    /// A tracker applying `policy`.
    pub fn new(policy: FailurePolicy) -> Health {
        Health { policy, states: ArcSwap::default(), published: AtomicU64::new(0) }
    }

    /// The policy in force.
    pub fn policy(&self) -> &FailurePolicy {
        &self.policy
    }

    /// Checks `selector` against `policy`: ejection needs a selector that can eject.
    pub fn validate(policy: &FailurePolicy, selector: &dyn ServerSelector) -> Result<(), Error> {
        if policy.eject && policy.is_enabled() && !selector.supports_ejection() {
            return Err(Error::InvalidConfig(
                "FailurePolicy { eject: true } needs a consistent-hashing selector such as Ketama; \
                 with CRC32 ServerList, taking a server out would move almost every key"
                    .into(),
            ));
        }
        Ok(())
    }

    /// `server`'s state, if it is in trouble (and the policy is on). With every server
    /// healthy, one atomic load and the key is not even hashed.
    fn state(&self, server: &ServerAddr) -> Option<State> {
        if !self.policy.is_enabled() || self.published.load(Ordering::Acquire) & 1 == 0 {
            return None;
        }
        self.states.load().states.get(server).copied()
    }

    /// Applies `change` to the current map and installs the map it returns, if any; if
    /// another thread installed a map meanwhile, `change` runs again on that one, so every
    /// decision (such as "this caller is the probe") is made on the map it replaces. Returns
    /// the decision that was installed.
    fn update<R>(&self, mut change: impl FnMut(&States) -> (Option<States>, R)) -> R {
        let mut current = self.states.load();
        loop {
            let (next, decided) = change(&current.states);
            let Some(states) = next else { return decided };
            let next = Arc::new(Snapshot { seq: current.seq + 1, states });
            let previous = self.states.compare_and_swap(&*current, Arc::clone(&next));
            if Arc::ptr_eq(&*previous, &*current) {
                self.published.fetch_max(next.summary(), Ordering::AcqRel);
                return decided;
            }
            current = previous;
        }
    }

    /// May a call go to `server` now? `Err(ServerUnavailable)` while it is down; the first
    /// caller at or after its retry time gets [`Permit::Probe`] (and the next retry time moves
    /// on, so a probe that never reports is replaced by another later).
    pub fn check(&self, server: &ServerAddr, now: Instant) -> Result<Permit, Error> {
        match self.state(server) {
            Some(State::Down { retry_at, .. }) if now < retry_at => {
                Err(Error::ServerUnavailable { server: server.clone(), retry_at })
            }
            Some(State::Down { .. }) => self.claim_probe(server, now),
            _ => Ok(Permit::Normal),
        }
    }

    /// The down `server` is due at `now`: one caller wins the probe and moves its retry time.
    fn claim_probe(&self, server: &ServerAddr, now: Instant) -> Result<Permit, Error> {
        self.update(|states| match states.get(server) {
            Some(&State::Down { retry_at, probes }) if now >= retry_at => {
                let retry_at = deadline(now, self.policy.backoff(server, probes));
                (Some(with(states, server, State::Down { retry_at, probes })), Ok(Permit::Probe))
            }
            Some(&State::Down { retry_at, .. }) => {
                (None, Err(Error::ServerUnavailable { server: server.clone(), retry_at }))
            }
            _ => (None, Ok(Permit::Normal)),
        })
    }

    /// Whether `server` is down (whether or not a probe is due).
    pub fn is_down(&self, server: &ServerAddr) -> bool {
        matches!(self.state(server), Some(State::Down { .. }))
    }

    /// Whether `server` is down and not yet due for a probe at `now` (a pure query: it does
    /// not claim the probe). Ejection skips these servers.
    pub fn is_resting(&self, server: &ServerAddr, now: Instant) -> bool {
        matches!(self.state(server), Some(State::Down { retry_at, .. }) if now < retry_at)
    }

    /// Records the outcome of a call to `server` made under `permit`: `Ok(())` for any
    /// answer, `Err(e)` for a failure (only transport failures count against the server).
    /// Returns the change this outcome made to whether the server is down, if any (exactly
    /// one caller sees each change, for an observer's `MarkedDown`/`MarkedUp`).
    pub fn record(
        &self,
        server: &ServerAddr,
        permit: Permit,
        outcome: Result<(), &Error>,
        now: Instant,
    ) -> Option<Transition> {
        match outcome {
            // Never reached the server: says nothing about it.
            Err(Error::ServerUnavailable { .. } | Error::Closed) => None,
            Err(e) if e.is_transport_failure() => self.failed(server, permit, now),
            _ => self.succeeded(server),
        }
    }

    /// The server answered: it is healthy. [`Transition::Up`] if it was down.
    pub fn succeeded(&self, server: &ServerAddr) -> Option<Transition> {
        self.state(server)?;
        self.update(|states| {
            let was_down = matches!(states.get(server), Some(State::Down { .. }));
            let mut next = states.clone();
            (next.remove(server).map(|_| next), was_down.then_some(Transition::Up))
        })
    }

    /// A transport failure of a call made under `permit`. [`Transition::Down`] if this
    /// failure put the server down.
    pub fn failed(&self, server: &ServerAddr, permit: Permit, now: Instant) -> Option<Transition> {
        if !self.policy.is_enabled() {
            return None;
        }
        let limit = self.policy.failure_limit;
        self.update(|states| {
            let next = match (states.get(server).copied(), permit) {
                (None, _) => failing(1, limit, server, &self.policy, now),
                (Some(State::Failing(n)), _) => failing(n + 1, limit, server, &self.policy, now),
                (Some(State::Down { probes, .. }), Permit::Probe) => {
                    let probes = probes.saturating_add(1);
                    State::Down { retry_at: deadline(now, self.policy.backoff(server, probes)), probes }
                }
                // A call admitted before the server went down: already counted.
                (Some(State::Down { .. }), Permit::Normal) => return (None, None),
            };
            let was_down = matches!(states.get(server), Some(State::Down { .. }));
            let went_down = !was_down && matches!(next, State::Down { .. });
            (Some(with(states, server, next)), went_down.then_some(Transition::Down))
        })
    }

    /// Forgets servers not in `servers` (after the server list changed).
    pub fn retain(&self, servers: &[ServerAddr]) {
        self.update(|states| {
            let next: States =
                states.iter().filter(|(s, _)| servers.contains(s)).map(|(s, v)| (s.clone(), *v)).collect();
            ((next.len() != states.len()).then_some(next), ())
        });
    }

    /// Where a call for `key` goes now: the selector's server if it is up (or due a probe);
    /// if it is down, `ServerUnavailable`, or with ejection the next server on the ring that
    /// is not down.
    pub fn route(
        &self,
        selector: &dyn ServerSelector,
        key: &[u8],
        now: Instant,
    ) -> Result<(ServerAddr, Permit), Error> {
        let server = selector.pick_server(key)?;
        match self.check(&server, now) {
            Ok(permit) => Ok((server, permit)),
            Err(unavailable) if self.policy.eject => {
                let other = selector.pick_server_skipping(key, &|s| self.is_resting(s, now))?;
                if other == server {
                    return Err(unavailable);
                }
                Ok((other.clone(), self.check(&other, now)?))
            }
            Err(unavailable) => Err(unavailable),
        }
    }
}

/// A copy of `states` with `server` in `state`.
fn with(states: &States, server: &ServerAddr, state: State) -> States {
    let mut next = states.clone();
    next.insert(server.clone(), state);
    next
}

/// `n` consecutive failures: still up, or down from `now` if `n` reached the limit.
fn failing(n: u32, limit: u32, server: &ServerAddr, policy: &FailurePolicy, now: Instant) -> State {
    if n >= limit {
        State::Down { retry_at: deadline(now, policy.backoff(server, 0)), probes: 0 }
    } else {
        State::Failing(n)
    }
}
