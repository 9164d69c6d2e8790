//! Launching real `memcached` servers for tests.
//!
//! [`Memcached::start`] runs the `memcached` binary (from the `MEMCACHED_BIN` environment variable,
//! else from `PATH`) on a free loopback port, waits until it answers `version`, and kills and reaps
//! it when the handle is dropped. Any number of servers may run at once, from any number of test
//! threads. If the binary cannot be found the launcher panics with instructions: tests that need a
//! server never skip silently.
//!
//! The helpers ([`Memcached::request`], [`Memcached::get_direct`], [`Memcached::stats`], [`raw_request`])
//! talk to a server over a fresh connection with hand-written protocol, independent of any client
//! under test, so a test can check what the server really holds.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::tls::{ServerFiles, TlsServer};

/// How long a freshly started server may take to answer `version`.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a start is retried (a free port may be taken between probing and binding).
pub(crate) const START_ATTEMPTS: usize = 5;
/// Read/write timeout of the helper connections ([`Memcached::request`] and friends).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of the server's stderr is kept for error messages.
const STDERR_KEEP: usize = 16 * 1024;

const INSTALL_HINT: &str = "install memcached (Debian/Ubuntu: `apt-get install memcached`, \
     Fedora: `dnf install memcached`, macOS: `brew install memcached`) or set MEMCACHED_BIN \
     to the path of a memcached binary";

/// Where a server listens.
#[derive(Debug, Clone)]
pub(crate) enum Listen {
    Tcp {
        port: u16,
    },
    Unix {
        dir: PathBuf,
        path: PathBuf,
    },
    /// TLS on `port`, plain text on `plain_port` for the helpers (`-l P1,notls:P2`).
    Tls {
        port: u16,
        plain_port: u16,
        files: Arc<ServerFiles>,
    },
}

/// A running `memcached` process owned by a test.
///
/// Dropping it kills and reaps the process and, for a Unix-socket server, removes its temporary
/// directory. The process is started with `-U 0 -m 64 -t 2` (plus `-u root` when running as root).
pub struct Memcached {
    child: Option<Child>,
    listen: Listen,
    extra: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Memcached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memcached")
            .field("addr", &self.addr())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("extra_args", &self.extra)
            .finish()
    }
}

/// An item read directly from a server with `gets` (see [`Memcached::get_direct_item`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectItem {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// The client flags stored with the item.
    pub flags: u32,
    /// The item's CAS unique.
    pub cas: u64,
}

impl Memcached {
    /// Starts memcached on a free `127.0.0.1` port (`-U 0 -m 64 -t 2`) and waits until it answers.
    ///
    /// # Panics
    /// If the binary is missing (the message says how to install it) or the server does not come
    /// up after a few attempts.
    pub fn start() -> Memcached {
        Memcached::start_with_args(&[])
    }

