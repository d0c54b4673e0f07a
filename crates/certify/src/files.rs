//! Reading and writing the PEM files, and the few certificate facts read
//! back from them.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use rcgen::{KeyPair, PublicKeyData};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::CertError;

/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificate files.
pub(crate) const CERT_MODE: u32 = 0o644;

pub(crate) fn io_error(path: &Path, action: &'static str, source: io::Error) -> CertError {
    CertError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// The file's bytes, or None if there is no such file.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CertError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, "cannot read", e)),
    }
}

/// The bytes of a certificate file and of its key file.
pub(crate) type Pair = (Vec<u8>, Vec<u8>);

/// Reads a pair of files (certificate, key): None if neither is there, an
/// error if only one is.
pub(crate) fn read_pair(cert: &Path, key: &Path) -> Result<Option<Pair>, CertError> {
    match (read_optional(cert)?, read_optional(key)?) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some((c, k))),
        (Some(_), None) => Err(CertError::MissingPair {
            missing: key.to_path_buf(),
            present: cert.to_path_buf(),
        }),
        (None, Some(_)) => Err(CertError::MissingPair {
            missing: cert.to_path_buf(),
            present: key.to_path_buf(),
        }),
    }
}

fn options(mode: u32) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
}

fn write_all(path: &Path, mut file: fs::File, bytes: &[u8]) -> Result<(), CertError> {
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, "cannot write", e))
}

/// Writes a file that must not exist yet.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let file = options(mode).create_new(true).open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            CertError::Exists {
                path: path.to_path_buf(),
            }
        } else {
            io_error(path, "cannot create", e)
        }
    })?;
    write_all(path, file, bytes)
}

/// Writes a file whole, replacing any old one at once (a temporary file
/// beside it, then renamed), with the given mode.
pub(crate) fn write_replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let tmp = path.with_file_name(name);
    let _ = fs::remove_file(&tmp);
    let file = options(mode)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| io_error(&tmp, "cannot create", e))?;
    write_all(&tmp, file, bytes)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&tmp, "cannot set the mode of", e))?;
    }
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_error(path, "cannot replace", e)
    })
}

/// Makes a folder (and its parents) if it is not there.
pub(crate) fn make_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|e| io_error(dir, "cannot create the folder", e))
}

/// All certificates of a PEM file, in order; an error if there are none.
pub(crate) fn parse_certs(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCertificate {
            path: path.to_path_buf(),
            reason: format!("unreadable PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(CertError::NotPem {
            path: path.to_path_buf(),
            what: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// The private key of a PEM file, and the same as an rcgen key pair.
pub(crate) fn parse_key(
    path: &Path,
    bytes: &[u8],
) -> Result<(PrivateKeyDer<'static>, KeyPair), CertError> {
    let key = PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => CertError::NotPem {
            path: path.to_path_buf(),
            what: "PRIVATE KEY",
        },
        e => CertError::BadKey {
            path: path.to_path_buf(),
            reason: format!("unreadable PEM: {e}"),
        },
    })?;
    let pair = KeyPair::try_from(&key).map_err(|e| CertError::BadKey {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok((key, pair))
}

/// PEM as files on Unix have it: LF line ends.
const PEM_CONFIG: pem::EncodeConfig = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);

/// PEM text of certificates, in order.
pub(crate) fn certs_pem(certs: &[&CertificateDer<'_>]) -> String {
    let pems: Vec<pem::Pem> = certs
        .iter()
        .map(|c| pem::Pem::new("CERTIFICATE", c.as_ref()))
        .collect();
    pem::encode_many_config(&pems, PEM_CONFIG)
}

/// PEM text of a private key, with the label of its encoding.
pub(crate) fn key_pem(key: &PrivateKeyDer<'_>) -> String {
    let tag = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    pem::encode_config(&pem::Pem::new(tag, key.secret_der()), PEM_CONFIG)
}

/// Parses one certificate.
pub(crate) fn parse_x509<'a>(
    path: &Path,
    der: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, CertError> {
    X509Certificate::from_der(der.as_ref())
        .map(|(_, cert)| cert)
        .map_err(|e| CertError::BadCertificate {
            path: path.to_path_buf(),
            reason: format!("not X.509: {e}"),
        })
}

/// The first common name of a certificate's subject.
pub(crate) fn subject_cn(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

/// The first common name of a certificate's issuer, or its whole issuer name.
pub(crate) fn issuer_name(cert: &X509Certificate<'_>) -> String {
    cert.issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| cert.issuer().to_string())
}

/// Whether `key` is the private key of `cert`.
pub(crate) fn key_matches(cert: &X509Certificate<'_>, key: &KeyPair) -> bool {
    cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
}

/// Whether `cert` was signed by the key of `issuer` and names it as issuer.
pub(crate) fn signed_by(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> bool {
    cert.issuer().as_raw() == issuer.subject().as_raw()
        && cert.verify_signature(Some(issuer.public_key())).is_ok()
}
