//! The fleet under a manual clock: routing, multi-get plans with down servers, list changes
//! and the re-resolution schedule.

use std::time::{Duration, Instant};

use std::sync::Arc;

use memcache_proto::config::{Builder, Config, FromConfig};
use memcache_proto::fleet::Fleet;
use memcache_proto::health::Permit;
use memcache_proto::op::{GetMulti, Op};
use memcache_proto::{Command, Error, FailurePolicy, Ketama, ServerAddr, ServerList, ServerSelector};

/// A client type for building configs only.
struct NoClient;

impl FromConfig for NoClient {
    type Connector = ();

    fn from_config(_: Config, _: Option<()>) -> Result<Self, Error> {
        Ok(NoClient)
    }
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("10.0.0.{i}:11211")).collect()
}

fn ring(n: usize) -> Arc<Ketama> {
    Arc::new(Ketama::libmemcached(names(n).iter().map(|s| (s.as_str(), 1))).expect("literals"))
}

fn mark_down(fleet: &Fleet, server: &ServerAddr, now: Instant) {
    for _ in 0..fleet.health().policy().failure_limit {
        fleet.record(server, Permit::Normal, &Err::<(), _>(Error::Timeout), now);
    }
    assert!(fleet.health().is_down(server));
}

fn keys_of(plan: &[(ServerAddr, GetMulti)]) -> Vec<(String, usize)> {
    plan.iter()
        .map(|(s, op)| match op.command() {
            Command::Get { keys, .. } => (s.to_string(), keys.len()),
            other => panic!("not a get: {other:?}"),
        })
        .collect()
}

#[test]
fn ejection_is_refused_with_crc32_at_build() {
    let eject = FailurePolicy { eject: true, ..FailurePolicy::default() };
    let crc = ServerList::new(names(2)).expect("literals");
    let refused = Builder::<NoClient>::new().selector(crc).failure_policy(eject).config();
    assert!(matches!(refused, Err(Error::InvalidConfig(_))));
    let ok = Builder::<NoClient>::new().selector(ring(2)).failure_policy(eject).config();
    assert!(ok.is_ok());
}

#[test]
fn multi_get_keeps_a_down_servers_keys_with_it_and_admits_one_probe() {
    let t0 = Instant::now();
    let fleet = Fleet::new(ring(3), FailurePolicy::default(), None, t0);
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let down = fleet.selector().servers()[0].clone();
    let before = keys_of(&fleet.plan_get_multi(&keys, t0).expect("plan"));
    mark_down(&fleet, &down, t0);

    assert_eq!(keys_of(&fleet.plan_get_multi(&keys, t0).expect("plan")), before, "no ejection: no move");
    assert!(matches!(fleet.admit(&down, t0), Err(Error::ServerUnavailable { .. })));
    let later = t0 + Duration::from_secs(2);
    assert_eq!(fleet.admit(&down, later).expect("due"), Permit::Probe);
    assert!(fleet.admit(&down, later).is_err(), "one probe");
}

#[test]
fn multi_get_with_ejection_moves_only_the_down_servers_keys_while_it_rests() {
    let t0 = Instant::now();
    let eject = FailurePolicy { eject: true, ..FailurePolicy::default() };
    let fleet = Fleet::new(ring(4), eject, None, t0);
    let keys: Vec<String> = (0..400).map(|i| format!("k{i}")).collect();
    let before = keys_of(&fleet.plan_get_multi(&keys, t0).expect("plan"));
    assert_eq!(before.len(), 4);
    let down = fleet.selector().servers()[3].clone();
    mark_down(&fleet, &down, t0);

    let after = keys_of(&fleet.plan_get_multi(&keys, t0).expect("plan"));
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(|(s, _)| *s != down.to_string()));
    assert_eq!(after.iter().map(|(_, n)| n).sum::<usize>(), 400);
    for (server, n) in &after {
        let was = before.iter().find(|(s, _)| s == server).expect("a live server").1;
        assert!(*n >= was, "{server} only gained keys");
    }
    let due = t0 + Duration::from_secs(2);
    assert_eq!(
        keys_of(&fleet.plan_get_multi(&keys, due).expect("plan")),
        before,
        "due for a probe: home again"
    );
}

