//! The domain's certifier: the CA that signs every server ID of the domain.

use std::fmt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::{Duration, OffsetDateTime};

use crate::files::{self, CERT_MODE, KEY_MODE};
use crate::{CertError, ServerId, abbreviate, dns_name};

/// The certifier's certificate file, beside the directory file.
pub const CERTIFIER_CERT_FILE: &str = "certifier.pem";
/// The certifier's private key file (mode 0600), beside the directory file.
pub const CERTIFIER_KEY_FILE: &str = "certifier.key";

/// What a certifier's common name ends with after the domain name.
const CN_SUFFIX: &str = " certifier";
/// How long a certifier is valid.
const CERTIFIER_DAYS: i64 = 20 * 365 + 5;
/// How long a server ID is valid.
const SERVER_ID_DAYS: i64 = 10 * 365 + 3;
/// How far back validity starts, for clocks a little behind.
const BACKDATE: Duration = Duration::hours(1);

/// The domain's certifier: a CA key + self-signed certificate kept beside the
/// directory file: `<dir>/certifier.pem` (certificate) and
/// `<dir>/certifier.key` (private key, file mode 0600).
pub struct Certifier {
    dir: PathBuf,
    domain: String,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Certifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certifier")
            .field("dir", &self.dir)
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl Certifier {
    /// Creates the certifier in `dir` for Notes domain `domain` (CN =
    /// `"<domain> certifier"`, O = domain), failing if one exists. Makes `dir`
    /// if it is not there.
    pub fn create(dir: &Path, domain: &str) -> Result<Certifier, CertError> {
        let domain = domain.trim();
        if domain.is_empty() {
            return Err(CertError::InvalidDomain {
                name: domain.to_string(),
                reason: "empty",
            });
        }
        let cert_path = dir.join(CERTIFIER_CERT_FILE);
        let key_path = dir.join(CERTIFIER_KEY_FILE);
        for path in [&cert_path, &key_path] {
            if path.exists() {
                return Err(CertError::Exists { path: path.clone() });
            }
        }

        let key = KeyPair::generate().map_err(|source| CertError::Generate {
            what: "the certifier's key",
            source,
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{domain}{CN_SUFFIX}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, domain);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(CERTIFIER_DAYS);
        let cert = params
            .self_signed(&key)
            .map_err(|source| CertError::Generate {
                what: "the certifier's certificate",
                source,
            })?;

        files::make_dir(dir)?;
        // The key first: a certificate alone is never left without its key
        // by a crash between the two (a lone key is reported as a missing pair).
        files::write_new(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
        if let Err(e) = files::write_new(&cert_path, cert.pem().as_bytes(), CERT_MODE) {
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
        Ok(Certifier {
            dir: dir.to_path_buf(),
            domain: domain.to_string(),
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads the certifier of `dir`; Ok(None) if `dir` has none (neither
    /// file). Fails if only one of the two files is there, if either cannot
    /// be read, if the certificate is not a CA's, or if the key is not the
    /// certificate's.
    pub fn load(dir: &Path) -> Result<Option<Certifier>, CertError> {
        let cert_path = dir.join(CERTIFIER_CERT_FILE);
        let key_path = dir.join(CERTIFIER_KEY_FILE);
        let Some((cert_bytes, key_bytes)) = files::read_pair(&cert_path, &key_path)? else {
            return Ok(None);
        };
        let cert_der = files::parse_certs(&cert_path, &cert_bytes)?.remove(0);
        let (_, key) = files::parse_key(&key_path, &key_bytes)?;
        let x509 = files::parse_x509(&cert_path, &cert_der)?;
        let bad = |reason: &str| CertError::BadCertificate {
            path: cert_path.clone(),
            reason: reason.to_string(),
        };
        if !x509.is_ca() {
            return Err(bad("not a certifier (CA) certificate"));
        }
        if !files::key_matches(&x509, &key) {
            return Err(CertError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        let domain = x509
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .map(str::to_string)
            .or_else(|| {
                files::subject_cn(&x509)
                    .map(|cn| cn.strip_suffix(CN_SUFFIX).unwrap_or(&cn).to_string())
            })
            .ok_or_else(|| bad("no domain name (O or CN) in the subject"))?;
        drop(x509);
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| bad(&e.to_string()))?;
        Ok(Some(Certifier {
            dir: dir.to_path_buf(),
            domain,
            cert_pem: files::certs_pem(&[&cert_der]),
            cert_der,
            issuer,
        }))
    }

    /// Loads the certifier of `dir`, or creates it for `domain` if there is
    /// none. A loaded certifier keeps its own domain name.
    pub fn ensure(dir: &Path, domain: &str) -> Result<Certifier, CertError> {
        if let Some(certifier) = Certifier::load(dir)? {
            return Ok(certifier);
        }
        match Certifier::create(dir, domain) {
            // Another process created it first: take that one.
            Err(CertError::Exists { .. }) => {
                Certifier::load(dir)?.ok_or_else(|| CertError::MissingPair {
                    missing: dir.join(CERTIFIER_CERT_FILE),
                    present: dir.join(CERTIFIER_KEY_FILE),
                })
            }
            other => other,
        }
    }

    /// The certificate, in PEM form (the content of `certifier.pem`).
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The Notes domain the certifier is for.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The certifier's name (its certificate's CN, `"<domain> certifier"`).
    pub fn name(&self) -> String {
        files::parse_x509(&self.dir, &self.cert_der)
            .ok()
            .and_then(|c| files::subject_cn(&c))
            .unwrap_or_else(|| format!("{}{CN_SUFFIX}", self.domain))
    }

    /// The folder the certifier's files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a server ID for Notes server name `server` ("Mail/Acme" or
    /// "CN=Mail/O=Acme": both give the identity "Mail/Acme"): a new key and
    /// a certificate for it, valid 10 years, with the name as subject CN and
    /// [`dns_name`] as DNS subject alternative name, usable for both TLS
    /// server and client authentication. Nothing is written.
    pub fn issue(&self, server: &str) -> Result<ServerId, CertError> {
        let name = abbreviate(server)?;
        let dns = dns_name(&name);
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, name.as_str());
        params.subject_alt_names =
            vec![SanType::DnsName(dns.as_str().try_into().map_err(|_| {
                CertError::InvalidServerName {
                    name: server.to_string(),
                    reason: "no DNS name can be made of it",
                }
            })?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + Duration::days(SERVER_ID_DAYS);

        let key = KeyPair::generate().map_err(|source| CertError::Generate {
            what: "the server's key",
            source,
        })?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| CertError::Generate {
                what: "the server's certificate",
                source,
            })?;
        Ok(ServerId::from_parts(
            name,
            cert.der().clone(),
            self.cert_der.clone(),
            PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        ))
    }

    /// Whether `id` was issued by this certifier (its certificate is signed
    /// by this certifier's key).
    pub fn certified(&self, id: &ServerId) -> bool {
        let (Ok(cert), Ok(ca)) = (
            files::parse_x509(&self.dir, id.certificate_der()),
            files::parse_x509(&self.dir, &self.cert_der),
        ) else {
            return false;
        };
        files::signed_by(&cert, &ca)
    }
}
