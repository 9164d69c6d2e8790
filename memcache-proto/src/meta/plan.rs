//! `meta_batch` over several servers: one quiet batch per server, results in input order.

use super::batch::MetaBatch;
use super::outcome::MetaOutcome;
use super::request::MetaRequest;
use crate::{Error, ServerAddr, ServerSelector};

/// Where the results of each server's batch go in the caller's order.
#[derive(Debug)]
pub struct BatchPlan {
    /// For each group, the input index of each of its requests.
    slots: Vec<Vec<usize>>,
    /// Results known before sending (a key no server could be picked for).
    early: Vec<Option<Result<MetaOutcome, Error>>>,
}

/// Groups `requests` by the server the selector picks for each key, keeping their order
/// within a server. Returns each server's batch (in order of first appearance) and the plan
/// that puts the answers back in input order with [`BatchPlan::merge`].
pub fn plan_batch<R: Into<MetaRequest>>(
    selector: &dyn ServerSelector,
    requests: impl IntoIterator<Item = R>,
) -> (Vec<(ServerAddr, MetaBatch)>, BatchPlan) {
    let mut groups: Vec<(ServerAddr, Vec<MetaRequest>)> = Vec::new();
    let mut slots: Vec<Vec<usize>> = Vec::new();
    let mut early = Vec::new();
    for (i, request) in requests.into_iter().enumerate() {
        let request = request.into();
        match selector.pick_server(request.wire_key().as_bytes()) {
            Ok(server) => {
                early.push(None);
                let g = match groups.iter().position(|(s, _)| *s == server) {
                    Some(g) => g,
                    None => {
                        groups.push((server, Vec::new()));
                        slots.push(Vec::new());
                        groups.len() - 1
                    }
                };
                groups[g].1.push(request);
                slots[g].push(i);
            }
            Err(e) => early.push(Some(Err(e))),
        }
    }
    let batches = groups.into_iter().map(|(s, r)| (s, MetaBatch::new(r))).collect();
    (batches, BatchPlan { slots, early })
}

impl BatchPlan {
    /// Puts each server's answer (in the order of the batches [`plan_batch`] returned) back in
    /// input order. A server that failed as a whole (timeout, connection error) fails each of
    /// its requests with that error; an answer that is missing fails them with
    /// [`Error::Closed`].
    pub fn merge(
        self,
        answers: impl IntoIterator<Item = Result<Vec<Result<MetaOutcome, Error>>, Error>>,
    ) -> Vec<Result<MetaOutcome, Error>> {
        let mut results = self.early;
        let mut answers = answers.into_iter();
        for slots in self.slots {
            match answers.next().unwrap_or(Err(Error::Closed)) {
                Ok(outcomes) => {
                    let mut outcomes = outcomes.into_iter();
                    for i in slots {
                        results[i] = Some(outcomes.next().unwrap_or(Err(Error::Closed)));
                    }
                }
                Err(e) => {
                    for i in slots {
                        results[i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        results.into_iter().map(|r| r.unwrap_or(Err(Error::Closed))).collect()
    }
}
