//! The floor under W1 and W2: their request bytes written and their replies read over a
//! runtime's own socket, with no client at all (`mcbench --adapter floor-tokio,...`).
//!
//! A ratio between two clients says which is faster; it cannot say what is left to gain.
//! The floor can: it is the round trip as the runtime delivers it, with nothing encoded,
//! decoded, routed or timed out. What a client adds to it is the client's cost; what the
//! runtime's floor loses to the blocking floor is the runtime's hand-off cost (Tokio's IO
//! driver waking a `block_on` thread, say), which no client on that runtime can win back.
//!
//! The replies are checked only as far as the loop needs to know one is complete: W1's by
//! its last line, W2's by the number of lines (two per value and `END`). Values are not
//! compared: the floor measures the wire, and the workloads proper check every byte.

use std::future::Future;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::time::{Duration, Instant};

use crate::bench::{From, Report, Workload, key, value};

/// The room a reply is read into: W2's replies are about 14 KB.
const ROOM: usize = 64 * 1024;

/// A runtime's own connected socket, as the floor drives it.
pub trait Wire: Send + 'static {
    /// Writes all of `bytes`.
    fn send(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
    /// One read into `buf`, as many bytes as are there (at least one, or 0 at the end).
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send;
}

/// std's socket: each call is a blocking system call, so its futures are ready at once.
#[derive(Debug)]
pub struct Std(pub std::net::TcpStream);

impl Wire for Std {
    fn send(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(self.0.write_all(bytes))
    }
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        std::future::ready(self.0.read(buf))
    }
}

/// Tokio's socket, through its readiness calls.
#[derive(Debug)]
pub struct Tokio(pub tokio::net::TcpStream);

impl Wire for Tokio {
    async fn send(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.0.writable().await?;
            match self.0.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            self.0.readable().await?;
            match self.0.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                read => return read,
            }
        }
    }
}

/// A futures-io socket (async-std's, smol's).
#[derive(Debug)]
pub struct FuturesIo<S>(pub S);

impl<S: futures_io::AsyncRead + futures_io::AsyncWrite + Unpin + Send + 'static> Wire for FuturesIo<S> {
    async fn send(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = std::future::poll_fn(|cx| Pin::new(&mut self.0).poll_write(cx, bytes)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }
    fn recv(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<usize>> + Send {
        std::future::poll_fn(move |cx| Pin::new(&mut self.0).poll_read(cx, buf))
    }
}

/// Runs `workload` (W1 or W2) over `connect`'s socket, from where `from` says, named `name`.
pub fn run<W: Wire, E: crate::adapters::Executor>(
    name: &str,
    workload: Workload,
    from: From,
    connect: impl Future<Output = io::Result<W>> + Send + 'static,
) -> Result<Report, String> {
    let work = async move {
        let mut wire = connect.await.map_err(|e| format!("connect: {e}"))?;
        match workload {
            Workload::W1 => w1(&mut wire).await,
            Workload::W2 => w2(&mut wire).await,
            other => Err(format!("the floor runs W1 and W2, not {other:?}")),
        }
    };
    let mut report = match from {
        From::Task => E::block_on(async { E::spawn(work).await }),
        From::Main => E::block_on(work),
    }?;
    report.client = format!("floor: {name}{}", if from == From::Main { " from main" } else { "" });
    Ok(report)
}

/// A trivial executor for [`Std`]: its futures never wait.
#[derive(Debug)]
pub struct Inline;

impl crate::adapters::Executor for Inline {
    const NAME: &'static str = "std";
    fn block_on<F: Future>(f: F) -> F::Output {
        crate::conformance::block_on_simple(f)
    }
    fn spawn<F>(f: F) -> Pin<Box<dyn Future<Output = F::Output> + Send>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Box::pin(f)
    }
}

/// W1: set then `gets` each key, one command at a time.
async fn w1<W: Wire>(wire: &mut W) -> Result<Report, String> {
    let mut buf = vec![0; ROOM];
    let mut lat = Vec::with_capacity(40_000);
    let start = Instant::now();
    for i in 0..20_000 {
        let set = store(i);
        let get = format!("gets {}\r\n", key(i)).into_bytes();
        lat.push(round_trip(wire, &set, &mut buf, |r| r == b"STORED\r\n").await?);
        lat.push(round_trip(wire, &get, &mut buf, |r| r.ends_with(b"\r\nEND\r\n")).await?);
    }
    Ok(crate::bench::report(Workload::W1, 40_000, start.elapsed().as_secs_f64(), &mut lat, None))
}

/// W2: the 10,000 keys stored one by one (untimed), then 2,000 rounds of a 100-key `gets`.
async fn w2<W: Wire>(wire: &mut W) -> Result<Report, String> {
    let mut buf = vec![0; ROOM];
    for i in 0..10_000 {
        round_trip(wire, &store(i), &mut buf, |r| r == b"STORED\r\n").await?;
    }
    let rounds: Vec<Vec<u8>> = (0..2_000)
        .map(|r| {
            let keys: Vec<String> = (0..100).map(|k| key((r * 7919 + k) % 10_000)).collect();
            format!("gets {}\r\n", keys.join(" ")).into_bytes()
        })
        .collect();
    let mut lat = Vec::with_capacity(rounds.len());
    let start = Instant::now();
    for get in &rounds {
        let whole =
            |r: &[u8]| r.ends_with(b"\r\nEND\r\n") && r.iter().filter(|&&b| b == b'\n').count() == 201;
        lat.push(round_trip(wire, get, &mut buf, whole).await?);
    }
    Ok(crate::bench::report(Workload::W2, 200_000, start.elapsed().as_secs_f64(), &mut lat, None))
}

/// `set` of key `i` to its 100-byte value.
fn store(i: usize) -> Vec<u8> {
    let mut set = format!("set {} 0 0 100\r\n", key(i)).into_bytes();
    set.extend_from_slice(&value(i, 100));
    set.extend_from_slice(b"\r\n");
    set
}

/// Writes `request` and reads until `complete` holds for what arrived; how long it took.
async fn round_trip<W: Wire>(
    wire: &mut W,
    request: &[u8],
    buf: &mut [u8],
    complete: impl Fn(&[u8]) -> bool,
) -> Result<Duration, String> {
    let t = Instant::now();
    wire.send(request).await.map_err(|e| format!("write: {e}"))?;
    let mut len = 0;
    while !complete(&buf[..len]) {
        let room = buf.get_mut(len..).filter(|r| !r.is_empty()).ok_or("a reply larger than the room")?;
        match wire.recv(room).await {
            Ok(0) => return Err("the server closed the connection".into()),
            Ok(n) => len += n,
            Err(e) => return Err(format!("read: {e}")),
        }
        if buf[..len].starts_with(b"SERVER_ERROR") || buf[..len].starts_with(b"ERROR") {
            return Err(format!("server said {:?}", String::from_utf8_lossy(&buf[..len])));
        }
    }
    Ok(t.elapsed())
}
