//! The types every client crate re-exports, so that `memcache_blocking::Item`,
//! `memcache_tokio::Item` and `memcache_async_std::Item` are one type, and so on.

pub use crate::codec;
pub use crate::config::Builder;
pub use crate::meta;
pub use crate::multi::MultiOutcome;
pub use crate::observe;
pub use crate::{
    Error, FailurePolicy, Item, Ketama, ServerAddr, ServerList, ServerSelector, TlsError, TlsFailure,
};
