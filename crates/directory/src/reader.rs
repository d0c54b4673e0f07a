//! Walks a parsed TOML document with its spans: typed field access that
//! records a `FILE:LINE: field: reason` error for every missing, unknown,
//! mistyped or invalid field and goes on. Owns the mechanics of reading, not
//! the meaning of any document.

use std::borrow::Cow;
use std::fmt::Display;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{DirectoryError, ValueError};

/// The most entries a list field may hold (`members` of a group:
/// [`MAX_MEMBERS`]).
pub(crate) const MAX_LIST: usize = 1_000;
/// The most members a group may list (nest groups for more).
pub(crate) const MAX_MEMBERS: usize = 10_000;

type Value<'i> = Spanned<DeValue<'i>>;
type Key<'i> = Spanned<Cow<'i, str>>;

/// Byte offset → 1-based line.
struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self(starts)
    }

    fn line(&self, offset: usize) -> usize {
        self.0.partition_point(|&start| start <= offset).max(1)
    }
}

/// The errors of one file.
pub(crate) struct Report {
    pub(crate) file: Arc<Path>,
    lines: LineIndex,
    pub(crate) errors: Vec<DirectoryError>,
}

impl Report {
    pub(crate) fn new(file: Arc<Path>, text: &str) -> Self {
        Self {
            file,
            lines: LineIndex::new(text),
            errors: Vec::new(),
        }
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.lines.line(offset)
    }

    pub(crate) fn error_at_line(&mut self, line: usize, field: String, reason: impl Display) {
        self.errors.push(DirectoryError::new(
            self.file.to_path_buf(),
            line,
            field,
            reason.to_string(),
        ));
    }

    pub(crate) fn error(&mut self, offset: usize, field: String, reason: impl Display) {
        self.error_at_line(self.line(offset), field, reason);
    }
}

/// A TOML table being read, with the dotted path of its fields.
pub(crate) struct Table<'t, 'i> {
    entries: Vec<(&'t Key<'i>, &'t Value<'i>)>,
    path: String,
    /// Offset of the table's header (or inline table).
    at: usize,
    ignore_case: bool,
}

impl<'t, 'i> Table<'t, 'i> {
    pub(crate) fn root(table: &'t Spanned<DeTable<'i>>) -> Self {
        Self {
            entries: table.get_ref().iter().collect(),
            path: String::new(),
            at: 0,
            ignore_case: false,
        }
    }

