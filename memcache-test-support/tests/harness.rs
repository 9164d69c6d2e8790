//! Self-tests of the launcher, the fault servers and the proxy.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use memcache_test_support::fault::{GARBAGE_REPLY, HALF_VALUE_ANNOUNCED, HALF_VALUE_SENT};
use memcache_test_support::memcached::{DirectItem, raw_request};
use memcache_test_support::{Fault, FaultServer, Memcached, Proxy, ProxyMode};

const WAIT: Duration = Duration::from_secs(5);

fn connect(addr: &str, read_timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(read_timeout)).expect("set_read_timeout");
    s
}

/// Reads until `want` bytes arrived (or EOF); panics on error.
fn read_exact_or_eof(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while out.len() < want {
        match s.read(&mut buf).expect("read") {
            0 => break,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Reads until a line ends (`\r\n`), returns it.
fn read_line(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        match s.read(&mut buf).expect("read line") {
            0 => panic!("EOF after {:?}", String::from_utf8_lossy(&out)),
            _ => out.push(buf[0]),
        }
    }
    out
}

/// Polls a condition that another thread makes true (bounded).
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

fn assert_no_reply(s: &mut TcpStream) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected a read timeout, got {other:?}"),
    }
}

#[test]
fn two_servers_at_once_are_independent() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(Memcached::start);
        let b = s.spawn(Memcached::start);
        (a.join().expect("start a"), b.join().expect("start b"))
    });
    assert_ne!(a.addr(), b.addr());
    assert!(a.addr().starts_with("127.0.0.1:"));
    assert_eq!(a.request(b"set a 0 0 1\r\nx\r\n"), b"STORED\r\n");
    assert_eq!(a.get_direct("a"), Some(b"x".to_vec()));
    assert_eq!(b.get_direct("a"), None);
    assert_eq!(a.request(b"set f 42 0 3\r\nabc\r\nget nope\r\n"), b"STORED\r\nEND\r\n");
    let item = a.get_direct_item("f").expect("f stored");
    assert_eq!((item.value.as_slice(), item.flags), (&b"abc"[..], 42));
    assert_eq!(a.get_direct_item("nope"), None::<DirectItem>);
}

#[test]
fn stats_are_read_raw() {
    let m = Memcached::start();
    let stats = m.stats();
    assert_eq!(stats.get("pid").map(String::as_str), Some(m.pid().expect("running").to_string().as_str()));
    assert!(stats.contains_key("version"));
    let before = m.stat_u64("cmd_get");
    m.get_direct("x");
    assert_eq!(m.stat_u64("cmd_get"), before + 1);
    // The stats request's own connection is open while the server answers.
    assert!(m.stat_u64("curr_connections") >= 1);
    assert!(m.stat_u64("total_connections") >= 3);
}

#[test]
fn extra_args_are_passed() {
    let m = Memcached::start_with_args(&["-I", "2m"]);
    let settings = m.stats_of("settings");
    assert_eq!(settings.get("item_size_max").map(String::as_str), Some("2097152"));
    let big = vec![b'b'; 1_500_000];
    let mut set = b"set big 0 0 1500000\r\n".to_vec();
    set.extend_from_slice(&big);
    set.extend_from_slice(b"\r\n");
    assert_eq!(m.request(&set), b"STORED\r\n");
    assert_eq!(m.get_direct("big"), Some(big));
}

#[test]
fn unix_socket_server() {
    let mut m = Memcached::start_unix();
    let addr = m.addr();
    assert!(addr.contains('/'));
    assert!(m.port().is_none());
    assert_eq!(m.request(b"set u 0 0 2\r\nhi\r\n"), b"STORED\r\n");
    assert_eq!(m.get_direct("u"), Some(b"hi".to_vec()));
    assert_eq!(raw_request(&addr, b"get u\r\n"), b"VALUE u 0 2\r\nhi\r\nEND\r\n");
    m.restart();
    assert_eq!(m.addr(), addr);
    assert_eq!(m.get_direct("u"), None);
    let dir = Path::new(&addr).parent().expect("socket dir").to_path_buf();
    drop(m);
    assert!(!dir.exists(), "temp dir removed on drop");
}

#[test]
fn restart_keeps_the_address_and_empties_the_cache() {
    let mut m = Memcached::start();
    let addr = m.addr();
    assert_eq!(m.request(b"set r 0 0 1\r\n1\r\n"), b"STORED\r\n");
    let old_pid = m.pid();
    m.restart();
    assert_eq!(m.addr(), addr);
    assert_ne!(m.pid(), old_pid);
    assert_eq!(m.get_direct("r"), None);
    m.stop();
    assert!(TcpStream::connect(&addr).is_err(), "stopped server refuses connections");
}

