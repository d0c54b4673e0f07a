//! DKIM signing of mail leaving by SMTP for the Internet (`dkim_sign` of
//! `[configuration.outbound]`).
//!
//! Owns the signers (built once per directory snapshot from the keys the
//! directory read) and signing one message: RSA-SHA256 or Ed25519-SHA256,
//! relaxed/relaxed, the headers of [`SIGNED_HEADERS`], `d=` the configured
//! domain that covers the From: domain (the most specific one), and which
//! transfers are signed ([`for_transfer`]: SMTP with a recipient outside
//! the local Internet domains). Decides nothing about where mail goes:
//! `outbound` calls [`for_transfer`] once per SMTP transfer attempt.
//! Touches neither the store nor the network.

use directory::{DirectoryError, DkimAlgorithm, DkimSigning};
use mail_auth::AuthenticatedMessage;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use store::QueuedMessage;

use crate::plan::message_label;
use crate::snapshot::Snapshot;
use crate::work::blocking;

/// The headers a signature covers: those present are signed as they are,
/// those absent are signed as absent (so none can be added on the way).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "In-Reply-To",
    "References",
];

/// Why a key cannot sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(pub String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The signer of one `dkim_sign` entry.
pub fn signer(s: &DkimSigning) -> Result<DkimSigner<DkimKey, Done>, KeyError> {
    let der = s.key.pkcs8_der();
    let key: DkimKey = match s.key.algorithm {
        DkimAlgorithm::Rsa => {
            RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
                .map(DkimKey::from)
        }
        DkimAlgorithm::Ed25519 => {
            Ed25519Key::from_pkcs8_maybe_unchecked_der(der).map(DkimKey::from)
        }
    }
    .map_err(|e| {
        KeyError(format!(
            "the {} key {} cannot sign: {e}",
            s.key.algorithm,
            s.key.path.display()
        ))
    })?;
    Ok(DkimSigner::from_key(key)
        .domain(s.domain.clone())
        .selector(s.selector.clone())
        .headers(SIGNED_HEADERS.iter().copied())
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed))
}

/// Every key of the directory's `dkim_sign` lists that does not load, as
/// `FILE:LINE: field: reason` errors (the directory read the files and
/// checked their shape; this loads them as the signer will).
pub fn check(dir: &directory::Directory) -> Vec<DirectoryError> {
    let mut errors = Vec::new();
    for (i, doc) in dir.configurations.iter().enumerate() {
        for (j, s) in doc.outbound.dkim_sign.iter().flatten().enumerate() {
            if let Err(e) = signer(s) {
                errors.push(DirectoryError {
                    file: s.file.to_path_buf(),
                    line: s.line,
                    field: format!("configuration[{i}].outbound.dkim_sign[{j}].key"),
                    reason: e.0,
                });
            }
        }
    }
    errors
}

/// What signing one message gave.
#[derive(Debug)]
pub enum Signed {
    /// The `DKIM-Signature:` header (with its CRLF) to put on top.
    Signed {
        header: Vec<u8>,
        domain: String,
        selector: String,
    },
    /// No configured domain covers its From: domain (or it has no From:).
    NotCovered,
    /// A configured domain covers it but signing failed: why.
    Failed(String),
}

/// The signers of one server's configuration.
#[derive(Default)]
pub struct Signers {
    entries: Vec<(DkimSigning, DkimSigner<DkimKey, Done>)>,
}

impl std::fmt::Debug for Signers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(s, _)| (&s.domain, &s.selector)))
            .finish()
    }
}

impl Signers {
    /// The signers of `signing`; a key that does not load is left out and
    /// logged (the directory's load refuses such keys, so only a key file
    /// changed under a running server gets here).
    pub fn new(signing: &[DkimSigning]) -> Signers {
        let entries = signing
            .iter()
            .filter_map(|s| match signer(s) {
                Ok(signer) => Some((s.clone(), signer)),
                Err(e) => {
                    tracing::error!(target: "router", "Router: DKIM signing for {} is off: {e}", s.domain);
                    None
                }
            })
            .collect();
        Signers { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Signs `message` (CRLF line ends, as stored) when a configured domain
    /// covers the domain of its (first) From: address.
    pub fn sign(&self, message: &[u8]) -> Signed {
        if self.entries.is_empty() {
            return Signed::NotCovered;
        }
        let Some(domain) = from_domain(message) else {
            return Signed::NotCovered;
        };
        // The most specific configured domain (as `dkim_signing_for` picks).
        let Some((entry, signer)) = self
            .entries
            .iter()
            .filter(|(s, _)| s.covers(&domain))
            .max_by_key(|(s, _)| s.domain.len())
        else {
            return Signed::NotCovered;
        };
        match signer.sign(message) {
            Ok(signature) => Signed::Signed {
                header: signature.to_header().into_bytes(),
                domain: entry.domain.clone(),
                selector: entry.selector.clone(),
            },
            Err(e) => Signed::Failed(e.to_string()),
        }
    }
}

/// The message as it leaves by SMTP: DKIM-signed when a recipient is
/// outside the local Internet domains and a `dkim_sign` domain covers its
/// From: domain; as stored otherwise (and when signing fails, logged).
pub(crate) async fn for_transfer(
    snap: &Snapshot,
    msg: &QueuedMessage,
    rcpts: &[String],
    data: Vec<u8>,
) -> Vec<u8> {
    if snap.dkim.is_empty() {
        return data;
    }
    let leaves = rcpts.iter().any(|r| {
        r.rsplit_once('@')
            .is_some_and(|(_, d)| !snap.dir.is_local_internet_domain(&snap.server, d))
    });
    if !leaves {
        return data;
    }
    let signers = snap.dkim.clone();
    let (mut data, signed) = if data.len() > 64 * 1024 {
        // Hashing a big body is CPU work: off the runtime's threads.
        blocking(move || {
            let signed = signers.sign(&data);
            (data, signed)
        })
        .await
    } else {
        let signed = signers.sign(&data);
        (data, signed)
    };
    match signed {
        Signed::Signed {
            header,
            domain,
            selector,
        } => {
            tracing::debug!(target: "router", "Router: message {} DKIM-signed for {domain} (selector {selector})", message_label(msg));
            data.splice(0..0, header);
        }
        Signed::NotCovered => {}
        Signed::Failed(why) => {
            tracing::warn!(target: "router", "Router: message {} leaves unsigned: DKIM signing failed: {why}", message_label(msg));
        }
    }
    data
}

/// The domain of the message's first From: address, in lower case.
fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = AuthenticatedMessage::parse(message)?;
    let from = parsed.from.first()?;
    let (_, domain) = from.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.');
    (!domain.is_empty()).then(|| domain.to_ascii_lowercase())
}
