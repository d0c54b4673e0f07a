//! The certifier, server IDs and mutual TLS, with real files and real
//! handshakes on 127.0.0.1.

use std::path::Path;
use std::sync::Arc;

use certify::{
    CERTIFIER_CERT_FILE, CERTIFIER_KEY_FILE, CertError, Certifier, DomainTls, SERVER_ID_CERT_FILE,
    SERVER_ID_KEY_FILE, ServerId, dns_name, ensure_server_id, peer_server, server_name,
};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn certifier_create_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Certifier::load(dir.path()).unwrap().is_none());

    let created = Certifier::create(dir.path(), "Acme").unwrap();
    assert_eq!(created.domain(), "Acme");
    assert_eq!(created.name(), "Acme certifier");
    assert!(
        created
            .certificate_pem()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join(CERTIFIER_CERT_FILE)).unwrap(),
        created.certificate_pem()
    );
    #[cfg(unix)]
    assert_eq!(mode(&dir.path().join(CERTIFIER_KEY_FILE)), 0o600);

    let loaded = Certifier::load(dir.path()).unwrap().expect("a certifier");
    assert_eq!(loaded.certificate_der(), created.certificate_der());
    assert_eq!(loaded.certificate_pem(), created.certificate_pem());
    assert_eq!(loaded.domain(), "Acme");

    // An ID issued by the loaded certifier is one of the created one's.
    let id = loaded.issue("Mail/Acme").unwrap();
    assert!(created.certified(&id));
    assert!(loaded.certified(&id));

    let again = Certifier::create(dir.path(), "Acme").unwrap_err();
    assert!(matches!(again, CertError::Exists { .. }), "{again}");

    let ensured = Certifier::ensure(dir.path(), "Other").unwrap();
    assert_eq!(ensured.certificate_der(), created.certificate_der());
    assert_eq!(ensured.domain(), "Acme");
}

#[test]
fn certifier_files_that_are_wrong() {
    let dir = tempfile::tempdir().unwrap();
    Certifier::create(dir.path(), "Acme").unwrap();
    let key = dir.path().join(CERTIFIER_KEY_FILE);
    let key_text = std::fs::read(&key).unwrap();

    std::fs::remove_file(&key).unwrap();
    let e = Certifier::load(dir.path()).unwrap_err();
    assert!(matches!(e, CertError::MissingPair { .. }), "{e}");
    assert!(e.to_string().contains("certifier.key"), "{e}");

    std::fs::write(&key, "hello").unwrap();
    let e = Certifier::load(dir.path()).unwrap_err();
    assert!(matches!(e, CertError::NotPem { .. }), "{e}");

    // Another certifier's key beside this certificate.
    let other = tempfile::tempdir().unwrap();
    Certifier::create(other.path(), "Other").unwrap();
    std::fs::copy(other.path().join(CERTIFIER_KEY_FILE), &key).unwrap();
    let e = Certifier::load(dir.path()).unwrap_err();
    assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");

    std::fs::write(&key, key_text).unwrap();
    std::fs::write(dir.path().join(CERTIFIER_CERT_FILE), "not a certificate").unwrap();
    let e = Certifier::load(dir.path()).unwrap_err();
    assert!(matches!(e, CertError::NotPem { .. }), "{e}");
    assert!(e.to_string().contains("certifier.pem"), "{e}");

    // A server ID is not a certifier.
    let data = tempfile::tempdir().unwrap();
    let certifier = Certifier::load(other.path()).unwrap().unwrap();
    let id = certifier.issue("Mail/Other").unwrap();
    id.write(data.path()).unwrap();
    std::fs::copy(
        data.path().join(SERVER_ID_CERT_FILE),
        dir.path().join(CERTIFIER_CERT_FILE),
    )
    .unwrap();
    std::fs::copy(data.path().join(SERVER_ID_KEY_FILE), &key).unwrap();
    let e = Certifier::load(dir.path()).unwrap_err();
    assert!(matches!(e, CertError::BadCertificate { .. }), "{e}");
}

