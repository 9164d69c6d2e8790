//! Busy polling (`Builder::busy_poll`) changes how a caller waits, never what it gets: every
//! reply shape, slow and dribbled replies, stalls and broken connections behave as without it.

use std::time::Duration;

use bytes::Bytes;
use memcache_proto::{Error, Item};

use super::util::XorShift;
use super::{Adapter, ClientConfig, check_item, client, timed};
use crate::fault::{Fault, FaultServer, Proxy, ProxyMode};
use crate::memcached::Memcached;

/// Long enough to catch a loopback reply, short next to the delays below, so that both ways
/// of finishing a spin (the reply came; the window passed and the caller slept) are taken.
const WINDOW: Duration = Duration::from_micros(200);

/// Replies that arrive within the window, after it (delayed, dribbled one byte at a time) and
/// never (stall), with a busy-polling client: right answers, timeouts on time, and recovery.
/// The calls run in a spawned task, where only a real wake-up brings a caller back whose
/// spin ended before its reply came (a `block_on` thread may poll again on any IO event).
pub async fn busy_polling_keeps_every_guarantee<A: Adapter>() {
    A::spawn(keeps_every_guarantee::<A>()).await;
}

async fn keeps_every_guarantee<A: Adapter>() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let timeout = Duration::from_millis(600);
    let c = client::<A>(ClientConfig::new([proxy.addr()]).timeout(timeout).busy_poll(WINDOW));
    let big = Bytes::from(XorShift::new(11).bytes(1_000_000));
    expect_ok!(A::set(&c, &Item::new("big", big.clone()).with_flags(3)).await, "set 1 MB");
    expect_ok!(A::set(&c, &Item::new("n", "41")).await, "set n");

    let modes = [
        ProxyMode::Pass,
        ProxyMode::DelayReplies(Duration::from_millis(20)),
        ProxyMode::SlowWrites(Duration::from_millis(2)),
        ProxyMode::Pass,
    ];
    for (round, mode) in modes.into_iter().enumerate() {
        proxy.set_mode(mode);
        let key = format!("k{round}");
        expect_ok!(A::set(&c, &Item::new(key.as_str(), format!("v{round}"))).await, "{mode:?}: set");
        let got = expect_ok!(A::get(&c, &key).await, "{mode:?}: get");
        check_item(&got, &key, format!("v{round}").as_bytes(), 0, format!("{mode:?}"));
        expect_err!(A::get(&c, "missing").await, Error::CacheMiss, "{mode:?}: miss");
        let multi = expect_ok!(A::get_multi(&c, &[key.as_str(), "missing", "big"]).await, "{mode:?}: multi");
        assert_eq!(multi.len(), 2, "{mode:?}: get_multi returned {:?}", multi.keys());
        check_item(&multi["big"], "big", &big, 3, format!("{mode:?}: 1 MB in get_multi"));
        let n = expect_ok!(A::increment(&c, "n", 1).await, "{mode:?}: incr");
        assert_eq!(n, 42 + round as u64, "{mode:?}: increment");
    }

    proxy.set_mode(ProxyMode::Dribble);
    expect_ok!(A::set(&c, &Item::new("d", "dribbled\r\nEND\r\n")).await, "dribbled set");
    check_item(&expect_ok!(A::get(&c, "d").await, "dribbled get"), "d", b"dribbled\r\nEND\r\n", 0, "dribble");

    proxy.set_mode(ProxyMode::Stall);
    let (res, took) = timed(|| A::get(&c, "d")).await;
    expect_err!(res, Error::Timeout, "get while the proxy stalls");
    assert!(took < timeout * 4, "a stalled busy-polling get took {took:?} (timeout {timeout:?})");
    assert!(took >= timeout / 2, "a stalled busy-polling get gave up after {took:?}");
    proxy.set_mode(ProxyMode::Pass);
    check_item(&expect_ok!(A::get(&c, "big").await, "get after a stall"), "big", &big, 3, "after stall");
}

/// Broken connections found while spinning are reported like any other (`Io` or `Protocol`,
/// connection dropped), and the client keeps working.
pub async fn busy_polling_reports_broken_connections<A: Adapter>() {
    for fault in [Fault::Reset, Fault::Garbage, Fault::HalfValue] {
        let server = FaultServer::start(fault);
        let cfg = ClientConfig::new([server.addr()]).timeout(Duration::from_secs(2)).busy_poll(WINDOW);
        let c = client::<A>(cfg);
        for round in 0..3 {
            match A::get(&c, "k").await {
                Err(e @ (Error::Io(_) | Error::Protocol(_))) => {
                    assert!(e.is_connection_broken(), "{fault:?}/{round}: {e:?} must break the connection");
                }
                other => panic!("{fault:?}/{round}: expected Err(Io or Protocol), got {other:?}"),
            }
            assert!(server.connections() > round, "{fault:?}: a broken connection was reused");
        }
    }
}
