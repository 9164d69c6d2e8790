//! The conformance groups that apply to TLS, rerun against `memcached -Z` (a test binary of its
//! own: every server it starts serves TLS), on Tokio's multi-thread runtime.

memcache_test_support::conformance_suite!(tls memcache_test_support::adapters::Tokio);
