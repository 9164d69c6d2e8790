//! The meta protocol against a real memcached: outcomes, binary keys, quiet batches, version
//! gating, leases and stale-while-revalidate.

use std::collections::BTreeSet;

use memcache_proto::Error;
use memcache_proto::meta::{
    ArithOutcome, DeleteOutcome, GetOutcome, Lease, Leased, MetaArith, MetaDelete, MetaGet, MetaItem,
    MetaOutcome, MetaRequest, MetaSet, SetMode, SetOutcome,
};

use super::{Adapter, ClientConfig, Res, client};
use crate::memcached::Memcached;

fn hit(outcome: Res<GetOutcome>, what: &str) -> MetaItem {
    match outcome {
        Ok(GetOutcome::Hit(item)) => item,
        other => panic!("{what}: expected a hit, got {other:?}"),
    }
}

fn stored_cas(outcome: Res<SetOutcome>, what: &str) -> u64 {
    match outcome {
        Ok(SetOutcome::Stored { cas: Some(cas) }) => cas,
        other => panic!("{what}: expected Stored with a CAS, got {other:?}"),
    }
}

fn counter(outcome: Res<ArithOutcome>, what: &str) -> u64 {
    match outcome {
        Ok(ArithOutcome::Updated { value: Some(v), .. }) => v,
        other => panic!("{what}: expected a counter value, got {other:?}"),
    }
}

