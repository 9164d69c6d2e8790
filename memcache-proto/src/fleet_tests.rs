//! The fleet under a manual clock: routing, multi-get plans with down servers, list changes
//! and the re-resolution schedule.

use std::time::{Duration, Instant};

use super::*;
use crate::op::Op;
use crate::{Command, Ketama, ServerList};

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

fn keys_of(plan: &MultiPlan) -> Vec<(String, usize)> {
    plan.send
        .iter()
        .map(|(s, _, op)| match op.command() {
            Command::Get { keys, .. } => (s.to_string(), keys.len()),
            other => panic!("not a get: {other:?}"),
        })
        .collect()
}

#[test]
fn ejection_is_refused_with_crc32_at_construction() {
    let eject = FailurePolicy { eject: true, ..FailurePolicy::default() };
    let crc: Arc<dyn ServerSelector> = Arc::new(ServerList::new(names(2)).expect("literals"));
    assert!(matches!(Fleet::new(crc, eject, None, Instant::now()), Err(Error::InvalidConfig(_))));
    assert!(Fleet::new(ring(2), eject, None, Instant::now()).is_ok());
}

#[test]
fn multi_get_reports_a_down_server_once_and_probes_it_once() {
    let t0 = Instant::now();
    let fleet = Fleet::new(ring(3), FailurePolicy::default(), None, t0).expect("fleet");
    let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
    let down = fleet.selector().servers()[0].clone();
    mark_down(&fleet, &down, t0);

    let plan = fleet.plan_get_multi(&keys, t0).expect("plan");
    assert_eq!(plan.unavailable.len(), 1);
    assert_eq!(plan.unavailable[0].0, down);
    assert!(matches!(plan.unavailable[0].1, Error::ServerUnavailable { .. }));
    assert_eq!(plan.send.len(), 2);
    assert!(plan.send.iter().all(|(s, p, _)| *s != down && *p == Permit::Normal));

    let later = t0 + Duration::from_secs(2);
    let plan = fleet.plan_get_multi(&keys, later).expect("plan");
    assert!(plan.unavailable.is_empty());
    let probes: Vec<_> = plan.send.iter().filter(|(_, p, _)| *p == Permit::Probe).collect();
    assert_eq!(probes.len(), 1, "one group probes the down server");
    assert_eq!(probes[0].0, down);
}

#[test]
fn multi_get_with_ejection_moves_only_the_down_servers_keys() {
    let t0 = Instant::now();
    let eject = FailurePolicy { eject: true, ..FailurePolicy::default() };
    let fleet = Fleet::new(ring(4), eject, None, t0).expect("fleet");
    let keys: Vec<String> = (0..400).map(|i| format!("k{i}")).collect();
    let before = keys_of(&fleet.plan_get_multi(&keys, t0).expect("plan"));
    assert_eq!(before.len(), 4);
    let down = fleet.selector().servers()[3].clone();
    mark_down(&fleet, &down, t0);

    let plan = fleet.plan_get_multi(&keys, t0).expect("plan");
    assert!(plan.unavailable.is_empty(), "every key found a live server");
    let after = keys_of(&plan);
    assert_eq!(after.len(), 3);
    assert_eq!(after.iter().map(|(_, n)| n).sum::<usize>(), 400);
    for (server, n) in &after {
        let was = before.iter().find(|(s, _)| s == server).expect("a live server").1;
        assert!(*n >= was, "{server} only gained keys");
    }

    for s in fleet.selector().servers() {
        mark_down(&fleet, &s, t0);
    }
    let plan = fleet.plan_get_multi(&keys, t0).expect("plan");
    assert!(plan.send.is_empty());
    assert_eq!(plan.unavailable.len(), 4, "each down server reported once");
}

#[test]
fn bad_keys_fail_the_whole_plan() {
    let fleet = Fleet::new(ring(2), FailurePolicy::default(), None, Instant::now()).expect("fleet");
    assert!(matches!(fleet.plan_get_multi(["ok", "not ok"], Instant::now()), Err(Error::MalformedKey(_))));
}

#[test]
fn departed_reports_servers_that_left_once_and_forgets_their_health() {
    let t0 = Instant::now();
    let owner = Arc::new(ServerList::new(names(3)).expect("literals"));
    let fleet = Fleet::new(owner.clone(), FailurePolicy::default(), None, t0).expect("fleet");
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

#[test]
fn one_caller_per_interval_is_told_to_re_resolve() {
    let t0 = Instant::now();
    let never = Fleet::new(ring(2), FailurePolicy::default(), None, t0).expect("fleet");
    assert!(!never.refresh_due(t0 + Duration::from_secs(3600)));

    let every = Duration::from_secs(10);
    let fleet = Fleet::new(ring(2), FailurePolicy::default(), Some(every), t0).expect("fleet");
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
    let fleet = Fleet::new(ring(3), FailurePolicy::default(), None, t0).expect("fleet");
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
