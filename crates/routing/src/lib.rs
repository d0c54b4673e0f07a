//! The routing decision, as pure functions (SPEC §3).
//!
//! Input: a directory snapshot, the server doing the routing, and recipient
//! addresses. Output: what happens to each address — delivered into a mail
//! file here, expanded (groups), forwarded, transferred towards another
//! server, sent by SMTP, or failed with Domino's exact reason. No I/O and no
//! clock: the router, `trace` and the tests all call the same code.

mod address;
pub mod inbound;
mod policy;
mod postmaster;
mod resolve;
pub mod rules;
mod tables;
mod via;

pub use address::{Address, BadAddress};
pub use policy::{list_verdict, outbound_refusal};
pub use postmaster::{POSTMASTER_MAIL_FILE, is_postmaster, postmaster_target};
pub use resolve::{
    Action, Context, Failure, Route, SmtpVia, Step, resolve, resolve_all, route_to_server,
};
pub use tables::{CostRaises, Edge, EdgeKind, Hop, PathChoice, RESET_MS, RoutingTable};
pub use via::Via;
