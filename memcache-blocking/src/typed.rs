//! The blocking client's typed view: [`Client::typed`] and the calls of
//! [`memcache_proto::typed_calls!`].

use std::fmt;
use std::marker::PhantomData;

use memcache_proto::codec::Codec;

use crate::client::{Client, blocking_calls};

/// A view of a [`Client`] that stores and reads values of type `T` through the codec `C`
/// (gomemcache's `Item.Object`). Made by [`Client::typed`]; cheap to clone when `C` is, and
/// shares the client's connections.
pub struct Typed<C, T> {
    client: Client,
    codec: C,
    value: PhantomData<fn() -> T>,
}

impl Client {
    /// A typed view of this client: values of type `T`, turned into bytes and flags by
    /// `codec`, and checked against the flags when read (a value stored by another client or
    /// codec is [`Error::Codec`](crate::Error::Codec)).
    pub fn typed<T, C: Codec<T>>(&self, codec: C) -> Typed<C, T> {
        Typed { client: self.clone(), codec, value: PhantomData }
    }
}

impl<C: Codec<T>, T> Typed<C, T> {
    memcache_proto::typed_calls!(blocking_calls; this);

    /// The raw client underneath.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }
}

impl<C: Clone, T> Clone for Typed<C, T> {
    fn clone(&self) -> Self {
        Typed { client: self.client.clone(), codec: self.codec.clone(), value: PhantomData }
    }
}

impl<C: fmt::Debug, T> fmt::Debug for Typed<C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed")
            .field("codec", &self.codec)
            .field("value", &std::any::type_name::<T>())
            .finish()
    }
}