    /// Like [`Memcached::start`], with `extra` appended to the command line (e.g. `["-I", "2m"]`).
    ///
    /// In a process that called [`serve_tls_by_default`](crate::tls::serve_tls_by_default), this
    /// starts a TLS server ([`Memcached::start_tls_with_args`]).
    pub fn start_with_args(extra: &[&str]) -> Memcached {
        if crate::tls::tls_by_default() {
            return Memcached::start_tls_with_args(TlsServer::plain(), extra);
        }
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            match Memcached::launch(Listen::Tcp { port }, extra.clone()) {
                Ok(server) => return server,
                Err(e) => errors.push(e),
            }
        }
        panic!("could not start memcached on a TCP port after {START_ATTEMPTS} attempts: {errors:#?}");
    }

    /// Starts memcached listening only on a Unix socket (`-s PATH`) in a fresh temporary directory.
    /// [`Memcached::addr`] is then the socket path.
    pub fn start_unix() -> Memcached {
        Memcached::start_unix_with_args(&[])
    }

    /// Like [`Memcached::start_unix`], with `extra` appended to the command line.
    pub fn start_unix_with_args(extra: &[&str]) -> Memcached {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let dir = make_temp_dir();
        let path = dir.join("memcached.sock");
        match Memcached::launch(Listen::Unix { dir: dir.clone(), path }, extra) {
            Ok(server) => server,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                panic!("could not start memcached on a Unix socket: {e}");
            }
        }
    }

    /// `"127.0.0.1:PORT"` for a TCP server, the socket path (it contains a `/`) for a Unix one.
    /// For a TLS server, the TLS address.
    pub fn addr(&self) -> String {
        match &self.listen {
            Listen::Tcp { port } | Listen::Tls { port, .. } => format!("127.0.0.1:{port}"),
            Listen::Unix { path, .. } => path.to_string_lossy().into_owned(),
        }
    }

    /// Where the server speaks plain text: [`addr`](Self::addr), except for a TLS server,
    /// whose second, `notls` listener this is.
    pub fn plain_addr(&self) -> String {
        match &self.listen {
            Listen::Tls { plain_port, .. } => format!("127.0.0.1:{plain_port}"),
            _ => self.addr(),
        }
    }

    /// Whether clients must speak TLS to [`addr`](Self::addr).
    pub fn is_tls(&self) -> bool {
        matches!(self.listen, Listen::Tls { .. })
    }

    /// The TCP port, or `None` for a Unix-socket server.
    pub fn port(&self) -> Option<u16> {
        match self.listen {
            Listen::Tcp { port } | Listen::Tls { port, .. } => Some(port),
            Listen::Unix { .. } => None,
        }
    }

    /// The process id while the server runs (`None` after [`Memcached::stop`]).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server (SIGKILL) and reaps it; the address stays reserved for [`Memcached::restart`].
    /// Clients see their connections die, as when a real server goes away.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(thread) = self.stderr_thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops the server if it runs, then starts a new, empty one on the same address (same port or
    /// socket path) and waits until it answers.
    ///
    /// # Panics
    /// If the new server does not come up (e.g. another process took the port meanwhile).
    pub fn restart(&mut self) {
        self.stop();
        if let Listen::Unix { path, .. } = &self.listen {
            let _ = fs::remove_file(path);
        }
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(e) => {
                    self.stop();
                    errors.push(e);
                }
            }
        }
        panic!("could not restart memcached on {}: {errors:#?}", self.addr());
    }

    /// Opens a new connection, sends `raw` followed by the meta no-op `mn\r\n`, reads until the reply
    /// ends with `MN\r\n` and returns everything before that line.
    ///
    /// Works for any sequence of complete classic commands (memcached 1.6 answers in order). The end
    /// is detected as `MN\r\n` at a line start at the end of what was read so far, so a stored value
    /// that itself ends in a `MN` line could in theory confuse it; test data should avoid that.
    ///
    /// # Panics
    /// On any I/O error, or if no `MN` arrives within 10 s.
    pub fn request(&self, raw: &[u8]) -> Vec<u8> {
        raw_request(&self.plain_addr(), raw)
    }

    /// The value of `key` read directly from this server with `get`, `None` on a miss.
    pub fn get_direct(&self, key: &str) -> Option<Vec<u8>> {
        self.get_direct_item(key).map(|item| item.value)
    }

    /// Value, flags and CAS unique of `key` read directly from this server with `gets`, `None` on a
    /// miss.
    pub fn get_direct_item(&self, key: &str) -> Option<DirectItem> {
        let reply = self.request(format!("gets {key}\r\n").as_bytes());
        parse_gets_reply(&reply)
            .unwrap_or_else(|e| panic!("unexpected reply to `gets {key}`: {e}: {:?}", lossy(&reply)))
    }

    /// The server's `stats` as name -> value.
    pub fn stats(&self) -> HashMap<String, String> {
        let reply = self.request(b"stats\r\n");
        parse_stats(&reply)
            .unwrap_or_else(|e| panic!("unexpected reply to `stats`: {e}: {:?}", lossy(&reply)))
    }

    /// A statistics group, e.g. `"settings"` (sends `stats <group>`; values are kept as text).
    pub fn stats_of(&self, group: &str) -> HashMap<String, String> {
        let reply = self.request(format!("stats {group}\r\n").as_bytes());
        parse_stats(&reply)
            .unwrap_or_else(|e| panic!("unexpected reply to `stats {group}`: {e}: {:?}", lossy(&reply)))
    }

    /// One numeric statistic, e.g. `"curr_connections"`, `"total_connections"`, `"cmd_get"`.
    ///
    /// # Panics
    /// If the server does not report `name` or it is not an unsigned integer.
    pub fn stat_u64(&self, name: &str) -> u64 {
        let stats = self.stats();
        let value = stats.get(name).unwrap_or_else(|| panic!("memcached reports no stat {name:?}"));
        value.parse().unwrap_or_else(|e| panic!("stat {name} = {value:?} is not a u64: {e}"))
    }

    /// What the server wrote to stderr so far (the last few KiB).
    pub fn stderr_output(&self) -> String {
        lossy(&lock(&self.stderr))
    }

    pub(crate) fn launch(listen: Listen, extra: Vec<String>) -> Result<Memcached, String> {
        let mut server = Memcached {
            child: None,
            listen,
            extra,
            stderr: Arc::new(Mutex::new(Vec::new())),
            stderr_thread: None,
        };
        // On failure `server` is dropped, which kills and reaps the process.
        server.spawn_and_wait().map(|()| server)
    }

    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let bin = binary();
        let mut cmd = Command::new(&bin);
        cmd.args(["-U", "0", "-m", "64", "-t", "2"]);
        match &self.listen {
            Listen::Tcp { port } => {
                cmd.args(["-l", "127.0.0.1", "-p", &port.to_string()]);
            }
            Listen::Unix { path, .. } => {
                cmd.arg("-s").arg(path);
            }
            Listen::Tls { port, plain_port, files } => {
                cmd.args(["-l", &format!("127.0.0.1:{port},notls:127.0.0.1:{plain_port}")]);
                cmd.args(files.args());
            }
        }
        if running_as_root() {
            cmd.args(["-u", "root"]);
        }
        cmd.args(&self.extra);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child =
            cmd.spawn().unwrap_or_else(|e| panic!("could not run {}: {e}; {INSTALL_HINT}", bin.display()));

        let stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(pipe) = child.stderr.take() {
            let sink = Arc::clone(&stderr);
            self.stderr_thread = Some(
                thread::Builder::new()
                    .name("memcached-stderr".into())
                    .spawn(move || drain_stderr(pipe, &sink))
                    .expect("spawn stderr reader thread"),
            );
        }
        self.stderr = stderr;
        self.child = Some(child);
        self.wait_ready()
    }

    /// Polls until the server answers `version`, then checks (via `stats pid`) that the answer came
    /// from our process and not from someone else who owns the port.
    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = self.plain_addr();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    if let Some(thread) = self.stderr_thread.take() {
                        let _ = thread.join();
                    }
                    return Err(format!(
                        "memcached on {addr} exited with {status}: {}",
                        self.stderr_output()
                    ));
                }
            }
            if probe_version(&addr) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "memcached on {addr} did not answer `version` within {READY_TIMEOUT:?}: {}",
                    self.stderr_output()
                ));
            }
            // Readiness polling of a separate process, not synchronisation between our threads.
            thread::sleep(Duration::from_millis(10));
        }
        let pid = self.pid().unwrap_or(0).to_string();
        let stats = try_request(&addr, b"stats\r\n").map_err(|e| format!("stats on {addr}: {e}"))?;
        let stats = parse_stats(&stats).map_err(|e| format!("stats on {addr}: {e}"))?;
        match stats.get("pid") {
            Some(p) if *p == pid => Ok(()),
            other => Err(format!("{addr} is answered by another process (pid {other:?}, ours {pid})")),
        }
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        self.stop();
        if let Listen::Unix { dir, .. } = &self.listen {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// Sends `raw` plus `mn\r\n` to `addr` (a `host:port`, or a Unix socket path if it contains `/`) on a
/// new connection and returns the reply before the final `MN\r\n` (see [`Memcached::request`]).
/// Useful to talk to a server through a [`crate::fault::Proxy`].
///
/// # Panics
/// On any I/O error, or if no `MN` arrives within 10 s.
pub fn raw_request(addr: &str, raw: &[u8]) -> Vec<u8> {
    try_request(addr, raw).unwrap_or_else(|e| panic!("request to {addr} failed: {e}"))
}

/// A connection to a TCP or Unix-socket server.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn connect(addr: &str, timeout: Duration) -> io::Result<Conn> {
        if addr.contains('/') {
            let s = UnixStream::connect(addr)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            Ok(Conn::Unix(s))
        } else {
            let sock: SocketAddr = addr
                .parse()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
            let s = TcpStream::connect_timeout(&sock, timeout)?;
            s.set_read_timeout(Some(timeout))?;
            s.set_write_timeout(Some(timeout))?;
            s.set_nodelay(true)?;
            Ok(Conn::Tcp(s))
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn try_request(addr: &str, raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut conn = Conn::connect(addr, REQUEST_TIMEOUT)?;
    let mut out = Vec::with_capacity(raw.len() + 4);
    out.extend_from_slice(raw);
    out.extend_from_slice(b"mn\r\n");
    conn.write_all(&out)?;
    let mut reply = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = conn.read(&mut buf).map_err(|e| {
            io::Error::new(e.kind(), format!("{e} while waiting for MN; got so far: {:?}", lossy(&reply)))
        })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed before MN; got: {:?}", lossy(&reply)),
            ));
        }
        reply.extend_from_slice(&buf[..n]);
        if ends_with_mn(&reply) {
            reply.truncate(reply.len() - 4);
            return Ok(reply);
        }
    }
}