#[test]
fn ensure_server_id_issues_then_reuses() {
    let home = tempfile::tempdir().unwrap();
    let certifier = Certifier::create(home.path(), "Acme").unwrap();
    let data = home.path().join("data");

    let first = ensure_server_id(&data, "CN=Mail/O=Acme", Some(&certifier)).unwrap();
    assert_eq!(first.server(), "Mail/Acme");
    assert_eq!(first.dns_name(), "mail.acme.nrpc.invalid");
    assert!(data.join(SERVER_ID_CERT_FILE).exists());
    #[cfg(unix)]
    assert_eq!(mode(&data.join(SERVER_ID_KEY_FILE)), 0o600);
    let pem = std::fs::read_to_string(data.join(SERVER_ID_CERT_FILE)).unwrap();
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(pem, first.chain_pem());

    let second = ensure_server_id(&data, "Mail/Acme", Some(&certifier)).unwrap();
    assert_eq!(second.certificate_der(), first.certificate_der());
    assert_eq!(second.certifier_der(), certifier.certificate_der());
    // Without the certifier the ID is still there for the server.
    let third = ensure_server_id(&data, "mail/acme", None).unwrap();
    assert_eq!(third.certificate_der(), first.certificate_der());

    let loaded = ServerId::load(&data).unwrap().unwrap();
    assert_eq!(loaded.server(), "Mail/Acme");
    assert_eq!(loaded.certifier_name(), "Acme certifier");
}

#[test]
fn ensure_server_id_errors() {
    let home = tempfile::tempdir().unwrap();
    let certifier = Certifier::create(home.path(), "Acme").unwrap();

    // No certifier, no ID.
    let empty = tempfile::tempdir().unwrap();
    let e = ensure_server_id(empty.path(), "Mail/Acme", None).unwrap_err();
    assert!(matches!(e, CertError::NoId { .. }), "{e}");
    let message = e.to_string();
    assert!(
        message.contains("mailhop certify --server \"Mail/Acme\""),
        "{message}"
    );
    assert!(message.contains("server.id.pem"), "{message}");
    assert!(!empty.path().join(SERVER_ID_CERT_FILE).exists());

    // An ID of another server.
    let data = tempfile::tempdir().unwrap();
    certifier
        .issue("SMTP/Acme")
        .unwrap()
        .write(data.path())
        .unwrap();
    for at_hand in [None, Some(&certifier)] {
        let e = ensure_server_id(data.path(), "Mail/Acme", at_hand).unwrap_err();
        match &e {
            CertError::OtherServer {
                issued_to,
                expected,
                ..
            } => {
                assert_eq!(issued_to, "SMTP/Acme");
                assert_eq!(expected, "Mail/Acme");
            }
            other => panic!("{other}"),
        }
        let message = e.to_string();
        assert!(
            message.contains("SMTP/Acme") && message.contains("Mail/Acme"),
            "{message}"
        );
    }

    // An ID of another certifier.
    let other_home = tempfile::tempdir().unwrap();
    let other = Certifier::create(other_home.path(), "Globex").unwrap();
    let data = tempfile::tempdir().unwrap();
    other
        .issue("Mail/Acme")
        .unwrap()
        .write(data.path())
        .unwrap();
    let e = ensure_server_id(data.path(), "Mail/Acme", Some(&certifier)).unwrap_err();
    match &e {
        CertError::OtherCertifier {
            id_certifier,
            certifier,
            ..
        } => {
            assert_eq!(id_certifier, "Globex certifier");
            assert_eq!(certifier, "Acme certifier");
        }
        other => panic!("{other}"),
    }
    // The ID of the other domain is whole: without a certifier it loads.
    assert!(ensure_server_id(data.path(), "Mail/Acme", None).is_ok());

    // The key of one ID beside the certificate of another.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    certifier
        .issue("Mail/Acme")
        .unwrap()
        .write(a.path())
        .unwrap();
    certifier
        .issue("Mail/Acme")
        .unwrap()
        .write(b.path())
        .unwrap();
    std::fs::copy(
        b.path().join(SERVER_ID_KEY_FILE),
        a.path().join(SERVER_ID_KEY_FILE),
    )
    .unwrap();
    let e = ServerId::load(a.path()).unwrap_err();
    assert!(matches!(e, CertError::KeyMismatch { .. }), "{e}");

    // A chain without the certifier.
    let first_cert = {
        let pem = std::fs::read_to_string(b.path().join(SERVER_ID_CERT_FILE)).unwrap();
        let end = pem.find("-----END CERTIFICATE-----").unwrap() + 26;
        pem[..end].to_string()
    };
    std::fs::write(b.path().join(SERVER_ID_CERT_FILE), first_cert).unwrap();
    let e = ServerId::load(b.path()).unwrap_err();
    assert!(matches!(e, CertError::BadCertificate { .. }), "{e}");

    // One file of the pair.
    std::fs::remove_file(b.path().join(SERVER_ID_KEY_FILE)).unwrap();
    let e = ServerId::load(b.path()).unwrap_err();
    assert!(matches!(e, CertError::MissingPair { .. }), "{e}");
}

