//! The shared conformance suite, run against memcache-async-std on each runtime it is built
//! with: async-std (feature `async-std`) and smol (feature `smol`).

#[cfg(feature = "async-std")]
mod async_std {
    memcache_test_support::conformance_suite!(memcache_test_support::adapters::AsyncStd);
}

#[cfg(feature = "smol")]
mod smol {
    memcache_test_support::conformance_suite!(memcache_test_support::adapters::Smol);
}