#[test]
fn fault_stall_reads_but_never_answers() {
    let server = FaultServer::start(Fault::Stall);
    let mut c = connect(&server.addr(), Duration::from_millis(150));
    c.write_all(b"get k\r\n").expect("write");
    assert_no_reply(&mut c);
    assert!(server.wait_bytes_received(7, WAIT));
    assert_eq!(server.connections(), 1);
    // Dropping the server closes the stalled connection instead of leaking it.
    drop(server);
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    assert_eq!(c.read(&mut [0u8; 8]).expect("EOF after drop"), 0);
}

#[test]
fn fault_garbage_answers_every_request() {
    let server = FaultServer::start(Fault::Garbage);
    let mut c = connect(&server.addr(), WAIT);
    for _ in 0..2 {
        c.write_all(b"get k\r\n").expect("write");
        assert_eq!(read_exact_or_eof(&mut c, GARBAGE_REPLY.len()), GARBAGE_REPLY);
    }
    assert_eq!(server.bytes_received(), 14);
}

#[test]
fn fault_half_value_then_eof() {
    let server = FaultServer::start(Fault::HalfValue);
    let mut c = connect(&server.addr(), WAIT);
    c.write_all(b"get foo bar\r\n").expect("write");
    let got = read_exact_or_eof(&mut c, usize::MAX);
    let header = format!("VALUE foo 0 {HALF_VALUE_ANNOUNCED}\r\n");
    assert!(got.starts_with(header.as_bytes()), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(got.len(), header.len() + HALF_VALUE_SENT);

    let mut c = connect(&server.addr(), WAIT);
    c.write_all(b"\x01\r\n").expect("write");
    let got = read_exact_or_eof(&mut c, usize::MAX);
    assert!(got.starts_with(b"VALUE k 0 100\r\n"));
    assert_eq!(server.connections(), 2);
}

#[test]
fn fault_reset_resets() {
    let server = FaultServer::start(Fault::Reset);
    let mut c = connect(&server.addr(), WAIT);
    c.write_all(b"get k\r\n").expect("write");
    let err = c.read(&mut [0u8; 16]).expect_err("reset, not data or EOF");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert_eq!(server.bytes_received(), 7);
}

#[test]
fn fault_close_immediately_gives_eof() {
    let server = FaultServer::start(Fault::CloseImmediately);
    let mut c = connect(&server.addr(), WAIT);
    assert_eq!(c.read(&mut [0u8; 16]).expect("EOF"), 0);
    assert!(server.wait_connections(1, WAIT));
}

#[test]
fn proxy_pass_forwards_both_ways() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    assert_eq!(raw_request(&proxy.addr(), b"set p 0 0 3\r\nabc\r\n"), b"STORED\r\n");
    assert_eq!(m.get_direct("p"), Some(b"abc".to_vec()));
    assert_eq!(raw_request(&proxy.addr(), b"get p\r\n"), b"VALUE p 0 3\r\nabc\r\nEND\r\n");
    assert_eq!(proxy.connections(), 2);
    assert_eq!(proxy.bytes_from_clients(), "set p 0 0 3\r\nabc\r\nmn\r\nget p\r\nmn\r\n".len());
}

#[test]
fn proxy_dribble_delivers_whole_replies_byte_by_byte() {
    let m = Memcached::start();
    let value = "v".repeat(200);
    assert_eq!(m.request(format!("set d 0 0 200\r\n{value}\r\n").as_bytes()), b"STORED\r\n");
    let proxy = Proxy::start(&m.addr());
    proxy.set_mode(ProxyMode::Dribble);
    let reply = raw_request(&proxy.addr(), b"get d\r\n");
    assert_eq!(reply, format!("VALUE d 0 200\r\n{value}\r\nEND\r\n").as_bytes());
    let sent = reply.len() + "MN\r\n".len();
    // The proxy counts after each write returns, so the last count may trail the client's read.
    assert!(eventually(|| proxy.bytes_to_clients() == sent), "{} bytes", proxy.bytes_to_clients());
    assert_eq!(proxy.writes_to_clients(), sent, "one write per byte");
}

