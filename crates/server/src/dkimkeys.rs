//! `mailhop dkim keygen`: a new DKIM key for a domain, written as a PKCS#8
//! PEM file readable by its owner only (an existing file is never
//! overwritten), with the DNS TXT record to publish and the `dkim_sign`
//! entry to paste into the directory.
//!
//! Owns key generation (aws-lc-rs, the crypto provider rustls and mail-auth
//! use here) and the text of the record. Reads no directory, opens no
//! socket.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;

/// The key types `keygen` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// RSA 2048 bits (`rsa-sha256`): what every verifier accepts.
    Rsa,
    /// Ed25519 (`ed25519-sha256`, RFC 8463): small, not verified everywhere yet.
    Ed25519,
}

impl KeyAlgorithm {
    fn key_type(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::Ed25519 => "ed25519",
        }
    }
}

/// Why no key was made; the text is what the administrator reads.
#[derive(Debug)]
pub enum KeygenError {
    /// The domain or selector is not a DNS name.
    BadName { what: &'static str, name: String },
    /// The key file exists: keys are never overwritten.
    Exists(PathBuf),
    /// The key file could not be written.
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The crypto library could not make the key.
    Generate,
}

impl fmt::Display for KeygenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeygenError::BadName { what, name } => write!(
                f,
                "{what} {} is not a DNS name (letters, digits, '-' and '_' in labels separated by dots)",
                logsafe::shown(name)
            ),
            KeygenError::Exists(path) => write!(
                f,
                "{} exists; a key is never overwritten (choose another --out or --selector)",
                path.display()
            ),
            KeygenError::Write { path, error } => {
                write!(f, "cannot write the key {}: {error}", path.display())
            }
            KeygenError::Generate => f.write_str("the crypto library could not make a key"),
        }
    }
}

impl std::error::Error for KeygenError {}

/// What `keygen` made: where the key is, and the texts to publish and paste.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keygen {
    pub key_file: PathBuf,
    /// `S._domainkey.DOMAIN. IN TXT "v=DKIM1; k=...; p=..."`, the value cut
    /// into strings of at most 255 bytes.
    pub txt_record: String,
    /// The record's value, whole (what a DNS server answers, joined).
    pub txt_value: String,
    /// `dkim_sign = [{ domain = ..., selector = ..., key = ... }]`.
    pub directory_line: String,
}

/// The longest character-string of a TXT record (RFC 1035 §3.3).
const TXT_STRING: usize = 255;

/// Makes a key for `domain` with `selector` and writes it to `out`
/// (created with mode 0600; its folder is created, 0700, when missing).
pub fn keygen(
    domain: &str,
    selector: &str,
    algorithm: KeyAlgorithm,
    out: &Path,
) -> Result<Keygen, KeygenError> {
    let domain = dns_name("domain", domain)?;
    let selector = dns_name("selector", selector)?;
    let (pkcs8, public) = match algorithm {
        KeyAlgorithm::Rsa => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeygenError::Generate)?;
            let pkcs8: Pkcs8V1Der<'_> = pair.as_der().map_err(|_| KeygenError::Generate)?;
            // RSA: the SubjectPublicKeyInfo, as opendkim-genkey publishes.
            let spki: PublicKeyX509Der<'_> = pair
                .public_key()
                .as_der()
                .map_err(|_| KeygenError::Generate)?;
            (pkcs8.as_ref().to_vec(), spki.as_ref().to_vec())
        }
        KeyAlgorithm::Ed25519 => {
            let pair = Ed25519KeyPair::generate().map_err(|_| KeygenError::Generate)?;
            let pkcs8: Pkcs8V1Der<'_> = pair.as_der().map_err(|_| KeygenError::Generate)?;
            // Ed25519: the raw 32-byte public key (RFC 8463 §4.2).
            (pkcs8.as_ref().to_vec(), pair.public_key().as_ref().to_vec())
        }
    };
    write_key(out, &pem("PRIVATE KEY", &pkcs8))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let txt_value = format!(
        "v=DKIM1; k={}; p={}",
        algorithm.key_type(),
        b64.encode(&public)
    );
    let strings: Vec<String> = txt_value
        .as_bytes()
        .chunks(TXT_STRING)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    Ok(Keygen {
        key_file: out.to_path_buf(),
        txt_record: format!(
            "{selector}._domainkey.{domain}. IN TXT {}",
            strings.join(" ")
        ),
        txt_value,
        directory_line: format!(
            "dkim_sign = [{{ domain = \"{domain}\", selector = \"{selector}\", key = \"{}\" }}]",
            out.display()
                .to_string()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
        ),
    })
}

/// A DNS name, in lower case.
fn dns_name(what: &'static str, name: &str) -> Result<String, KeygenError> {
    let name = name.trim().trim_end_matches('.');
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(KeygenError::BadName {
            what,
            name: name.to_owned(),
        });
    }
    Ok(name.to_ascii_lowercase())
}

/// DER as PEM: base64 in lines of 64 characters between the labels.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a new file readable by its owner only; an existing file is an
/// error, never replaced (the file is created exclusively).
fn write_key(path: &Path, text: &str) -> Result<(), KeygenError> {
    let failed = |error: std::io::Error| KeygenError::Write {
        path: path.to_path_buf(),
        error,
    };
    if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty())
        && !folder.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(folder)
            .map_err(failed)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeygenError::Exists(path.to_path_buf())
            } else {
                failed(e)
            }
        })?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rsa_record_is_cut_into_strings_of_255_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("keys/acme.com.pem");
        let made = keygen("Acme.COM.", "mh2026", KeyAlgorithm::Rsa, &out).unwrap();
        assert!(
            made.txt_record
                .starts_with("mh2026._domainkey.acme.com. IN TXT \"v=DKIM1; k=rsa; p=MII")
        );
        let strings: Vec<&str> = made.txt_record.split('"').skip(1).step_by(2).collect();
        assert!(strings.len() >= 2, "{}", made.txt_record);
        assert!(strings.iter().all(|s| s.len() <= 255));
        assert_eq!(strings.concat(), made.txt_value);
        assert!(matches!(
            keygen("acme.com", "mh2026", KeyAlgorithm::Rsa, &out),
            Err(KeygenError::Exists(_))
        ));
        assert!(matches!(
            keygen(
                "acme com",
                "s",
                KeyAlgorithm::Ed25519,
                &dir.path().join("x")
            ),
            Err(KeygenError::BadName { what: "domain", .. })
        ));
        let ed = keygen(
            "acme.com",
            "ed",
            KeyAlgorithm::Ed25519,
            &dir.path().join("ed.pem"),
        )
        .unwrap();
        assert!(
            ed.txt_record
                .starts_with("ed._domainkey.acme.com. IN TXT \"v=DKIM1; k=ed25519; p=")
        );
        let p = ed.txt_value.rsplit_once("p=").unwrap().1;
        let raw = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
        assert_eq!(raw.len(), 32);
    }
}
