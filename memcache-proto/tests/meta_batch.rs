//! Quiet meta batches against scripted replies shaped like the recorded server answers:
//! encoding, matching by opaque, the error-line corners, and splitting over servers.

use bytes::Bytes;
use memcache_proto::fleet::Fleet;
use memcache_proto::health::FailurePolicy;
use memcache_proto::meta::{
    ArithOutcome, DeleteOutcome, GetOutcome, Lease, Leased, Meta, MetaArith, MetaBatch, MetaDelete, MetaGet,
    MetaOutcome, MetaRequest, MetaSet, plan_batch,
};
use memcache_proto::op::Op;
use memcache_proto::{Connection, Error, Response, ServerList};

/// Sends `op` on a connection, checks the bytes sent, feeds `reply` byte by byte, finishes.
fn run<O: Op>(op: O, sent: &str, reply: &str) -> Result<O::Output, Error> {
    let mut conn = Connection::new();
    conn.send(op.command());
    let mut out = Vec::new();
    while let Some(b) = conn.poll_transmit() {
        out.extend_from_slice(&b);
    }
    assert_eq!(String::from_utf8_lossy(&out), sent);
    let mut done = None;
    for b in reply.as_bytes() {
        conn.handle_input(&[*b]);
        if let Some(c) = conn.poll_response().expect("no protocol error") {
            assert!(done.is_none(), "one reply");
            done = Some(c.response);
        }
    }
    assert!(conn.is_idle(), "in sync after the reply");
    op.finish(done.expect("answered"))
}

fn batch() -> MetaBatch {
    let ops: Vec<MetaRequest> = vec![
        MetaGet::new("a").expect("key").into(),
        MetaSet::new("b", "xy").expect("key").into(),
        MetaArith::new("c").expect("key").into(),
        MetaDelete::new("d").expect("key").into(),
        MetaSet::new("e", "v").expect("key").return_cas().into(),
        MetaGet::new("f").expect("key").meta_only().cas().into(),
    ];
    MetaBatch::new(ops)
}

const SENT: &str =
    "mg a v q O0\r\nms b 2 q O1\r\nxy\r\nma c v O2\r\nmd d q O3\r\nms e 1 c O4\r\nv\r\nmg f c q O5\r\nmn\r\n";

fn hit(o: &Result<MetaOutcome, Error>) -> (Bytes, Option<u64>) {
    match o {
        Ok(MetaOutcome::Get(GetOutcome::Hit(item))) => (item.value.clone(), item.cas),
        other => panic!("not a hit: {other:?}"),
    }
}

#[test]
fn quiet_successes_are_silent_and_replies_match_by_opaque() {
    // `mg f c q` hits without `v`: memcached still answers, with `HD` (vector mg_q_hit_no_value).
    let reply = "VA 1 O0\r\nx\r\nVA 1 O2\r\n5\r\nHD c9 O4\r\nHD c7 O5\r\nMN\r\n";
    let out = run(batch(), SENT, reply).expect("batch");
    assert_eq!(out.len(), 6);
    assert_eq!(hit(&out[0]), (Bytes::from_static(b"x"), None));
    assert_eq!(
        out[1].as_ref().ok(),
        Some(&MetaOutcome::Set(memcache_proto::meta::SetOutcome::Stored { cas: None }))
    );
    assert_eq!(
        out[2].as_ref().ok(),
        Some(&MetaOutcome::Arith(ArithOutcome::Updated { value: Some(5), cas: None, ttl: None }))
    );
    assert_eq!(out[3].as_ref().ok(), Some(&MetaOutcome::Delete(DeleteOutcome::Deleted)));
    assert_eq!(
        out[4].as_ref().ok(),
        Some(&MetaOutcome::Set(memcache_proto::meta::SetOutcome::Stored { cas: Some(9) }))
    );
    assert_eq!(hit(&out[5]), (Bytes::new(), Some(7)));
}

