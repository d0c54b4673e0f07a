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

/// The most characters of a value an error quotes; a longer value is cut
/// and ends in `…`, so a 2 MB value makes no 2 MB error line.
pub(crate) const SHOWN_CHARS: usize = 80;

/// The most characters of a reason (the value it quotes included).
const REASON_CHARS: usize = 400;

/// A value from the directory as an error quotes it: in quotes, escaped as
/// `{:?}` does, at most [`SHOWN_CHARS`] characters of it.
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(SHOWN_CHARS) {
        None => format!("{value:?}"),
        Some((cut, _)) => {
            let mut quoted = format!("{:?}", &value[..cut]);
            quoted.insert(quoted.len() - 1, '…');
            quoted
        }
    }
}

/// A reason no longer than [`REASON_CHARS`] characters, whatever it quotes.
pub(crate) fn capped(reason: String) -> String {
    match reason.char_indices().nth(REASON_CHARS) {
        None => reason,
        Some((cut, _)) => format!("{}…", &reason[..cut]),
    }
}

impl DirectoryError {
    /// An error at `line` (0: the whole file), its reason capped.
    pub(crate) fn new(
        file: impl Into<PathBuf>,
        line: usize,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> DirectoryError {
        DirectoryError {
            file: file.into(),
            line,
            field: capped(field.into()),
            reason: capped(reason.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_quoted_short() {
        assert_eq!(shown("a\nb"), "\"a\\nb\"");
        let long = "x".repeat(2_000_000);
        let quoted = shown(&long);
        assert_eq!(quoted, format!("\"{}…\"", "x".repeat(SHOWN_CHARS)));
        assert_eq!(
            shown(&"é".repeat(SHOWN_CHARS)),
            format!("{:?}", "é".repeat(SHOWN_CHARS))
        );
        let reason = capped("r".repeat(10_000));
        assert_eq!(reason.chars().count(), REASON_CHARS + 1);
        assert!(reason.ends_with('…'));
    }
}
