//! The public calls of every client, declared once.
//!
//! The blocking client, the async client and the test adapters all expose the same calls with
//! the same documentation; only how a request travels differs. So each call is declared here,
//! once, in terms of four verbs every client implements:
//!
//! - `keyed(op)`: run a [`KeyedOp`](crate::op::KeyedOp) on the server its key goes to;
//! - `fan_out(plan)`: run one op per server, all servers at once, and return each answer;
//! - `fleet()`: the client's [`Fleet`](crate::fleet::Fleet) (its selector and their health),
//!   and `now()`: the client's clock;
//! - `limits()`: the client's decoder [`Limits`](crate::Limits) (a `get_multi` is split to fit);
//! - `with_fleet(f)`: run `f` on the fleet where it may block (a name lookup: on a blocking
//!   thread in async clients), then close connections to servers that left the list;
//! - `shut_down()`: close every connection.
//!
//! [`client_calls!`](crate::client_calls) hands the list to a callback macro that writes the
//! methods in its own style (`fn`, `async fn`, a trait declaration). Adding a call to every
//! client is one entry here plus its op. The clients' callbacks run each body inside its call's
//! span (`__call_span!`, see [`trace`](crate::trace)), named for the call.

/// Hands the list of client calls to the callback macro `$cb`, which receives
/// `@this $this;` (or `@this $this.await;`) and then one entry per call:
/// `#[doc] fn name[generics](args) -> ReturnType { body }`. The body refers to the client as
/// `$this` (the callback binds it to `self`) and awaits each verb with `$(.$aw)?`: pass
/// `.await` from an async client, nothing from a blocking one.
#[doc(hidden)]
#[macro_export]
macro_rules! client_calls {
    ($($cb:ident)::+ ; $this:ident $(. $aw:ident)?) => {
        $($cb)::+! { @this $this $(.$aw)?;
            /// Reads `key`; [`Error::CacheMiss`](crate::Error::CacheMiss) if absent. The item
            /// carries its CAS token.
            fn get(key: &str) -> Result<$crate::Item, $crate::Error> {
                $this.keyed($crate::op::Get::new(key)?)$(.$aw)?
            }

            /// Reads many keys at once; missing keys are absent from the map. Every involved
            /// server is asked at once. Fails with the first server error; see
            /// [`get_multi_partial`](Self::get_multi_partial) to keep the healthy servers' items.
            fn get_multi[S: AsRef<str> + Sync](keys: &[S])
                -> Result<std::collections::HashMap<String, $crate::Item>, $crate::Error>
            {
                ($this.get_multi_partial(keys)$(.$aw)?)?.into_result()
            }

            /// Like [`get_multi`](Self::get_multi), but a failing server does not cost the
            /// items of the others: they are in `items`, the failures in `failed`. Only a
            /// malformed key or an empty server list fails the whole call.
            fn get_multi_partial[S: AsRef<str> + Sync](keys: &[S])
                -> Result<$crate::multi::MultiOutcome<std::collections::HashMap<String, $crate::Item>>, $crate::Error>
            {
                $crate::trace::batch_size(keys.len());
                let plan = $crate::multi::fit($this.fleet().plan_get_multi(keys, $this.now())?, $this.limits());
                Ok($this.fan_out(plan)$(.$aw)?.into_iter().collect())
            }

            /// Stores `item` unconditionally.
            fn set(item: &$crate::Item) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Store::new($crate::command::StoreVerb::Set, item)?)$(.$aw)?
            }

            /// Stores `item` only if its key is absent;
            /// [`Error::NotStored`](crate::Error::NotStored) otherwise.
            fn add(item: &$crate::Item) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Store::new($crate::command::StoreVerb::Add, item)?)$(.$aw)?
            }

            /// Stores `item` only if its key is present;
            /// [`Error::NotStored`](crate::Error::NotStored) otherwise.
            fn replace(item: &$crate::Item) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Store::new($crate::command::StoreVerb::Replace, item)?)$(.$aw)?
            }

            /// Appends `item.value` to the existing value;
            /// [`Error::NotStored`](crate::Error::NotStored) if absent.
            fn append(item: &$crate::Item) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Store::new($crate::command::StoreVerb::Append, item)?)$(.$aw)?
            }

            /// Prepends `item.value` to the existing value;
            /// [`Error::NotStored`](crate::Error::NotStored) if absent.
            fn prepend(item: &$crate::Item) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Store::new($crate::command::StoreVerb::Prepend, item)?)$(.$aw)?
            }

            /// Stores `item` only if it is unchanged since it was read (its `cas` token):
            /// [`Error::CasConflict`](crate::Error::CasConflict) if it changed,
            /// [`Error::NotStored`](crate::Error::NotStored) if it is gone.
            fn compare_and_swap(item: &$crate::Item) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Store::compare_and_swap(item)?)$(.$aw)?
            }

            /// Deletes `key`; [`Error::CacheMiss`](crate::Error::CacheMiss) if absent.
            fn delete(key: &str) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Delete::new(key)?)$(.$aw)?
            }

            /// `delete <key> <seconds>`, gomemcache's `DeleteLock`. memcached 1.6 refuses a
            /// non-zero hold time and the refusal is returned as
            /// [`Error::Client`](crate::Error::Client).
            fn delete_lock(key: &str, seconds: u32) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Delete::lock(key, seconds)?)$(.$aw)?
            }

            /// Adds `delta` to a decimal counter (wrapping at 2^64) and returns the new value.
            fn increment(key: &str, delta: u64) -> Result<u64, $crate::Error> {
                $this.keyed($crate::op::Arith::increment(key, delta)?)$(.$aw)?
            }

            /// Subtracts `delta` from a decimal counter (stopping at 0) and returns the new
            /// value.
            fn decrement(key: &str, delta: u64) -> Result<u64, $crate::Error> {
                $this.keyed($crate::op::Arith::decrement(key, delta)?)$(.$aw)?
            }

            /// Sets a new expiration on `key`; [`Error::CacheMiss`](crate::Error::CacheMiss)
            /// if absent.
            fn touch(key: &str, seconds: i32) -> Result<(), $crate::Error> {
                $this.keyed($crate::op::Touch::new(key, seconds)?)$(.$aw)?
            }

            /// Reads `key` and sets its expiration in one round trip.
            fn get_and_touch(key: &str, seconds: i32) -> Result<$crate::Item, $crate::Error> {
                $this.keyed($crate::op::Get::and_touch(key, seconds)?)$(.$aw)?
            }

            /// Invalidates every item on every server.
            fn flush_all() -> Result<(), $crate::Error> {
                let plan = $crate::multi::every_server($this.fleet().selector(), $crate::op::Admin::flush_all);
                $crate::multi::all_ok($this.fan_out(plan)$(.$aw)?).map(drop)
            }

            /// Checks that every server answers.
            fn ping() -> Result<(), $crate::Error> {
                let plan = $crate::multi::every_server($this.fleet().selector(), $crate::op::Admin::ping);
                $crate::multi::all_ok($this.fan_out(plan)$(.$aw)?).map(drop)
            }

            /// Every server's version (`version`), keyed by server address; fails with the
            /// first server that does not answer.
            fn version() -> Result<std::collections::HashMap<String, String>, $crate::Error> {
                let plan = $crate::multi::every_server($this.fleet().selector(), $crate::op::Version::new);
                $crate::multi::by_server($this.fan_out(plan)$(.$aw)?)
            }

            /// `stats` of every server that answers, keyed by server address;
            /// [`Error::NoStats`](crate::Error::NoStats) if none did.
            fn stats()
                -> Result<std::collections::HashMap<String, std::collections::HashMap<String, String>>, $crate::Error>
            {
                let plan = $crate::multi::every_server($this.fleet().selector(), $crate::op::Stats::new);
                $crate::multi::merge_stats($this.fan_out(plan)$(.$aw)?)
            }

            /// Replaces the servers, as `host:port` names or Unix socket paths, all or nothing:
            /// if a name fails to resolve, nothing changes. Requests in flight finish on the
            /// servers they started on; connections to servers that left are closed once
            /// their requests are done. (Names are looked up on a blocking thread in the async
            /// clients.) A selector that cannot change its servers refuses with
            /// [`Error::InvalidConfig`](crate::Error::InvalidConfig).
            fn set_servers[S: AsRef<str> + Sync](servers: &[S]) -> Result<(), $crate::Error> {
                let names: Vec<String> = servers.iter().map(|s| s.as_ref().to_owned()).collect();
                $this.with_fleet(move |fleet| {
                    fleet.set_servers(&names.iter().map(String::as_str).collect::<Vec<_>>())
                })$(.$aw)?
            }

            /// Looks every server name up again (on a blocking thread in the async clients).
            /// A name that fails keeps its last good addresses, and the failure is returned;
            /// the other names are updated anyway. Connections to addresses that changed are
            /// closed once their requests are done.
            fn refresh_servers() -> Result<(), $crate::Error> {
                $this.with_fleet(|fleet| fleet.refresh())$(.$aw)?
            }

            /// Runs one meta request as a typed operation (see [`meta`](crate::meta)): the
            /// builder calls below go through here. A request using a flag newer than the
            /// meta protocol's first stable release first asks its server's `version` and
            /// fails with [`Error::Unsupported`](crate::Error::Unsupported) on an older one.
            fn meta_op[O: $crate::meta::MetaOutput + Send + 'static](op: $crate::meta::Meta<O>)
                -> Result<O, $crate::Error>
            {
                let versions = $crate::meta::versions_for(&op, $this.fleet(), $this.now())?;
                if !versions.is_empty() {
                    $crate::meta::check_versions(&op, $this.fan_out(versions)$(.$aw)?)?;
                }
                $this.keyed(op)$(.$aw)?
            }

            /// `mg`: reads an item and the metadata the builder asks for. A miss is
            /// [`GetOutcome::Miss`](crate::meta::GetOutcome::Miss), not an error.
            fn meta_get(get: $crate::meta::MetaGet) -> Result<$crate::meta::GetOutcome, $crate::Error> {
                $this.meta_op($crate::meta::Meta::from(get))$(.$aw)?
            }

            /// `ms`: stores a value; a failed condition (mode, CAS) is an outcome.
            fn meta_set(set: $crate::meta::MetaSet) -> Result<$crate::meta::SetOutcome, $crate::Error> {
                $this.meta_op($crate::meta::Meta::from(set))$(.$aw)?
            }

            /// `md`: deletes an item, or marks it stale (`mark_stale`).
            fn meta_delete(delete: $crate::meta::MetaDelete)
                -> Result<$crate::meta::DeleteOutcome, $crate::Error>
            {
                $this.meta_op($crate::meta::Meta::from(delete))$(.$aw)?
            }

            /// `ma`: increments or decrements a counter.
            fn meta_arith(arith: $crate::meta::MetaArith)
                -> Result<$crate::meta::ArithOutcome, $crate::Error>
            {
                $this.meta_op($crate::meta::Meta::from(arith))$(.$aw)?
            }

            /// Many meta requests in one round trip per server: each server gets one quiet
            /// batch (replies matched by opaque), all servers at once. One result per
            /// request, in input order; a request fails alone (an error line, a flag its
            /// server is too old for) or with its server (timeout, connection error).
            fn meta_batch(requests: Vec<$crate::meta::MetaRequest>)
                -> Vec<Result<$crate::meta::MetaOutcome, $crate::Error>>
            {
                $crate::trace::batch_size(requests.len());
                let mut plan = $crate::meta::plan_batch($this.fleet(), requests, $this.now());
                let versions = plan.versions_needed();
                if !versions.is_empty() {
                    plan.apply_versions($this.fan_out(versions)$(.$aw)?);
                }
                let batches = plan.take_batches();
                plan.merge($this.fan_out(batches)$(.$aw)?)
            }

            /// Reads `key`, or takes the lease to fill it: on a miss memcached creates an
            /// empty placeholder living `lease_ttl` seconds and exactly one caller gets
            /// [`Leased::Fill`](crate::meta::Leased::Fill) (store the value with
            /// `MetaSet::new(key, value).cas(cas)`); the others get
            /// [`Leased::Busy`](crate::meta::Leased::Busy) until it is stored, or the stale value
            /// as a hit while an item marked stale is being recached.
            fn get_or_lease[K: AsRef<[u8]> + Send](key: K, lease_ttl: i32)
                -> Result<$crate::meta::Leased, $crate::Error>
            {
                $this.keyed($crate::meta::Meta::lease(key, lease_ttl)?)$(.$aw)?
            }

            /// Closes every connection; later calls fail with
            /// [`Error::Closed`](crate::Error::Closed).
            fn close() -> () {
                $this.shut_down()$(.$aw)?
            }
        }
    };
}

/// The constructors every client has: `new`, `from_selector` and `builder`, for `Self`.
#[doc(hidden)]
#[macro_export]
macro_rules! client_constructors {
    () => {
        /// A client for `servers` (`host:port` or Unix socket paths) with default settings.
        pub fn new<S: AsRef<str>>(servers: impl IntoIterator<Item = S>) -> Result<Self, $crate::Error> {
            Self::builder().servers(servers).build()
        }

        /// A client that picks servers with `selector`.
        pub fn from_selector(selector: impl $crate::ServerSelector + 'static) -> Result<Self, $crate::Error> {
            Self::builder().selector(selector).build()
        }

        /// A builder for timeouts, pool size and server selection.
        pub fn builder() -> $crate::config::Builder<Self> {
            $crate::config::Builder::new()
        }
    };
}
