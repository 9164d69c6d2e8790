//! The `tracing` feature: one span per call with OpenTelemetry's database fields, one child
//! span per server of a multi-server call, `error.type` on failure, connection events as
//! `debug` events, and keys only when the client was built to record them.
//!
//! The spans are captured by [`Capture`], a [`Layer`] installed once per process as the global
//! subscriber (a client's connection events come from its connections' tasks, on other
//! threads than the test's). Tests run in parallel in one process, so each test watches the
//! ports of its own servers and sees only the spans and events about them.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use memcache_proto::{Error, Item};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use super::util::keys_owned_by;
use super::{Adapter, ClientConfig, client};
use crate::fault::{Fault, FaultServer};
use crate::memcached::Memcached;

/// A closed span or an event about a watched server.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The span's name, or the event's message.
    pub name: String,
    /// A number unique to the span in this process (0 for an event).
    pub seq: u64,
    /// The parent span's `seq`, if any.
    pub parent: Option<u64>,
    /// Every field recorded, as text.
    pub fields: BTreeMap<String, String>,
}

impl Captured {
    /// The field `name`, if recorded.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// A span's fields while it is open, its `seq`, and whether one of its children was about a
/// watched server (a `get_multi` span has no server of its own).
#[derive(Default)]
struct Open {
    seq: u64,
    parent: Option<u64>,
    fields: Fields,
    watched_child: bool,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Fields {
    fn watched(&self) -> bool {
        let watched = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
        self.0.get("server.port").and_then(|p| p.parse().ok()).is_some_and(|p: u16| watched.contains(&p))
    }
}

static WATCHED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
static CAPTURED: Mutex<Vec<Captured>> = Mutex::new(Vec::new());
static SEQ: AtomicU64 = AtomicU64::new(1);

/// Records the spans and events about watched servers into a process-wide list.
#[derive(Debug)]
pub struct Capture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().and_then(|p| p.extensions().get::<Open>().map(|o| o.seq));
        let mut open = Open { seq: SEQ.fetch_add(1, Ordering::Relaxed), parent, ..Open::default() };
        attrs.record(&mut open.fields);
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(open) = span.extensions_mut().get_mut::<Open>() {
                values.record(&mut open.fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.watched() {
            let name = fields.0.get("message").cloned().unwrap_or_default();
            push(Captured { name, seq: 0, parent: None, fields: fields.0 });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<Open>() else { return };
        if !(open.watched_child || open.fields.watched()) {
            return;
        }
        if let Some(parent) = span.parent() {
            if let Some(p) = parent.extensions_mut().get_mut::<Open>() {
                p.watched_child = true;
            }
        }
        push(Captured {
            name: span.name().to_owned(),
            seq: open.seq,
            parent: open.parent,
            fields: open.fields.0,
        });
    }
}

fn push(c: Captured) {
    CAPTURED.lock().unwrap_or_else(|p| p.into_inner()).push(c);
}

/// Installs [`Capture`] as the global subscriber (once per process) and watches the ports of
/// `servers`; returns them.
fn watch(servers: &[String]) -> Vec<u16> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Capture);
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
    let ports: Vec<u16> = servers
        .iter()
        .map(|s| s.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("a host:port server"))
        .collect();
    WATCHED.lock().unwrap_or_else(|p| p.into_inner()).extend(&ports);
    ports
}

/// Takes what was captured about `ports` so far.
fn take(ports: &[u16]) -> Vec<Captured> {
    let mut all = CAPTURED.lock().unwrap_or_else(|p| p.into_inner());
    let about = |c: &Captured| {
        c.field("server.port").and_then(|p| p.parse().ok()).is_some_and(|p: u16| ports.contains(&p))
    };
    let children: HashSet<u64> = all.iter().filter(|c| about(c)).filter_map(|c| c.parent).collect();
    let (mine, others): (Vec<_>, Vec<_>) = all.drain(..).partition(|c| about(c) || children.contains(&c.seq));
    *all = others;
    mine
}

/// The one captured span named `name`.
fn span<'a>(got: &'a [Captured], name: &str) -> &'a Captured {
    let found: Vec<_> = got.iter().filter(|c| c.seq != 0 && c.name == name).collect();
    assert_eq!(found.len(), 1, "one span {name:?} in {got:#?}");
    found[0]
}

/// Checks the OpenTelemetry fields every call span has.
#[track_caller]
fn check_call(s: &Captured, operation: &str) {
    assert_eq!(s.field("db.system.name"), Some("memcached"), "{s:?}");
    assert_eq!(s.field("db.operation.name"), Some(operation), "{s:?}");
}

