//! The store's errors: `StoreError` is what callers see (no database types in
//! it, so another backend can return the same); `Fault` is the internal error
//! of the SQLite code, turned into a `StoreError` at the boundary.

use thiserror::Error;

use crate::types::MessageId;

/// Why a store operation failed, in words an administrator can act on.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("cannot open the store in {path}: {reason}")]
    Open { path: String, reason: String },
    #[error(
        "the store in {path} was written by a newer mailhop (schema {found}, this one knows {known})"
    )]
    SchemaTooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error(
        "the store in {path} is in use by another mailhop process (pid {pid}); one process owns a data folder"
    )]
    Locked { path: String, pid: String },
    #[error("the store is not healthy: {0}")]
    Unhealthy(String),
    #[error("the store is open read-only")]
    ReadOnly,
    #[error("the store has shut down")]
    Closed,
    #[error("store database error: {0}")]
    Database(String),
    #[error("the store holds data it cannot read: {0}")]
    Corrupt(String),
    #[error("a message needs at least one recipient")]
    NoRecipients,
    #[error("no message {0} in the mail box")]
    NoSuchMessage(MessageId),
    #[error("no mail file {0}")]
    NoSuchMailFile(String),
    #[error("mail file {mail_file} has no folder {folder}")]
    NoSuchFolder { mail_file: String, folder: String },
    #[error("mail file {mail_file} already has a folder {folder}")]
    FolderExists { mail_file: String, folder: String },
    #[error("invalid folder name {name:?}: {reason}")]
    InvalidFolderName { name: String, reason: &'static str },
    #[error(
        "invalid keyword {0:?}: keywords are non-empty and have no spaces or control characters"
    )]
    InvalidKeyword(String),
}

/// Internal error of the SQLite layer.
#[derive(Debug)]
pub(crate) enum Fault {
    Sql(rusqlite::Error),
    Store(StoreError),
}

pub(crate) type Res<T> = Result<T, Fault>;

impl From<rusqlite::Error> for Fault {
    fn from(e: rusqlite::Error) -> Self {
        Fault::Sql(e)
    }
}

impl From<StoreError> for Fault {
    fn from(e: StoreError) -> Self {
        Fault::Store(e)
    }
}

impl From<serde_json::Error> for Fault {
    fn from(e: serde_json::Error) -> Self {
        Fault::Store(StoreError::Corrupt(e.to_string()))
    }
}

impl From<Fault> for StoreError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Store(e) => e,
            Fault::Sql(e @ rusqlite::Error::FromSqlConversionFailure(..))
            | Fault::Sql(e @ rusqlite::Error::IntegralValueOutOfRange(..))
            | Fault::Sql(e @ rusqlite::Error::InvalidColumnType(..)) => {
                StoreError::Corrupt(e.to_string())
            }
            Fault::Sql(e) => StoreError::Database(e.to_string()),
        }
    }
}
