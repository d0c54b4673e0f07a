//! `dkim_sign` of `[configuration.outbound]`: the domains whose mail is
//! DKIM-signed when it leaves by SMTP, each with its selector and private
//! key file.
//!
//! Owns reading and checking the key files (relative to the directory
//! file's folder; a regular file readable by its owner only; PKCS#8 PEM of
//! an RSA key of 1024 bits or more, or of an Ed25519 key). Does no
//! cryptography: the router builds the signers from the key's bytes, and
//! `server::load_directory` checks that each key loads.

use std::fmt;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{ValueError, shown};
use crate::patterns::domain_name;
use crate::reader::{MAX_LIST, Report, Table, checked, non_empty};

/// The largest key file read (an RSA-8192 PEM is about 6.5 KB).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// The smallest RSA modulus accepted (RFC 8301: 1024 bits at least).
const MIN_RSA_BITS: usize = 1024;

/// The signature algorithm a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimAlgorithm {
    /// `rsa-sha256`.
    Rsa,
    /// `ed25519-sha256` (RFC 8463).
    Ed25519,
}

impl DkimAlgorithm {
    /// The `k=` word of the DNS record.
    pub fn key_type(self) -> &'static str {
        match self {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        }
    }
}

impl fmt::Display for DkimAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key_type())
    }
}

/// A private key read from its file: the algorithm and the PKCS#8 DER bytes.
/// `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub algorithm: DkimAlgorithm,
    /// Where it was read from (absolute, or relative to the working folder
    /// as the directory's own path is).
    pub path: PathBuf,
    pkcs8: Arc<[u8]>,
}

impl DkimKey {
    /// The key as PKCS#8 DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

impl fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimKey")
            .field("algorithm", &self.algorithm)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// One entry of `dkim_sign`: mail whose From: domain is `domain` or one of
/// its subdomains is signed with `d=domain; s=selector`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimSigning {
    /// In lower case.
    pub domain: String,
    pub selector: String,
    pub key: DkimKey,
    pub file: Arc<Path>,
    pub line: usize,
}

impl DkimSigning {
    /// Is `domain` (a From: domain) this entry's domain or a subdomain of it?
    pub fn covers(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        domain.eq_ignore_ascii_case(&self.domain)
            || domain.len() > self.domain.len()
                && domain
                    .get(domain.len() - self.domain.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(&self.domain))
                && domain.as_bytes()[domain.len() - self.domain.len() - 1] == b'.'
    }
}

/// The entry of `signing` for a message whose From: domain is `domain`: the
/// most specific one that covers it.
pub fn dkim_signing_for<'a>(signing: &'a [DkimSigning], domain: &str) -> Option<&'a DkimSigning> {
    signing
        .iter()
        .filter(|s| s.covers(domain))
        .max_by_key(|s| s.domain.len())
}

/// `dkim_sign = [{ domain = "acme.com", selector = "mh2026", key = "dkim/acme.com.pem" }]`:
/// each entry with its key read from `base_dir`/`key`. A domain listed
/// twice is an error (which key would sign?).
pub(crate) fn read_dkim_sign(
    r: &mut Report,
    t: &Table<'_, '_>,
    base_dir: &Path,
) -> Option<Vec<DkimSigning>> {
    if !t.has("dkim_sign") {
        return None;
    }
    let entries = t.tables(r, "dkim_sign", 0);
    if entries.len() > MAX_LIST {
        r.error_at_line(
            t.line_of(r, "dkim_sign"),
            t.path("dkim_sign"),
            format!("too many entries ({}; at most {MAX_LIST})", entries.len()),
        );
        return Some(Vec::new());
    }
    let mut out: Vec<DkimSigning> = Vec::with_capacity(entries.len());
    for entry in &entries {
        entry.known(r, &["domain", "selector", "key"]);
        let domain = entry.req(r, "domain", checked(domain_name));
        let selector = entry.req(r, "selector", checked(selector));
        let written = entry.req(r, "key", non_empty);
        let key = written.and_then(|written| {
            read_key(&base_dir.join(&written), &written)
                .map_err(|why| r.error_at_line(entry.line_of(r, "key"), entry.path("key"), why))
                .ok()
        });
        let (Some(domain), Some(selector), Some(key)) = (domain, selector, key) else {
            continue;
        };
        if let Some(first) = out.iter().find(|s| s.domain == domain) {
            r.error_at_line(
                entry.line_of(r, "domain"),
                entry.path("domain"),
                format!(
                    "duplicate domain {} (first at line {}): one key signs a domain's mail",
                    shown(&domain),
                    first.line
                ),
            );
            continue;
        }
        out.push(DkimSigning {
            domain,
            selector,
            key,
            file: r.file.clone(),
            line: entry.line_of(r, "domain"),
        });
    }
    Some(out)
}

/// A selector: one or more DNS labels (`mh2026`, `2026.eu`).
fn selector(s: &str) -> Result<String, ValueError> {
    domain_name(s).map_err(|e| ValueError::new(format!("not a DKIM selector: {}", e.0)))
}