/// `meta_get`/`meta_set`/`meta_delete`/`meta_arith`: hits, misses, modes, CAS conflicts and
/// TTL metadata, each outcome checked against what the server holds.
pub async fn meta_calls_and_their_outcomes<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let get = |k: &str| MetaGet::new(k).expect("key");
    let set = |k: &str, v: &'static str| MetaSet::new(k, v).expect("key");

    assert_eq!(A::meta_get(&c, get("absent")).await.ok(), Some(GetOutcome::Miss), "a miss is an outcome");
    let cas = stored_cas(A::meta_set(&c, set("k", "v1").flags(5).exptime(100).return_cas()).await, "ms k");
    let direct = m.get_direct_item("k").expect("ms stored k");
    assert_eq!((&direct.value[..], direct.flags, direct.cas), (&b"v1"[..], 5, cas), "what the server holds");

    let item = hit(A::meta_get(&c, get("k").cas().flags().ttl().access_info()).await, "mg k with metadata");
    assert_eq!(
        (&item.key[..], &item.value[..], item.flags, item.cas),
        (&b"k"[..], &b"v1"[..], Some(5), Some(cas))
    );
    assert!(item.ttl.is_some_and(|t| (95..=100).contains(&t)), "TTL metadata: {:?}", item.ttl);
    assert_eq!((item.size, item.hit_before), (Some(2), Some(true)), "size; read before (by the direct gets)");
    assert!(item.last_access.is_some() && !item.stale && item.lease == Lease::None, "{item:?}");
    expect_ok!(A::meta_set(&c, set("fresh", "f")).await, "ms fresh");
    let first = hit(A::meta_get(&c, get("fresh").meta_only().hit_before()).await, "first read of fresh");
    assert_eq!((first.value.len(), first.hit_before), (0, Some(false)), "meta_only; never read before");
    let again = hit(A::meta_get(&c, get("fresh").hit_before().touch(500)).await, "second read, T500");
    assert_eq!((&again.value[..], again.hit_before), (&b"f"[..], Some(true)), "read before");
    let ttl = hit(A::meta_get(&c, get("fresh").meta_only().ttl()).await, "mg fresh t").ttl;
    assert!(ttl.is_some_and(|t| (495..=500).contains(&t)), "touch set the TTL: {ttl:?}");

    // Modes.
    assert_eq!(A::meta_set(&c, set("k", "x").mode(SetMode::Add)).await.ok(), Some(SetOutcome::NotStored));
    assert_eq!(
        A::meta_set(&c, set("new", "n").mode(SetMode::Add)).await.ok(),
        Some(SetOutcome::Stored { cas: None })
    );
    assert_eq!(
        A::meta_set(&c, set("nope", "x").mode(SetMode::Replace)).await.ok(),
        Some(SetOutcome::NotStored)
    );
    assert_eq!(
        A::meta_set(&c, set("nope", "x").mode(SetMode::Append)).await.ok(),
        Some(SetOutcome::NotStored)
    );
    assert_eq!(
        A::meta_set(&c, set("new", ">").mode(SetMode::Append)).await.ok(),
        Some(SetOutcome::Stored { cas: None })
    );
    assert_eq!(
        A::meta_set(&c, set("new", "<").mode(SetMode::Prepend)).await.ok(),
        Some(SetOutcome::Stored { cas: None })
    );
    assert_eq!(m.get_direct("new").as_deref(), Some(&b"<n>"[..]), "append and prepend");
    assert_eq!(m.get_direct("nope"), None, "refused modes store nothing");

    // CAS conflicts.
    let cas = m.get_direct_item("k").expect("k").cas;
    assert_eq!(A::meta_set(&c, set("k", "lost").cas(cas + 1000)).await.ok(), Some(SetOutcome::Exists));
    assert_eq!(A::meta_set(&c, set("gone", "x").cas(cas)).await.ok(), Some(SetOutcome::NotFound));
    let cas2 = stored_cas(A::meta_set(&c, set("k", "won").cas(cas).return_cas()).await, "ms C<cas>");
    assert_ne!(cas2, cas, "a store gives a new CAS");
    let del = |k: &str| MetaDelete::new(k).expect("key");
    assert_eq!(A::meta_delete(&c, del("k").cas(cas)).await.ok(), Some(DeleteOutcome::Exists), "stale CAS");
    assert_eq!(A::meta_delete(&c, del("k").cas(cas2)).await.ok(), Some(DeleteOutcome::Deleted));
    assert_eq!(A::meta_delete(&c, del("k")).await.ok(), Some(DeleteOutcome::NotFound));
    assert_eq!(m.get_direct("k"), None);

    // Counters.
    let ma = |k: &str| MetaArith::new(k).expect("key");
    assert_eq!(A::meta_arith(&c, ma("n")).await.ok(), Some(ArithOutcome::NotFound));
    assert_eq!(counter(A::meta_arith(&c, ma("n").autovivify(10, 0)).await, "autovivify"), 10);
    assert_eq!(counter(A::meta_arith(&c, ma("n").delta(5)).await, "incr 5"), 15);
    assert_eq!(counter(A::meta_arith(&c, ma("n").decr().delta(100)).await, "decr clamps"), 0);
    let quiet = A::meta_arith(&c, ma("n").meta_only().return_cas().ttl()).await;
    assert!(
        matches!(quiet, Ok(ArithOutcome::Updated { value: None, cas: Some(_), ttl: Some(-1) })),
        "{quiet:?}"
    );
    expect_ok!(A::meta_set(&c, set("text", "abc")).await, "ms text");
    let e = A::meta_arith(&c, ma("text")).await;
    assert!(matches!(&e, Err(Error::Client(msg)) if msg.contains("non-numeric")), "{e:?}");
    assert_eq!(
        counter(A::meta_arith(&c, ma("n")).await, "the connection survives"),
        2,
        "0, +1 (meta_only), +1"
    );
}

/// Keys that are not text go out in base64 with `b`, come back decoded, and are the same item
/// the server holds under that binary key; a key too long for base64 never reaches the wire.
pub async fn meta_binary_keys<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    let key: Vec<u8> = (0..=185u8).map(|i| i.wrapping_mul(7)).collect();
    let outcome = A::meta_set(&c, MetaSet::new(&key, "bin").expect("186 bytes fit").return_key()).await;
    assert_eq!(outcome.ok(), Some(SetOutcome::Stored { cas: None }));
    let item = hit(A::meta_get(&c, MetaGet::new(&key).expect("key").return_key()).await, "binary get");
    assert_eq!((&item.key[..], &item.value[..]), (&key[..], &b"bin"[..]), "the echoed key is decoded");
    let wire = MetaGet::new(&key).expect("key").request().wire_key().clone();
    let direct = m.request(format!("mg {wire} b v\r\n").as_bytes());
    assert_eq!(direct, b"VA 3\r\nbin\r\n", "stored under the binary key");
    for k in [&b"a b"[..], b"tab\there", b"\x00"] {
        expect_ok!(A::meta_set(&c, MetaSet::new(k, "x").expect("binary key")).await, "ms {k:?}");
        assert_eq!(&hit(A::meta_get(&c, MetaGet::new(k).expect("key")).await, "mg").value[..], b"x");
    }
    assert!(matches!(MetaGet::new(vec![0u8; 187]), Err(Error::MalformedKey(_))), "187 bytes do not fit");
}

