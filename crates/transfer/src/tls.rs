//! Opportunistic TLS for the SMTP client: a handshake that accepts any
//! certificate (signatures still checked), then a check of the chain against
//! the system's roots, only to record whether it was verified. Knows no SMTP.

use std::io;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::outcome::{Target, TlsState};

/// Makes client TLS connections and judges the certificates they present.
#[derive(Clone)]
pub(crate) struct TlsClient {
    connector: TlsConnector,
    /// None when the system has no trusted roots: nothing is ever verified.
    verifier: Option<Arc<WebPkiServerVerifier>>,
}

impl TlsClient {
    pub(crate) fn new() -> Result<Self, rustls::Error> {
        let provider = Arc::new(aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth();
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let verifier = (!roots.is_empty())
            .then(|| WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build())
            .transpose()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(Self {
            connector: TlsConnector::from(Arc::new(config)),
            verifier,
        })
    }

    /// Runs the client handshake over `tcp`; says whether the certificate
    /// was verified for the target's name (or, for a literal, its address).
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        target: &Target,
    ) -> io::Result<(TlsStream<TcpStream>, TlsState)> {
        let name = if target.host.starts_with('[') {
            None
        } else {
            ServerName::try_from(target.host.clone()).ok()
        }
        .unwrap_or_else(|| ServerName::IpAddress(target.addr.ip().into()));
        let stream = self.connector.connect(name.clone(), tcp).await?;
        let verified = {
            let (_, connection) = stream.get_ref();
            match (&self.verifier, connection.peer_certificates()) {
                (Some(verifier), Some([end_entity, intermediates @ ..])) => verifier
                    .verify_server_cert(end_entity, intermediates, &name, &[], UnixTime::now())
                    .is_ok(),
                _ => false,
            }
        };
        let state = if verified {
            TlsState::Verified
        } else {
            TlsState::Unverified
        };
        Ok((stream, state))
    }
}

/// Accepts any certificate chain but checks that the server holds its key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
