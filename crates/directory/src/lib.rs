//! The mailhop directory (SPEC §2): the documents every routing decision
//! reads, loaded from a TOML file or a folder of TOML files, validated as a
//! whole (every problem reported as `FILE:LINE: field: reason`), with typed
//! values (sizes, durations, schedules, patterns, relay hosts, Notes names)
//! and O(1) name lookups. This crate does no network or store I/O; it reads
//! the directory files and the DKIM private keys they name, nothing else.
//!
//! API note: documents carry `file: Arc<Path>` beside `line`, so an error
//! found later can name both. Field paths count documents across all files
//! of a folder (`person[3]` is `Directory::persons[3]`).

mod config;
mod directory;
mod dkim;
mod docs;
mod error;
mod keywords;
mod names;
mod parse;
mod patterns;
mod reader;
mod relay;
mod size;
mod time;
mod warnings;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use config::{
    Config, ConfigTarget, ConfigurationDoc, Inbound, InboundDoc, Outbound, OutboundDoc, Rule,
    RuleAction, RuleCondition, RuleMatch,
};
pub use directory::{Directory, EntryRef};
pub use dkim::{DkimAlgorithm, DkimKey, DkimSigning, dkim_signing_for};
pub use docs::{
    AdjacentDomain, ConnectionDoc, DebugSettings, DomainDoc, ForeignSmtpDomain, GlobalDomain,
    Group, Listen, MailIn, NonAdjacentDomain, Person, ServerDoc, TlsFiles,
};
pub use error::{DirectoryError, DirectoryErrors, ValueError};
pub use keywords::{
    AddressLookup, ConnectionType, DmarcPolicy, DnsblAction, HostNameResolution, InternetAuth,
    LocalPartFrom, RelayEnforcement, SmtpAuth, SmtpReachable, SmtpWithinLocalDomain,
};
pub use names::NotesName;
pub use patterns::{Cidr, DomainPattern, HostPattern, ListEntry};
pub use relay::{RelayHost, RelayHosts, RelayTarget};
pub use size::Size;
pub use time::{DaySet, Schedule, TimeWindow, Weekday, format_duration, parse_duration};
pub use warnings::{NOT_APPLIED, not_applied};

use parse::Builder;

/// Parses a directory from text; `file` names it in errors, and its folder is
/// the base for relative paths.
pub fn parse_str(text: &str, file: &Path) -> Result<Directory, DirectoryErrors> {
    let mut builder = Builder::new(folder_of(file));
    builder.add_file(file, text);
    builder.finish(file, Vec::new())
}

/// Loads a directory file, or a folder of `*.toml` files read in name order
/// (their documents concatenated; `[domain]` and `[global_domain]` in one
/// file only).
pub fn load(path: &Path) -> Result<Directory, DirectoryErrors> {
    let unreadable = |reason: String| {
        DirectoryErrors(vec![DirectoryError::new(
            path.to_path_buf(),
            0,
            "file",
            reason,
        )])
    };
    let metadata = fs::metadata(path).map_err(|e| unreadable(format!("cannot read: {e}")))?;
    let mut sources = Vec::new();
    let (files, base_dir) = if metadata.is_dir() {
        sources.push((path.to_path_buf(), modified(&metadata)));
        let mut files: Vec<PathBuf> = fs::read_dir(path)
            .map_err(|e| unreadable(format!("cannot list the folder: {e}")))?
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(unreadable("no *.toml files in this folder".to_owned()));
        }
        (files, path.to_path_buf())
    } else {
        (vec![path.to_path_buf()], folder_of(path))
    };
    let mut builder = Builder::new(base_dir);
    for file in files {
        let read = fs::metadata(&file).and_then(|m| Ok((m, fs::read(&file)?)));
        match read {
            Ok((metadata, bytes)) => {
                match utf8(&bytes) {
                    Ok(text) => builder.add_file(&file, text),
                    Err((line, reason)) => builder.line_error(&file, line, "encoding", reason),
                }
                sources.push((file, modified(&metadata)));
            }
            Err(e) => builder.file_error(&file, "file", format!("cannot read: {e}")),
        }
    }
    builder.finish(path, sources)
}

/// The text of a directory file, or the line of its first byte that is not
/// UTF-8 and why.
fn utf8(bytes: &[u8]) -> Result<&str, (usize, String)> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
        let column = 1 + good.iter().rev().take_while(|&&b| b != b'\n').count();
        let byte = bytes.get(e.valid_up_to()).copied().unwrap_or_default();
        (
            line,
            format!(
                "not UTF-8: byte 0x{byte:02x} at column {column}; a directory file must be UTF-8"
            ),
        )
    })
}

fn folder_of(file: &Path) -> PathBuf {
    file.parent().map(Path::to_path_buf).unwrap_or_default()
}

fn modified(metadata: &fs::Metadata) -> SystemTime {
    metadata.modified().unwrap_or(UNIX_EPOCH)
}