/// A `get` is one span named `get` with the server's address and port and no key; a
/// `get_multi` over two servers is one `get_multi` span (batch size 2) with one child span per
/// server, each with that server's port.
pub async fn tracing_spans_of_get_and_get_multi<A: Adapter>() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let servers = [m1.addr(), m2.addr()];
    let ports = watch(&servers);
    let c = client::<A>(ClientConfig::new(servers.clone()));
    let keys: Vec<String> = (0..2).flat_map(|i| keys_owned_by(&servers, i, "traced", 1)).collect();
    for k in &keys {
        expect_ok!(A::set(&c, &Item::new(k.as_str(), "v")).await, "set {k}");
    }
    take(&ports);

    expect_ok!(A::get(&c, &keys[0]).await, "get");
    let got = take(&ports);
    let get = span(&got, "get");
    check_call(get, "get");
    assert_eq!(get.field("server.address"), Some("127.0.0.1"), "{get:?}");
    assert_eq!(get.field("server.port"), Some(ports[0].to_string().as_str()), "{get:?}");
    assert_eq!((get.field("memcached.key"), get.field("error.type")), (None, None), "{get:?}");
    assert_eq!(get.field("db.operation.batch.size"), None, "a single-key call: {get:?}");
    assert!(got.iter().all(|c| c.parent != Some(get.seq)), "a keyed call has no child span: {got:#?}");
    let leaked =
        |got: &[Captured]| got.iter().any(|c| c.fields.values().any(|v| keys.iter().any(|k| v.contains(k))));
    assert!(!leaked(&got), "a key in a span or event: {got:#?}");

    let found = expect_ok!(A::get_multi(&c, &keys).await, "get_multi");
    assert_eq!(found.len(), 2, "{found:?}");
    let got = take(&ports);
    let multi = span(&got, "get_multi");
    check_call(multi, "get_multi");
    assert_eq!(multi.field("db.operation.batch.size"), Some("2"), "{multi:?}");
    let mut children: Vec<&Captured> = got.iter().filter(|c| c.parent == Some(multi.seq)).collect();
    children.sort_by_key(|c| c.field("server.port").map(str::to_owned));
    let mut want: Vec<String> = ports.iter().map(u16::to_string).collect();
    want.sort();
    let child_ports: Vec<_> = children.iter().map(|c| c.field("server.port").unwrap_or("-")).collect();
    assert_eq!(child_ports, want, "one child span per server: {got:#?}");
    for child in children {
        assert_eq!(child.name, "memcached", "{child:?}");
        assert_eq!(child.field("db.system.name"), Some("memcached"), "{child:?}");
        assert_eq!(child.field("db.operation.name"), child.field("otel.name"), "{child:?}");
        assert_eq!(child.field("server.address"), Some("127.0.0.1"), "{child:?}");
        assert_eq!(child.field("db.operation.batch.size"), Some("1"), "{child:?}");
        assert_eq!((child.field("memcached.key"), child.field("error.type")), (None, None), "{child:?}");
    }
    assert!(!leaked(&got), "a key in a span or event: {got:#?}");
}

/// A call that fails has `error.type` (the error's kind) on its span, and the connection's
/// life is told by `debug` events with the server and the reason it closed.
pub async fn tracing_records_failures<A: Adapter>() {
    let stall = FaultServer::start(Fault::Stall);
    let ports = watch(&[stall.addr()]);
    let c = client::<A>(ClientConfig::new([stall.addr()]).timeout(Duration::from_millis(300)));
    expect_err!(A::get(&c, "k").await, Error::Timeout, "get from a stalled server");
    let got = take(&ports);
    let get = span(&got, "get");
    check_call(get, "get");
    assert_eq!(get.field("error.type"), Some("timeout"), "{get:?}");
    assert_eq!(get.field("server.port"), Some(ports[0].to_string().as_str()), "{get:?}");
    let events: Vec<_> = got.iter().filter(|c| c.seq == 0).map(|c| c.name.as_str()).collect();
    assert!(events.contains(&"memcached connection opened"), "{got:#?}");
    let closed = got.iter().find(|c| c.name == "memcached connection closed");
    let reason = closed.and_then(|c| c.field("reason"));
    assert_eq!(reason, Some("timeout"), "the close and its reason: {got:#?}");
}

/// With `record_keys(true)`, the spans carry the keys: a keyed call its key, each server's
/// span of a `get_multi` the keys it asked that server for.
pub async fn tracing_records_keys_only_when_asked<A: Adapter>() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let servers = [m1.addr(), m2.addr()];
    let ports = watch(&servers);
    let c = client::<A>(ClientConfig::new(servers.clone()).record_keys());
    let keys: Vec<String> = (0..2).flat_map(|i| keys_owned_by(&servers, i, "recorded", 1)).collect();
    expect_err!(A::get(&c, &keys[0]).await, Error::CacheMiss, "get of a missing key");
    let got = take(&ports);
    let get = span(&got, "get");
    assert_eq!(get.field("memcached.key"), Some(keys[0].as_str()), "{get:?}");
    assert_eq!(get.field("error.type"), None, "a miss is not a failure: {get:?}");
    expect_ok!(A::get_multi(&c, &keys).await, "get_multi");
    let got = take(&ports);
    let multi = span(&got, "get_multi");
    let mut recorded: Vec<_> =
        got.iter().filter(|c| c.parent == Some(multi.seq)).filter_map(|c| c.field("memcached.key")).collect();
    recorded.sort();
    let mut want: Vec<_> = keys.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(recorded, want, "each server's keys: {got:#?}");
}
