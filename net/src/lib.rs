//! Network clients of stratacache, kept out of the core (which does no I/O)
//! and out of the bindings (so a Rust service uses the same clients as
//! Python): [`memcached`] (text protocol, one round trip per batch, health
//! per server).
//!
//! No caching rule lives here: these clients move bytes.

#![forbid(unsafe_code)]

mod health;
pub mod memcached;
mod outcome;
pub mod redis;
mod resp;
mod tcp;

pub use outcome::{Outcome, ServerError, ServerHealth};

/// A client error that is not a server's failure within a batch (those are
/// in [`memcached::Outcome::failed`]).
///
/// ```
/// let e = stratacache_net::Error::Key("bad".into());
/// assert_eq!(e.to_string(), "bad");
/// ```
#[derive(Debug)]
pub enum Error {
    /// A key the server would refuse.
    Key(String),
    /// Bad settings.
    Config(String),
    /// A server failed an operation that must reach every server.
    Io(std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Key(m) | Error::Config(m) => f.write_str(m),
            Error::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
