//! Errors that stop the relay from starting or running. Errors caused by a client are
//! not here: they are protocol replies (`meshwire_protocol::ErrorCode`), sent on the
//! client's socket by `connection`.

use std::fmt;

/// Why [`crate::run`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Options that do not fit together; the message says what to change.
    Config(String),
    /// A JWT public key or secret could not be loaded.
    Auth(String),
    /// The listener failed.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "invalid configuration: {m}"),
            Error::Auth(m) => write!(f, "cannot load auth keys: {m}"),
            Error::Io(e) => write!(f, "i/o error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
