//! Helpers for adapters that read from a socket into a [`Connection`](crate::Connection)'s
//! buffer. Nothing here performs IO: the caller passes the read.

use std::io;
use std::task::Poll;

use bytes::BytesMut;

/// Reads into a window of `buf`'s spare capacity through an API that needs initialised
/// memory (`std::io::Read`, `futures_io::AsyncRead`): the window (at most 64 KiB, so the
/// zeroing stays cheap when the decoder reserved room for a large value) is zeroed, handed to
/// `read`, and then cut back to the bytes the read says arrived.
pub fn read_into_spare<R: ReadOutcome>(buf: &mut BytesMut, read: impl FnOnce(&mut [u8]) -> R) -> R {
    const WINDOW: usize = 64 * 1024;
    let start = buf.len();
    let window = (buf.capacity() - start).clamp(4096, WINDOW);
    buf.resize(start + window, 0);
    let result = read(&mut buf[start..]);
    let n = result.filled().min(window);
    buf.truncate(start + n);
    result
}

/// The outcome of a read into a buffer: how many bytes it put there.
pub trait ReadOutcome {
    /// Bytes read (zero on an error or while pending).
    fn filled(&self) -> usize;
}

impl ReadOutcome for io::Result<usize> {
    fn filled(&self) -> usize {
        *self.as_ref().unwrap_or(&0)
    }
}

impl ReadOutcome for Poll<io::Result<usize>> {
    fn filled(&self) -> usize {
        match self {
            Poll::Ready(read) => read.filled(),
            Poll::Pending => 0,
        }
    }
}
