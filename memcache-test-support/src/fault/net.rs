//! Loopback plumbing shared by the fault servers and proxies: a listener with an accept thread
//! that stops everything on drop, the registry of open connections and worker threads, and
//! small blocking-socket helpers.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub(crate) fn connect_any(targets: &[SocketAddr]) -> Option<TcpStream> {
    targets.iter().find_map(|t| TcpStream::connect_timeout(t, Duration::from_secs(1)).ok())
}

/// Reads one chunk; `None` on EOF or error (retrying on `Interrupted`).
pub(crate) fn read_chunk(stream: &mut TcpStream, buf: &mut [u8]) -> Option<usize> {
    loop {
        match stream.read(buf) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Open connections (clones of their sockets, for shutting them down) and worker threads.
#[derive(Default)]
pub(crate) struct Registry {
    next_id: AtomicU64,
    streams: Mutex<HashMap<u64, Vec<TcpStream>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl Registry {
    /// Keeps clones of `streams` so that [`Registry::shutdown_all`] can reach them. The clones keep
    /// the sockets open: the owner must call [`Registry::unregister`] when done.
    pub(crate) fn register(&self, streams: &[&TcpStream]) -> Option<u64> {
        let clones: Vec<TcpStream> = streams.iter().map(|s| s.try_clone()).collect::<Result<_, _>>().ok()?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        lock(&self.streams).insert(id, clones);
        Some(id)
    }

    pub(crate) fn unregister(&self, id: u64) {
        lock(&self.streams).remove(&id);
    }

    pub(crate) fn shutdown_all(&self) {
        for streams in lock(&self.streams).values() {
            for s in streams {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    pub(crate) fn spawn_worker(&self, name: &str, f: impl FnOnce() + Send + 'static) {
        let handle = thread::Builder::new().name(name.into()).spawn(f).expect("spawn connection thread");
        let mut workers = lock(&self.workers);
        workers.retain(|h| !h.is_finished());
        workers.push(handle);
    }

    pub(crate) fn join_all(&self) {
        let workers = std::mem::take(&mut *lock(&self.workers));
        for h in workers {
            let _ = h.join();
        }
    }
}

/// A listener on `127.0.0.1:0` with an accept thread; stops everything on drop.
pub(crate) struct Background {
    pub(crate) addr: SocketAddr,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) registry: Arc<Registry>,
    accept_thread: Option<JoinHandle<()>>,
}

impl Background {
    /// `on_accept` runs on the accept thread for each connection; it must not block for long.
    pub(crate) fn start(
        name: &str,
        on_accept: impl Fn(TcpStream, &Arc<Registry>, &Arc<AtomicBool>) + Send + 'static,
    ) -> Background {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr of a bound listener");
        let stop = Arc::new(AtomicBool::new(false));
        let registry = Arc::new(Registry::default());
        let (stop2, registry2) = (Arc::clone(&stop), Arc::clone(&registry));
        let accept_thread = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || {
                for stream in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        on_accept(stream, &registry2, &stop2);
                    }
                }
            })
            .expect("spawn accept thread");
        Background { addr, stop, registry, accept_thread: Some(accept_thread) }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept with a connection of our own.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(t) = self.accept_thread.take() {
            if woke {
                let _ = t.join();
            } // else: leave it detached rather than hang the test
        }
        self.registry.shutdown_all();
        self.registry.join_all();
    }
}
