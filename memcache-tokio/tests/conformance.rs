//! The shared conformance suite, run against memcache-tokio on both Tokio runtimes.

mod multi_thread {
    memcache_test_support::conformance_suite!(memcache_test_support::adapters::Tokio);
}

mod current_thread {
    memcache_test_support::conformance_suite!(memcache_test_support::adapters::TokioCt);
}
