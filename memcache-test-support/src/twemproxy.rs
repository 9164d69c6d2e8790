//! Launching twemproxy (`nutcracker`) in front of real `memcached` servers, for tests of the
//! clients behind a proxy.
//!
//! [`Twemproxy::start`] starts the memcached servers ([`Memcached::start`]), writes a config
//! (YAML) for one pool over them into a fresh temporary directory, runs `nutcracker` on a free
//! loopback port (its stats port too, so that any number run at once) and waits until it answers
//! `version` through to a server. Dropping the handle kills the proxy by its pid, reaps it, removes
//! the directory and stops the servers. The binary comes from `NUTCRACKER_BIN`, else `PATH`, else
//! `/usr/sbin` (where Debian installs it); if it cannot be found the launcher panics with
//! instructions, as the memcached launcher does.

use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::memcached::{Memcached, drain_stderr, free_port, lock, make_temp_dir, probe_version};

/// How long a freshly started proxy may take to answer `version`.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times a start is retried (a free port may be taken between probing and binding).
const START_ATTEMPTS: usize = 5;
/// How long the proxy waits for a server's reply before answering with an error (its `timeout`).
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(2);

const INSTALL_HINT: &str = "install twemproxy (Debian/Ubuntu: `apt-get install nutcracker`, or run \
     scripts/ensure-memcached.sh) or set NUTCRACKER_BIN to the path of a nutcracker binary";

/// A running `nutcracker` and the memcached servers behind it, owned by a test.
pub struct Twemproxy {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    servers: Vec<Memcached>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Twemproxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Twemproxy")
            .field("addr", &self.addr())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("servers", &self.servers.iter().map(Memcached::addr).collect::<Vec<_>>())
            .finish()
    }
}

impl Twemproxy {
    /// Starts `backends` memcached servers and a twemproxy in front of them (ketama over
    /// FNV-1a 64, no ejection), and waits until the proxy answers.
    ///
    /// # Panics
    /// If a binary is missing (the message says how to install it) or the proxy does not come up
    /// after a few attempts.
    pub fn start(backends: usize) -> Twemproxy {
        let servers: Vec<Memcached> = (0..backends).map(|_| Memcached::start()).collect();
        let mut proxy = Twemproxy {
            child: None,
            port: 0,
            dir: make_temp_dir(),
            servers,
            stderr: Arc::new(Mutex::new(Vec::new())),
            stderr_thread: None,
        };
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match proxy.launch() {
                Ok(()) => return proxy,
                Err(e) => {
                    proxy.stop();
                    errors.push(e);
                }
            }
        }
        panic!("could not start nutcracker after {START_ATTEMPTS} attempts: {errors:#?}");
    }

    /// `"127.0.0.1:PORT"`: the one address a client is given.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The memcached servers behind the proxy, in the order of its config.
    pub fn servers(&self) -> &[Memcached] {
        &self.servers
    }

    /// The proxy's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// What the proxy logged so far (the last few KiB).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&lock(&self.stderr)).into_owned()
    }

    fn launch(&mut self) -> Result<(), String> {
        self.port = free_port();
        let config = self.dir.join("nutcracker.yml");
        fs::write(&config, self.config()).map_err(|e| format!("writing {}: {e}", config.display()))?;
        let bin = binary();
        let mut cmd = Command::new(&bin);
        cmd.arg("-c").arg(&config);
        cmd.args(["-a", "127.0.0.1", "-s", &free_port().to_string()]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child =
            cmd.spawn().unwrap_or_else(|e| panic!("could not run {}: {e}; {INSTALL_HINT}", bin.display()));
        self.stderr = Arc::new(Mutex::new(Vec::new()));
        if let Some(pipe) = child.stderr.take() {
            let sink = Arc::clone(&self.stderr);
            self.stderr_thread = Some(
                thread::Builder::new()
                    .name("nutcracker-stderr".into())
                    .spawn(move || drain_stderr(pipe, &sink))
                    .expect("spawn stderr reader thread"),
            );
        }
        self.child = Some(child);
        self.wait_ready()
    }

    /// One pool over the servers. `timeout` bounds the wait for a server's reply; a server is
    /// never ejected, so keys keep their server for the whole test.
    fn config(&self) -> String {
        let mut yaml = format!(
            "test:\n  listen: 127.0.0.1:{}\n  hash: fnv1a_64\n  distribution: ketama\n  \
             timeout: {}\n  auto_eject_hosts: false\n  server_connections: 1\n  servers:\n",
            self.port,
            SERVER_TIMEOUT.as_millis()
        );
        for (i, m) in self.servers.iter().enumerate() {
            yaml.push_str(&format!("   - {}:1 backend{i}\n", m.addr()));
        }
        yaml
    }

    /// Polls until the proxy answers `version` (which it forwards to a server) while our child
    /// still runs: a proxy that could not bind its port exits at once.
    fn wait_ready(&mut self) -> Result<(), String> {
        let addr = self.addr();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                self.join_stderr();
                return Err(format!("nutcracker on {addr} exited with {status}: {}", self.log()));
            }
            if probe_version(&addr) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "nutcracker on {addr} did not answer `version` within {READY_TIMEOUT:?}: {}",
                    self.log()
                ));
            }
            // Readiness polling of a separate process, not synchronisation between our threads.
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the proxy (by its pid) and reaps it; the servers keep running.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.join_stderr();
    }

    fn join_stderr(&mut self) {
        if let Some(thread) = self.stderr_thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Twemproxy {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The nutcracker binary: `NUTCRACKER_BIN`, else `nutcracker` on `PATH`, else in an `sbin`.
fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("NUTCRACKER_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            panic!("NUTCRACKER_BIN is set to {}, which is not a file; {INSTALL_HINT}", bin.display());
        }
        return bin;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nutcracker"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!("the nutcracker binary was not found on PATH or in /usr/sbin; {INSTALL_HINT}")
        })
}
