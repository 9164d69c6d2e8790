//! `ServerList::pick_server` against golden picks computed independently of the crate
//! (`tests/data/gen_selector_golden.py`: Python's `zlib.crc32` and gomemcache's rule).

use std::collections::{BTreeMap, BTreeSet};

use memcache_proto::{Error, ServerList, ServerSelector};

struct Golden {
    lists: Vec<Vec<String>>,
    /// Each key with the address picked from each list (`None`: no servers).
    picks: Vec<(Vec<u8>, Vec<Option<String>>)>,
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "hex key {s}");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn load() -> Golden {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/selector_golden.txt");
    let text = std::fs::read_to_string(path).expect("golden file (run gen_selector_golden.py)");
    let mut g = Golden { lists: Vec::new(), picks: Vec::new() };
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut fields = line.split(' ');
        match fields.next() {
            Some("list") => {
                let index: usize = fields.next().expect("index").parse().expect("index");
                assert_eq!(index, g.lists.len(), "lists in order");
                g.lists.push(fields.map(str::to_owned).collect());
            }
            Some("key") => {
                let key = unhex(fields.next().expect("key"));
                let picks: Vec<Option<String>> = fields.map(|f| (f != "-").then(|| f.to_owned())).collect();
                assert_eq!(picks.len(), g.lists.len(), "one pick per list");
                g.picks.push((key, picks));
            }
            other => panic!("unexpected record {other:?}"),
        }
    }
    g
}

#[test]
fn pick_server_matches_gomemcache() {
    let g = load();
    assert!(g.picks.len() >= 1000, "{} keys", g.picks.len());
    let sizes: BTreeSet<usize> = g.lists.iter().map(Vec::len).collect();
    for n in [0, 1, 2, 3, 5] {
        assert!(sizes.contains(&n), "a list of {n} servers");
    }
    assert!(
        g.lists.iter().any(|l| l.iter().collect::<BTreeSet<_>>().len() < l.len()),
        "a list with a duplicated entry"
    );

    for (i, servers) in g.lists.iter().enumerate() {
        let list = ServerList::new(servers).expect("addresses resolve without DNS");
        let mut hits: BTreeMap<String, usize> = BTreeMap::new();
        for (key, picks) in &g.picks {
            let got = list.pick_server(key);
            match &picks[i] {
                None => assert!(matches!(got, Err(Error::NoServers)), "list {i}: {got:?}"),
                Some(want) => {
                    let got = got.unwrap_or_else(|e| panic!("list {i}, key {key:x?}: {e}"));
                    assert_eq!(&got.to_string(), want, "list {i} {servers:?}, key {key:x?}");
                    *hits.entry(want.clone()).or_default() += 1;
                }
            }
        }
        // Sanity of the data itself: every distinct server of a list gets some keys.
        if !servers.is_empty() {
            assert_eq!(hits.len(), servers.iter().collect::<BTreeSet<_>>().len(), "list {i}: {hits:?}");
        }
    }
}

#[test]
fn duplicated_entry_gets_double_weight() {
    let g = load();
    let (i, servers) = g
        .lists
        .iter()
        .enumerate()
        .find(|(_, l)| l.iter().collect::<BTreeSet<_>>().len() < l.len())
        .expect("a list with a duplicate");
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, picks) in &g.picks {
        *count.entry(picks[i].as_deref().expect("servers")).or_default() += 1;
    }
    let dup = servers.iter().find(|s| servers.iter().filter(|t| t == s).count() == 2).expect("duplicate");
    let single = servers.iter().find(|s| servers.iter().filter(|t| t == s).count() == 1).expect("single");
    // Twice the share, give or take sampling noise.
    assert!(count[dup.as_str()] * 10 > count[single.as_str()] * 14, "{count:?}");
    // The selector visits the duplicated server once.
    let list = ServerList::new(servers).expect("resolves");
    assert_eq!(list.servers().len(), servers.iter().collect::<BTreeSet<_>>().len());
}
