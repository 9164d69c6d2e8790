//! Typed operations: what to send for a gomemcache call, and how its reply becomes a result.
//!
//! Every adapter executes these and nothing else, so the semantics table of the client API
//! (a miss is [`Error::CacheMiss`], `EXISTS` on a CAS is [`Error::CasConflict`], ...) is coded
//! once, here. An operation is one [`Command`]; [`Op::finish`] turns its [`Response`] into the
//! call's result.

use std::collections::HashMap;

use crate::command::{ArithVerb, Command, StatsArg, StoreVerb};
use crate::matching::KeyMatcher;
use crate::response::{Response, Value};
use crate::{Error, Item, Key, Keys, ProtoError};

/// One operation: a command and the interpretation of its reply.
pub trait Op {
    /// What the call returns on success.
    type Output;
    /// The command to send.
    fn command(&self) -> &Command;
    /// Does what [`finish`](Op::finish) can do before the reply is in, and says whether it
    /// did anything. A client calls it once the request is on the wire and before it waits
    /// for the reply, so this work overlaps the server's; [`finish`](Op::finish) then has
    /// less to do once the reply arrives, and a client looks for the reply again only if
    /// time was spent here. Optional: `finish` works whether or not it was called. The
    /// default does nothing and returns `false`.
    fn prepare(&mut self) -> bool {
        false
    }
    /// Interprets the reply to [`command`](Op::command).
    fn finish(self, response: Response) -> Result<Self::Output, Error>;
}

/// An operation on one key, sent to the server the selector picks for that key.
pub trait KeyedOp: Op {
    /// The key that selects the server.
    fn key(&self) -> &Key;
}

