//! DKIM keys made at test time with `mailhop dkim keygen` (no key is
//! committed), signers and sealers for them (mail-auth), and a mail-auth
//! verifier that asks only the test's DNS server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use mail_auth::MessageAuthenticator;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::DkimSigner;
use mail_auth::hickory_resolver::Resolver;
use mail_auth::hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::BIN;

/// A key `mailhop dkim keygen` made, with what it printed.
pub struct TestKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub path: PathBuf,
    /// The record's character-strings, as printed (each at most 255 bytes).
    pub txt_strings: Vec<String>,
    /// The whole line `S._domainkey.D. IN TXT "..." ...`.
    pub txt_record: String,
    /// The `dkim_sign = [...]` line printed for the directory.
    pub directory_line: String,
    /// Everything `keygen` printed.
    pub output: String,
}

/// Runs `mailhop dkim keygen DOMAIN --selector S --algorithm A --out DIR/...`.
pub fn keygen(dir: &Path, domain: &str, selector: &str, algorithm: &str) -> TestKey {
    let path = dir.join(format!("{domain}.{selector}.pem"));
    let out = Command::new(BIN)
        .args([
            "dkim",
            "keygen",
            domain,
            "--selector",
            selector,
            "--algorithm",
            algorithm,
        ])
        .arg("--out")
        .arg(&path)
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "keygen failed: {}{output}",
        String::from_utf8_lossy(&out.stderr)
    );
    let owner = format!("{selector}._domainkey.{domain}. IN TXT ");
    let txt_record = output
        .lines()
        .find(|l| l.starts_with(&owner))
        .unwrap_or_else(|| panic!("no TXT record in:\n{output}"))
        .to_owned();
    let txt_strings = quoted_strings(&txt_record[owner.len()..]);
    let directory_line = output
        .lines()
        .find(|l| l.starts_with("dkim_sign = "))
        .unwrap_or_else(|| panic!("no dkim_sign line in:\n{output}"))
        .to_owned();
    TestKey {
        domain: domain.to_owned(),
        selector: selector.to_owned(),
        algorithm: algorithm.to_owned(),
        path,
        txt_strings,
        txt_record,
        directory_line,
        output,
    }
}

/// The `"..."` strings of a zone-file TXT value, in order.
pub fn quoted_strings(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while let Some(start) = rest.strip_prefix('"') {
        let end = start.find('"').expect("a closing quote");
        out.push(start[..end].to_owned());
        rest = start[end + 1..].trim_start();
    }
    assert!(rest.is_empty(), "left over: {rest:?}");
    out
}

impl TestKey {
    /// The record to publish in the test's DNS server.
    pub fn record(&self) -> testkit::Rr {
        testkit::Rr::TxtStrings(
            format!("{}._domainkey.{}.", self.selector, self.domain),
            self.txt_strings.clone(),
        )
    }

    /// The private key, read back from its file.
    pub fn key(&self) -> DkimKey {
        let pem = std::fs::read(&self.path).unwrap();
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).unwrap();
        match self.algorithm.as_str() {
            "rsa" => {
                DkimKey::from(RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(der)).unwrap())
            }
            _ => DkimKey::from(
                Ed25519Key::from_pkcs8_maybe_unchecked_der(der.secret_pkcs8_der()).unwrap(),
            ),
        }
    }

    /// `message` (CRLF line ends) with a `DKIM-Signature:` of this key on top.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature = DkimSigner::from_key(self.key())
            .domain(self.domain.clone())
            .selector(self.selector.clone())
            .headers(["From", "To", "Subject", "Date", "Message-ID"])
            .sign(message)
            .unwrap();
        let mut out = signature.to_header().into_bytes();
        out.extend_from_slice(message);
        out
    }
}

/// A mail-auth verifier asking only `dns` (UDP and TCP), never the system's.
pub fn authenticator(dns: SocketAddr) -> MessageAuthenticator {
    let mut ns = NameServerConfig::udp_and_tcp(dns.ip());
    for connection in &mut ns.connections {
        connection.port = dns.port();
    }
    let mut builder = Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    );
    builder.options_mut().use_hosts_file = ResolveHosts::Never;
    MessageAuthenticator(builder.build().unwrap())
}
