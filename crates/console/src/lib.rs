//! Console commands (SPEC §6).
//!
//! Owns the command language administrators type (`show stat mail`,
//! `tell router show queues`, ...): parsing into [`Command`], the data each
//! command answers with (plain structs, so the web console and `--json` reuse
//! them), and the Domino-format text scripts parse. Running a command against
//! a server is the `server` crate's job; this crate knows no sockets or stores.

mod format;
mod parse;

pub use format::*;
pub use parse::{Command, ParseError, ReleaseWhich, Task, parse};
