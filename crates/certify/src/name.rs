//! Notes server names: the abbreviated form used as the identity, and the DNS
//! name derived from it for the certificate's subject alternative name.

use crate::CertError;

/// The suffix of every DNS name derived from a Notes server name. `.invalid`
/// is reserved (RFC 6761): these names never resolve and never clash with
/// real hosts.
pub const DNS_SUFFIX: &str = ".nrpc.invalid";

/// The longest DNS name rustls accepts.
const MAX_DNS_NAME: usize = 253;
/// The longest DNS label.
const MAX_LABEL: usize = 63;

/// The abbreviated form of a Notes server name: "CN=Mail/OU=Hub/O=Acme" and
/// "Mail/Hub/Acme" both give "Mail/Hub/Acme". Components are trimmed; the
/// `CN=`, `OU=`, `O=` and `C=` labels (any case) are dropped. Fails for an
/// empty name, an empty component, or one too long for a DNS name.
pub fn abbreviate(server: &str) -> Result<String, CertError> {
    let invalid = |reason| CertError::InvalidServerName {
        name: server.to_string(),
        reason,
    };
    if server.trim().is_empty() {
        return Err(invalid("empty"));
    }
    let parts: Vec<&str> = components(server).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(invalid(
            "an empty component (two '/' together, or one at an end)",
        ));
    }
    let abbreviated = parts.join("/");
    if dns_name(&abbreviated).len() > MAX_DNS_NAME {
        return Err(invalid("too long"));
    }
    Ok(abbreviated)
}

/// The components of a name, trimmed, hierarchical labels dropped.
fn components(server: &str) -> impl Iterator<Item = &str> {
    server.split('/').map(|part| {
        let part = part.trim();
        match part.split_once('=') {
            Some((label, value))
                if ["CN", "OU", "O", "C"]
                    .iter()
                    .any(|l| l.eq_ignore_ascii_case(label.trim())) =>
            {
                value.trim()
            }
            _ => part,
        }
    })
}

/// The DNS name put in a server ID's subject alternative name and used as
/// the TLS `ServerName` to reach that server: the abbreviated name,
/// lowercased, each component's characters outside `[a-z0-9-]` replaced by
/// `-`, components joined with `.`, then [`DNS_SUFFIX`]. "Mail/Acme" gives
/// "mail.acme.nrpc.invalid", "CN=Mail Hub/O=Acme" gives
/// "mail-hub.acme.nrpc.invalid".
///
/// So that the result is always a valid DNS name, a label's leading and
/// trailing `-` are dropped, a label left empty becomes `x`, and a label is
/// cut at 63 characters. Different names can map to one DNS name ("Mail
/// Hub" and "Mail-Hub"): check [`crate::peer_server`] for the exact name.
pub fn dns_name(server: &str) -> String {
    let mut out = String::new();
    for part in components(server).filter(|p| !p.is_empty()) {
        let mapped: String = part
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let mut label = mapped.trim_matches('-');
        if label.len() > MAX_LABEL {
            label = label[..MAX_LABEL].trim_end_matches('-');
        }
        if label.is_empty() {
            label = "x";
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(label);
    }
    if out.is_empty() {
        out.push('x');
    }
    out.push_str(DNS_SUFFIX);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviates_canonical_and_abbreviated_names() {
        assert_eq!(abbreviate("Mail/Acme").unwrap(), "Mail/Acme");
        assert_eq!(abbreviate("CN=Mail/O=Acme").unwrap(), "Mail/Acme");
        assert_eq!(
            abbreviate("cn=Mail/ou=Hub/o=Acme/c=US").unwrap(),
            "Mail/Hub/Acme/US"
        );
        assert_eq!(abbreviate(" Mail Hub / Acme ").unwrap(), "Mail Hub/Acme");
        assert!(abbreviate("").is_err());
        assert!(abbreviate("  ").is_err());
        assert!(abbreviate("Mail//Acme").is_err());
        assert!(abbreviate("Mail/").is_err());
        assert!(abbreviate(&"M/".repeat(200)).is_err());
    }
}
