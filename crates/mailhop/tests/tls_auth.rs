//! `require_tls_for_auth`: passwords only inside TLS on every port, clients
//! on this machine included; checked with Python's smtplib, poplib and
//! imaplib against the real binary.

mod common;

use std::process::Command;

use common::*;

const CLIENTS: &str = r#"
import imaplib, poplib, smtplib, ssl, sys
smtp_port, pop_port, imap_port = (int(p) for p in sys.argv[1:4])
require = sys.argv[4] == "1"
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
seen = []

with smtplib.SMTP("127.0.0.1", smtp_port) as s:
    s.ehlo("t")
    seen.append("smtp plain offers AUTH: %s" % s.has_extn("auth"))
    code, _ = s.docmd("AUTH", "PLAIN AGphbmUuZG9lQGFjbWUuY29tAGphbmUtc2VjcmV0")
    seen.append("smtp plain AUTH: %d" % code)
    s.starttls(context=ctx)
    s.ehlo("t")
    seen.append("smtp tls offers AUTH: %s" % s.has_extn("auth"))
    s.login("jane.doe@acme.com", "jane-secret")
    seen.append("smtp tls login: ok")

p = poplib.POP3("127.0.0.1", pop_port)
seen.append("pop3 plain USER: %s" % ("USER" in p.capa()))
try:
    p.user("jane.doe@acme.com")
    p.pass_("jane-secret")
    seen.append("pop3 plain login: ok")
except poplib.error_proto as e:
    seen.append("pop3 plain login: refused")
if require:
    p.stls(context=ctx)
    p.user("jane.doe@acme.com")
    p.pass_("jane-secret")
    seen.append("pop3 tls login: ok")
p.quit()

i = imaplib.IMAP4("127.0.0.1", imap_port)
seen.append("imap plain LOGINDISABLED: %s" % ("LOGINDISABLED" in i.capabilities))
try:
    i.login("jane.doe@acme.com", "jane-secret")
    seen.append("imap plain login: ok")
    i.logout()
except imaplib.IMAP4.error:
    seen.append("imap plain login: refused")
    i.starttls(ssl_context=ctx)
    i.login("jane.doe@acme.com", "jane-secret")
    seen.append("imap tls login: ok")
    i.logout()
print("\n".join(seen))
"#;

fn run_clients(server: &TestServer, require: bool) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(CLIENTS)
        .arg(server.submission.port().to_string())
        .arg(server.pop3.port().to_string())
        .arg(server.imap.port().to_string())
        .arg(if require { "1" } else { "0" })
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn with_require_tls_for_auth_no_password_is_taken_without_tls_even_from_loopback() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(certs.path());
    let server_lines =
        format!("require_tls_for_auth = true\ntls = {{ cert = \"{cert}\", key = \"{key}\" }}");
    let server = TestServer::start(Setup {
        server: &server_lines,
        ..Setup::default()
    });
    assert_eq!(
        run_clients(&server, true),
        "smtp plain offers AUTH: False\n\
         smtp plain AUTH: 538\n\
         smtp tls offers AUTH: True\n\
         smtp tls login: ok\n\
         pop3 plain USER: False\n\
         pop3 plain login: refused\n\
         pop3 tls login: ok\n\
         imap plain LOGINDISABLED: True\n\
         imap plain login: refused\n\
         imap tls login: ok\n"
    );
}

#[test]
fn without_it_a_loopback_client_may_log_in_without_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(certs.path());
    let server_lines = format!("tls = {{ cert = \"{cert}\", key = \"{key}\" }}");
    let server = TestServer::start(Setup {
        server: &server_lines,
        ..Setup::default()
    });
    let seen = run_clients(&server, false);
    assert!(seen.contains("smtp plain offers AUTH: True\n"), "{seen}");
    assert!(seen.contains("pop3 plain login: ok\n"), "{seen}");
    assert!(seen.contains("imap plain login: ok\n"), "{seen}");
}

#[test]
fn require_tls_for_auth_without_tls_is_a_directory_error() {
    let tmp = tempfile::tempdir().unwrap();
    let text = acme_text("").replace(
        "data = \"data/mail\"\n",
        "data = \"data/mail\"\nrequire_tls_for_auth = true\n",
    );
    let path = tmp.path().join("directory.toml");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--directory"])
        .arg(&path)
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    let line = text
        .lines()
        .position(|l| l.starts_with("require_tls_for_auth"))
        .unwrap()
        + 1;
    assert!(
        all.contains(&format!(
            "{}:{line}: server[0].require_tls_for_auth: needs tls",
            path.display()
        )),
        "{all}"
    );
}