/// A quiet batch of 100 mixed requests over two servers: some miss, one draws an error line;
/// every request gets its own result in input order, and the connections stay in use.
pub async fn meta_quiet_batch_of_100<A: Adapter>() {
    let (m1, m2) = (Memcached::start(), Memcached::start());
    let c = client::<A>(ClientConfig::new([m1.addr(), m2.addr()]));
    for i in 0..60 {
        expect_ok!(
            A::meta_set(&c, MetaSet::new(format!("k{i}"), format!("v{i}")).expect("key")).await,
            "setup"
        );
    }
    expect_ok!(A::meta_set(&c, MetaSet::new("counter", "7").expect("key")).await, "setup");
    expect_ok!(A::meta_set(&c, MetaSet::new("text", "abc").expect("key")).await, "setup");
    let mut requests: Vec<MetaRequest> = Vec::new();
    for i in 0..50 {
        requests.push(MetaGet::new(format!("k{i}")).expect("key").into()); // 0..50: hits
    }
    // The failing request sits between two hits, so the error line can only be its own.
    requests.insert(25, MetaArith::new("text").expect("key").into());
    for i in 0..10 {
        requests.push(MetaGet::new(format!("missing{i}")).expect("key").into()); // misses
    }
    for i in 0..20 {
        requests.push(MetaSet::new(format!("s{i}"), "new").expect("key").into());
    }
    for i in 50..60 {
        requests.push(MetaDelete::new(format!("k{i}")).expect("key").into());
    }
    for _ in 0..9 {
        requests.push(MetaArith::new("counter").expect("key").into());
    }
    assert_eq!(requests.len(), 100);

    let results = A::meta_batch(&c, requests).await;
    assert_eq!(results.len(), 100, "one result per request");
    for (i, r) in results.iter().enumerate() {
        match (i, r) {
            (25, Err(Error::Client(msg))) => assert!(msg.contains("non-numeric"), "{msg}"),
            (0..=50, Ok(MetaOutcome::Get(GetOutcome::Hit(item)))) => {
                let n = if i < 25 { i } else { i - 1 };
                assert_eq!(item.value, format!("v{n}").into_bytes(), "request {i}");
            }
            (51..=60, Ok(MetaOutcome::Get(GetOutcome::Miss))) => {}
            (61..=80, Ok(MetaOutcome::Set(SetOutcome::Stored { .. }))) => {}
            (81..=90, Ok(MetaOutcome::Delete(DeleteOutcome::Deleted))) => {}
            (91..=99, Ok(MetaOutcome::Arith(ArithOutcome::Updated { value: Some(v), .. }))) => {
                assert_eq!(*v, 7 + (i as u64 - 90), "counters in input order");
            }
            _ => panic!("request {i}: unexpected {r:?}"),
        }
    }
    assert_eq!(m1.get_direct("s3").or_else(|| m2.get_direct("s3")).as_deref(), Some(&b"new"[..]));
    assert!(m1.get_direct("k55").is_none() && m2.get_direct("k55").is_none(), "deleted");
    // The error line did not cost the connection: the next batch reuses the client's
    // connections (each `stat_u64` opens one of its own, counted once per server).
    let before = m1.stat_u64("total_connections") + m2.stat_u64("total_connections");
    let again =
        A::meta_batch(&c, (0..10).map(|i| MetaGet::new(format!("k{i}")).expect("key").into()).collect())
            .await;
    assert!(again.iter().all(|r| matches!(r, Ok(MetaOutcome::Get(GetOutcome::Hit(_))))), "{again:?}");
    let after = m1.stat_u64("total_connections") + m2.stat_u64("total_connections");
    assert_eq!(after, before + 2, "connections reused after the batch with an error line");
}