#[test]
fn dns_names() {
    assert_eq!(dns_name("Mail/Acme"), "mail.acme.nrpc.invalid");
    assert_eq!(dns_name("CN=Mail/O=Acme"), "mail.acme.nrpc.invalid");
    assert_eq!(dns_name("SMTP/Acme"), "smtp.acme.nrpc.invalid");
    assert_eq!(
        dns_name("Mail Hub/Sales/Acme"),
        "mail-hub.sales.acme.nrpc.invalid"
    );
    assert_eq!(
        dns_name("CN=Mail_1/OU=R&D/O=Acme/C=US"),
        "mail-1.r-d.acme.us.nrpc.invalid"
    );
    assert_eq!(dns_name("Mail-2/Acme"), "mail-2.acme.nrpc.invalid");
    assert_eq!(dns_name("Zürich/Acme"), "z-rich.acme.nrpc.invalid");
    // Labels stay valid DNS labels.
    assert_eq!(dns_name(" Mail!/Acme"), "mail.acme.nrpc.invalid");
    assert_eq!(dns_name("***/Acme"), "x.acme.nrpc.invalid");
    assert_eq!(
        dns_name(&format!("{}/Acme", "a".repeat(80)))
            .split('.')
            .next()
            .unwrap()
            .len(),
        63
    );
    for name in ["Mail/Acme", "Mail Hub/Acme", "***/Acme", "1/2"] {
        assert!(server_name(name).is_ok(), "{name}");
    }
}

/// Two certifiers' servers: Mail/Acme and SMTP/Acme of Acme, and Mail/Globex.
struct Domains {
    _dirs: Vec<tempfile::TempDir>,
    mail: ServerId,
    smtp: ServerId,
    globex: ServerId,
}

fn domains() -> Domains {
    let acme_dir = tempfile::tempdir().unwrap();
    let globex_dir = tempfile::tempdir().unwrap();
    let acme = Certifier::create(acme_dir.path(), "Acme").unwrap();
    let globex = Certifier::create(globex_dir.path(), "Globex").unwrap();
    Domains {
        mail: acme.issue("Mail/Acme").unwrap(),
        smtp: acme.issue("CN=SMTP/O=Acme").unwrap(),
        // Another domain's server, even with the same name.
        globex: globex.issue("Mail/Acme").unwrap(),
        _dirs: vec![acme_dir, globex_dir],
    }
}

/// What the server side saw of one connection.
type Accepted = Result<Option<String>, std::io::Error>;