/// The error for a reply that is not a success of the operation: error lines become
/// [`Error::Server`], [`Error::Client`] and [`Error::UnknownCommand`].
pub fn reply_error(response: Response) -> Error {
    match response {
        Response::ServerError(m) => Error::Server(lossy(&m)),
        Response::ClientError(m) => Error::Client(lossy(&m)),
        Response::Error => Error::UnknownCommand,
        other => Error::Protocol(ProtoError::UnexpectedLine { line: format!("{other:?}") }),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn key_command(key: &str, make: impl FnOnce(Key) -> Command) -> Result<(Key, Command), Error> {
    let key = Key::copy_from(key.as_bytes())?;
    Ok((key.clone(), make(key)))
}

/// `get` (sent as `gets`, so the item carries its CAS token, as in gomemcache), or
/// `get_and_touch` (`gats`).
#[derive(Debug)]
pub struct Get {
    key: Key,
    command: Command,
}

impl Get {
    /// Reads `key`.
    pub fn new(key: &str) -> Result<Get, Error> {
        Get::with_touch(key, None)
    }

    /// Reads `key` and sets its expiration to `seconds`.
    pub fn and_touch(key: &str, seconds: i32) -> Result<Get, Error> {
        Get::with_touch(key, Some(seconds))
    }

    fn with_touch(key: &str, touch: Option<i32>) -> Result<Get, Error> {
        let (key, command) = key_command(key, |k| Command::Get { keys: Keys::one(k), cas: true, touch })?;
        Ok(Get { key, command })
    }
}

impl Op for Get {
    type Output = Item;
    fn command(&self) -> &Command {
        &self.command
    }
    fn finish(self, response: Response) -> Result<Item, Error> {
        let Response::Values(values) = response else { return Err(reply_error(response)) };
        let mut values = values.into_iter();
        let Some(value) = values.next() else { return Err(Error::CacheMiss) };
        if value.key != self.key.as_bytes() || values.next().is_some() {
            return Err(desync("a value for another key"));
        }
        into_item(value)
    }
}

impl KeyedOp for Get {
    fn key(&self) -> &Key {
        &self.key
    }
}

fn desync(what: &str) -> Error {
    Error::Protocol(ProtoError::UnexpectedLine { line: format!("reply holds {what}") })
}

fn into_item(v: Value) -> Result<Item, Error> {
    let key = String::from_utf8(v.key.to_vec()).map_err(|_| desync("a key that is not UTF-8"))?;
    Ok(Item { key, value: v.data, flags: v.flags, expiration: 0, cas: v.cas })
}

/// The part of a `get_multi` that goes to one server: one `gets k1 k2 ...` command.
#[derive(Debug)]
pub struct GetMulti {
    command: Command,
    /// Made by [`Op::prepare`].
    ready: Option<Ready>,
}

/// A `get_multi` result made ready before its reply: an item per requested key, by
/// position, with its key in place twice (the map's and the item's `String`), and the map
/// to put the answered ones in. The allocations of the result are thus made while the reply
/// is on its way; a key that misses costs its two `String`s for nothing.
#[derive(Debug)]
struct Ready {
    items: Vec<(String, Item)>,
    map: HashMap<String, Item>,
}

impl GetMulti {
    /// Reads `keys`, all of which must be valid.
    pub fn new(keys: Vec<Key>) -> GetMulti {
        GetMulti::of(keys.into())
    }

    /// Reads `keys` (validated when they were collected).
    pub fn of(keys: Keys) -> GetMulti {
        GetMulti { command: Command::Get { keys, cas: true, touch: None }, ready: None }
    }

    pub(crate) fn keys(&self) -> &Keys {
        match &self.command {
            Command::Get { keys, .. } => keys,
            // Only ever made with `Command::Get`.
            _ => &crate::keys::NO_KEYS,
        }
    }
}

impl Op for GetMulti {
    type Output = HashMap<String, Item>;
    fn command(&self) -> &Command {
        &self.command
    }

    fn prepare(&mut self) -> bool {
        if self.ready.is_some() {
            return false;
        }
        let keys = self.keys();
        // The requested keys came from `&str`s: checked as UTF-8 once for all of them.
        let Ok(text) = std::str::from_utf8(keys.run()) else { return false };
        let mut items = Vec::with_capacity(keys.len());
        for span in (0..keys.len()).map_while(|i| keys.span(i)) {
            let Some(key) = text.get(span) else { return false };
            items.push((key.to_owned(), Item { key: key.to_owned(), ..Item::default() }));
        }
        let map = HashMap::with_capacity(items.len());
        self.ready = Some(Ready { items, map });
        true
    }

    fn finish(mut self, response: Response) -> Result<Self::Output, Error> {
        let Response::Values(values) = response else { return Err(reply_error(response)) };
        match self.ready.take() {
            Some(ready) => self.fill(values, ready),
            None => self.collect(values),
        }
    }
}

impl GetMulti {
    /// The result from what [`Op::prepare`] made: each value completes its key's item.
    fn fill(
        &self,
        values: Vec<Value>,
        Ready { mut items, mut map }: Ready,
    ) -> Result<HashMap<String, Item>, Error> {
        let mut requested = KeyMatcher::new(self.keys());
        for v in values {
            let (key, mut item) = match requested.take(&v.key).and_then(|p| items.get_mut(p)) {
                Some(ready) => std::mem::take(ready),
                None => return Err(desync("a value for a key not requested")),
            };
            (item.value, item.flags, item.cas) = (v.data, v.flags, v.cas);
            map.insert(key, item);
        }
        Ok(map)
    }

    /// The result made from the reply alone.
    fn collect(&self, values: Vec<Value>) -> Result<HashMap<String, Item>, Error> {
        let keys = self.keys();
        // The requested keys came from `&str`s: checked as UTF-8 once for all of them here,
        // each value's key is then a copy of a slice, not a validation of its own.
        let text = std::str::from_utf8(keys.run()).ok();
        // memcached answers in request order, a proxy in any order: every value must answer a
        // requested key, or the stream is out of sync.
        let mut requested = KeyMatcher::new(keys);
        let mut items = HashMap::with_capacity(values.len());
        for v in values {
            let Some(position) = requested.take(&v.key) else {
                return Err(desync("a value for a key not requested"));
            };
            let key = match text.zip(keys.span(position)).and_then(|(text, span)| text.get(span)) {
                Some(key) => key.to_owned(),
                None => String::from_utf8(v.key.to_vec()).map_err(|_| desync("a key that is not UTF-8"))?,
            };
            let item = Item { key: key.clone(), value: v.data, flags: v.flags, expiration: 0, cas: v.cas };
            items.insert(key, item);
        }
        Ok(items)
    }
}

/// `set`, `add`, `replace`, `append`, `prepend` and `cas`.
#[derive(Debug)]
pub struct Store {
    key: Key,
    command: Command,
}

impl Store {
    /// Stores `item` with `verb`.
    pub fn new(verb: StoreVerb, item: &Item) -> Result<Store, Error> {
        let (key, command) = key_command(&item.key, |key| Command::Store {
            verb,
            key,
            flags: item.flags,
            exptime: item.expiration,
            value: item.value.clone(),
            noreply: false,
        })?;
        Ok(Store { key, command })
    }

    /// `cas` with the item's token. An item that was never read has none and is sent with
    /// token 0, as gomemcache does; the server then answers `EXISTS` (or `NOT_FOUND`).
    pub fn compare_and_swap(item: &Item) -> Result<Store, Error> {
        Store::new(StoreVerb::Cas(item.cas.unwrap_or(0)), item)
    }
}

impl Op for Store {
    type Output = ();
    fn command(&self) -> &Command {
        &self.command
    }
    fn finish(self, response: Response) -> Result<(), Error> {
        let cas = matches!(self.command, Command::Store { verb: StoreVerb::Cas(_), .. });
        match response {
            Response::Stored => Ok(()),
            Response::NotStored => Err(Error::NotStored),
            Response::Exists => Err(Error::CasConflict),
            // gomemcache: a CAS on an item that was evicted or deleted is ErrNotStored.
            Response::NotFound if cas => Err(Error::NotStored),
            Response::NotFound => Err(Error::CacheMiss),
            other => Err(reply_error(other)),
        }
    }
}

impl KeyedOp for Store {
    fn key(&self) -> &Key {
        &self.key
    }
}

/// Declares a single-key operation type: its key, its command, and the [`KeyedOp`] plumbing.
/// With `acknowledged by Response::X`, also its [`Op`]: `X` is success (`()`), `NOT_FOUND` a
/// miss, anything else an error.
macro_rules! keyed_op {
    ($(#[$doc:meta])* $name:ident $(acknowledged by $ack:path)?) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            key: Key,
            command: Command,
        }

        impl $name {
            fn build(key: &str, make: impl FnOnce(Key) -> Command) -> Result<$name, Error> {
                let (key, command) = key_command(key, make)?;
                Ok($name { key, command })
            }
        }

        impl KeyedOp for $name {
            fn key(&self) -> &Key {
                &self.key
            }
        }

        $(
            impl Op for $name {
                type Output = ();
                fn command(&self) -> &Command {
                    &self.command
                }
                fn finish(self, response: Response) -> Result<(), Error> {
                    match response {
                        $ack => Ok(()),
                        other => Err(miss_or_error(other)),
                    }
                }
            }
        )?
    };
}

keyed_op! {
    /// `delete`, and gomemcache's `DeleteLock`: `NOT_FOUND` is a miss.
    Delete acknowledged by Response::Deleted
}

impl Delete {
    /// `delete <key>`.
    pub fn new(key: &str) -> Result<Delete, Error> {
        Delete::build(key, |key| Command::Delete { key, hold: None, noreply: false })
    }

    /// `delete <key> <seconds>`, gomemcache's `DeleteLock`. memcached 1.6 refuses a non-zero
    /// hold with `CLIENT_ERROR`, which is reported as [`Error::Client`].
    pub fn lock(key: &str, seconds: u32) -> Result<Delete, Error> {
        Delete::build(key, |key| Command::Delete { key, hold: Some(seconds), noreply: false })
    }
}

keyed_op! {
    /// `touch <key> <seconds>`: a new expiration; `NOT_FOUND` is a miss.
    Touch acknowledged by Response::Touched
}

impl Touch {
    /// Sets `key` to expire in `seconds`.
    pub fn new(key: &str, seconds: i32) -> Result<Touch, Error> {
        Touch::build(key, |key| Command::Touch { key, exptime: seconds, noreply: false })
    }
}

keyed_op! {
    /// `incr` and `decr`: the counter's new value; `NOT_FOUND` is a miss.
    Arith
}

impl Arith {
    /// `incr <key> <delta>`.
    pub fn increment(key: &str, delta: u64) -> Result<Arith, Error> {
        Arith::build(key, |key| Command::Arith { verb: ArithVerb::Incr, key, delta, noreply: false })
    }

    /// `decr <key> <delta>`.
    pub fn decrement(key: &str, delta: u64) -> Result<Arith, Error> {
        Arith::build(key, |key| Command::Arith { verb: ArithVerb::Decr, key, delta, noreply: false })
    }
}

impl Op for Arith {
    type Output = u64;
    fn command(&self) -> &Command {
        &self.command
    }
    fn finish(self, response: Response) -> Result<u64, Error> {
        match response {
            Response::Number(n) => Ok(n),
            other => Err(miss_or_error(other)),
        }
    }
}

/// `NOT_FOUND` is a miss; anything else that is not the operation's success is an error.
fn miss_or_error(response: Response) -> Error {
    match response {
        Response::NotFound => Error::CacheMiss,
        other => reply_error(other),
    }
}

/// Commands for one whole server that answer only "done": `flush_all` and `version` (ping).
#[derive(Debug)]
pub struct Admin {
    command: Command,
}

impl Admin {
    /// `flush_all`.
    pub fn flush_all() -> Admin {
        Admin { command: Command::FlushAll { delay: None, noreply: false } }
    }

    /// `version`: gomemcache's `Ping`.
    pub fn ping() -> Admin {
        Admin { command: Command::Version }
    }
}

impl Op for Admin {
    type Output = ();
    fn command(&self) -> &Command {
        &self.command
    }
    fn finish(self, response: Response) -> Result<(), Error> {
        match response {
            Response::Ok | Response::Version(_) => Ok(()),
            other => Err(reply_error(other)),
        }
    }
}

/// `version`: the server's version string.
#[derive(Debug)]
pub struct Version {
    command: Command,
}

impl Version {
    /// `version`.
    pub fn new() -> Version {
        Version { command: Command::Version }
    }
}

impl Default for Version {
    fn default() -> Self {
        Version::new()
    }
}

impl Op for Version {
    type Output = String;
    fn command(&self) -> &Command {
        &self.command
    }
    fn finish(self, response: Response) -> Result<String, Error> {
        match response {
            Response::Version(v) => Ok(lossy(&v)),
            other => Err(reply_error(other)),
        }
    }
}

/// `stats` or `stats <group>`: one server's statistics as a map.
#[derive(Debug)]
pub struct Stats {
    command: Command,
}

impl Stats {
    /// `stats`.
    pub fn new() -> Stats {
        Stats { command: Command::Stats { arg: None } }
    }

    /// `stats <group>`, e.g. `settings` or `items`.
    pub fn group(group: &str) -> Result<Stats, Error> {
        Ok(Stats { command: Command::Stats { arg: Some(StatsArg::new(group)?) } })
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Op for Stats {
    type Output = HashMap<String, String>;
    fn command(&self) -> &Command {
        &self.command
    }
    fn finish(self, response: Response) -> Result<Self::Output, Error> {
        match response {
            Response::Stats(stats) => {
                Ok(stats.into_iter().map(|s| (lossy(&s.name), lossy(&s.value))).collect())
            }
            Response::Reset => Err(Error::NoStats),
            other => Err(reply_error(other)),
        }
    }
}
