//! One process owns a data folder: an exclusive `flock` on `mailhop.lock`
//! beside the database, taken before the database is opened and held until
//! the store is dropped (the kernel drops it when the process dies, so a
//! crash never leaves a stale lock). The file holds the owner's pid, for the
//! error a second process prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use crate::error::StoreError;

pub(crate) const LOCK_FILE: &str = "mailhop.lock";

pub(crate) fn acquire(dir: &Path) -> Result<File, StoreError> {
    let open_error = |e: std::io::Error| StoreError::Open {
        path: dir.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(open_error)?;
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(open_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(StoreError::Locked {
                path: dir.display().to_string(),
                pid: if pid.is_empty() {
                    "unknown".into()
                } else {
                    pid.to_owned()
                },
            });
        }
        Err(TryLockError::Error(e)) => return Err(open_error(e)),
    }
    // Only the owner writes the pid, so a reader never sees another's half-written one.
    file.set_len(0).map_err(open_error)?;
    file.seek(SeekFrom::Start(0)).map_err(open_error)?;
    write!(file, "{}", std::process::id()).map_err(open_error)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_folder_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = acquire(dir.path()).expect("first lock");
        match acquire(dir.path()) {
            Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        acquire(dir.path()).expect("free again once the owner is gone");
    }
}