/// Reads the private key at `path` (`written` is the value as the
/// directory gives it, for the reason). The reason names the file and says
/// what to do.
pub(crate) fn read_key(path: &Path, written: &str) -> Result<DkimKey, String> {
    let name = shown(written);
    // Not opened before it is known to be a regular file: opening a FIFO
    // would wait for a writer.
    let metadata = fs::metadata(path).map_err(|e| format!("cannot read the key {name}: {e}"))?;
    if !metadata.is_file() {
        return Err(format!("the key {name} is not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "the key {name} may be read by other users (mode {mode:04o}); a private key \
                 must be readable by its owner only (chmod 600)"
            ));
        }
    }
    if metadata.len() > MAX_KEY_FILE {
        return Err(format!(
            "the key {name} is {} bytes, too big for a private key",
            metadata.len()
        ));
    }
    let mut bytes = Vec::new();
    fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read the key {name}: {e}"))?;
    let der = PrivatePkcs8KeyDer::from_pem_slice(&bytes).map_err(|_| {
        format!(
            "{name} is not a PKCS#8 private key in PEM (\"-----BEGIN PRIVATE KEY-----\"); \
             `mailhop dkim keygen` writes one, `openssl pkcs8 -topk8 -nocrypt` converts one"
        )
    })?;
    let der = der.secret_pkcs8_der();
    let algorithm = pkcs8_algorithm(der).map_err(|why| format!("{name}: {why}"))?;
    Ok(DkimKey {
        algorithm,
        path: path.to_path_buf(),
        pkcs8: Arc::from(der),
    })
}

/// `rsaEncryption` (1.2.840.113549.1.1.1).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// `id-Ed25519` (1.3.101.112).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// The algorithm of a PKCS#8 `PrivateKeyInfo`, with the key's shape
/// checked (an RSA modulus of at least 1024 bits, a 32-byte Ed25519 seed).
fn pkcs8_algorithm(der: &[u8]) -> Result<DkimAlgorithm, String> {
    let malformed = || "a malformed PKCS#8 private key".to_owned();
    let (info, _) = expect(der, 0x30).ok_or_else(malformed)?;
    let (_version, rest) = expect(info, 0x02).ok_or_else(malformed)?;
    let (algorithm, rest) = expect(rest, 0x30).ok_or_else(malformed)?;
    let (oid, _) = expect(algorithm, 0x06).ok_or_else(malformed)?;
    let (key, _) = expect(rest, 0x04).ok_or_else(malformed)?;
    if oid == OID_RSA {
        let (rsa, _) = expect(key, 0x30).ok_or_else(malformed)?;
        let (_version, rest) = expect(rsa, 0x02).ok_or_else(malformed)?;
        let (modulus, _) = expect(rest, 0x02).ok_or_else(malformed)?;
        let significant = modulus.iter().skip_while(|b| **b == 0).count();
        let bits = significant * 8;
        if bits < MIN_RSA_BITS {
            return Err(format!(
                "an RSA key of {bits} bits; DKIM needs at least {MIN_RSA_BITS} (2048 advised)"
            ));
        }
        Ok(DkimAlgorithm::Rsa)
    } else if oid == OID_ED25519 {
        match expect(key, 0x04) {
            Some((seed, _)) if seed.len() == 32 => Ok(DkimAlgorithm::Ed25519),
            _ => Err(malformed()),
        }
    } else {
        Err("a private key of an algorithm DKIM does not sign with (RSA or Ed25519)".to_owned())
    }
}

/// One DER element of type `tag` at the start of `input`: its content and
/// what follows it.
fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, mut rest) = rest.split_first()?;
    let len = if len < 0x80 {
        usize::from(len)
    } else {
        let n = usize::from(len & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, after) = rest.split_at(n);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signing(domain: &str) -> DkimSigning {
        DkimSigning {
            domain: domain.to_owned(),
            selector: "s".to_owned(),
            key: DkimKey {
                algorithm: DkimAlgorithm::Ed25519,
                path: PathBuf::new(),
                pkcs8: Arc::from(&[][..]),
            },
            file: Arc::from(Path::new("d.toml")),
            line: 1,
        }
    }

    #[test]
    fn a_domain_covers_itself_and_its_subdomains_only() {
        let s = signing("acme.com");
        assert!(s.covers("acme.com"));
        assert!(s.covers("ACME.com."));
        assert!(s.covers("mail.acme.com"));
        assert!(!s.covers("notacme.com"));
        assert!(!s.covers("acme.com.evil"));
        assert!(!s.covers("com"));
        let all = [signing("acme.com"), signing("eu.acme.com")];
        assert_eq!(
            dkim_signing_for(&all, "x.eu.acme.com").map(|s| s.domain.as_str()),
            Some("eu.acme.com")
        );
        assert_eq!(
            dkim_signing_for(&all, "us.acme.com").map(|s| s.domain.as_str()),
            Some("acme.com")
        );
        assert!(dkim_signing_for(&all, "example.org").is_none());
    }

    #[test]
    fn der_lengths_are_bounded_by_the_input() {
        assert_eq!(
            expect(&[0x30, 0x02, 1, 2, 3], 0x30),
            Some((&[1, 2][..], &[3][..]))
        );
        assert_eq!(expect(&[0x30, 0x03, 1, 2], 0x30), None);
        assert_eq!(expect(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff], 0x30), None);
        assert_eq!(expect(&[0x30, 0x80], 0x30), None);
        assert_eq!(expect(&[0x02, 0x00], 0x30), None);
        assert!(pkcs8_algorithm(&[]).is_err());
        // An Ed25519 PKCS#8 v1 key (RFC 8410's example).
        let ed = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20, 0xd4, 0xee, 0x72, 0xdb, 0xf9, 0x13, 0x58, 0x4a, 0xd5, 0xb6, 0xd8, 0xf1,
            0xf7, 0x69, 0xf8, 0xad, 0x3a, 0xfe, 0x7c, 0x28, 0xcb, 0xf1, 0xd4, 0xfb, 0xe0, 0x97,
            0xa8, 0x8f, 0x44, 0x75, 0x58, 0x42,
        ];
        assert_eq!(pkcs8_algorithm(&ed), Ok(DkimAlgorithm::Ed25519));
    }
}