fn ends_with_mn(buf: &[u8]) -> bool {
    buf.ends_with(b"MN\r\n") && (buf.len() == 4 || buf[buf.len() - 5] == b'\n')
}

/// Connects and sends `version`; true if a `VERSION` line comes back.
pub(crate) fn probe_version(addr: &str) -> bool {
    let Ok(mut conn) = Conn::connect(addr, Duration::from_millis(500)) else {
        return false;
    };
    if conn.write_all(b"version\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") && reply.len() < 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
        }
    }
    reply.starts_with(b"VERSION ")
}

fn parse_stats(reply: &[u8]) -> Result<HashMap<String, String>, String> {
    let text = std::str::from_utf8(reply).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut stats = HashMap::new();
    for line in text.split("\r\n") {
        if line == "END" {
            return Ok(stats);
        }
        let rest = line.strip_prefix("STAT ").ok_or_else(|| format!("unexpected line {line:?}"))?;
        let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
        stats.insert(name.to_string(), value.to_string());
    }
    Err("no END line".into())
}

fn parse_gets_reply(reply: &[u8]) -> Result<Option<DirectItem>, String> {
    if reply == b"END\r\n" {
        return Ok(None);
    }
    let line_end = reply.windows(2).position(|w| w == b"\r\n").ok_or("no header line")?;
    let header = std::str::from_utf8(&reply[..line_end]).map_err(|e| format!("header not UTF-8: {e}"))?;
    let fields: Vec<&str> = header.split(' ').collect();
    let [kind, _key, flags, len, cas] = fields.as_slice() else {
        return Err(format!("unexpected header {header:?}"));
    };
    if *kind != "VALUE" {
        return Err(format!("unexpected header {header:?}"));
    }
    let flags: u32 = flags.parse().map_err(|e| format!("flags {flags:?}: {e}"))?;
    let len: usize = len.parse().map_err(|e| format!("length {len:?}: {e}"))?;
    let cas: u64 = cas.parse().map_err(|e| format!("cas {cas:?}: {e}"))?;
    let data_start = line_end + 2;
    let rest = reply.get(data_start..).unwrap_or_default();
    if rest.len() != len + 7 || &rest[len..] != b"\r\nEND\r\n" {
        return Err(format!("value of {len} bytes not followed by END"));
    }
    Ok(Some(DirectItem { value: rest[..len].to_vec(), flags, cas }))
}

