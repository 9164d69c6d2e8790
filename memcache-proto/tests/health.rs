//! The health tracker under a manual clock: every transition, the probe, backoff and
//! ejection.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use memcache_proto::health::Permit;
use memcache_proto::{Error, FailurePolicy, Health, Ketama, ServerAddr, ServerList, ServerSelector};

const MS: Duration = Duration::from_millis(1);

fn io_error() -> Error {
    Error::from(io::Error::from(io::ErrorKind::ConnectionRefused))
}

fn server(name: &str) -> ServerAddr {
    ServerAddr::resolve(name).expect("literal")
}

/// A tracker, a server and a clock starting now.
fn setup(policy: FailurePolicy) -> (Health, ServerAddr, Instant) {
    (Health::new(policy), server("10.0.0.1:11211"), Instant::now())
}

fn fail(h: &Health, s: &ServerAddr, times: u32, now: Instant) {
    for _ in 0..times {
        let permit = h.check(s, now).expect("admitted");
        h.record(s, permit, Err(&io_error()), now);
    }
}

fn retry_at(h: &Health, s: &ServerAddr, now: Instant) -> Instant {
    match h.check(s, now) {
        Err(Error::ServerUnavailable { server, retry_at }) => {
            assert_eq!(&server, s, "the error names the server");
            retry_at
        }
        other => panic!("expected ServerUnavailable, got {other:?}"),
    }
}

#[test]
fn down_after_the_limit_of_consecutive_transport_failures() {
    let (h, s, t0) = setup(FailurePolicy::default());
    fail(&h, &s, 2, t0);
    assert_eq!(h.check(&s, t0).expect("still up"), Permit::Normal);
    assert!(!h.is_down(&s));
    fail(&h, &s, 1, t0);
    assert!(h.is_down(&s));
    let at = retry_at(&h, &s, t0 + MS);
    assert!(at > t0 && at <= t0 + Duration::from_secs(1), "first wait is at most retry_after: {:?}", at - t0);
    assert!(at >= t0 + Duration::from_millis(800), "jitter takes at most a fifth");
}

#[test]
fn a_success_resets_the_count() {
    let (h, s, t0) = setup(FailurePolicy::default());
    fail(&h, &s, 2, t0);
    h.record(&s, Permit::Normal, Ok(()), t0);
    fail(&h, &s, 2, t0);
    assert_eq!(h.check(&s, t0).expect("two failures after a success"), Permit::Normal);
}

#[test]
fn only_transport_failures_count() {
    let (h, s, t0) = setup(FailurePolicy { failure_limit: 1, ..FailurePolicy::default() });
    let answers = [
        Error::CacheMiss,
        Error::NotStored,
        Error::CasConflict,
        Error::Client("bad".into()),
        Error::Server("oom".into()),
        Error::UnknownCommand,
        Error::MalformedKey("k k".into()),
        Error::Closed,
    ];
    for e in &answers {
        h.record(&s, Permit::Normal, Err(e), t0);
        assert!(!h.is_down(&s), "{e:?} does not count");
    }
    for e in [Error::Timeout, io_error(), Error::Protocol(memcache_proto::ProtoError::BadValueTerminator)] {
        let h = Health::new(FailurePolicy { failure_limit: 1, ..FailurePolicy::default() });
        h.record(&s, Permit::Normal, Err(&e), t0);
        assert!(h.is_down(&s), "{e:?} counts");
    }
}

#[test]
fn exactly_one_probe_when_the_wait_is_over_and_success_brings_it_back() {
    let (h, s, t0) = setup(FailurePolicy::default());
    fail(&h, &s, 3, t0);
    let at = retry_at(&h, &s, t0);
    assert!(h.check(&s, at - MS).is_err(), "not before retry_at");
    assert_eq!(h.check(&s, at).expect("due"), Permit::Probe);
    for _ in 0..10 {
        assert!(h.check(&s, at).is_err(), "other callers still fail fast while the probe runs");
    }
    h.record(&s, Permit::Probe, Ok(()), at + MS);
    assert_eq!(h.check(&s, at + MS).expect("back"), Permit::Normal);
    assert!(!h.is_down(&s));
    fail(&h, &s, 2, at);
    assert_eq!(h.check(&s, at).expect("counting starts again"), Permit::Normal);
}

