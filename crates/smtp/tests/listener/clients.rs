//! Real SMTP clients: lettre and Python's smtplib.

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::common::{Server, config};

const BODY: &str = "Grüße aus Köln\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n";

#[tokio::test]
async fn lettre_sends_an_8bit_message_with_leading_dots() {
    let server = Server::start(config()).await;
    let from: Mailbox = "Bob <bob@example.com>".parse().expect("from");
    let to: Mailbox = "alice@acme.test".parse().expect("to");
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject("lettre test")
        .header(ContentType::TEXT_PLAIN)
        .body(
            Body::new_with_encoding(BODY.to_owned(), ContentTransferEncoding::EightBit)
                .expect("8bit body"),
        )
        .expect("message");
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(server.addr.port())
        .build();
    let response = transport.send(message).await.expect("lettre send");
    let text: Vec<&str> = response.message().collect();
    assert!(
        text.iter().any(|line| line.contains("Ok: queued as Q")),
        "{text:?}"
    );

    let got = server.handler.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].env.from, "bob@example.com");
    assert_eq!(got[0].env.recipients, ["alice@acme.test"]);
    assert!(got[0].env.body_8bit);
    let body = String::from_utf8(got[0].body().to_vec()).expect("utf-8");
    assert!(body.contains("Subject: lettre test\r\n"), "{body}");
    // lettre ends the data with CRLF.CRLF after the body's own CRLF.
    assert!(body.ends_with(&format!("\r\n\r\n{BODY}\r\n")), "{body}");
}

#[tokio::test]
async fn python_smtplib_sends_a_message() {
    let server = Server::start(config()).await;
    let script = r#"
import smtplib, sys
port = int(sys.argv[1])
msg = "Subject: from python\r\nMessage-ID: <py1@example.com>\r\n\r\nline one\r\n.dot line\r\n\xe9t\xe9\r\n"
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    code, caps = s.ehlo("python.test")
    assert code == 250, code
    assert s.has_extn("pipelining") and s.has_extn("8bitmime") and s.has_extn("size")
    refused = s.sendmail("py@example.com", ["alice@acme.test", "unknown@acme.test"], msg.encode("utf-8"), mail_options=["BODY=8BITMIME"])
    assert list(refused) == ["unknown@acme.test"], refused
    print("ok")
"#;
    let port = server.addr.port().to_string();
    let output = tokio::process::Command::new("python3")
        .args(["-c", script, &port])
        .output()
        .await
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let got = server.handler.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].env.recipients, ["alice@acme.test"]);
    assert_eq!(
        got[0].body(),
        "Subject: from python\r\nMessage-ID: <py1@example.com>\r\n\r\nline one\r\n.dot line\r\nété\r\n".as_bytes()
    );
}
