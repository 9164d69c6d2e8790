//! [`TypedView`]: the typed calls of [`memcache_proto::typed_calls!`] as a trait, so the
//! conformance suite reaches every client's typed view (`client.typed(codec)`) the way
//! [`Adapter`](crate::conformance::Adapter) reaches its raw calls.

use std::future::Future;

use memcache_proto::codec::Codec;
use memcache_proto::driver::{self, Runtime};

/// Declares the typed calls: `fn call(&self, args..)` returning a future of the result.
macro_rules! declare_typed {
    (@this $c:ident $(. $aw:ident)?; $(
        $(#[$doc:meta])*
        fn $name:ident $([$($generics:tt)*])? ($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block
    )*) => {$(
        #[doc = concat!("`Typed::", stringify!($name), "`.")]
        fn $name $(<$($generics)*>)? (&self, $($arg: $ty),*) -> impl Future<Output = $out> + Send;
    )*};
}

/// Implements the typed calls by calling the view's own method of the same name: awaited
/// for an async client, wrapped in a ready future for the blocking one.
macro_rules! forward_typed {
    (@this $c:ident . await; $($calls:tt)*) => { forward_typed!(@wrap std::convert::identity; $($calls)*); };
    (@this $c:ident; $($calls:tt)*) => { forward_typed!(@wrap std::future::ready; $($calls)*); };
    (@wrap $wrap:path; $(
        $(#[$doc:meta])*
        fn $name:ident $([$($generics:tt)*])? ($($arg:ident: $ty:ty),* $(,)?) -> $out:ty $body:block
    )*) => {$(
        fn $name $(<$($generics)*>)? (&self, $($arg: $ty),*) -> impl Future<Output = $out> + Send {
            $wrap(self.$name($($arg),*))
        }
    )*};
}

/// A client's typed view for values of type `T`, as the conformance suite calls it.
pub trait TypedView<T>: Send + Sync {
    memcache_proto::typed_calls!(declare_typed; this);
}

impl<C, T> TypedView<T> for memcache_blocking::Typed<C, T>
where
    C: Codec<T> + Send + Sync,
    T: Send + Sync,
{
    memcache_proto::typed_calls!(forward_typed; this);
}

impl<R: Runtime, C, T> TypedView<T> for driver::Typed<R, C, T>
where
    C: Codec<T> + Send + Sync,
    T: Send + Sync,
{
    memcache_proto::typed_calls!(forward_typed; this.await);
}
