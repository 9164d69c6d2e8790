//! Multi-server calls: grouping a `get_multi` by server (and into commands within the
//! decoder's bounds), and merging per-server results.

use std::collections::HashMap;

use crate::op::GetMulti;
use crate::{Error, Item, Limits, ServerAddr, ServerSelector};

/// Validates every key (one bad key fails the whole call, before anything is sent) and groups
/// them by the server the selector picks, in order of first appearance.
pub fn plan_get_multi<S: AsRef<str>>(
    selector: &dyn ServerSelector,
    keys: impl IntoIterator<Item = S>,
) -> Result<Vec<(ServerAddr, GetMulti)>, Error> {
    let groups = crate::grouping::group(keys, selector, |_, _| Ok(None))?;
    Ok(groups.into_iter().map(|(s, keys)| (s, GetMulti::of(keys))).collect())
}

/// Splits each command of a `get_multi` plan into commands of at most
/// [`Limits::keys_per_get`] keys, in order, so that no reply can pass the decoder's bounds even
/// if every key hits with a value of the largest size: a reply over a bound poisons its
/// connection, and on a shared connection that fails other callers. A server may then appear
/// more than once in the plan, its commands next to each other.
pub fn fit(plan: Vec<(ServerAddr, GetMulti)>, limits: &Limits) -> Vec<(ServerAddr, GetMulti)> {
    let per_get = limits.keys_per_get();
    if plan.iter().all(|(_, get)| get.keys().len() <= per_get) {
        return plan;
    }
    let mut fitted = Vec::with_capacity(plan.len());
    for (server, get) in plan {
        if get.keys().len() <= per_get {
            fitted.push((server, get));
            continue;
        }
        for chunk in get.keys().chunks(per_get) {
            fitted.push((server.clone(), GetMulti::of(chunk)));
        }
    }
    fitted
}

/// The outcome of a call that asked several servers: what the healthy ones answered, and
/// which ones failed. `get_multi` keeps only the first failure; `get_multi_partial` returns
/// this whole, so one dead server does not cost the results of the others.
#[derive(Debug, Default)]
pub struct MultiOutcome<T> {
    /// Merged results of the servers that answered.
    pub items: T,
    /// The servers that failed, with their errors.
    pub failed: Vec<(ServerAddr, Error)>,
}

/// `make()`'s operation for every distinct server, in configuration order.
pub fn every_server<O>(selector: &dyn ServerSelector, mut make: impl FnMut() -> O) -> Vec<(ServerAddr, O)> {
    selector.servers().into_iter().map(|s| (s, make())).collect()
}

impl FromIterator<(ServerAddr, Result<HashMap<String, Item>, Error>)>
    for MultiOutcome<HashMap<String, Item>>
{
    fn from_iter<I: IntoIterator<Item = (ServerAddr, Result<HashMap<String, Item>, Error>)>>(
        answers: I,
    ) -> Self {
        let mut outcome = MultiOutcome::default();
        for (server, result) in answers {
            outcome.add(server, result);
        }
        outcome
    }
}

impl MultiOutcome<HashMap<String, Item>> {
    /// Adds one server's answer.
    pub fn add(&mut self, server: ServerAddr, result: Result<HashMap<String, Item>, Error>) {
        match result {
            Ok(items) if self.items.is_empty() => self.items = items,
            Ok(items) => self.items.extend(items),
            Err(e) => self.failed.push((server, e)),
        }
    }
}

impl<T> MultiOutcome<T> {
    /// The merged results, or the first failure.
    pub fn into_result(self) -> Result<T, Error> {
        match self.failed.into_iter().next() {
            Some((_, e)) => Err(e),
            None => Ok(self.items),
        }
    }
}

/// Every server's answer, or the first failure; [`Error::NoServers`] when there was no server
/// to ask (`flush_all` and `ping` of an empty list must not pretend to have reached one).
pub fn all_ok<T>(answers: Vec<(ServerAddr, Result<T, Error>)>) -> Result<Vec<T>, Error> {
    if answers.is_empty() {
        return Err(Error::NoServers);
    }
    answers.into_iter().map(|(_, r)| r).collect()
}

/// Every server's answer keyed by its address, or the first failure; [`Error::NoServers`]
/// when there was no server to ask.
pub fn by_server<T>(answers: Vec<(ServerAddr, Result<T, Error>)>) -> Result<HashMap<String, T>, Error> {
    if answers.is_empty() {
        return Err(Error::NoServers);
    }
    answers.into_iter().map(|(s, r)| r.map(|t| (s.to_string(), t))).collect()
}

/// Merges per-server `stats` answers keyed by server address; [`Error::NoStats`] when no
/// server answered.
pub fn merge_stats(
    answers: impl IntoIterator<Item = (ServerAddr, Result<HashMap<String, String>, Error>)>,
) -> Result<HashMap<String, HashMap<String, String>>, Error> {
    let all: HashMap<_, _> =
        answers.into_iter().filter_map(|(s, r)| r.ok().map(|stats| (s.to_string(), stats))).collect();
    if all.is_empty() { Err(Error::NoStats) } else { Ok(all) }
}
