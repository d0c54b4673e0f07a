//! STARTTLS, implicit TLS and AUTH over TLS with a rustls client.

use std::sync::atomic::Ordering;

use smtp::{AuthPolicy, ListenerConfig, ListenerKind};
use tokio::net::TcpStream;

use crate::common::{
    Client, Server, b64, config, eventually, plain, tls_connect, tls_server_config,
};

fn tls_config() -> ListenerConfig {
    ListenerConfig {
        tls: Some(tls_server_config()),
        auth: AuthPolicy::Required,
        ..config()
    }
}

#[tokio::test]
async fn starttls_then_auth_plain_then_mail() {
    let server = Server::start(tls_config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(ehlo.contains("STARTTLS"), "{ehlo}");
    c.expect("MAIL FROM:<alice@acme.test>", "530 5.7.0").await;
    c.expect("STARTTLS", "220 2.0.0 Ready to start TLS").await;

    let mut c = Client::new(tls_connect(c.into_inner()).await);
    // The session starts over: HELO is forgotten.
    c.expect("MAIL FROM:<alice@acme.test>", "503 5.5.1").await;
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    c.expect("STARTTLS", "503").await;
    c.expect(
        &format!("AUTH PLAIN {}", plain("alice", "wrong")),
        "535 5.7.8 Authentication credentials invalid",
    )
    .await;
    c.expect("AUTH PLAIN", "334").await;
    c.expect(&plain("alice", "secret"), "235 2.7.0").await;
    c.expect(&format!("AUTH PLAIN {}", plain("alice", "secret")), "503")
        .await;
    c.expect("MAIL FROM:<alice@acme.test>", "250").await;
    c.expect("RCPT TO:<bob@example.com>", "250").await;
    c.expect("DATA", "354").await;
    c.send("Subject: secure\r\n\r\nover TLS\r\n.\r\n").await;
    assert!(c.reply().await.starts_with("250 2.0.0 Ok: queued as"));
    c.expect("QUIT", "221").await;

    let got = server.handler.received();
    assert!(got[0].session.tls);
    assert_eq!(
        got[0].session.authenticated.as_deref(),
        Some("Alice Example/Acme")
    );
    assert!(
        got[0].received_header().contains("with ESMTPSA id"),
        "{}",
        got[0].received_header()
    );
    assert!(eventually(|| server.stat("SMTP.Sessions.Inbound.Total.SSL") == 1).await);
    assert!(eventually(|| server.stat("SMTP.Sessions.Inbound.Active.SSL") == 0).await);
}

#[tokio::test]
async fn auth_login_and_cancel() {
    let server = Server::start(tls_config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("STARTTLS", "220").await;
    let mut c = Client::new(tls_connect(c.into_inner()).await);
    c.expect("EHLO client.test", "250").await;
    assert_eq!(c.cmd("AUTH LOGIN").await, "334 VXNlcm5hbWU6");
    c.expect("*", "501").await;
    assert_eq!(
        c.cmd(&format!("AUTH LOGIN {}", b64("alice"))).await,
        "334 UGFzc3dvcmQ6"
    );
    c.expect("not base64!", "501 5.5.2").await;
    c.expect("AUTH LOGIN", "334").await;
    assert_eq!(c.cmd(&b64("alice")).await, "334 UGFzc3dvcmQ6");
    c.expect(&b64("secret"), "235").await;
}

#[tokio::test]
async fn plaintext_pipelined_after_starttls_is_discarded() {
    let server = Server::start(tls_config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    // An attacker's injected command rides along with STARTTLS.
    c.send("STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
        .await;
    assert!(c.reply().await.starts_with("220 2.0.0"));
    let mut c = Client::new(tls_connect(c.into_inner()).await);
    // Had the injected MAIL been run, EHLO's reply would not come first.
    assert!(
        c.cmd("EHLO client.test")
            .await
            .starts_with("250-mail.acme.test")
    );
    c.expect("MAIL FROM:<alice@acme.test>", "530").await;
}

#[tokio::test]
async fn implicit_tls_greets_after_the_handshake() {
    let server = Server::start(ListenerConfig {
        kind: ListenerKind::Smtps,
        ..tls_config()
    })
    .await;
    let stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut c = Client::new(tls_connect(stream).await);
    assert_eq!(c.reply().await, "220 mail.acme.test ESMTP mailhop ready");
    let ehlo = c.expect("EHLO client.test", "250").await;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    c.expect(&format!("AUTH PLAIN {}", plain("alice", "secret")), "235")
        .await;
    c.expect("MAIL FROM:<alice@acme.test>", "250").await;
    c.expect("QUIT", "221").await;
    assert!(eventually(|| server.stat("SMTP.Sessions.Inbound.Total.SSL") == 1).await);
}

#[tokio::test]
async fn failed_handshake_ends_the_session_quietly() {
    let server = Server::start(tls_config()).await;
    let mut c = server.connect().await;
    c.reply().await;
    c.expect("EHLO client.test", "250").await;
    c.expect("STARTTLS", "220").await;
    c.send("this is not a TLS client hello\r\n").await;
    // At most a TLS alert comes back, then the connection closes.
    let rest = c.drain().await;
    assert!(
        !rest.starts_with(b"2") && !rest.starts_with(b"5"),
        "{rest:?}"
    );
    assert!(eventually(|| server.stat("SMTP.Sessions.Inbound.Active") == 0).await);
    assert_eq!(server.handler.data_calls.load(Ordering::SeqCst), 0);
}
