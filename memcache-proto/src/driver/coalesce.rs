//! Merging concurrent single-key `gets` into one multi-key `gets`, and splitting its reply.
//!
//! memcached answers a pipeline of separate `get`s with one `sendmsg` per reply, but a
//! multi-key `get` with a few. So when several callers read single keys from one server at
//! once, the pipeline sends one `gets k1 k2 ...` for all of them: far fewer system calls on
//! both sides, for the same replies. Each value in the reply names its key, which is what
//! lets it be split back, key by key, in whatever order it comes.

use crate::matching::KeyMatcher;
use crate::{Command, Key, ProtoError, Response};

/// The key of a command that may join a merged `gets`: a single-key `gets` without touch.
pub(crate) fn mergeable(command: &Command) -> Option<&Key> {
    match command {
        Command::Get { keys, cas: true, touch: None } => keys.single(),
        _ => None,
    }
}

/// The one command for the gathered `(slot, key)` requests.
pub(crate) fn command(gathered: &[(u64, Key)]) -> Command {
    Command::Get { keys: gathered.iter().map(|(_, k)| k.clone()).collect(), cas: true, touch: None }
}

/// Each gathered request's own reply: its value (or none, a miss), or the error line that
/// answered the whole command. Values are matched by key in any order (a proxy may reorder
/// them); a value for no gathered key, or for one more often than it was gathered, means the
/// stream is out of sync.
pub(crate) fn split(
    gathered: Vec<(u64, Key)>,
    response: Response,
) -> Result<Vec<(u64, Response)>, ProtoError> {
    let Response::Values(values) = response else {
        return Ok(gathered.into_iter().map(|(slot, _)| (slot, response.clone())).collect());
    };
    let mut replies: Vec<(u64, Response)> =
        gathered.iter().map(|(slot, _)| (*slot, Response::Values(Vec::new()))).collect();
    let mut matcher = KeyMatcher::new(&gathered[..]);
    for v in values {
        // Each position is answered once, so its reply is still the empty one.
        let Some(reply) = matcher.take(&v.key).and_then(|i| replies.get_mut(i)) else {
            return Err(ProtoError::unexpected(&[b"VALUE ", &v.key[..]].concat()));
        };
        reply.1 = Response::Values(vec![v]);
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::response::Value;

    fn key(k: &str) -> Key {
        Key::copy_from(k.as_bytes()).expect("valid key")
    }

    fn value(k: &str, data: &'static str) -> Value {
        Value {
            key: Bytes::copy_from_slice(k.as_bytes()),
            flags: 0,
            cas: Some(1),
            data: Bytes::from_static(data.as_bytes()),
        }
    }

    #[test]
    fn values_go_to_their_keys_misses_get_none() {
        let gathered = vec![(1, key("a")), (2, key("b")), (3, key("a")), (4, key("c"))];
        let reply = Response::Values(vec![value("a", "1"), value("a", "1"), value("c", "3")]);
        let split = split(gathered, reply).expect("in sync");
        let got: Vec<(u64, usize)> =
            split.iter().map(|(s, r)| (*s, if let Response::Values(v) = r { v.len() } else { 99 })).collect();
        assert_eq!(got, [(1, 1), (2, 0), (3, 1), (4, 1)]);
        assert_eq!(split[3].1, Response::Values(vec![value("c", "3")]));
    }

    #[test]
    fn an_error_line_answers_everyone_and_strays_are_a_desync() {
        let gathered = vec![(1, key("a")), (2, key("b"))];
        let err = Response::ServerError(Bytes::from_static(b"out of memory"));
        assert!(split(gathered.clone(), err.clone()).expect("framed").iter().all(|(_, r)| *r == err));
        assert!(split(gathered.clone(), Response::Values(vec![value("zzz", "x")])).is_err());
        let twice = Response::Values(vec![value("b", "2"), value("b", "2")]);
        assert!(split(gathered, twice).is_err(), "b was gathered once");
    }

    #[test]
    fn values_in_reverse_order_still_go_to_their_keys() {
        let gathered = vec![(1, key("a")), (2, key("b")), (3, key("c")), (4, key("a"))];
        let reply =
            Response::Values(vec![value("c", "3"), value("a", "1"), value("b", "2"), value("a", "1")]);
        let split = split(gathered, reply).expect("any order");
        let data: Vec<(u64, Vec<Bytes>)> = split
            .into_iter()
            .map(|(s, r)| match r {
                Response::Values(v) => (s, v.into_iter().map(|v| v.data).collect()),
                other => panic!("{other:?}"),
            })
            .collect();
        let b = |s: &'static str| vec![Bytes::from_static(s.as_bytes())];
        assert_eq!(data, [(1, b("1")), (2, b("2")), (3, b("3")), (4, b("1"))]);
    }

    #[test]
    fn only_plain_single_key_gets_merge() {
        let get = |keys: Vec<Key>, cas, touch| Command::Get { keys: keys.into(), cas, touch };
        assert!(mergeable(&get(vec![key("a")], true, None)).is_some());
        assert!(mergeable(&get(vec![key("a")], true, Some(5))).is_none());
        assert!(mergeable(&get(vec![key("a"), key("b")], true, None)).is_none());
        assert!(mergeable(&get(vec![key("a")], false, None)).is_none());
    }
}
