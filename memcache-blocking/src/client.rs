//! The blocking `Client`: a pool of connections per server, and gomemcache's calls.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use memcache_proto::command::StoreVerb;
use memcache_proto::config::{Builder, Config, FromConfig, deadline};
use memcache_proto::multi::{self, MultiOutcome};
use memcache_proto::op::{Admin, Get, KeyedOp, Mutate, Op, Stats, Store};
use memcache_proto::retry::{self, Attempt};
use memcache_proto::{Error, Item, Response, ServerAddr, ServerSelector};

use crate::conn::Conn;
use crate::pool::ServerPool;

/// A memcached client over `std::net`. Cheap to clone (clones share the pools) and safe to
/// share across threads.
///
/// Each call takes an idle connection to the key's server (or opens one while fewer than
/// `max_idle_conns` are open, or waits for one within its timeout), writes the request,
/// reads the reply within the timeout, and gives the connection back only if the exchange
/// left it in sync (see [`Error::is_connection_broken`]).
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    pools: Mutex<HashMap<ServerAddr, Arc<ServerPool>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Conn")
    }
}

impl FromConfig for Client {
    fn from_config(config: Config) -> Result<Self, Error> {
        let inner = Inner { config, pools: Mutex::new(HashMap::new()), closed: AtomicBool::new(false) };
        Ok(Client { inner: Arc::new(inner) })
    }
}

impl Client {
    /// A client for `servers` (`host:port` or Unix socket paths) with default settings.
    pub fn new<S: AsRef<str>>(servers: impl IntoIterator<Item = S>) -> Result<Client, Error> {
        Client::builder().servers(servers).build()
    }

    /// A client that picks servers with `selector`.
    pub fn from_selector(selector: impl ServerSelector + 'static) -> Result<Client, Error> {
        Client::builder().selector(selector).build()
    }

    /// A builder for timeouts, pool size and server selection.
    pub fn builder() -> Builder<Client> {
        Builder::new()
    }

    /// Reads `key`; [`Error::CacheMiss`] if absent. The item carries its CAS token.
    pub fn get(&self, key: &str) -> Result<Item, Error> {
        self.keyed(Get::new(key)?)
    }

    /// Reads many keys at once; missing keys are absent from the map. Every involved server
    /// is asked before any reply is read. Fails with the first server error; see
    /// [`get_multi_partial`](Self::get_multi_partial) to keep the healthy servers' items.
    pub fn get_multi<S: AsRef<str>>(&self, keys: &[S]) -> Result<HashMap<String, Item>, Error> {
        self.get_multi_partial(keys)?.into_result()
    }

    /// Like [`get_multi`](Self::get_multi), but a failing server does not cost the items of
    /// the others: they are in `items`, the failures in `failed`. Only a malformed key or an
    /// empty server list fails the whole call.
    pub fn get_multi_partial<S: AsRef<str>>(
        &self,
        keys: &[S],
    ) -> Result<MultiOutcome<HashMap<String, Item>>, Error> {
        let plan = multi::plan_get_multi(self.inner.config.selector.as_ref(), keys)?;
        Ok(self.fan_out(plan).into_iter().collect())
    }

    /// Stores `item` unconditionally.
    pub fn set(&self, item: &Item) -> Result<(), Error> {
        self.keyed(Store::new(StoreVerb::Set, item)?)
    }

    /// Stores `item` only if its key is absent; [`Error::NotStored`] otherwise.
    pub fn add(&self, item: &Item) -> Result<(), Error> {
        self.keyed(Store::new(StoreVerb::Add, item)?)
    }

    /// Stores `item` only if its key is present; [`Error::NotStored`] otherwise.
    pub fn replace(&self, item: &Item) -> Result<(), Error> {
        self.keyed(Store::new(StoreVerb::Replace, item)?)
    }

    /// Appends `item.value` to the existing value; [`Error::NotStored`] if absent.
    pub fn append(&self, item: &Item) -> Result<(), Error> {
        self.keyed(Store::new(StoreVerb::Append, item)?)
    }

    /// Prepends `item.value` to the existing value; [`Error::NotStored`] if absent.
    pub fn prepend(&self, item: &Item) -> Result<(), Error> {
        self.keyed(Store::new(StoreVerb::Prepend, item)?)
    }

    /// Stores `item` only if it is unchanged since it was read (its `cas` token):
    /// [`Error::CasConflict`] if it changed, [`Error::NotStored`] if it is gone.
    pub fn compare_and_swap(&self, item: &Item) -> Result<(), Error> {
        self.keyed(Store::compare_and_swap(item)?)
    }

    /// Deletes `key`; [`Error::CacheMiss`] if absent.
    pub fn delete(&self, key: &str) -> Result<(), Error> {
        self.keyed(Mutate::delete(key)?).map(drop)
    }

    /// `delete <key> <seconds>`. memcached 1.6 refuses a non-zero hold time and the refusal
    /// is returned as [`Error::Client`].
    pub fn delete_lock(&self, key: &str, seconds: u32) -> Result<(), Error> {
        self.keyed(Mutate::delete_lock(key, seconds)?).map(drop)
    }

    /// Adds `delta` to a decimal counter (wrapping at 2^64) and returns the new value.
    pub fn increment(&self, key: &str, delta: u64) -> Result<u64, Error> {
        self.keyed(Mutate::increment(key, delta)?)
    }

    /// Subtracts `delta` from a decimal counter (stopping at 0) and returns the new value.
    pub fn decrement(&self, key: &str, delta: u64) -> Result<u64, Error> {
        self.keyed(Mutate::decrement(key, delta)?)
    }

