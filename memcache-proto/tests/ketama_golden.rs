//! `Ketama` against rings recorded from libmemcached 1.1.4 and spymemcached 2.12.3
//! (`tests/data/ketama/`, format in its README): every `PICK`, `POINT`, `POINTS`,
//! `POINTS_OF` and `SPREAD` line must be reproduced. Plus how many keys move when a server
//! joins, with ketama and with CRC32.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use memcache_proto::resolve::Resolver;
use memcache_proto::{Ketama, ServerList, ServerSelector};

/// One `CONFIG` block.
#[derive(Default, Debug)]
struct Config {
    name: String,
    /// `(name as given, weight)` in order.
    servers: Vec<(String, u32)>,
    points: Option<usize>,
    point: Vec<(usize, u32, usize)>,
    points_of: Vec<(usize, usize)>,
    picks: Vec<(String, u32, usize, String)>,
    spread: Vec<(usize, usize)>,
}

fn num<T: std::str::FromStr>(s: &str) -> T {
    s.parse().unwrap_or_else(|_| panic!("number expected: {s:?}"))
}

fn load(file: &str) -> Vec<Config> {
    let path = format!("{}/tests/data/ketama/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("golden ketama data");
    let mut configs: Vec<Config> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f[0] == "CONFIG" {
            configs.push(Config { name: f[1].to_owned(), ..Config::default() });
            continue;
        }
        let c = configs.last_mut().expect("a CONFIG line first");
        match f[0] {
            "BEHAVIOR" => {}
            // libmemcached: idx host port weight; spymemcached: idx /ip:port point-key=...
            "SERVER" if f.len() == 5 => c.servers.push((format!("{}:{}", f[2], f[3]), num(f[4]))),
            "SERVER" => c.servers.push((f[2].trim_start_matches('/').to_owned(), 1)),
            "POINTS" => c.points = Some(num(f[1])),
            "POINT" => c.point.push((num(f[1]), num(f[2]), num(f[3]))),
            "POINTS_OF" => c.points_of.push((num(f[1]), num(f[2]))),
            "PICK" => {
                c.picks.push((f[1].to_owned(), num(f[2]), num(f[3]), f[4].trim_start_matches('/').to_owned()))
            }
            "SPREAD" => c.spread.push((num(f[1]), num(f[2]))),
            other => panic!("unknown line {other:?} in {file}"),
        }
    }
    configs
}

/// Names in the recorded lists (`cache.example`) need not exist: any name resolves to a
/// documentation address on its port. Ketama hashes names as written, not addresses.
fn fake_dns() -> Resolver {
    Arc::new(|name: &str| {
        let port = name.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(11211);
        Ok(vec![SocketAddr::from(([192, 0, 2, 1], port))])
    })
}

fn build(file: &str, c: &Config) -> Ketama {
    let empty: Vec<(&str, u32)> = Vec::new();
    let ketama = match file {
        "libmemcached.tsv" => Ketama::libmemcached(empty),
        _ => Ketama::spymemcached(Vec::<&str>::new()),
    }
    .expect("empty ring")
    .with_resolver(fake_dns());
    ketama.set_weighted_servers(c.servers.iter().map(|(n, w)| (n.as_str(), *w))).expect("servers");
    ketama
}

