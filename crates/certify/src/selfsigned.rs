//! The certificate a server makes for itself when nobody gave it one (the
//! zero-configuration data folder): named for the server's host name, with
//! `localhost`, 127.0.0.1 and ::1 as alternative names so a client on this
//! machine can verify it, valid for a year, and renewed with the same key
//! when it nears its end. Owns those two files; knows nothing of the
//! domain's certifier.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use rcgen::{CertificateParams, DnType, KeyPair, SanType};
use time::{Duration, OffsetDateTime};

use crate::CertError;
use crate::files::{self, KEY_MODE};

/// How long a self-made certificate is valid.
pub const SELF_SIGNED_DAYS: i64 = 365;
/// A certificate with less left than this is renewed at start.
pub const RENEW_WITHIN_DAYS: i64 = 30;
/// How far back validity starts, for clocks a little behind.
const BACKDATE: Duration = Duration::hours(1);

fn params(hostname: &str, now: OffsetDateTime) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, hostname);
    let mut names = Vec::new();
    for dns in [hostname, "localhost"] {
        let name = dns.try_into().map_err(|e| CertError::Generate {
            what: "the certificate's host name",
            source: e,
        })?;
        names.push(SanType::DnsName(name));
    }
    names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    names.push(SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    params.subject_alt_names = names;
    params.not_before = now - BACKDATE;
    params.not_after = now + Duration::days(SELF_SIGNED_DAYS);
    Ok(params)
}

/// A new key and a certificate for `hostname`: (certificate PEM, key PEM).
pub fn self_signed(hostname: &str) -> Result<(String, String), CertError> {
    let key = KeyPair::generate().map_err(|source| CertError::Generate {
        what: "the server's TLS key",
        source,
    })?;
    let cert = params(hostname, OffsetDateTime::now_utc())?
        .self_signed(&key)
        .map_err(|source| CertError::Generate {
            what: "the server's TLS certificate",
            source,
        })?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The certificate in `cert` (with its key in `key`), renewed for
/// `hostname` with the same key when it ends within
/// [`RENEW_WITHIN_DAYS`] of `now`. `Ok(true)` when it was renewed. The new
/// certificate replaces the old one at once (written beside it, then
/// renamed), owner-only.
pub fn renew_if_near_end(
    cert: &Path,
    key: &Path,
    hostname: &str,
    now: OffsetDateTime,
) -> Result<bool, CertError> {
    let read =
        |path: &Path| std::fs::read(path).map_err(|e| files::io_error(path, "cannot read", e));
    let cert_pem = read(cert)?;
    let der = files::parse_certs(cert, &cert_pem)?.remove(0);
    let x509 = files::parse_x509(cert, &der)?;
    let ends = x509.validity().not_after.to_datetime();
    if ends - now > Duration::days(RENEW_WITHIN_DAYS) {
        return Ok(false);
    }
    let (_, pair) = files::parse_key(key, &read(key)?)?;
    let renewed = params(hostname, now)?
        .self_signed(&pair)
        .map_err(|source| CertError::Generate {
            what: "the server's renewed TLS certificate",
            source,
        })?;
    files::write_replace(cert, renewed.pem().as_bytes(), KEY_MODE)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn not_after(pem: &str) -> OffsetDateTime {
        let der = files::parse_certs(Path::new("t"), pem.as_bytes())
            .unwrap()
            .remove(0);
        let x509 = files::parse_x509(Path::new("t"), &der).unwrap();
        x509.validity().not_after.to_datetime()
    }

    #[test]
    fn names_and_a_year_of_validity() {
        let (cert, _) = self_signed("mail.example.localhost").unwrap();
        let der = files::parse_certs(Path::new("t"), cert.as_bytes())
            .unwrap()
            .remove(0);
        let x509 = files::parse_x509(Path::new("t"), &der).unwrap();
        let subject = x509.subject().to_string();
        assert_eq!(subject, "CN=mail.example.localhost");
        let san = x509
            .subject_alternative_name()
            .unwrap()
            .expect("alternative names");
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "DNSName(mail.example.localhost)",
                "DNSName(localhost)",
                "IPAddress(7f:00:00:01)",
                "IPAddress(00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:01)"
            ]
        );
        let days = (not_after(&cert) - OffsetDateTime::now_utc()).whole_days();
        assert!((364..=365).contains(&days), "{days}");
    }

    #[test]
    fn renewed_with_the_same_key_only_near_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("mail.x.localhost").unwrap();
        let (cp, kp) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cp, &cert).unwrap();
        std::fs::write(&kp, &key).unwrap();
        let now = OffsetDateTime::now_utc();
        assert!(!renew_if_near_end(&cp, &kp, "mail.x.localhost", now).unwrap());
        assert_eq!(std::fs::read_to_string(&cp).unwrap(), cert);
        // 340 days on, 25 days are left: renewed, for a year from then.
        let later = now + Duration::days(340);
        assert!(renew_if_near_end(&cp, &kp, "mail.x.localhost", later).unwrap());
        let renewed = std::fs::read_to_string(&cp).unwrap();
        assert_ne!(renewed, cert);
        assert!((not_after(&renewed) - later).whole_days() >= 364);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&cp).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The same key: the renewed certificate goes with the old key file.
        let pair = files::parse_key(&kp, key.as_bytes()).unwrap().1;
        let der = files::parse_certs(&cp, renewed.as_bytes())
            .unwrap()
            .remove(0);
        let x509 = files::parse_x509(&cp, &der).unwrap();
        assert_eq!(
            x509.public_key().raw,
            rcgen::PublicKeyData::subject_public_key_info(&pair)
        );
    }
}