/// Accepts one connection with `server`, answers "pong" to "ping", and
/// returns who the peer was.
async fn serve_once(server: Arc<rustls::ServerConfig>) -> (u16, tokio::task::JoinHandle<Accepted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = acceptor.accept(tcp).await?;
        let peer = peer_server(tls.get_ref().1.peer_certificates().unwrap_or_default());
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"ping");
        tls.write_all(b"pong").await?;
        tls.shutdown().await?;
        Ok(peer)
    });
    (port, task)
}

/// Connects with `client` expecting server `expected`, says "ping" and
/// reads "pong"; returns the server as the client saw it.
async fn call(
    port: u16,
    client: Arc<ClientConfig>,
    expected: &str,
) -> Result<Option<String>, std::io::Error> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let connector = tokio_rustls::TlsConnector::from(client);
    let mut tls = connector
        .connect(server_name(expected).unwrap(), tcp)
        .await?;
    let peer = peer_server(tls.get_ref().1.peer_certificates().unwrap_or_default());
    tls.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"pong");
    Ok(peer)
}

#[tokio::test]
async fn servers_of_one_domain_authenticate_each_other() {
    let d = domains();
    let a = DomainTls::new(&d.mail).unwrap();
    let b = DomainTls::new(&d.smtp).unwrap();

    let (port, server) = serve_once(a.server.clone()).await;
    let seen_by_client = call(port, b.client.clone(), "Mail/Acme").await.unwrap();
    assert_eq!(seen_by_client.as_deref(), Some("Mail/Acme"));
    let seen_by_server = server.await.unwrap().unwrap();
    assert_eq!(seen_by_server.as_deref(), Some("SMTP/Acme"));

    // And the other way, with the tokio helpers and the canonical name.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = b.acceptor();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.unwrap();
        peer_server(tls.get_ref().1.peer_certificates().unwrap())
    });
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = a
        .connector()
        .connect(server_name("CN=SMTP/O=Acme").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(
        peer_server(tls.get_ref().1.peer_certificates().unwrap()).as_deref(),
        Some("SMTP/Acme")
    );
    assert_eq!(server.await.unwrap().as_deref(), Some("Mail/Acme"));
}

#[tokio::test]
async fn a_server_of_another_certifier_is_refused() {
    let d = domains();
    let a = DomainTls::new(&d.mail).unwrap();
    let stranger = DomainTls::new(&d.globex).unwrap();

    // The stranger trusts its own certifier only, so it would refuse A
    // too; give it a client that trusts Acme's certifier but presents
    // Globex's certificate, so that the refusal tested is the server's.
    let mut roots = RootCertStore::empty();
    roots.add(d.mail.certifier_der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(d.globex.chain(), d.globex.key().clone_key())
    .unwrap();

    let (port, server) = serve_once(a.server.clone()).await;
    assert!(call(port, Arc::new(client), "Mail/Acme").await.is_err());
    let e = server.await.unwrap().unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // The stranger's own client fails too (it does not trust Acme).
    let (port, server) = serve_once(a.server.clone()).await;
    assert!(
        call(port, stranger.client.clone(), "Mail/Acme")
            .await
            .is_err()
    );
    assert!(server.await.unwrap().is_err());
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let d = domains();
    let a = DomainTls::new(&d.mail).unwrap();
    let mut roots = RootCertStore::empty();
    roots.add(d.mail.certifier_der().clone()).unwrap();
    let client = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();

    let (port, server) = serve_once(a.server.clone()).await;
    assert!(call(port, Arc::new(client), "Mail/Acme").await.is_err());
    let e = server.await.unwrap().unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
}

#[tokio::test]
async fn a_client_expecting_another_server_fails() {
    let d = domains();
    let a = DomainTls::new(&d.mail).unwrap();
    let b = DomainTls::new(&d.smtp).unwrap();

    let (port, server) = serve_once(a.server.clone()).await;
    let e = call(port, b.client.clone(), "Hub/Acme").await.unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert!(server.await.unwrap().is_err());
}
