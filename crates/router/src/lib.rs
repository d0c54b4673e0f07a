//! The router task (SPEC §3, §5).
//!
//! Takes messages from the mail box, asks `routing` what happens to each
//! recipient, delivers into mail files, writes Delivery Failure Reports, marks
//! messages Held or Dead, and settles every outcome in the store in one
//! transaction per batch. It keeps the counters behind `show stat mail` and
//! the routing event log. It knows nothing of SMTP sessions.

pub mod dkim;
mod events;
mod native;
mod outbound;
mod plan;
mod schedule;
mod snapshot;
mod work;

pub use events::{RouterStats, Verbosity};
pub use snapshot::Snapshot;
pub use work::{Router, RouterShared, describe};
