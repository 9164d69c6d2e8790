//! The conformance groups that apply to TLS, rerun against `memcached -Z` (a test binary of its
//! own: every server it starts serves TLS), on each runtime this crate is built with.

#[cfg(feature = "async-std")]
mod async_std {
    memcache_test_support::conformance_suite!(tls memcache_test_support::adapters::AsyncStd);
}

#[cfg(feature = "smol")]
mod smol {
    memcache_test_support::conformance_suite!(tls memcache_test_support::adapters::Smol);
}
