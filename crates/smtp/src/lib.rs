//! The SMTP listener of mailhop: the inbound session state machine
//! (RFC 5321 with PIPELINING, SIZE, 8BITMIME, ENHANCEDSTATUSCODES, STARTTLS,
//! AUTH PLAIN/LOGIN, SMTPUTF8), implicit TLS, statistics and SMTPDebug logs.
//!
//! This crate knows SMTP, not routing: every policy decision and the storing
//! of a message are asked of the [`SessionHandler`] the server implements.
//! It adds the `Received:` trace header, since only the listener knows the
//! facts it records.
//!
//! API note: `SessionInfo::new`, `SessionInfo::plaintext_auth_allowed`,
//! `ListenerConfig::effective_auth`, `SmtpStats::new`, `next_session_id`
//! and the `Reply` constructors are additions to the contract.

mod auth;
mod config;
mod conn;
mod data;
#[doc(hidden)]
pub mod fuzzing;
mod handler;
mod message;
mod refusal;
mod reply;
mod server;
mod session;
mod stats;
mod trace;

pub use config::{AuthPolicy, ListenerConfig, ListenerKind, PeerIdentity};
pub use handler::{Envelope, SessionHandler, SessionInfo};
pub use refusal::Refusal;
pub use reply::Reply;
pub use server::{next_session_id, serve};
pub use session::run_session;
pub use stats::SmtpStats;
