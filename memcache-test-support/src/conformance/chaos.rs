//! A bounded chaos soak: every adapter, three real servers behind proxies that inject faults at
//! random, calls cancelled at random, every answer checked against a model (see [`crate::soak`]).

use std::time::Duration;

use super::Adapter;
use crate::fault::Chaos;
use crate::soak::{ChaosCluster, SoakConfig, soak};

/// 3,000 calls by 4 workers through 3 chaos proxies (2% of reply chunks get a fault), 5% of
/// the calls cancelled: no wrong answer, and faults were injected.
pub async fn chaos_soak_finds_no_wrong_answer<A: Adapter>() {
    let chaos = Chaos { seed: 11, per_million: 20_000, stall: Duration::from_millis(400) };
    let cluster = ChaosCluster::start(3, chaos);
    let cfg = SoakConfig {
        ops: 3_000,
        seed: 7,
        workers: 4,
        timeout: Duration::from_millis(200),
        cancel_percent: 5,
        prefix: "soak".into(),
    };
    let report = soak::<A>(&cluster, &cfg).await;
    let injected = cluster.injected();
    assert_eq!(report.wrong, 0, "wrong answers under chaos: {report:#?}, faults {injected:?}");
    assert_eq!(report.ops, cfg.ops, "every call was made");
    assert!(injected.values().sum::<usize>() > 0, "faults were injected: {injected:?}");
}