#[test]
fn misses_and_failures_are_answered() {
    let reply = "NS O1\r\nNF O2\r\nNF O3\r\nEX c0 O4\r\nMN\r\n";
    let out = run(batch(), SENT, reply).expect("batch");
    assert_eq!(out[0].as_ref().ok(), Some(&MetaOutcome::Get(GetOutcome::Miss)));
    assert_eq!(out[1].as_ref().ok(), Some(&MetaOutcome::Set(memcache_proto::meta::SetOutcome::NotStored)));
    assert_eq!(out[2].as_ref().ok(), Some(&MetaOutcome::Arith(ArithOutcome::NotFound)));
    assert_eq!(out[3].as_ref().ok(), Some(&MetaOutcome::Delete(DeleteOutcome::NotFound)));
    assert_eq!(out[4].as_ref().ok(), Some(&MetaOutcome::Set(memcache_proto::meta::SetOutcome::Exists)));
    assert_eq!(out[5].as_ref().ok(), Some(&MetaOutcome::Get(GetOutcome::Miss)));
}

#[test]
fn an_error_line_fails_only_the_requests_it_may_belong_to() {
    // The `ma` (loud) is answered by an error line with no opaque, as memcached does for a
    // non-numeric counter; it lies between the answers of O0 and O4.
    let reply =
        "VA 1 O0\r\nx\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\nHD c9 O4\r\nMN\r\n";
    let out = run(batch(), SENT, reply).expect("batch");
    assert_eq!(hit(&out[0]).0, Bytes::from_static(b"x"));
    // Between O0 and O4, requests 1, 2 and 3 were unanswered: any of them may have failed.
    for r in &out[1..4] {
        assert!(matches!(r, Err(Error::Client(m)) if m.contains("non-numeric")), "{r:?}");
    }
    assert!(out[4].is_ok());
    assert_eq!(
        out[5].as_ref().ok(),
        Some(&MetaOutcome::Get(GetOutcome::Miss)),
        "after the error: quiet miss"
    );

    // Two error lines for one request (a data block read as a command) and an error at the end.
    let reply = "VA 1 O0\r\nx\r\nVA 1 O2\r\n5\r\nHD c9 O4\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nMN\r\n";
    let out = run(batch(), SENT, reply).expect("batch");
    assert!(out[..5].iter().all(Result::is_ok), "{out:?}");
    assert!(matches!(&out[5], Err(Error::Client(m)) if m == "bad data chunk"), "{:?}", out[5]);
}

#[test]
fn a_reply_out_of_order_fails_the_whole_batch() {
    for reply in [
        "VA 1 O2\r\n5\r\nVA 1 O0\r\nx\r\nMN\r\n",
        "HD O9\r\nMN\r\n",
        "HD\r\nMN\r\n",
        "HD O4\r\nHD O4\r\nMN\r\n",
    ] {
        let out = run(batch(), SENT, reply).expect("batch");
        assert!(out.iter().all(|r| matches!(r, Err(Error::Protocol(_)))), "{reply:?}: {out:?}");
    }
    // A loud request left unanswered, with no error line to explain it.
    let out = run(batch(), SENT, "VA 1 O0\r\nx\r\nMN\r\n").expect("batch");
    assert!(matches!(out[2], Err(Error::Protocol(_))), "{:?}", out[2]);
    assert!(out[1].is_ok() && out[3].is_ok());
}

