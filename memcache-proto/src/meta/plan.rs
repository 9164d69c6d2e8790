//! `meta_batch` over several servers, and the version checks before sending.
//!
//! A batch is split into one quiet batch per server (requests keep their order within a
//! server); the answers, which come back per server in any order, are put back in input
//! order. A request using a flag newer than the meta protocol's first stable release needs
//! its server's version first: the client asks `version` of just those servers, and such a
//! request fails alone with [`Error::Unsupported`] on an older server.

use super::batch::MetaBatch;
use super::op::Meta;
use super::outcome::MetaOutcome;
use super::request::MetaRequest;
use super::version::ServerVersion;
use crate::op::{KeyedOp, Version};
use std::time::Instant;

use crate::fleet::Fleet;
use crate::{Error, ServerAddr};

/// One result per request of a batch, in request order (what `meta_batch` returns).
pub type BatchResults = Vec<Result<MetaOutcome, Error>>;

/// The requests of each server, with their input positions, and the results known early.
#[derive(Debug)]
pub struct BatchPlan {
    groups: Vec<Group>,
    results: Vec<Option<Result<MetaOutcome, Error>>>,
}

#[derive(Debug)]
struct Group {
    server: ServerAddr,
    requests: Vec<(usize, MetaRequest)>,
    /// Input positions of the batch sent to this server.
    sent: Vec<usize>,
}

/// The server a meta request for `key` goes to, as `get_multi` routes its keys: the
/// selector's pick, or with ejection the next live server when that one is resting.
fn pick(fleet: &Fleet, key: &[u8], now: Instant) -> Result<ServerAddr, Error> {
    let server = fleet.selector().pick_server(key)?;
    let health = fleet.health();
    if health.policy().eject && health.is_resting(&server, now) {
        return fleet.selector().pick_server_skipping(key, &|s| health.is_resting(s, now));
    }
    Ok(server)
}

/// Groups `requests` by the server each key goes to (in order of first appearance). A
/// request whose server cannot be picked fails alone.
pub fn plan_batch<R: Into<MetaRequest>>(
    fleet: &Fleet,
    requests: impl IntoIterator<Item = R>,
    now: Instant,
) -> BatchPlan {
    let mut plan = BatchPlan { groups: Vec::new(), results: Vec::new() };
    for (i, request) in requests.into_iter().enumerate() {
        let request = request.into();
        plan.results.push(None);
        match pick(fleet, request.wire_key().as_bytes(), now) {
            Ok(server) => match plan.groups.iter_mut().find(|g| g.server == server) {
                Some(g) => g.requests.push((i, request)),
                None => plan.groups.push(Group { server, requests: vec![(i, request)], sent: Vec::new() }),
            },
            Err(e) => plan.results[i] = Some(Err(e)),
        }
    }
    plan
}

impl BatchPlan {
    /// A `version` request for every server that has a request needing a newer release
    /// than the first stable meta protocol; empty in the common case.
    pub fn versions_needed(&self) -> Vec<(ServerAddr, Version)> {
        let needs = |g: &&Group| g.requests.iter().any(|(_, r)| r.required_version().is_some());
        self.groups.iter().filter(needs).map(|g| (g.server.clone(), Version::new())).collect()
    }

    /// Fails, alone, each request that its server's version (or the failure to learn it)
    /// rules out; the others stay in the plan.
    pub fn apply_versions(&mut self, answers: Vec<(ServerAddr, Result<String, Error>)>) {
        for (server, answer) in answers {
            let Some(group) = self.groups.iter_mut().find(|g| g.server == server) else { continue };
            let version = answer.and_then(|v| v.parse::<ServerVersion>());
            let (keep, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut group.requests)
                .into_iter()
                .map(|(i, r)| {
                    let verdict = match (&version, r.required_version()) {
                        (_, None) => Ok(()),
                        (Ok(v), Some(_)) => r.check_version(*v),
                        (Err(e), Some(_)) => Err(e.clone()),
                    };
                    (i, r, verdict)
                })
                .partition(|(_, _, verdict)| verdict.is_ok());
            group.requests = keep.into_iter().map(|(i, r, _)| (i, r)).collect();
            for (i, _, verdict) in refused {
                self.results[i] = verdict.err().map(Err);
            }
        }
    }

    /// Each server's quiet batch, to send; call once.
    pub fn take_batches(&mut self) -> Vec<(ServerAddr, MetaBatch)> {
        let mut batches = Vec::new();
        for g in self.groups.iter_mut().filter(|g| !g.requests.is_empty()) {
            let (sent, requests): (Vec<usize>, Vec<MetaRequest>) =
                std::mem::take(&mut g.requests).into_iter().unzip();
            g.sent = sent;
            batches.push((g.server.clone(), MetaBatch::new(requests)));
        }
        batches
    }

    /// Puts each server's answer back in input order. A server that failed as a whole
    /// (timeout, connection error) fails each of its requests with that error; a request
    /// with no answer at all fails with [`Error::Closed`].
    pub fn merge(self, answers: Vec<(ServerAddr, Result<BatchResults, Error>)>) -> BatchResults {
        let mut results = self.results;
        for (server, answer) in answers {
            let Some(group) = self.groups.iter().find(|g| g.server == server) else { continue };
            match answer {
                Ok(outcomes) => {
                    for (&i, outcome) in group.sent.iter().zip(outcomes) {
                        results[i] = Some(outcome);
                    }
                }
                Err(e) => {
                    for &i in &group.sent {
                        results[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        results.into_iter().map(|r| r.unwrap_or(Err(Error::Closed))).collect()
    }
}

/// The `version` request to send before `op` when it uses a flag newer than the first stable
/// meta protocol (to the server its key goes to); empty otherwise.
pub fn versions_for<O>(op: &Meta<O>, fleet: &Fleet, now: Instant) -> Result<Vec<(ServerAddr, Version)>, Error>
where
    Meta<O>: KeyedOp,
{
    if op.required_version().is_none() {
        return Ok(Vec::new());
    }
    Ok(vec![(pick(fleet, op.key().as_bytes(), now)?, Version::new())])
}

/// [`Error::Unsupported`] when the server's answer to [`versions_for`] predates a flag of
/// `op`; the error of the `version` request if it failed.
pub fn check_versions<O>(
    op: &Meta<O>,
    answers: Vec<(ServerAddr, Result<String, Error>)>,
) -> Result<(), Error> {
    for (_, answer) in answers {
        op.check_version(answer?.parse()?)?;
    }
    Ok(())
}
