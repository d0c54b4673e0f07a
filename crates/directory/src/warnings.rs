//! Fields mailhop reads and validates but does not act on yet: `mailhop
//! check` and `mailhop serve` name each one set to a value other than its
//! default, as `FILE:LINE: field: not applied yet (...)`, so an administrator
//! never believes a setting works when it does not. Warnings are not errors.
//! Owns the list of such fields; reads the directory files again only to
//! find the line of each field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::config::ConfigurationDoc;
use crate::directory::Directory;
use crate::error::DirectoryError;

/// The reason every warning gives.
pub const NOT_APPLIED: &str = "not applied yet (mailhop accepts it but does nothing with it)";

/// One warning per field that is set to a non-default value but has no
/// effect yet, in file and line order.
pub fn not_applied(dir: &Directory) -> Vec<DirectoryError> {
    let mut found = Found::default();
    for (i, doc) in dir.configurations.iter().enumerate() {
        configuration(&mut found, i, doc);
    }
    for (i, s) in dir.servers.iter().enumerate() {
        let at = |table, key| Place::new(&s.file, s.line, "server", i, vec![table, key]);
        if s.listen.http.is_some() {
            found.push(at("listen", "http"));
        }
        if s.debug.smtp_save_import_errors != 0 {
            found.push(at("debug", "SMTPSaveImportErrors"));
        }
    }
    found.finish()
}

fn configuration(found: &mut Found, i: usize, doc: &ConfigurationDoc) {
    let at = |keys: Vec<&'static str>| Place::new(&doc.file, doc.line, "configuration", i, keys);
    if doc.mailboxes.is_some_and(|n| n > 1) {
        found.push(at(vec!["mailboxes"]));
    }
}

/// Where a field is: the document (`top[index]`, header at `line` of `file`)
/// and the keys below it.
struct Place {
    file: PathBuf,
    line: usize,
    top: &'static str,
    index: usize,
    keys: Vec<&'static str>,
}

impl Place {
    fn new(
        file: &Path,
        line: usize,
        top: &'static str,
        index: usize,
        keys: Vec<&'static str>,
    ) -> Place {
        Place {
            file: file.to_path_buf(),
            line,
            top,
            index,
            keys,
        }
    }

    fn field(&self) -> String {
        let mut s = format!("{}[{}]", self.top, self.index);
        for k in &self.keys {
            s.push('.');
            s.push_str(k);
        }
        s
    }
}

#[derive(Default)]
struct Found(Vec<Place>);

impl Found {
    fn push(&mut self, place: Place) {
        self.0.push(place);
    }

    fn finish(self) -> Vec<DirectoryError> {
        let mut texts: HashMap<PathBuf, Option<String>> = HashMap::new();
        let mut out: Vec<DirectoryError> = self
            .0
            .into_iter()
            .map(|p| {
                let text = texts
                    .entry(p.file.clone())
                    .or_insert_with(|| std::fs::read_to_string(&p.file).ok());
                let line = text
                    .as_deref()
                    .and_then(|t| field_line(t, &p))
                    .unwrap_or(p.line);
                DirectoryError {
                    field: p.field(),
                    file: p.file,
                    line,
                    reason: NOT_APPLIED.to_owned(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.file, a.line, &a.field).cmp(&(&b.file, b.line, &b.field)));
        out
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |t| t.matches('\n').count() + 1)
}

type Value<'i> = Spanned<DeValue<'i>>;

fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// The line of the field's value: the document whose header is on the
/// document's line, then each key below it.
fn field_line(text: &str, place: &Place) -> Option<usize> {
    let (root, _) = DeTable::parse_recoverable(text);
    let DeValue::Array(docs) = get(root.get_ref(), place.top)?.get_ref() else {
        return None;
    };
    let doc = docs
        .iter()
        .find(|d| line_of(text, d.span().start) == place.line)?;
    let mut value = doc;
    for key in &place.keys {
        let DeValue::Table(t) = value.get_ref() else {
            return None;
        };
        value = get(t, key)?;
    }
    let start = match value.get_ref() {
        // `[[configuration.rule]]`: the first rule's header.
        DeValue::Array(items) if !items.is_empty() => {
            items.first().map_or(value.span().start, |f| f.span().start)
        }
        _ => value.span().start,
    };
    Some(line_of(text, start))
}