#[test]
fn binary_keys_and_leases() {
    let op = Meta::from(MetaGet::new(b"a b\x00").expect("binary").return_key());
    let out = run(op, "mg YSBiAA== b v k\r\n", "VA 2 kYSBiAA== b\r\nhi\r\n").expect("hit");
    let GetOutcome::Hit(item) = out else { panic!("{out:?}") };
    assert_eq!((&item.key[..], &item.value[..]), (&b"a b\x00"[..], &b"hi"[..]));

    let lease = || Meta::lease("hot", 30).expect("key");
    let sent = "mg hot v c f t N30\r\n";
    assert_eq!(run(lease(), sent, "VA 0 c70 f0 t30 W\r\n\r\n").expect("won"), Leased::Fill { cas: 70 });
    assert_eq!(run(lease(), sent, "VA 0 c70 f0 t30 Z\r\n\r\n").expect("held"), Leased::Busy);
    let Leased::Hit(stale) = run(lease(), sent, "VA 3 c71 f0 t9 Z X\r\nold\r\n").expect("stale") else {
        panic!("stale value served")
    };
    assert!(stale.stale && stale.lease == Lease::Held && &stale.value[..] == b"old");
    assert_eq!(run(lease(), sent, "VA 3 c72 f0 t9 X W\r\nold\r\n").expect("won"), Leased::Fill { cas: 72 });
    assert!(matches!(run(lease(), sent, "VA 3 c72 f5 t9\r\nnew\r\n"), Ok(Leased::Hit(_))));
    // Echoes that do not belong to the request are a desync.
    let wrong = Meta::from(MetaGet::new("k").expect("key").return_key());
    assert!(matches!(run(wrong, "mg k v k\r\n", "HD kother\r\n"), Err(Error::Protocol(_))));
}

#[test]
fn error_replies_to_single_requests() {
    let op = Meta::from(MetaArith::new("n").expect("key"));
    let e = run(op, "ma n v\r\n", "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    assert!(matches!(e, Err(Error::Client(_))), "{e:?}");
}

#[test]
fn batches_split_by_server_and_merge_in_input_order() {
    let servers = ServerList::default();
    servers.set_servers(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]).expect("servers");
    let now = std::time::Instant::now();
    let fleet = Fleet::new(std::sync::Arc::new(servers), FailurePolicy::default(), None, now);
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let mut requests: Vec<MetaRequest> = keys.iter().map(|k| MetaGet::new(k).expect("key").into()).collect();
    // One request uses a flag 1.6.18 does not have: it alone is refused.
    requests[3] = MetaDelete::new("k3").expect("key").remove_value().into();
    let mut plan = plan_batch(&fleet, requests, now);
    let versions = plan.versions_needed();
    assert_eq!(versions.len(), 1, "only the server of k3 is asked its version");
    plan.apply_versions(versions.into_iter().map(|(s, _)| (s, Ok("1.6.18".to_owned()))).collect());
    let mut batches = plan.take_batches();
    assert!(batches.len() > 1, "keys spread over servers");
    assert_eq!(batches.iter().map(|(_, b)| b.len()).sum::<usize>(), 19);
    // Answers come back in any order (the blocking client sorts by address); one server
    // fails as a whole.
    batches.reverse();
    let failed_server = batches[1].0.clone();
    let answers: Vec<_> = batches
        .into_iter()
        .map(|(server, b)| {
            if server == failed_server {
                return (server, Err(Error::Timeout));
            }
            let frames = b.requests().iter().enumerate().map(|(i, r)| {
                let key = r.key().to_raw();
                let mut line = format!("VA {} O{i}\r\n", key.len()).into_bytes();
                line.extend_from_slice(&key);
                line.extend_from_slice(b"\r\n");
                line
            });
            let mut buf = bytes::BytesMut::from(&frames.flatten().chain(*b"MN\r\n").collect::<Vec<u8>>()[..]);
            let response = memcache_proto::Decoder::default()
                .decode(memcache_proto::ReplyKind::MetaBatch, &mut buf)
                .expect("decodes")
                .expect("complete");
            assert!(matches!(response, Response::MetaBatch(_)));
            (server, Ok(b.finish(response).expect("batch")))
        })
        .collect();
    let results = plan.merge(answers);
    assert_eq!(results.len(), 20);
    for (key, result) in keys.iter().zip(&results) {
        match result {
            Ok(MetaOutcome::Get(GetOutcome::Hit(item))) => assert_eq!(&item.value[..], key.as_bytes()),
            Err(Error::Unsupported { what, .. }) => assert!(key == "k3" && what.contains("md x"), "{what}"),
            Err(Error::Timeout) => {
                let server = fleet.selector().pick_server(key.as_bytes());
                assert_eq!(server.ok(), Some(failed_server.clone()));
            }
            other => panic!("{key}: {other:?}"),
        }
    }
}
