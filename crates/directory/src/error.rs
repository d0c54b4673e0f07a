//! Directory validation errors: one `FILE:LINE: field: reason` per problem.
//! Owns the error types only; it does not decide what is an error.

use std::fmt;
use std::path::PathBuf;

/// One problem found in a directory file.
///
/// `line` is 1-based; 0 means the problem is about the file as a whole (it
/// could not be read), and then the line is left out of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DirectoryError {
    pub file: PathBuf,
    pub line: usize,
    /// Dotted path of the field, e.g. `person[2].mail_server`.
    pub field: String,
    pub reason: String,
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(
                f,
                "{}: {}: {}",
                self.file.display(),
                self.field,
                self.reason
            )
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file.display(),
                self.line,
                self.field,
                self.reason
            )
        }
    }
}

/// Every problem found in a directory, in file and line order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DirectoryErrors(pub Vec<DirectoryError>);

impl fmt::Display for DirectoryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Why a value written in the directory (a size, a duration, a relay host
/// list, ...) cannot be used. The text is the reason an administrator reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl ValueError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}
