//! The meta protocol (`mg`, `ms`, `md`, `ma`, `mn`, `me`), typed.
//!
//! memcached's meta commands (stable since 1.6.10) do everything the classic commands do and
//! more: CAS on every command, TTL and access metadata, quiet pipelines matched by opaque
//! tokens, and the tools against thundering herds that no classic command has: leases (`N`,
//! answered `W`/`Z`) and stale-while-revalidate (`md .. I`, answered `X`, and `R`).
//!
//! - Builders: [`MetaGet`], [`MetaSet`], [`MetaDelete`], [`MetaArith`]. One method sets one
//!   wire flag (`.cas()` is `c`, `.lease(30)` is `N30`), flags go out in call order, keys
//!   that are not valid text go out in base64 with `b` ([`MetaKey`]).
//! - Outcomes: [`GetOutcome`], [`SetOutcome`], [`DeleteOutcome`], [`ArithOutcome`]; a miss
//!   or a failed condition is an outcome, not an error. Error lines are
//!   [`Error`](crate::Error)s, as for the classic commands.
//! - Operations: [`Meta`] (one request) and [`MetaBatch`] (a quiet batch, one round trip)
//!   implement [`Op`](crate::op::Op); [`Meta::lease`] is `get_or_lease`, read as [`Leased`].
//! - Version gating: flags newer than a server ([`ServerVersion`]) are refused before sending.
//!
//! The decoder reads meta replies as [`MetaReply`] frames ([`ReplyKind::Meta`] and
//! [`ReplyKind::MetaBatch`](crate::ReplyKind::MetaBatch)).
//!
//! [`ReplyKind::Meta`]: crate::ReplyKind::Meta

mod batch;
pub(crate) mod decode;
mod flags;
mod key;
mod op;
mod outcome;
mod plan;
mod reply;
mod request;
mod version;

pub use batch::MetaBatch;
pub(crate) use batch::encode as encode_batch;
pub use flags::Opaque;
pub use key::{MAX_BINARY_KEY_LEN, MetaKey};
pub use op::Meta;
pub use outcome::{
    ArithOutcome, DeleteOutcome, GetOutcome, Lease, Leased, MetaItem, MetaOutcome, MetaOutput, SetOutcome,
};
pub use plan::{BatchPlan, BatchResults, check_versions, plan_batch, versions_for};
pub use reply::{MetaReply, MetaStatus};
pub use request::{MetaArith, MetaDelete, MetaGet, MetaRequest, MetaSet, MetaVerb, SetMode};
pub use version::ServerVersion;
