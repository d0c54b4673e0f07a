//! Listener tests over real TCP on 127.0.0.1 (and in-memory streams for
//! the fuzz test), with a handler that records what it got.

mod clients;
mod common;
mod limits;
mod protocol;
mod robustness;
mod smuggling;
mod tls;