    /// Sets a new expiration on `key`; [`Error::CacheMiss`] if absent.
    pub fn touch(&self, key: &str, seconds: i32) -> Result<(), Error> {
        self.keyed(Mutate::touch(key, seconds)?).map(drop)
    }

    /// Reads `key` and sets its expiration in one round trip.
    pub fn get_and_touch(&self, key: &str, seconds: i32) -> Result<Item, Error> {
        self.keyed(Get::and_touch(key, seconds)?)
    }

    /// Invalidates every item on every server.
    pub fn flush_all(&self) -> Result<(), Error> {
        self.every_server(Admin::flush_all).map(drop)
    }

    /// Checks that every server answers.
    pub fn ping(&self) -> Result<(), Error> {
        self.every_server(Admin::ping).map(drop)
    }

    /// `stats` of every server that answers, keyed by server address; [`Error::NoStats`]
    /// if none did.
    pub fn stats(&self) -> Result<HashMap<String, HashMap<String, String>>, Error> {
        let plan = multi::every_server(self.inner.config.selector.as_ref(), Stats::new);
        multi::merge_stats(self.fan_out(plan))
    }

    /// Closes every idle connection; later calls fail with [`Error::Closed`].
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        let pools = std::mem::take(&mut *self.lock_pools());
        pools.values().for_each(|p| p.close());
    }

    fn keyed<O: KeyedOp>(&self, op: O) -> Result<O::Output, Error> {
        let server = self.inner.config.selector.pick_server(op.key().as_bytes())?;
        self.request(&server, op, false)
    }

    /// One request and its reply, under the call's deadline (`resent`: this is the one resend
    /// the retry rule allows).
    fn request<O: Op>(&self, server: &ServerAddr, op: O, resent: bool) -> Result<O::Output, Error> {
        let deadline = deadline(Instant::now(), self.inner.config.timeout);
        let (mut conn, reused, pool) = self.checkout(server, deadline)?;
        let reply = conn.send(op.command(), deadline).and_then(|()| conn.receive(deadline));
        self.settle(server, op, (conn, reused, pool), reply, resent)
    }

    /// Ends an attempt: the op's result from its reply, the connection back to its pool only
    /// if that result leaves it in sync, and, if the exchange failed and
    /// [`retry::may_resend`] allows it, the request once more on another connection.
    fn settle<O: Op>(
        &self,
        server: &ServerAddr,
        op: O,
        (conn, reused, pool): (Conn, bool, Arc<ServerPool>),
        reply: Result<Response, Error>,
        resent: bool,
    ) -> Result<O::Output, Error> {
        let e = match reply {
            Ok(response) => {
                let result = op.finish(response);
                Self::checkin(&pool, conn, Error::keeps_connection(&result));
                return result;
            }
            Err(e) => e,
        };
        let attempt = Attempt::on(reused).written(conn.wrote_any()).resent(resent);
        Self::checkin(&pool, conn, false);
        if retry::may_resend(op.command(), attempt, &e) { self.request(server, op, true) } else { Err(e) }
    }

    /// Sends every op to its server, then reads every reply: all servers work concurrently.
    fn fan_out<O: Op>(&self, mut plan: Vec<(ServerAddr, O)>) -> Vec<(ServerAddr, Result<O::Output, Error>)> {
        let deadline = deadline(Instant::now(), self.inner.config.timeout);
        // One order for taking connections to several servers, so two calls can't each hold
        // one server's last connection while waiting for the other's.
        plan.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        let sent: Vec<_> = plan
            .into_iter()
            .map(|(server, op)| {
                let lease = self.checkout(&server, deadline).map(|(mut conn, reused, pool)| {
                    let sent = conn.send(op.command(), deadline);
                    (sent, (conn, reused, pool))
                });
                (server, op, lease)
            })
            .collect();
        sent.into_iter()
            .map(|(server, op, lease)| {
                let result = lease.and_then(|(sent, mut lease)| {
                    let reply = sent.and_then(|()| lease.0.receive(deadline));
                    self.settle(&server, op, lease, reply, false)
                });
                (server, result)
            })
            .collect()
    }

    fn every_server<O: Op>(&self, make: fn() -> O) -> Result<Vec<O::Output>, Error> {
        let plan = multi::every_server(self.inner.config.selector.as_ref(), make);
        if plan.is_empty() {
            return Err(Error::NoServers);
        }
        self.fan_out(plan).into_iter().map(|(_, r)| r).collect()
    }

    /// A connection to `server` (`true`: reused from the pool) and the pool it goes back to.
    fn checkout(
        &self,
        server: &ServerAddr,
        deadline: Instant,
    ) -> Result<(Conn, bool, Arc<ServerPool>), Error> {
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let pool =
            self.lock_pools().entry(server.clone()).or_insert_with(|| Arc::new(ServerPool::new())).clone();
        let (conn, reused) = pool.checkout(server, &self.inner.config, deadline)?;
        Ok((conn, reused, pool))
    }

    /// Returns `conn` to its pool if `in_sync` and its state agree that it may serve another
    /// call; closes it otherwise.
    fn checkin(pool: &ServerPool, conn: Conn, in_sync: bool) {
        let reusable = in_sync && conn.reusable();
        pool.checkin(conn, reusable);
    }

    fn lock_pools(&self) -> std::sync::MutexGuard<'_, HashMap<ServerAddr, Arc<ServerPool>>> {
        self.inner.pools.lock().unwrap_or_else(|p| p.into_inner())
    }
}
