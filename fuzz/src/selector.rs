//! The `selector` target: `ServerList::pick_server` against an independent CRC32.

use memcache_proto::{Error, ServerList, ServerSelector};

/// CRC-32/IEEE (reflected, polynomial `0xEDB88320`), bit by bit: the checksum gomemcache's
/// `crc32.ChecksumIEEE` computes, written independently of the crc32fast crate.
pub fn crc32_ieee(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// How one server of a [`selector`] input is written: four bytes `tag a p0 p1`.
fn server(i: usize, spec: [u8; 4], earlier: &[String]) -> String {
    let [tag, a, p0, p1] = spec;
    let port = u16::from_le_bytes([p0, p1]);
    match tag % 4 {
        0 => format!("mc/{a}-{port}.sock"),
        1 => format!("127.0.0.{a}:{port}"),
        2 => format!("[::{a:x}]:{port}"),
        _ if i > 0 => earlier[usize::from(a) % i].clone(),
        _ => format!("10.0.{a}.1:{port}"),
    }
}

/// The input of [`selector`]: the number of servers, four bytes per server (see the target),
/// then the key.
pub fn selector_input(servers: &[[u8; 4]], key: &[u8]) -> Vec<u8> {
    let mut out = vec![servers.len().min(12) as u8];
    out.extend(servers.iter().take(12).flatten());
    out.extend_from_slice(key);
    out
}

/// Target `selector`: a list of 0 to 12 servers (Unix paths, IPv4 and IPv6 addresses, written
/// so that none needs a name lookup; repeats allowed) and an arbitrary key. `pick_server` is
/// deterministic, fails with `NoServers` on an empty list, and picks exactly
/// `list[crc32_ieee(key) % n]` (the only server when `n == 1`); `servers` lists each distinct
/// server once, in order.
pub fn selector(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let n = usize::from(n % 13);
    let Some((specs, key)) = rest.split_at_checked(4 * n) else { return };
    let mut names: Vec<String> = Vec::with_capacity(n);
    for (i, spec) in specs.chunks_exact(4).enumerate() {
        let spec = [spec[0], spec[1], spec[2], spec[3]];
        let name = server(i, spec, &names);
        names.push(name);
    }
    let list = ServerList::new(&names).expect("literal addresses and paths need no lookup");
    let first = list.pick_server(key);
    let second = list.pick_server(key);
    match n {
        0 => {
            assert!(matches!(first, Err(Error::NoServers)), "{first:?}");
            assert!(matches!(second, Err(Error::NoServers)), "{second:?}");
        }
        _ => {
            let first = first.expect("a server").to_string();
            assert_eq!(first, second.expect("a server").to_string(), "deterministic");
            let expected = if n == 1 { 0 } else { crc32_ieee(key) as usize % n };
            assert_eq!(first, names[expected], "key {key:?} over {names:?}");
        }
    }
    let mut distinct: Vec<&String> = Vec::new();
    for name in &names {
        if !distinct.contains(&name) {
            distinct.push(name);
        }
    }
    let servers: Vec<String> = list.servers().iter().map(ToString::to_string).collect();
    assert_eq!(servers.iter().collect::<Vec<_>>(), distinct, "servers(): each once, in order");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32_ieee(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32_ieee(b""), 0);
    }
}
