//! Each server's ID for the native protocol, as Domino's server IDs under the
//! domain's certifier. Owns WHEN a certifier is created and an ID issued: the
//! certifier lives beside the directory file, and the first `serve` (or
//! `mailhop certify`) that needs one creates it; a server whose certifier is
//! at hand gets its ID on its first start, with nothing else to do. The files
//! and the cryptography are `certify`'s; no socket is opened here.

use std::path::{Path, PathBuf};

use certify::{CertError, Certifier, ServerId, ensure_server_id};

/// Where the domain's certifier is kept: the directory file's folder.
pub fn certifier_dir(directory_file: &Path) -> PathBuf {
    match directory_file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The ID of `server` from its data folder `data`. A server with no ID gets
/// one from the certifier beside `directory_file`; with no certifier there
/// either, this is the domain's first start, and the certifier is created.
/// A server that has an ID never causes a certifier to be created: copied
/// to another machine, it runs with its ID alone.
pub fn server_id(
    directory_file: &Path,
    domain: &str,
    server: &str,
    data: &Path,
) -> Result<ServerId, CertError> {
    let dir = certifier_dir(directory_file);
    let certifier = match Certifier::load(&dir)? {
        Some(c) => Some(c),
        None if ServerId::load(data)?.is_some() => None,
        None => Some(Certifier::ensure(&dir, domain)?),
    };
    ensure_server_id(data, server, certifier.as_ref())
}

/// `mailhop certify`: the certifier beside `directory_file` (created if
/// there is none) and, for `issue = Some((server, folder))`, a new ID for
/// that server written into `folder`. Returns what was done, one line each.
pub fn certify(
    directory_file: &Path,
    domain: &str,
    issue: Option<(&str, &Path)>,
) -> Result<Vec<String>, CertError> {
    let dir = certifier_dir(directory_file);
    let mut done = Vec::new();
    let certifier = match Certifier::load(&dir)? {
        Some(c) => {
            done.push(format!(
                "certifier: {} (kept)",
                dir.join(certify::CERTIFIER_CERT_FILE).display()
            ));
            c
        }
        None => {
            let c = Certifier::create(&dir, domain)?;
            done.push(format!(
                "certifier: {} and {} created for domain {domain}",
                dir.join(certify::CERTIFIER_CERT_FILE).display(),
                dir.join(certify::CERTIFIER_KEY_FILE).display()
            ));
            c
        }
    };
    if let Some((server, folder)) = issue {
        if ServerId::load(folder)?.is_some() {
            return Err(CertError::Io {
                path: folder.join(certify::SERVER_ID_CERT_FILE),
                action: "will not replace the server ID there",
                source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            });
        }
        std::fs::create_dir_all(folder).map_err(|source| CertError::Io {
            path: folder.to_path_buf(),
            action: "cannot create",
            source,
        })?;
        let id = certifier.issue(server)?;
        id.write(folder)?;
        done.push(format!(
            "server ID of {}: {} and {} (copy them into that server's data folder)",
            id.server(),
            folder.join(certify::SERVER_ID_CERT_FILE).display(),
            folder.join(certify::SERVER_ID_KEY_FILE).display()
        ));
    }
    Ok(done)
}
