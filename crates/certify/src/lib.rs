//! certify: how the servers of one mailhop domain know each other, as Domino
//! server IDs do under the domain's certifier.
//!
//! This crate owns:
//! - the domain's [`Certifier`]: a CA key and self-signed certificate kept
//!   beside the directory file (`certifier.pem`, `certifier.key`);
//! - each server's [`ServerId`]: a certificate for its Notes server name,
//!   signed by the certifier, kept in the server's data folder
//!   (`server.id.pem`, `server.id.key`);
//! - [`ensure_server_id`], what `serve` calls at start to have an ID;
//! - [`DomainTls`]: the mutual-TLS rustls configurations the native transfer
//!   listener (`listen.native`) and its client use, trusting only the
//!   certifier, and [`peer_server`] to read who is on the other side.
//!
//! It does not touch the directory, the store, routing or any socket: it
//! reads and writes only the four files above, and callers run the
//! connections. It uses the aws-lc-rs crypto provider explicitly, so it works
//! whether or not a process-wide rustls provider is installed.

mod certifier;
mod error;
mod files;
mod id;
mod name;
mod selfsigned;
mod tls;

pub use certifier::{CERTIFIER_CERT_FILE, CERTIFIER_KEY_FILE, Certifier};
pub use error::CertError;
pub use id::{SERVER_ID_CERT_FILE, SERVER_ID_KEY_FILE, ServerId, ensure_server_id};
pub use name::{DNS_SUFFIX, abbreviate, dns_name};
pub use selfsigned::{RENEW_WITHIN_DAYS, SELF_SIGNED_DAYS, renew_if_near_end, self_signed};
pub use tls::{DomainTls, peer_server, server_name};
