//! A multi-key call's keys grouped by server: validated and packed once, then picked from one
//! view of the server list ([`ServerSelector::pick_servers`]).
//!
//! While every key goes to the same server (one server, or a batch that happens to), the
//! packed keys are that server's command as they are: nothing is copied a second time. Only
//! a batch that spans servers is split into one run of keys per server.

use crate::keys::{Keys, KeysBuilder};
use crate::{Error, ServerAddr, ServerSelector};

/// Validates every key (one bad key fails the call before any is picked) and groups them by
/// server, in order of first appearance, keeping the keys' order within each group. `route`
/// sees each key with the selector's server for it and may send it elsewhere (`Some`), as
/// ejection does for a server that is resting.
pub(crate) fn group<S: AsRef<str>>(
    keys: impl IntoIterator<Item = S>,
    selector: &dyn ServerSelector,
    mut route: impl FnMut(&[u8], &ServerAddr) -> Result<Option<ServerAddr>, Error>,
) -> Result<Vec<(ServerAddr, Keys)>, Error> {
    let all = pack(keys)?;
    let mut groups = Groups::default();
    selector.pick_servers(&mut all.iter(), &mut |key, server| {
        let moved = route(key, server)?;
        groups.add(&all, key, moved.as_ref().unwrap_or(server));
        Ok(())
    })?;
    Ok(groups.finish(all))
}

/// Every key validated, in one packed run sized for the batch from its first key.
fn pack<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Result<Keys, Error> {
    let keys = keys.into_iter();
    let expected = keys.size_hint().0;
    let mut packed = KeysBuilder::default();
    for key in keys {
        let key = key.as_ref().as_bytes();
        crate::check_key(key)?;
        if packed.is_empty() {
            packed = KeysBuilder::with_capacity(expected, expected.saturating_mul(key.len()));
        }
        packed.push_valid(key);
    }
    Ok(packed.build())
}

/// The groups while keys are being picked: none split off while every key so far went to
/// `first` (`same` of them).
#[derive(Default)]
struct Groups {
    first: Option<ServerAddr>,
    same: usize,
    split: Vec<(ServerAddr, KeysBuilder)>,
}

impl Groups {
    /// Puts `key` (the next of `all`) in `server`'s group.
    fn add(&mut self, all: &Keys, key: &[u8], server: &ServerAddr) {
        if self.split.is_empty() {
            match &self.first {
                None => {
                    self.first = Some(server.clone());
                    return;
                }
                Some(first) if first == server => {
                    self.same += 1;
                    return;
                }
                Some(first) => {
                    // The first key elsewhere: the keys so far become the first group.
                    let mut group = KeysBuilder::with_capacity(all.len(), all.run().len());
                    all.iter().take(self.same + 1).for_each(|k| group.push_valid(k));
                    self.split.push((first.clone(), group));
                }
            }
        }
        match self.split.iter_mut().find(|(s, _)| s == server) {
            Some((_, group)) => group.push_valid(key),
            None => {
                let mut group = KeysBuilder::default();
                group.push_valid(key);
                self.split.push((server.clone(), group));
            }
        }
    }

    fn finish(self, all: Keys) -> Vec<(ServerAddr, Keys)> {
        match self.first {
            None => Vec::new(),
            Some(first) if self.split.is_empty() => vec![(first, all)],
            Some(_) => self.split.into_iter().map(|(s, keys)| (s, keys.build())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ketama, ServerList};

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("key:{i}")).collect()
    }

    /// What grouping must give: each key with `pick_server`'s answer, grouped in order of
    /// first appearance.
    fn expected(selector: &dyn ServerSelector, keys: &[String]) -> Vec<(String, Vec<String>)> {
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for key in keys {
            let server = selector.pick_server(key.as_bytes()).expect("a server").to_string();
            match groups.iter_mut().find(|(s, _)| *s == server) {
                Some((_, ks)) => ks.push(key.clone()),
                None => groups.push((server, vec![key.clone()])),
            }
        }
        groups
    }

    fn readable(groups: Vec<(ServerAddr, Keys)>) -> Vec<(String, Vec<String>)> {
        let text = |k: &[u8]| String::from_utf8(k.to_vec()).expect("utf-8");
        groups.into_iter().map(|(s, ks)| (s.to_string(), ks.iter().map(text).collect())).collect()
    }

    #[test]
    fn every_selector_groups_as_its_pick_server_does() {
        let list = ServerList::new(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]).expect("literals");
        let ring = Ketama::libmemcached([("127.0.0.1:1", 1), ("127.0.0.1:2", 1)]).expect("literals");
        let one = ServerList::new(["127.0.0.1:1"]).expect("literal");
        for selector in [&list as &dyn ServerSelector, &ring, &one] {
            for n in [0, 1, 2, 7, 100] {
                let ks = keys(n);
                let got = group(&ks, selector, |_, _| Ok(None)).expect("valid keys");
                assert_eq!(readable(got), expected(selector, &ks), "{selector:?}, {n} keys");
            }
        }
    }

    #[test]
    fn a_split_after_many_keys_on_the_first_server_keeps_them_all() {
        let list = ServerList::new(["127.0.0.1:1", "127.0.0.1:2"]).expect("literals");
        let (a, b) = match &list.servers()[..] {
            [a, b] => (a.clone(), b.clone()),
            other => panic!("two servers, not {other:?}"),
        };
        // Five keys go to `a`'s server, then one elsewhere: `a`'s group must hold all five.
        let route = |key: &[u8], _: &ServerAddr| Ok(Some(if key == b"k5" { b.clone() } else { a.clone() }));
        let ks = ["k0", "k1", "k2", "k3", "k4", "k5", "k6"];
        let got = readable(group(ks, &list, route).expect("valid keys"));
        let want =
            vec![(a.to_string(), vec!["k0", "k1", "k2", "k3", "k4", "k6"]), (b.to_string(), vec!["k5"])];
        let want: Vec<(String, Vec<String>)> =
            want.into_iter().map(|(s, ks)| (s, ks.into_iter().map(String::from).collect())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn one_bad_key_fails_the_batch_and_no_servers_is_an_error() {
        let list = ServerList::new(["127.0.0.1:1"]).expect("literal");
        let err = group(["good", "bad key"], &list, |_, _| Ok(None)).expect_err("a space");
        assert!(matches!(err, Error::MalformedKey(_)), "{err:?}");
        let none = ServerList::new(Vec::<String>::new()).expect("an empty list");
        assert!(matches!(group(["k"], &none, |_, _| Ok(None)), Err(Error::NoServers)));
        assert!(group(Vec::<String>::new(), &none, |_, _| Ok(None)).expect("nothing to pick").is_empty());
    }
}
