//! The shared conformance suite (`memcache_test_support::conformance`), run against the blocking
//! client through its adapter in `memcache_test_support::adapters`: every call runs when the
//! suite asks for it, workers are threads.

memcache_test_support::conformance_suite!(memcache_test_support::adapters::Blocking);
