//! The async client's typed view: [`Client::typed`] and the calls of
//! [`typed_calls!`](crate::typed_calls).

use std::fmt;
use std::marker::PhantomData;

use super::client::{Client, Runtime, async_calls};
use crate::codec::Codec;

/// A view of a [`Client`] that stores and reads values of type `T` through the codec `C`
/// (gomemcache's `Item.Object`). Made by [`Client::typed`]; cheap to clone when `C` is, and
/// shares the client's connections.
pub struct Typed<R: Runtime, C, T> {
    client: Client<R>,
    codec: C,
    value: PhantomData<fn() -> T>,
}

impl<R: Runtime> Client<R> {
    /// A typed view of this client: values of type `T`, turned into bytes and flags by
    /// `codec`, and checked against the flags when read (a value stored by another client or
    /// codec is [`Error::Codec`](crate::Error::Codec)).
    pub fn typed<T, C: Codec<T>>(&self, codec: C) -> Typed<R, C, T> {
        Typed { client: self.clone(), codec, value: PhantomData }
    }
}

impl<R: Runtime, C: Codec<T>, T> Typed<R, C, T> {
    crate::typed_calls!(async_calls; this.await);

    /// The raw client underneath.
    pub fn client(&self) -> &Client<R> {
        &self.client
    }

    /// The codec.
    pub fn codec(&self) -> &C {
        &self.codec
    }
}

impl<R: Runtime, C: Clone, T> Clone for Typed<R, C, T> {
    fn clone(&self) -> Self {
        Typed { client: self.client.clone(), codec: self.codec.clone(), value: PhantomData }
    }
}

impl<R: Runtime, C: fmt::Debug, T> fmt::Debug for Typed<R, C, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed")
            .field("codec", &self.codec)
            .field("value", &std::any::type_name::<T>())
            .finish()
    }
}