/// Learns a free port by binding `127.0.0.1:0`. The port is released before memcached binds it, so
/// another process may grab it first; the launcher detects that and retries.
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local_addr of a bound listener").port()
}

/// The memcached binary: `MEMCACHED_BIN`, else `memcached` on `PATH`.
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("MEMCACHED_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            panic!("MEMCACHED_BIN is set to {}, which is not a file; {INSTALL_HINT}", bin.display());
        }
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("memcached"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("the memcached binary was not found on PATH; {INSTALL_HINT}"))
}

/// memcached refuses to run as root without `-u`.
fn running_as_root() -> bool {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        if let Some(uids) = status.lines().find_map(|l| l.strip_prefix("Uid:")) {
            // Fields: real, effective, saved, filesystem.
            return uids.split_whitespace().nth(1) == Some("0");
        }
    }
    std::env::var("USER").is_ok_and(|u| u == "root")
}

/// A new, empty directory under the system temp dir (short path: Unix socket paths are limited).
pub(crate) fn make_temp_dir() -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("mc-test-{}-{n}-{nanos:x}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("could not create a temp dir under {}: {e}", base.display()),
        }
    }
    panic!("could not create a fresh temp dir under {}", base.display());
}

pub(crate) fn drain_stderr(mut pipe: impl Read, sink: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                let mut kept = lock(sink);
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > STDERR_KEEP {
                    let excess = kept.len() - STDERR_KEEP;
                    kept.drain(..excess);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