    fn of(report: &mut Report, value: &'t Value<'i>, path: String) -> Option<Self> {
        match value.get_ref() {
            DeValue::Table(table) => Some(Self {
                entries: table.iter().collect(),
                path,
                at: value.span().start,
                ignore_case: false,
            }),
            other => {
                report.error(
                    value.span().start,
                    path,
                    format!("expected a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    /// Field names of this table match regardless of case (notes.ini habit).
    pub(crate) fn ignoring_case(mut self) -> Self {
        self.ignore_case = true;
        self
    }

    pub(crate) fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Line of the table's header.
    pub(crate) fn line(&self, report: &Report) -> usize {
        report.line(self.at)
    }

    /// Line of a field's value, or of the header when the field is absent.
    pub(crate) fn line_of(&self, report: &Report, key: &str) -> usize {
        report.line(self.get(key).map_or(self.at, |v| v.span().start))
    }

    fn same_key(&self, a: &str, b: &str) -> bool {
        if self.ignore_case {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    }

    fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        self.entries
            .iter()
            .find(|(k, _)| self.same_key(k.get_ref(), key))
            .map(|(_, v)| *v)
    }

    /// Reports every field not in `known`.
    pub(crate) fn known(&self, report: &mut Report, known: &[&str]) {
        for (key, _) in &self.entries {
            if !known.iter().any(|k| self.same_key(k, key.get_ref())) {
                report.error(
                    key.span().start,
                    self.path(key.get_ref()),
                    format!("unknown field (expected one of: {})", known.join(", ")),
                );
            }
        }
    }

    /// An optional field; `None` when absent or invalid (then reported).
    pub(crate) fn opt<T>(
        &self,
        report: &mut Report,
        key: &str,
        convert: impl FnOnce(&DeValue<'i>) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.get(key)?;
        convert(value.get_ref())
            .map_err(|reason| report.error(value.span().start, self.path(key), reason))
            .ok()
    }

    /// A required field; a missing one is reported at the table's header.
    pub(crate) fn req<T>(
        &self,
        report: &mut Report,
        key: &str,
        convert: impl FnOnce(&DeValue<'i>) -> Result<T, String>,
    ) -> Option<T> {
        if self.get(key).is_none() {
            report.error(self.at, self.path(key), "missing field");
            return None;
        }
        self.opt(report, key, convert)
    }

    /// An optional array of at most [`MAX_LIST`] entries; each bad element
    /// is reported as `key[i]`.
    pub(crate) fn list<T>(
        &self,
        report: &mut Report,
        key: &str,
        convert: impl Fn(&DeValue<'i>) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        self.list_at_most(report, key, MAX_LIST, convert)
    }

    /// An optional array of at most `most` entries; each bad element is
    /// reported as `key[i]`.
    pub(crate) fn list_at_most<T>(
        &self,
        report: &mut Report,
        key: &str,
        most: usize,
        convert: impl Fn(&DeValue<'i>) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let value = self.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            report.error(
                value.span().start,
                self.path(key),
                format!("expected an array, found {}", value.get_ref().type_str()),
            );
            return None;
        };
        if items.len() > most {
            report.error(
                value.span().start,
                self.path(key),
                format!("too many entries ({}; at most {most})", items.len()),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match convert(item.get_ref()) {
                Ok(v) => out.push(v),
                Err(reason) => {
                    report.error(
                        item.span().start,
                        format!("{}[{i}]", self.path(key)),
                        reason,
                    );
                }
            }
        }
        Some(out)
    }

    /// An optional sub-table (`[server.listen]`, `tls = { ... }`).
    pub(crate) fn table(&self, report: &mut Report, key: &str) -> Option<Table<'t, 'i>> {
        Table::of(report, self.get(key)?, self.path(key))
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// An optional array of tables (`[[server]]`), each with path
    /// `key[first + i]`.
    pub(crate) fn tables(
        &self,
        report: &mut Report,
        key: &str,
        first: usize,
    ) -> Vec<Table<'t, 'i>> {
        let Some(value) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            report.error(
                value.span().start,
                self.path(key),
                format!(
                    "expected an array of tables ([[{key}]]), found {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                Table::of(report, item, format!("{}[{}]", self.path(key), first + i))
            })
            .collect()
    }
}

/// A string value.
pub(crate) fn text<'v>(value: &'v DeValue<'_>) -> Result<&'v str, String> {
    value
        .as_str()
        .ok_or_else(|| format!("expected a string, found {}", value.type_str()))
}

/// A string value, owned and trimmed.
pub(crate) fn string(value: &DeValue<'_>) -> Result<String, String> {
    text(value).map(|s| s.trim().to_owned())
}

/// A non-empty string value, trimmed.
pub(crate) fn non_empty(value: &DeValue<'_>) -> Result<String, String> {
    string(value).and_then(|s| {
        if s.is_empty() {
            Err("must not be empty".to_owned())
        } else {
            Ok(s)
        }
    })
}

/// A string that parses as `T`.
pub(crate) fn parsed<T: FromStr<Err = ValueError>>(value: &DeValue<'_>) -> Result<T, String> {
    text(value)?.parse().map_err(|e: ValueError| e.0)
}

/// A string checked by `check`.
pub(crate) fn checked<T>(
    check: impl Fn(&str) -> Result<T, ValueError>,
) -> impl Fn(&DeValue<'_>) -> Result<T, String> {
    move |value| check(text(value)?).map_err(|e| e.0)
}

pub(crate) fn boolean(value: &DeValue<'_>) -> Result<bool, String> {
    value
        .as_bool()
        .ok_or_else(|| format!("expected true or false, found {}", value.type_str()))
}

fn integer(value: &DeValue<'_>) -> Result<i64, String> {
    let int = value
        .as_integer()
        .ok_or_else(|| format!("expected an integer, found {}", value.type_str()))?;
    i64::from_str_radix(int.as_str(), int.radix()).map_err(|_| "integer out of range".to_owned())
}

/// An integer in `lo..=hi`.
pub(crate) fn int_in<T: TryFrom<i64>>(
    lo: i64,
    hi: i64,
) -> impl Fn(&DeValue<'_>) -> Result<T, String> {
    move |value| {
        let n = integer(value)?;
        if !(lo..=hi).contains(&n) {
            return Err(format!("{n} is out of range {lo}..{hi}"));
        }
        T::try_from(n).map_err(|_| format!("{n} is out of range {lo}..{hi}"))
    }
}

/// An integer among `choices`.
pub(crate) fn int_of(choices: &'static [u8]) -> impl Fn(&DeValue<'_>) -> Result<u8, String> {
    move |value| {
        let n = integer(value)?;
        choices
            .iter()
            .copied()
            .find(|c| i64::from(*c) == n)
            .ok_or_else(|| {
                let list: Vec<String> = choices.iter().map(u8::to_string).collect();
                format!("{n} is not one of {}", list.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let index = LineIndex::new("a\nbc\n\nd");
        assert_eq!(index.line(0), 1);
        assert_eq!(index.line(1), 1);
        assert_eq!(index.line(2), 2);
        assert_eq!(index.line(5), 3);
        assert_eq!(index.line(6), 4);
        assert_eq!(index.line(600), 4);
    }
}
