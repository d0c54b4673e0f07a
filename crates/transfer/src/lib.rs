//! transfer: outbound SMTP for mailhop. Gets one batch (a message and its
//! recipients for one destination) to the next SMTP hop: relay-host levels
//! (failover in order, load balancing within a level), or DNS MX / implicit
//! MX / null MX, or a local hosts file; EHLO, PIPELINING, SIZE, 8BITMIME,
//! opportunistic STARTTLS, per-recipient results, connection reuse.
//!
//! It does not touch the store and does not decide routing: the router
//! calls [`Transferer::send`] and settles the [`TransferReport`] itself.
//!
//! API note: `Attempt` has an extra field `tls: TlsState`; `Transferer::with_cache`,
//! `Transferer::set_client_debug` and `ConnectionCache` are additions.
//! The relay host types are the directory's (`directory::RelayHosts`),
//! re-exported here for convenience.

mod balance;
mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod hosts;
mod native;
mod outcome;
mod pool;
mod reply;
mod resolve;
mod tls;
mod transferer;

pub use config::{Resolution, TlsMode, TransferConfig};
pub use directory::{RelayHost, RelayHosts, RelayTarget};
pub use error::{PlanError, TransferError};
pub use native::{ITEMS_FIELD, Items, ItemsError, NativeTarget, NativeTls};
pub use outcome::{Attempt, Batch, Destination, RecipientResult, Target, TlsState, TransferReport};
pub use resolve::resolver_builder;
pub use transferer::{ConnectionCache, Transferer};
