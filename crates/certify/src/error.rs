//! The reasons this crate fails, written for the administrator who reads them.

use std::io;
use std::path::PathBuf;

/// Why a certifier, a server ID or the TLS set-up could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file could not be read, written or created.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done ("cannot read", "cannot create", ...).
        action: &'static str,
        /// The system's reason.
        source: io::Error,
    },
    /// `Certifier::create` found a certifier file already there.
    #[error("{path} already exists: the domain has a certifier; it is not replaced")]
    Exists {
        /// The file that is already there.
        path: PathBuf,
    },
    /// One file of a pair is there and the other is not.
    #[error("{missing} is missing but {present} is there: the pair must be kept together")]
    MissingPair {
        /// The file that is not there.
        missing: PathBuf,
        /// The file that is.
        present: PathBuf,
    },
    /// A file holds no PEM block of the kind expected.
    #[error("{path}: not PEM, or no {what} in it")]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was looked for ("CERTIFICATE", "PRIVATE KEY").
        what: &'static str,
    },
    /// A certificate could not be parsed or is not what it should be.
    #[error("{path}: bad certificate: {reason}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A private key could not be used.
    #[error("{path}: bad private key: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key file does not hold the key of the certificate beside it.
    #[error("{key} does not hold the key of the certificate in {cert}")]
    KeyMismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// A Notes server name that cannot be certified.
    #[error("server name {name:?}: {reason}")]
    InvalidServerName {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A Notes domain name that cannot be certified.
    #[error("domain name {name:?}: {reason}")]
    InvalidDomain {
        /// The name as given.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The server ID in the data folder was issued to another server.
    #[error(
        "{path} is the ID of server {issued_to:?}, not of this server {expected:?}: \
         put this server's own ID there (`mailhop certify --server \"{expected}\"`)"
    )]
    OtherServer {
        /// The ID's certificate file.
        path: PathBuf,
        /// The name the ID was issued to.
        issued_to: String,
        /// The name this server has.
        expected: String,
    },
    /// The server ID was not signed by the certifier at hand.
    #[error(
        "{path}: the ID of {server:?} was issued by {id_certifier:?}, not by this domain's \
         certifier {certifier:?}: issue a new one with `mailhop certify --server \"{server}\"`"
    )]
    OtherCertifier {
        /// The ID's certificate file.
        path: PathBuf,
        /// The server the ID was issued to.
        server: String,
        /// The issuer named in the ID.
        id_certifier: String,
        /// The certifier at hand.
        certifier: String,
    },
    /// No server ID and no certifier to issue one.
    #[error(
        "no server ID for {server:?} in {data_dir} and no certifier here to issue one: \
         run `mailhop certify --server \"{server}\"` where the domain's certifier is, and copy \
         the files server.id.pem and server.id.key it writes into {data_dir}"
    )]
    NoId {
        /// The server's data folder.
        data_dir: PathBuf,
        /// The server's name.
        server: String,
    },
    /// rcgen could not make a key or a certificate.
    #[error("cannot make {what}: {source}")]
    Generate {
        /// What was being made.
        what: &'static str,
        /// rcgen's reason.
        source: rcgen::Error,
    },
    /// rustls refused the certificates or keys for a TLS configuration.
    #[error("TLS set-up: {0}")]
    Tls(#[from] rustls::Error),
    /// rustls refused to build the client-certificate verifier.
    #[error("TLS set-up: client verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}
