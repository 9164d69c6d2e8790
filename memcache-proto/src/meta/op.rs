//! Meta requests as operations ([`Op`]): what adapters execute.

use std::marker::PhantomData;

use super::outcome::{ArithOutcome, DeleteOutcome, GetOutcome, Leased, MetaOutcome, MetaOutput};
use super::request::{MetaArith, MetaDelete, MetaGet, MetaRequest, MetaSet};
use super::version::ServerVersion;
use crate::op::{KeyedOp, Op, reply_error};
use crate::response::Response;
use crate::{Command, Error, Key};

/// One meta request on one key, read as `O` ([`GetOutcome`], [`SetOutcome`](super::SetOutcome),
/// [`Leased`], ...). Made from a builder with `From`, e.g. `Meta::from(MetaGet::new("k")?)`.
#[derive(Debug)]
pub struct Meta<O> {
    key: Key,
    command: Command,
    output: PhantomData<fn() -> O>,
}

impl<O> Meta<O> {
    fn new(request: MetaRequest) -> Meta<O> {
        Meta { key: request.wire_key().clone(), command: Command::Meta(request), output: PhantomData }
    }

    /// The request.
    pub fn request(&self) -> Option<&MetaRequest> {
        match &self.command {
            Command::Meta(r) => Some(r),
            _ => None,
        }
    }

    /// The release the request's newest flag needs, if it uses one (see
    /// [`MetaRequest::required_version`]): the caller then learns the server's version first.
    pub fn required_version(&self) -> Option<ServerVersion> {
        self.request().and_then(MetaRequest::required_version).map(|(_, v)| v)
    }

    /// [`Error::Unsupported`] when `server` predates a flag of the request.
    pub fn check_version(&self, server: ServerVersion) -> Result<(), Error> {
        self.request().map_or(Ok(()), |r| r.check_version(server))
    }
}

macro_rules! from_builder {
    ($b:ty => $o:ty) => {
        impl From<$b> for Meta<$o> {
            fn from(b: $b) -> Meta<$o> {
                Meta::new(b.into())
            }
        }
    };
}
from_builder!(MetaGet => GetOutcome);
from_builder!(MetaSet => super::SetOutcome);
from_builder!(MetaDelete => DeleteOutcome);
from_builder!(MetaArith => ArithOutcome);

impl Meta<Leased> {
    /// `get_or_lease(key, lease_ttl)`: `mg <key> v c f t N<lease_ttl>`. A miss creates an
    /// empty placeholder for `lease_ttl` seconds and makes this caller the one to fill it.
    pub fn lease(key: impl AsRef<[u8]>, lease_ttl: i32) -> Result<Meta<Leased>, Error> {
        Ok(Meta::new(MetaGet::new(key)?.cas().flags().ttl().lease(lease_ttl).into()))
    }
}

impl Meta<MetaOutcome> {
    /// Any keyed meta request, read as a [`MetaOutcome`].
    pub fn any(request: MetaRequest) -> Meta<MetaOutcome> {
        Meta::new(request)
    }
}

impl<O: MetaOutput> Op for Meta<O> {
    type Output = O;
    fn command(&self) -> &Command {
        &self.command
    }
    fn finish(self, response: Response) -> Result<O, Error> {
        match (response, &self.command) {
            (Response::Meta(reply), Command::Meta(request)) => O::from_reply(reply, request, false),
            (other, _) => Err(reply_error(other)),
        }
    }
}

impl<O: MetaOutput> KeyedOp for Meta<O> {
    fn key(&self) -> &Key {
        &self.key
    }
}