/// A flag newer than the server is refused before anything is sent, alone in a batch.
pub async fn meta_flags_newer_than_the_server_are_refused<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    expect_ok!(A::meta_set(&c, MetaSet::new("k", "v").expect("key")).await, "ms k");
    let e = A::meta_delete(&c, MetaDelete::new("k").expect("key").remove_value()).await;
    assert!(
        matches!(&e, Err(Error::Unsupported { what, server, .. }) if what.contains("md x") && server == "1.6.18"),
        "{e:?}"
    );
    let e = A::meta_set(&c, MetaSet::new("k", "v2").expect("key").return_size()).await;
    assert!(matches!(e, Err(Error::Unsupported { .. })), "ms s is silently ignored by 1.6.18: {e:?}");
    assert_eq!(m.get_direct("k").as_deref(), Some(&b"v"[..]), "nothing was sent");
    let results = A::meta_batch(
        &c,
        vec![
            MetaGet::new("k").expect("key").into(),
            MetaDelete::new("k").expect("key").remove_value().into(),
        ],
    )
    .await;
    assert!(matches!(&results[0], Ok(MetaOutcome::Get(GetOutcome::Hit(_)))), "{results:?}");
    assert!(matches!(&results[1], Err(Error::Unsupported { .. })), "{results:?}");
}

/// Leases: of two concurrent callers asking for a missing key, exactly one wins `Fill`, the
/// other gets `Busy`; the winner's CAS store ends the lease and everyone reads the value.
pub async fn leases_give_exactly_one_fill<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    for round in 0..10 {
        let key = format!("lease{round}");
        let callers: Vec<_> = (0..2)
            .map(|_| {
                let (c, key) = (c.clone(), key.clone());
                A::spawn(async move { A::get_or_lease(&c, key, 30).await })
            })
            .collect();
        let mut fills = Vec::new();
        let mut busy = 0;
        for caller in callers {
            match caller.await {
                Ok(Leased::Fill { cas }) => fills.push(cas),
                Ok(Leased::Busy) => busy += 1,
                other => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!((fills.len(), busy), (1, 1), "round {round}: exactly one Fill");
        let stored = A::meta_set(&c, MetaSet::new(&key, "computed").expect("key").cas(fills[0])).await;
        assert_eq!(stored.ok(), Some(SetOutcome::Stored { cas: None }), "the winner's CAS store");
        match A::get_or_lease(&c, key.clone(), 30).await {
            Ok(Leased::Hit(item)) => assert_eq!(&item.value[..], b"computed"),
            other => panic!("after the fill: {other:?}"),
        }
    }
}

/// Stale-while-revalidate: `mark_stale`, then of eight concurrent readers exactly one wins the
/// recache while the others read the stale value; the winner's store makes it fresh again.
pub async fn stale_while_revalidate<A: Adapter>() {
    let m = Memcached::start();
    let c = client::<A>(ClientConfig::new([m.addr()]));
    expect_ok!(A::meta_set(&c, MetaSet::new("page", "old").expect("key")).await, "ms page");
    let marked = A::meta_delete(&c, MetaDelete::new("page").expect("key").mark_stale(30)).await;
    assert_eq!(marked.ok(), Some(DeleteOutcome::Deleted));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            A::spawn(async move { A::get_or_lease(&c, "page", 30).await })
        })
        .collect();
    let mut winners = Vec::new();
    let mut stale_reads = BTreeSet::new();
    for reader in readers {
        match reader.await {
            Ok(Leased::Fill { cas }) => winners.push(cas),
            Ok(Leased::Hit(item)) => {
                assert!(item.stale && item.lease == Lease::Held, "{item:?}");
                stale_reads.insert(item.value.to_vec());
            }
            other => panic!("reader: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one reader recaches");
    assert_eq!(stale_reads, BTreeSet::from([b"old".to_vec()]), "the others read the stale value");
    let stored = A::meta_set(&c, MetaSet::new("page", "fresh").expect("key").cas(winners[0])).await;
    assert_eq!(stored.ok(), Some(SetOutcome::Stored { cas: None }));
    match A::get_or_lease(&c, "page", 30).await {
        Ok(Leased::Hit(item)) => assert!(&item.value[..] == b"fresh" && !item.stale, "{item:?}"),
        other => panic!("after the recache: {other:?}"),
    }
}
