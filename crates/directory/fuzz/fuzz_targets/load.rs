//! The directory loader (`directory::load`) on arbitrary bytes, invalid
//! UTF-8 included, written to a directory file, or to a folder of
//! `*.toml` files when the input holds the line `# --- next file ---`
//! (each part one file, read in name order). A directory that loads is
//! then used as `check` and the router use it: the not-applied warnings,
//! each server's merged configuration, the name and address lookups.
//!
//! Checked: no panic; errors, never an empty list of them; a file read by
//! `load` and the same text given to `parse_str` give the same result.

#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const NEXT_FILE: &[u8] = b"\n# --- next file ---\n";

/// A folder of this process's own, on a memory file system when there is one.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("mailhop-fuzz-directory-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    })
}

fn split(input: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = input;
    while let Some(at) = rest.windows(NEXT_FILE.len()).position(|w| w == NEXT_FILE) {
        parts.push(&rest[..at + 1]);
        rest = &rest[at + NEXT_FILE.len()..];
    }
    parts.push(rest);
    parts
}

fn errors(result: &Result<directory::Directory, directory::DirectoryErrors>) -> Vec<String> {
    match result {
        Ok(_) => Vec::new(),
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without errors");
            errors.0.iter().map(ToString::to_string).collect()
        }
    }
}

/// What `mailhop check` and a server do with a directory that loaded.
fn exercise(dir: &directory::Directory) {
    let _ = directory::not_applied(dir);
    for server in &dir.servers {
        let _ = dir.config_for(&server.name);
        let _ = dir.server_by_str(&server.name.to_string());
        for domain in ["acme.com", "ACME.COM.", "", "x", &server.hostname] {
            let _ = dir.is_local_internet_domain(server, domain);
            let _ = dir.primary_domain_for(server, domain);
        }
    }
    for person in &dir.persons {
        if let Some(address) = dir.internet_address_of_person(person) {
            assert!(
                !dir.by_internet_address(&address).is_empty(),
                "{address} not found"
            );
        }
        let _ = dir.by_name(&person.full_name.to_string());
    }
}

fuzz_target!(|input: &[u8]| {
    let folder = scratch().join("folder");
    let parts = split(input);
    let result = if parts.len() > 1 {
        let _ = fs::remove_dir_all(&folder);
        fs::create_dir_all(&folder).unwrap();
        for (i, part) in parts.iter().enumerate() {
            fs::write(folder.join(format!("{i:02}.toml")), part).unwrap();
        }
        directory::load(&folder)
    } else {
        let file = scratch().join("directory.toml");
        fs::write(&file, input).unwrap();
        let loaded = directory::load(&file);
        if let Ok(text) = std::str::from_utf8(input) {
            let parsed = directory::parse_str(text, &file);
            assert_eq!(
                errors(&loaded),
                errors(&parsed),
                "load and parse_str differ"
            );
        }
        loaded
    };
    match &result {
        Ok(dir) => exercise(dir),
        Err(_) => {
            let _ = errors(&result);
        }
    }
});