/// Health is lock-free (compare-and-swap of an immutable map): of many threads racing for a
/// due probe, exactly one wins, and failures counted from many threads at once are none lost.
#[test]
fn racing_threads_get_one_probe_and_lose_no_failure() {
    let policy = FailurePolicy { failure_limit: 64, ..FailurePolicy::default() };
    let (h, s, t0) = setup(policy);
    let threads = 8;
    let barrier = std::sync::Barrier::new(threads);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                fail(&h, &s, 7, t0);
            });
        }
    });
    assert!(!h.is_down(&s), "56 failures, limit 64");
    fail(&h, &s, 8, t0);
    assert!(h.is_down(&s), "the 64th consecutive failure, none lost to a race");

    let at = retry_at(&h, &s, t0);
    let probes = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..100 {
                    if matches!(h.check(&s, at), Ok(Permit::Probe)) {
                        probes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(probes.into_inner(), 1, "one probe among 800 racing checks");
}

/// The "all healthy" fast path never hides a down server: one thread keeps bringing a server
/// back (emptying the map) while another marks a second one down and must see it down
/// every time.
#[test]
fn a_server_brought_back_never_hides_another_going_down() {
    let policy = FailurePolicy { failure_limit: 1, ..FailurePolicy::default() };
    let (h, s1, t0) = setup(policy);
    let s2 = server("10.0.0.2:11211");
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                h.failed(&s1, Permit::Normal, t0);
                h.succeeded(&s1);
            }
        });
        for i in 0..50_000 {
            h.failed(&s2, Permit::Normal, t0);
            let seen = h.is_down(&s2);
            h.succeeded(&s2);
            if !seen {
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                panic!("round {i}: a server just marked down was seen healthy");
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn failed_probes_back_off_exponentially_to_the_cap() {
    let policy = FailurePolicy { max_retry_after: Duration::from_secs(5), ..FailurePolicy::default() };
    let (h, s, t0) = setup(policy);
    fail(&h, &s, 3, t0);
    let mut now = retry_at(&h, &s, t0);
    let mut waits = Vec::new();
    for _ in 0..6 {
        assert_eq!(h.check(&s, now).expect("due"), Permit::Probe);
        h.record(&s, Permit::Probe, Err(&Error::Timeout), now);
        let next = retry_at(&h, &s, now);
        waits.push(next - now);
        now = next;
    }
    for (i, w) in waits.iter().enumerate() {
        let full = Duration::from_secs(2u64.pow(i as u32 + 1).min(5));
        assert!(*w <= full && *w >= full.mul_f64(0.8), "wait {i} = {w:?}, expected about {full:?}");
    }
    assert_eq!(policy.backoff(&s, 3), policy.backoff(&s, 3), "the jitter is deterministic");
}

#[test]
fn a_lost_probe_is_replaced_after_another_wait() {
    let (h, s, t0) = setup(FailurePolicy::default());
    fail(&h, &s, 3, t0);
    let at = retry_at(&h, &s, t0);
    assert_eq!(h.check(&s, at).expect("due"), Permit::Probe);
    // The probing caller vanished (its future was dropped): nobody records anything.
    let again = retry_at(&h, &s, at);
    assert!(again > at);
    assert_eq!(h.check(&s, again).expect("a new probe"), Permit::Probe);
}

#[test]
fn late_failures_of_calls_admitted_earlier_do_not_extend_the_wait() {
    let (h, s, t0) = setup(FailurePolicy::default());
    fail(&h, &s, 3, t0);
    let at = retry_at(&h, &s, t0);
    h.record(&s, Permit::Normal, Err(&Error::Timeout), t0 + Duration::from_millis(500));
    assert_eq!(retry_at(&h, &s, t0), at);
}

#[test]
fn a_late_success_brings_the_server_back() {
    let (h, s, t0) = setup(FailurePolicy::default());
    fail(&h, &s, 3, t0);
    h.record(&s, Permit::Normal, Ok(()), t0 + MS);
    assert_eq!(h.check(&s, t0 + MS).expect("answered"), Permit::Normal);
}

#[test]
fn servers_are_tracked_apart() {
    let (h, a, t0) = setup(FailurePolicy::default());
    let b = server("10.0.0.2:11211");
    fail(&h, &a, 3, t0);
    assert!(h.check(&a, t0).is_err());
    assert_eq!(h.check(&b, t0).expect("b is fine"), Permit::Normal);
    h.retain(std::slice::from_ref(&b));
    assert_eq!(h.check(&a, t0).expect("forgotten after it left the list"), Permit::Normal);
}

#[test]
fn disabled_never_marks_down() {
    let (h, s, t0) = setup(FailurePolicy::disabled());
    fail(&h, &s, 100, t0);
    assert_eq!(h.check(&s, t0).expect("disabled"), Permit::Normal);
    assert!(!FailurePolicy::disabled().is_enabled());
}

#[test]
fn huge_waits_do_not_overflow() {
    let policy =
        FailurePolicy { retry_after: Duration::MAX, max_retry_after: Duration::MAX, ..Default::default() };
    let (h, s, t0) = setup(policy);
    fail(&h, &s, 3, t0);
    assert!(retry_at(&h, &s, t0) > t0);
}

#[test]
fn ejection_needs_a_selector_that_can_eject() {
    let eject = FailurePolicy { eject: true, ..FailurePolicy::default() };
    let crc = ServerList::new(["10.0.0.1:1", "10.0.0.2:1"]).expect("literals");
    let e = Health::validate(&eject, &crc).expect_err("refused with CRC32");
    assert!(matches!(&e, Error::InvalidConfig(m) if m.contains("Ketama")), "{e}");
    Health::validate(&FailurePolicy::default(), &crc).expect("no ejection is fine");
    let ring = Ketama::libmemcached([("10.0.0.1:1", 1), ("10.0.0.2:1", 1)]).expect("literals");
    Health::validate(&eject, &ring).expect("ketama ejects");
    Health::validate(&eject, &Arc::new(ring)).expect("through a shared handle too");
}

#[test]
fn route_fails_fast_or_ejects_along_the_ring_and_returns_keys_when_back() {
    let names = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211", "10.0.0.4:11211"];
    let ring = Ketama::libmemcached(names.map(|n| (n, 1))).expect("literals");
    let t0 = Instant::now();
    let keys: Vec<String> = (0..2000).map(|i| format!("k{i}")).collect();
    let home: Vec<ServerAddr> = keys.iter().map(|k| ring.pick_server(k.as_bytes()).expect("ring")).collect();
    let down = ring.servers()[2].clone();

    let plain = Health::new(FailurePolicy::default());
    fail(&plain, &down, 3, t0);
    let eject = Health::new(FailurePolicy { eject: true, ..FailurePolicy::default() });
    fail(&eject, &down, 3, t0);
    let mut moved = 0;
    for (key, home) in keys.iter().zip(&home) {
        let plain_route = plain.route(&ring, key.as_bytes(), t0);
        let (to, permit) = eject.route(&ring, key.as_bytes(), t0).expect("ejected or home");
        assert_eq!(permit, Permit::Normal);
        if *home == down {
            assert!(
                matches!(plain_route, Err(Error::ServerUnavailable { ref server, .. }) if *server == down)
            );
            assert_ne!(to, down);
            moved += 1;
        } else {
            assert_eq!(plain_route.expect("up").0, *home);
            assert_eq!(to, *home, "a live server's key never moves");
        }
    }
    assert!(moved > 0);

    let at = retry_at(&eject, &down, t0);
    let back =
        keys.iter().zip(&home).find(|(_, h)| **h == down).map(|(k, _)| k).expect("a key of the down server");
    assert_eq!(eject.route(&ring, back.as_bytes(), at).expect("probe"), (down.clone(), Permit::Probe));
    eject.record(&down, Permit::Probe, Ok(()), at);
    for (key, home) in keys.iter().zip(&home) {
        assert_eq!(eject.route(&ring, key.as_bytes(), at).expect("all up").0, *home, "keys moved back");
    }
}

#[test]
fn route_with_every_server_down_fails_fast() {
    let ring = Ketama::libmemcached([("10.0.0.1:11211", 1), ("10.0.0.2:11211", 1)]).expect("literals");
    let h = Health::new(FailurePolicy { eject: true, ..FailurePolicy::default() });
    let t0 = Instant::now();
    for s in ring.servers() {
        fail(&h, &s, 3, t0);
    }
    assert!(matches!(h.route(&ring, b"k", t0), Err(Error::ServerUnavailable { .. })));
}