#[test]
fn bad_keys_fail_the_whole_plan() {
    let fleet = Fleet::new(ring(2), FailurePolicy::default(), None, Instant::now());
    assert!(matches!(fleet.plan_get_multi(["ok", "not ok"], Instant::now()), Err(Error::MalformedKey(_))));
}

#[test]
fn departed_reports_servers_that_left_once_and_forgets_their_health() {
    let t0 = Instant::now();
    let owner = Arc::new(ServerList::new(names(3)).expect("literals"));
    let fleet = Fleet::new(owner.clone(), FailurePolicy::default(), None, t0);
    assert!(fleet.departed().is_empty(), "nothing changed");
    let third = owner.servers()[2].clone();
    mark_down(&fleet, &third, t0);

    owner.set_servers(names(2)).expect("literals");
    assert_eq!(fleet.departed(), vec![third.clone()]);
    assert!(fleet.departed().is_empty(), "reported once");
    assert!(!fleet.health().is_down(&third));

    assert!(fleet.set_servers(&["10.0.0.9:1", "bad host:::"]).is_err());
    assert!(fleet.departed().is_empty(), "a failed change is no change");
    fleet.set_servers(&["10.0.0.1:11211"]).expect("literals");
    assert_eq!(fleet.departed().len(), 1);
}

/// The known list is swapped by compare-and-swap: of threads noticing one change together,
/// exactly one reports the servers that left.
#[test]
fn racing_threads_report_a_departure_once() {
    let owner = Arc::new(ServerList::new(names(4)).expect("literals"));
    let fleet = Fleet::new(owner.clone(), FailurePolicy::default(), None, Instant::now());
    owner.set_servers(names(2)).expect("literals");
    let threads = 8;
    let barrier = std::sync::Barrier::new(threads);
    let reported: Vec<Vec<ServerAddr>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    fleet.departed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("no panic")).collect()
    });
    let all: Vec<String> = reported.iter().flatten().map(ServerAddr::to_string).collect();
    assert_eq!(all, ["10.0.0.3:11211", "10.0.0.4:11211"], "each departure reported once: {reported:?}");
}

#[test]
fn one_caller_per_interval_is_told_to_re_resolve() {
    let t0 = Instant::now();
    let never = Fleet::new(ring(2), FailurePolicy::default(), None, t0);
    assert!(!never.refresh_due(t0 + Duration::from_secs(3600)));

    let every = Duration::from_secs(10);
    let fleet = Fleet::new(ring(2), FailurePolicy::default(), Some(every), t0);
    assert!(!fleet.refresh_due(t0));
    assert!(!fleet.refresh_due(t0 + Duration::from_secs(9)));
    assert!(fleet.refresh_due(t0 + every));
    assert!(!fleet.refresh_due(t0 + every), "only one caller");
    assert!(!fleet.refresh_due(t0 + Duration::from_secs(19)));
    assert!(fleet.refresh_due(t0 + Duration::from_secs(21)));
    fleet.refresh().expect("literals resolve");
}

#[test]
fn route_follows_the_health_of_the_key_server() {
    let t0 = Instant::now();
    let fleet = Fleet::new(ring(3), FailurePolicy::default(), None, t0);
    let (server, permit) = fleet.route(b"user:1", t0).expect("up");
    assert_eq!(permit, Permit::Normal);
    mark_down(&fleet, &server, t0);
    match fleet.route(b"user:1", t0) {
        Err(Error::ServerUnavailable { server: s, retry_at }) => {
            assert_eq!(s, server);
            assert!(retry_at > t0);
        }
        other => panic!("expected ServerUnavailable, got {other:?}"),
    }
    fleet.record(&server, Permit::Normal, &Err::<(), _>(Error::CacheMiss), t0);
    assert_eq!(fleet.route(b"user:1", t0).expect("a miss is an answer").0, server);
}
