//! Quiet batches: many meta requests, one round trip, replies matched by opaque.
//!
//! Every request goes out with an opaque `O<i>` (its index) and, where nothing it asked for
//! would be lost, with `q`; a trailing `mn` makes the server answer `MN` once all are done. A
//! quiet request that succeeded sends nothing, so replies are matched by their opaque, never by
//! position. The server's corners, as recorded in the vectors:
//! - `q` on `mg` hides only the miss: a hit is answered, with `HD` when no value was asked for;
//! - `q` on `ma .. v` hides the new value, so such requests are never made quiet;
//! - error lines (`CLIENT_ERROR`, `SERVER_ERROR`, `ERROR`) carry no opaque, and a bad request
//!   may draw two of them. Replies come in request order, so an error belongs to one of the
//!   requests between the last answered one before it and the next answered one after it:
//!   those requests fail with it (usually that is exactly one request). The connection stays
//!   usable: `MN` still marks the end of the batch.

use super::outcome::{MetaOutcome, MetaOutput, desync};
use super::request::{MetaRequest, MetaVerb};
use super::version::ServerVersion;
use crate::op::{Op, reply_error};
use crate::response::Response;
use crate::{Command, Error};

/// A quiet batch of meta requests for one server; its result has one entry per request, in
/// request order.
#[derive(Debug)]
pub struct MetaBatch {
    command: Command,
}

impl MetaBatch {
    /// Batches `requests` (anything that converts into a [`MetaRequest`]: the builders).
    pub fn new<R: Into<MetaRequest>>(requests: impl IntoIterator<Item = R>) -> MetaBatch {
        MetaBatch { command: Command::MetaBatch(requests.into_iter().map(Into::into).collect()) }
    }

    /// The requests, in order.
    pub fn requests(&self) -> &[MetaRequest] {
        match &self.command {
            Command::MetaBatch(r) => r,
            _ => &[],
        }
    }

    /// How many requests.
    pub fn len(&self) -> usize {
        self.requests().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.requests().is_empty()
    }

    /// The newest release any request needs, if one uses a flag newer than the first stable
    /// meta protocol.
    pub fn required_version(&self) -> Option<ServerVersion> {
        self.requests().iter().filter_map(|r| r.required_version()).map(|(_, v)| v).max()
    }
}

/// Appends the batch: each request with its opaque and maybe `q`, then `mn`.
pub(crate) fn encode(requests: &[MetaRequest], buf: &mut impl bytes::BufMut) {
    for (i, r) in requests.iter().enumerate().filter(|(_, r)| r.verb() != MetaVerb::Debug) {
        let opaque = u32::try_from(i).unwrap_or(u32::MAX);
        r.encode_with(buf, Some((opaque, r.quiet_in_batch())));
    }
    buf.put_slice(b"mn\r\n");
}

/// Where each request of a batch stands while its replies are read.
struct Matcher<'a> {
    requests: &'a [MetaRequest],
    results: Vec<Option<Result<MetaOutcome, Error>>>,
    /// Index of the last request answered with its opaque.
    last: Option<usize>,
    /// The first error line since then, to settle on the requests it may belong to.
    error: Option<Error>,
}

impl Matcher<'_> {
    /// Fails the unanswered requests after `last` and before `until` with the pending error.
    fn settle_error(&mut self, until: usize) {
        let Some(error) = self.error.take() else { return };
        let from = self.last.map_or(0, |l| l + 1);
        for slot in &mut self.results[from..until] {
            if slot.is_none() {
                *slot = Some(Err(error.clone()));
            }
        }
    }

    /// Takes one frame; `Err` when the stream cannot be trusted any more.
    fn frame(&mut self, frame: Response) -> Result<(), Error> {
        let reply = match frame {
            Response::Meta(reply) => reply,
            e @ (Response::Error | Response::ClientError(_) | Response::ServerError(_)) => {
                self.error.get_or_insert_with(|| reply_error(e));
                return Ok(());
            }
            _ => return Err(desync("of a non-meta kind in a batch")),
        };
        let index = reply
            .opaque()
            .and_then(|o| std::str::from_utf8(o).ok()?.parse::<usize>().ok())
            .filter(|&i| i < self.requests.len() && self.last.is_none_or(|l| i > l))
            .ok_or_else(|| desync("with an opaque out of order or not sent"))?;
        self.settle_error(index);
        self.results[index] = Some(MetaOutcome::from_reply(reply, &self.requests[index], true));
        self.last = Some(index);
        Ok(())
    }
}

impl Op for MetaBatch {
    type Output = Vec<Result<MetaOutcome, Error>>;
    fn command(&self) -> &Command {
        &self.command
    }
    fn finish(self, response: Response) -> Result<Self::Output, Error> {
        let frames = match response {
            Response::MetaBatch(frames) => frames,
            other => return Err(reply_error(other)),
        };
        let requests = self.requests();
        // `me` answers without an opaque, so it is not sent in a batch.
        let unsent = |r: &MetaRequest| {
            (r.verb() == MetaVerb::Debug)
                .then(|| Err(Error::Client("me cannot be sent in a quiet batch".into())))
        };
        let results = requests.iter().map(unsent).collect();
        let mut m = Matcher { requests, results, last: None, error: None };
        for frame in frames {
            if let Err(e) = m.frame(frame) {
                return Ok(requests.iter().map(|_| Err(e.clone())).collect());
            }
        }
        m.settle_error(requests.len());
        let results = m.results.into_iter().zip(requests).map(|(slot, request)| {
            slot.unwrap_or_else(|| {
                let quiet = request.quiet_in_batch();
                MetaOutcome::quiet(request)
                    .filter(|_| quiet)
                    .ok_or_else(|| desync("missing for a loud request"))
            })
        });
        Ok(results.collect())
    }
}
