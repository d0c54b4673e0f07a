//! A server's ID: its certificate signed by the certifier, its key, and the
//! certifier's certificate, in the server's data folder.

use std::fmt;
use std::path::Path;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::files::{self, CERT_MODE, KEY_MODE};
use crate::{CertError, Certifier, abbreviate, dns_name};

/// The server ID's certificate chain (server certificate, then certifier
/// certificate), in the server's data folder.
pub const SERVER_ID_CERT_FILE: &str = "server.id.pem";
/// The server ID's private key (mode 0600), in the server's data folder.
pub const SERVER_ID_KEY_FILE: &str = "server.id.key";

/// A server's ID: its certificate (signed by the certifier), its key, and
/// the certifier's certificate.
pub struct ServerId {
    server: String,
    cert: CertificateDer<'static>,
    certifier: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerId")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Clone for ServerId {
    fn clone(&self) -> Self {
        ServerId {
            server: self.server.clone(),
            cert: self.cert.clone(),
            certifier: self.certifier.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl ServerId {
    pub(crate) fn from_parts(
        server: String,
        cert: CertificateDer<'static>,
        certifier: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> ServerId {
        ServerId {
            server,
            cert,
            certifier,
            key,
        }
    }

    /// Writes the ID into the server's data folder (made if not there):
    /// `server.id.pem` (cert chain: server cert then certifier cert) and
    /// `server.id.key` (mode 0600). Each file is replaced at once.
    pub fn write(&self, data_dir: &Path) -> Result<(), CertError> {
        files::make_dir(data_dir)?;
        files::write_replace(
            &data_dir.join(SERVER_ID_KEY_FILE),
            files::key_pem(&self.key).as_bytes(),
            KEY_MODE,
        )?;
        files::write_replace(
            &data_dir.join(SERVER_ID_CERT_FILE),
            self.chain_pem().as_bytes(),
            CERT_MODE,
        )
    }

    /// Loads the ID from the server's data folder; Ok(None) if it has none
    /// (neither file). Fails if only one file is there, if either cannot be
    /// read, if the chain lacks the certifier's certificate, if the server
    /// certificate names no server or is not signed by the certifier
    /// certificate after it, or if the key is not the certificate's.
    pub fn load(data_dir: &Path) -> Result<Option<ServerId>, CertError> {
        let cert_path = data_dir.join(SERVER_ID_CERT_FILE);
        let key_path = data_dir.join(SERVER_ID_KEY_FILE);
        let Some((cert_bytes, key_bytes)) = files::read_pair(&cert_path, &key_path)? else {
            return Ok(None);
        };
        let mut certs = files::parse_certs(&cert_path, &cert_bytes)?;
        let (key, pair) = files::parse_key(&key_path, &key_bytes)?;
        let bad = |reason: &str| CertError::BadCertificate {
            path: cert_path.clone(),
            reason: reason.to_string(),
        };
        if certs.len() < 2 {
            return Err(bad(
                "no certifier certificate after the server's (the file holds the server's \
                 certificate, then the certifier's)",
            ));
        }
        let certifier = certs.remove(1);
        let cert = certs.remove(0);
        let server = {
            let x509 = files::parse_x509(&cert_path, &cert)?;
            let ca = files::parse_x509(&cert_path, &certifier)?;
            if !ca.is_ca() {
                return Err(bad("the second certificate is not a certifier's (CA)"));
            }
            if !files::signed_by(&x509, &ca) {
                return Err(bad(
                    "the server certificate is not signed by the certifier certificate after it",
                ));
            }
            if !files::key_matches(&x509, &pair) {
                return Err(CertError::KeyMismatch {
                    key: key_path,
                    cert: cert_path,
                });
            }
            let cn = files::subject_cn(&x509)
                .ok_or_else(|| bad("no server name (CN) in the subject"))?;
            abbreviate(&cn).map_err(|e| bad(&e.to_string()))?
        };
        Ok(Some(ServerId {
            server,
            cert,
            certifier,
            key,
        }))
    }

    /// The server name it was issued to (abbreviated: "Mail/Acme").
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The DNS name in its certificate ([`dns_name`] of [`Self::server`]).
    pub fn dns_name(&self) -> String {
        dns_name(&self.server)
    }

    /// The server's certificate, DER.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certifier's certificate, DER.
    pub fn certifier_der(&self) -> &CertificateDer<'static> {
        &self.certifier
    }

    /// The name of the certifier that issued it (its issuer's CN).
    pub fn certifier_name(&self) -> String {
        files::parse_x509(Path::new(SERVER_ID_CERT_FILE), &self.cert)
            .map(|c| files::issuer_name(&c))
            .unwrap_or_default()
    }

    /// The chain presented to peers: server certificate, then certifier's.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.cert.clone(), self.certifier.clone()]
    }

    /// The chain in PEM form (the content of `server.id.pem`).
    pub fn chain_pem(&self) -> String {
        files::certs_pem(&[&self.cert, &self.certifier])
    }

    /// The private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }
}

/// What `serve` calls at start: the server's ID from its data folder; if it
/// has none and the certifier is at hand (Some), one is issued and written,
/// with nothing else to do. No certifier and no ID is
/// [`CertError::NoId`], whose message tells the administrator to run
/// `mailhop certify --server NAME` and copy the files. An ID issued to
/// another server name ([`CertError::OtherServer`]), or by another
/// certifier than the one at hand ([`CertError::OtherCertifier`]), is an
/// error naming both. Names compare as Notes names do, ignoring case.
pub fn ensure_server_id(
    data_dir: &Path,
    server: &str,
    certifier: Option<&Certifier>,
) -> Result<ServerId, CertError> {
    let name = abbreviate(server)?;
    match ServerId::load(data_dir)? {
        Some(id) => {
            if !id.server.eq_ignore_ascii_case(&name) {
                return Err(CertError::OtherServer {
                    path: data_dir.join(SERVER_ID_CERT_FILE),
                    issued_to: id.server,
                    expected: name,
                });
            }
            if let Some(certifier) = certifier
                && !certifier.certified(&id)
            {
                return Err(CertError::OtherCertifier {
                    path: data_dir.join(SERVER_ID_CERT_FILE),
                    server: id.server.clone(),
                    id_certifier: id.certifier_name(),
                    certifier: certifier.name(),
                });
            }
            Ok(id)
        }
        None => match certifier {
            Some(certifier) => {
                let id = certifier.issue(&name)?;
                id.write(data_dir)?;
                Ok(id)
            }
            None => Err(CertError::NoId {
                data_dir: data_dir.to_path_buf(),
                server: name,
            }),
        },
    }
}
