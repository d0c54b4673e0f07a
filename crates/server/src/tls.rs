//! The server's certificate: loaded from `tls = { cert, key }` (PEM).

use std::sync::Arc;

use anyhow::Context as _;
use directory::ServerDoc;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The rustls server configuration of a server, or `None` without `tls`.
pub(crate) fn load(server: &ServerDoc) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    let Some(files) = &server.tls else {
        return Ok(None);
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("reading {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading {}", files.key.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate does not match its key")?;
    Ok(Some(Arc::new(config)))
}