fn check(file: &str, min_configs: usize) {
    let configs = load(file);
    assert!(configs.len() >= min_configs, "{file}: {} configurations", configs.len());
    let mut lines = 0;
    for c in &configs {
        let ketama = build(file, c);
        let servers = ketama.servers();
        assert_eq!(servers.len(), c.servers.len(), "{}", c.name);
        for (s, (name, _)) in servers.iter().zip(&c.servers) {
            assert_eq!(s.to_string(), *name, "{}: displays as given", c.name);
        }
        let ring = ketama.continuum();
        if let Some(n) = c.points {
            assert_eq!(ring.len(), n, "{}: POINTS", c.name);
            lines += 1;
        }
        for &(i, value, server) in &c.point {
            assert_eq!(ring[i], (value, server), "{}: POINT {i}", c.name);
            lines += 1;
        }
        for &(server, count) in &c.points_of {
            assert_eq!(
                ring.iter().filter(|p| p.1 == server).count(),
                count,
                "{}: POINTS_OF {server}",
                c.name
            );
            lines += 1;
        }
        for (key, hash, index, addr) in &c.picks {
            assert_eq!(Ketama::hash(key.as_bytes()), *hash, "{}: hash of {key:?}", c.name);
            let got = ketama.pick_server(key.as_bytes()).expect("servers");
            assert_eq!(got.to_string(), *addr, "{}: PICK {key:?}", c.name);
            assert_eq!(got, servers[*index], "{}: PICK {key:?} index", c.name);
            lines += 1;
        }
        if !c.spread.is_empty() {
            let mut counts = vec![0usize; servers.len()];
            for i in 0..100_000 {
                let s = ketama.pick_server(format!("key:{i}").as_bytes()).expect("servers");
                counts[servers.iter().position(|x| *x == s).expect("a listed server")] += 1;
            }
            for &(server, count) in &c.spread {
                assert_eq!(counts[server], count, "{}: SPREAD {server}", c.name);
                lines += 1;
            }
        }
    }
    let path = format!("{}/tests/data/ketama/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("golden ketama data");
    let golden = text
        .lines()
        .filter(|l| ["PICK", "POINT", "POINTS_OF", "SPREAD"].contains(&l.split('\t').next().unwrap_or("")))
        .count()
        + text.lines().filter(|l| l.starts_with("POINTS\t")).count();
    assert_eq!(lines, golden, "{file}: every golden line checked");
    eprintln!("{file}: {} configurations, {lines} golden lines reproduced", configs.len());
}

#[test]
fn libmemcached_rings_match_every_golden_line() {
    check("libmemcached.tsv", 3);
}

#[test]
fn spymemcached_rings_match_every_golden_line() {
    check("spymemcached.tsv", 1);
}

/// The share of `keys` whose server differs between `before` and `after`.
fn moved(before: &dyn ServerSelector, after: &dyn ServerSelector, keys: usize) -> f64 {
    let n = (0..keys)
        .filter(|i| {
            let key = format!("key:{i}");
            let a = before.pick_server(key.as_bytes()).expect("servers");
            let b = after.pick_server(key.as_bytes()).expect("servers");
            a.as_str() != b.as_str()
        })
        .count();
    n as f64 / keys as f64
}

#[test]
fn adding_a_fifth_server_moves_a_fifth_of_the_keys_with_ketama_and_most_with_crc32() {
    let four: Vec<String> = (1..=4).map(|i| format!("10.0.0.{i}:11211")).collect();
    let five: Vec<String> = (1..=5).map(|i| format!("10.0.0.{i}:11211")).collect();
    let lib = |s: &[String]| Ketama::libmemcached(s.iter().map(|n| (n.as_str(), 1))).expect("literals");
    let spy = |s: &[String]| Ketama::spymemcached(s).expect("literals");
    let crc = |s: &[String]| ServerList::new(s).expect("literals");

    let figures: BTreeMap<&str, f64> = [
        ("ketama (libmemcached)", moved(&lib(&four), &lib(&five), 10_000)),
        ("ketama (spymemcached)", moved(&spy(&four), &spy(&five), 10_000)),
        ("crc32 ServerList", moved(&crc(&four), &crc(&five), 10_000)),
    ]
    .into_iter()
    .collect();
    for (name, share) in &figures {
        eprintln!("4 -> 5 servers, 10000 keys: {name} moved {:.1}%", share * 100.0);
    }
    assert!(figures["ketama (libmemcached)"] <= 0.25);
    assert!(figures["ketama (spymemcached)"] <= 0.25);
    assert!(figures["ketama (libmemcached)"] >= 0.10, "the new server takes its share");
    assert!(figures["crc32 ServerList"] >= 0.6, "crc32 % n reshuffles");
}
