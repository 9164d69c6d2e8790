//! Decoding meta replies: one frame (`ReplyKind::Meta`) or the frames of a quiet batch up to
//! its `MN` (`ReplyKind::MetaBatch`).
//!
//! Meta replies describe their own shape (`VA <size>` announces a data block, every other
//! code is one line), so one decoder serves every meta command. It follows the classic
//! decoder's rules: lines found with `memchr` only in new bytes, a data block waited for by
//! length alone with the buffer grown as its bytes arrive, flags and data split off the buffer
//! without a copy (the flags are copied when the block must grow the buffer), every length
//! bounded by [`Limits`](crate::Limits), a reply or a batch by `max_reply_len`.

use bytes::{Buf, Bytes, BytesMut};

use super::reply::{MetaReply, MetaStatus};
use crate::ProtoError;
use crate::decode::{Decoder, error_line, parse_u64};
use crate::response::Response;

/// What the decoder keeps between calls while a meta reply is incomplete.
#[derive(Debug, Default)]
pub(crate) struct MetaState {
    /// A `VA` line read, its data block not yet complete: the flags and the block's length.
    pending: Option<(Bytes, usize)>,
    /// The frames of a batch read so far.
    frames: Vec<Response>,
}

impl Decoder {
    /// Decodes one meta reply, or with `batch` every reply up to `MN` (which is not kept).
    pub(crate) fn meta(&mut self, buf: &mut BytesMut, batch: bool) -> Result<Option<Response>, ProtoError> {
        loop {
            let Some(frame) = self.meta_frame(buf)? else { return Ok(None) };
            if !batch {
                return Ok(Some(self.end_reply(frame)));
            }
            if let Response::Meta(MetaReply { status: MetaStatus::NoOp, .. }) = frame {
                let frames = std::mem::take(&mut self.meta.frames);
                return Ok(Some(self.end_reply(Response::MetaBatch(frames))));
            }
            if self.meta.frames.len() >= self.limits().max_values {
                self.meta.frames.clear();
                return Err(ProtoError::TooManyValues { limit: self.limits().max_values });
            }
            self.meta.frames.push(frame);
        }
    }

    /// One meta frame or error line.
    fn meta_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Response>, ProtoError> {
        if let Some((flags, len)) = self.meta.pending.take() {
            // `len` is bounded by `max_value_len`; saturate in case that is `usize::MAX`.
            let need = len.saturating_add(2);
            if buf.len() < need {
                crate::decode::grow_for(buf, need);
                self.meta.pending = Some((flags, len));
                return Ok(None);
            }
            if &buf[len..need] != b"\r\n" {
                return Err(ProtoError::BadValueTerminator);
            }
            let value = buf.split_to(len).freeze();
            buf.advance(2);
            return Ok(Some(Response::Meta(MetaReply {
                status: MetaStatus::Value,
                flags,
                value: Some(value),
            })));
        }
        let Some(nl) = self.find_line(buf)? else { return Ok(None) };
        self.count(nl + 1, 0)?;
        let line = &buf[..nl - 1];
        let status =
            line.get(..2).and_then(MetaStatus::from_code).filter(|_| line.get(2).is_none_or(|&b| b == b' '));
        let Some(status) = status else {
            let response = error_line(line)?;
            buf.advance(nl + 1);
            return Ok(Some(response));
        };
        let (flags_at, len) = match status {
            MetaStatus::Value => self.value_size(line)?,
            _ => (2, 0),
        };
        self.count(0, if status == MetaStatus::Value { len.saturating_add(2) } else { 0 })?;
        let line = if status != MetaStatus::Value || buf.capacity() - (nl + 1) >= len.saturating_add(2) {
            buf.split_to(nl - 1).freeze()
        } else {
            // The block must grow the buffer: flags of their own let it grow in place.
            let line = Bytes::copy_from_slice(&buf[..nl - 1]);
            buf.advance(nl - 1);
            line
        };
        buf.advance(2);
        let flags = line.slice(flags_at..);
        if status == MetaStatus::Value {
            self.meta.pending = Some((flags, len));
            return self.meta_frame(buf);
        }
        Ok(Some(Response::Meta(MetaReply { status, flags, value: None })))
    }

    /// Parses `VA <size>...` into where the flags start and the size, bounded by the limits.
    fn value_size(&self, line: &[u8]) -> Result<(usize, usize), ProtoError> {
        let rest = line.get(3..).unwrap_or_default();
        let digits = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let len = parse_u64(&rest[..digits]).ok_or_else(|| ProtoError::unexpected(line))?;
        let limit = self.limits().max_value_len;
        match usize::try_from(len) {
            Ok(n) if n <= limit => Ok((3 + digits, n)),
            _ => Err(ProtoError::ValueTooLarge { len, limit }),
        }
    }
}
