//! The shared conformance suite, run against memcache-async-std.

memcache_test_support::conformance_suite!(memcache_test_support::adapters::AsyncStd);
