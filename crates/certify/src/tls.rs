//! Mutual TLS for the native protocol: both ends present their server ID
//! and trust only the domain's certifier.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::{CertError, DNS_SUFFIX, ServerId, abbreviate, dns_name};

/// Mutual TLS for the native protocol, built from a [`ServerId`].
///
/// `server` requires a client certificate chaining to the certifier (the
/// only root); `client` presents the server's own certificate and trusts
/// only the certifier. Connect with [`server_name`] of the peer expected, so
/// that a peer whose certificate is for another server fails the handshake.
#[derive(Clone)]
pub struct DomainTls {
    /// For accepting native connections.
    pub server: Arc<ServerConfig>,
    /// For opening native connections.
    pub client: Arc<ClientConfig>,
}

impl std::fmt::Debug for DomainTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainTls").finish_non_exhaustive()
    }
}

impl DomainTls {
    /// Builds both configurations with the aws-lc-rs provider and rustls'
    /// safe default protocol versions.
    pub fn new(id: &ServerId) -> Result<DomainTls, CertError> {
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = RootCertStore::empty();
        roots.add(id.certifier_der().clone())?;
        let roots = Arc::new(roots);

        let verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(id.chain(), id.key().clone_key())?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(id.chain(), id.key().clone_key())?;
        Ok(DomainTls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// A tokio acceptor over [`Self::server`].
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    /// A tokio connector over [`Self::client`].
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }
}

/// The TLS `ServerName` to connect to Notes server `server` with:
/// [`dns_name`] of it.
pub fn server_name(server: &str) -> Result<ServerName<'static>, CertError> {
    let name = abbreviate(server)?;
    ServerName::try_from(dns_name(&name)).map_err(|_| CertError::InvalidServerName {
        name: server.to_string(),
        reason: "no DNS name can be made of it",
    })
}

/// The Notes server name (abbreviated, from the subject CN; failing that
/// from the DNS name, components joined with '/') of a verified peer's
/// end-entity certificate: the first of `conn_certs`, as given by
/// `peer_certificates()` of a rustls connection. None if there is none or
/// it names no server.
pub fn peer_server(conn_certs: &[CertificateDer<'_>]) -> Option<String> {
    let der = conn_certs.first()?;
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    if let Some(cn) = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        && let Ok(name) = abbreviate(cn)
    {
        return Some(name);
    }
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::DNSName(dns) => dns
            .strip_suffix(DNS_SUFFIX)
            .filter(|s| !s.is_empty())
            .map(|s| s.split('.').collect::<Vec<_>>().join("/")),
        _ => None,
    })
}
