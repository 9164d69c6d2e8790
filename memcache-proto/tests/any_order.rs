//! A multi-key reply is matched by key, in any order, as a proxy in front of several servers
//! may send it; a value for a key that was not requested is a desync that breaks the
//! connection. Driven through `Connection` and `op::GetMulti`, as every adapter runs it.

use memcache_proto::op::{GetMulti, Op};
use memcache_proto::{Connection, Error, Key};

fn keys(names: &[&str]) -> Vec<Key> {
    names.iter().map(|k| Key::copy_from(k.as_bytes()).expect("valid key")).collect()
}

fn value(key: &str, cas: u64) -> String {
    format!("VALUE {key} 0 {} {cas}\r\n{key}\r\n", key.len())
}

/// [`get_multi_with`] with and without [`Op::prepare`] (which clients call while the reply
/// is on its way): both must give the same result.
fn get_multi(requested: &[&str], reply: &[&str]) -> Result<Vec<(String, String)>, Error> {
    let plain = get_multi_with(requested, reply, false);
    let prepared = get_multi_with(requested, reply, true);
    assert_eq!(format!("{plain:?}"), format!("{prepared:?}"), "prepared or not, {requested:?} / {reply:?}");
    plain
}

/// Sends a `gets` for `requested`, feeds the values of `reply` (in that order) then `END`,
/// and finishes the op (`prepare`d while the reply was "on its way", if asked).
fn get_multi_with(requested: &[&str], reply: &[&str], prepare: bool) -> Result<Vec<(String, String)>, Error> {
    let mut conn = Connection::new();
    let mut op = GetMulti::new(keys(requested));
    let id = conn.send(op.command());
    if prepare {
        assert!(op.prepare(), "a get_multi of valid keys has its result to prepare");
    }
    let sent = conn.poll_transmit().expect("the command's bytes");
    assert_eq!(sent, format!("gets {}\r\n", requested.join(" ")).as_bytes());
    let wire: String = reply.iter().enumerate().map(|(i, k)| value(k, i as u64 + 1)).collect();
    conn.handle_input(format!("{wire}END\r\n").as_bytes());
    let done = conn.poll_response().expect("framed").expect("complete");
    assert_eq!(done.id, id);
    let items = op.finish(done.response)?;
    let mut items: Vec<(String, String)> = items
        .into_iter()
        .map(|(k, item)| {
            assert_eq!(k, item.key, "the map's key is the item's");
            assert!(item.cas.is_some(), "{k}: every value came with its CAS token");
            (k, String::from_utf8(item.value.to_vec()).expect("ascii"))
        })
        .collect();
    items.sort();
    Ok(items)
}

fn pairs(names: &[&str]) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = names.iter().map(|k| (k.to_string(), k.to_string())).collect();
    p.sort();
    p
}

#[test]
fn a_reply_in_reverse_order_is_accepted_whole() {
    let requested = ["a", "b", "c", "d", "e"];
    let reversed = ["e", "d", "c", "b", "a"];
    assert_eq!(get_multi(&requested, &reversed).expect("any order"), pairs(&requested));
}

#[test]
fn a_reply_in_any_order_with_misses_is_accepted() {
    // twemproxy's order when some keys miss: each server's hits, not the request's order.
    let requested = ["a", "b", "c", "d", "e", "f"];
    assert_eq!(
        get_multi(&requested, &["c", "a", "f", "d"]).expect("any order"),
        pairs(&["a", "c", "d", "f"])
    );
}

#[test]
fn two_hundred_keys_shuffled() {
    let names: Vec<String> = (0..200).map(|i| format!("bench:{i:06}")).collect();
    let requested: Vec<&str> = names.iter().map(String::as_str).collect();
    // A fixed interleaving of three "servers" (i % 3), each answering in its own order.
    let mut reply: Vec<&str> = Vec::new();
    for server in [2, 0, 1] {
        reply.extend(requested.iter().rev().enumerate().filter(|(i, _)| i % 3 == server).map(|(_, k)| *k));
    }
    assert_eq!(get_multi(&requested, &reply).expect("any order"), pairs(&requested));
}

#[test]
fn a_key_requested_twice_may_come_twice_in_any_order() {
    assert_eq!(get_multi(&["a", "b", "a"], &["b", "a", "a"]).expect("twice"), pairs(&["a", "b"]));
}

#[test]
fn a_value_for_a_key_not_requested_is_a_desync_that_breaks_the_connection() {
    for reply in [&["b", "zzz"][..], &["zzz"], &["a", "a"], &["b", "a", "b"]] {
        let err = get_multi(&["a", "b"], reply).expect_err("desync");
        assert!(matches!(err, Error::Protocol(_)), "{reply:?}: {err:?}");
        assert!(err.is_connection_broken(), "{reply:?}: the connection must be dropped");
    }
}