#[test]
fn proxy_delayed_reply_is_late_and_never_reaches_the_next_connection() {
    let m = Memcached::start();
    assert_eq!(m.request(b"set k1 0 0 2\r\nv1\r\nset k2 0 0 2\r\nv2\r\n"), b"STORED\r\nSTORED\r\n");
    let proxy = Proxy::start(&m.addr());

    proxy.set_mode(ProxyMode::DelayReplies(Duration::from_millis(300)));
    let mut c = connect(&proxy.addr(), Duration::from_millis(100));
    c.write_all(b"get k1\r\n").expect("write");
    assert_no_reply(&mut c);
    drop(c);

    proxy.set_mode(ProxyMode::Pass);
    assert_eq!(raw_request(&proxy.addr(), b"get k2\r\n"), b"VALUE k2 0 2\r\nv2\r\nEND\r\n");

    // With a patient client the delayed reply does arrive, after the delay.
    let delay = Duration::from_millis(200);
    proxy.set_mode(ProxyMode::DelayReplies(delay));
    let start = Instant::now();
    assert_eq!(raw_request(&proxy.addr(), b"get k1\r\n"), b"VALUE k1 0 2\r\nv1\r\nEND\r\n");
    assert!(start.elapsed() >= delay);
}

#[test]
fn proxy_slow_writes_delay_each_chunk() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let delay = Duration::from_millis(100);
    proxy.set_mode(ProxyMode::SlowWrites(delay));
    let mut c = connect(&proxy.addr(), WAIT);
    let start = Instant::now();
    for _ in 0..2 {
        c.write_all(b"version\r\n").expect("write");
        assert!(read_line(&mut c).starts_with(b"VERSION "));
    }
    assert!(start.elapsed() >= 2 * delay);
}

#[test]
fn proxy_delays_only_the_nth_chunk() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let delay = Duration::from_millis(500);
    proxy.set_mode(ProxyMode::DelayNth { n: 2, delay });
    let mut c = connect(&proxy.addr(), WAIT);
    let mut times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        c.write_all(b"version\r\n").expect("write");
        assert!(read_line(&mut c).starts_with(b"VERSION "));
        times.push(start.elapsed());
    }
    assert!(times[0] < delay && times[2] < delay, "{times:?}");
    assert!(times[1] >= delay, "{times:?}");
}

#[test]
fn proxy_stall_holds_replies_until_the_mode_changes() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    proxy.set_mode(ProxyMode::Stall);
    let mut c = connect(&proxy.addr(), Duration::from_millis(150));
    c.write_all(b"version\r\n").expect("write");
    assert_no_reply(&mut c);
    proxy.set_mode(ProxyMode::Pass);
    c.set_read_timeout(Some(WAIT)).expect("timeout");
    assert!(read_line(&mut c).starts_with(b"VERSION "));
}

#[test]
fn proxy_close_after_n_requests() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    proxy.set_mode(ProxyMode::CloseAfter(2));
    let mut c = connect(&proxy.addr(), WAIT);
    for _ in 0..2 {
        c.write_all(b"version\r\n").expect("write");
        assert!(read_line(&mut c).starts_with(b"VERSION "));
    }
    c.write_all(b"version\r\n").expect("write");
    assert_eq!(c.read(&mut [0u8; 16]).expect("EOF"), 0);
    // A new connection is served again.
    let mut c = connect(&proxy.addr(), WAIT);
    c.write_all(b"version\r\n").expect("write");
    assert!(read_line(&mut c).starts_with(b"VERSION "));
}

#[test]
fn proxy_close_all_cuts_current_connections_only() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let mut c = connect(&proxy.addr(), WAIT);
    c.write_all(b"version\r\n").expect("write");
    assert!(read_line(&mut c).starts_with(b"VERSION "));
    proxy.close_all();
    assert_eq!(c.read(&mut [0u8; 16]).expect("EOF"), 0);
    assert_eq!(raw_request(&proxy.addr(), b"get none\r\n"), b"END\r\n");
}

#[test]
fn proxy_drop_closes_held_connections() {
    let m = Memcached::start();
    let proxy = Proxy::start(&m.addr());
    let mut c = connect(&proxy.addr(), WAIT);
    c.write_all(b"version\r\n").expect("write");
    assert!(read_line(&mut c).starts_with(b"VERSION "));
    proxy.set_mode(ProxyMode::DelayReplies(Duration::from_secs(30)));
    c.write_all(b"version\r\n").expect("write");
    // Once the request is forwarded, its reply is held in the proxy for 30 s.
    assert!(eventually(|| proxy.bytes_from_clients() == 18));
    let start = Instant::now();
    drop(proxy);
    assert!(start.elapsed() < Duration::from_secs(5), "drop does not wait out delays");
    assert_eq!(c.read(&mut [0u8; 16]).expect("EOF"), 0);
}
