//! DKIM signing of mail leaving by SMTP, end to end: keys made with
//! `mailhop dkim keygen` (RSA and Ed25519), the `dkim_sign` lines it
//! printed pasted into the directory, its TXT records published in a
//! loopback DNS server, a relay sink capturing what mailhop sends; each
//! signature is verified with mail-auth (asking that DNS server) and with
//! an independent verifier, Python's dkimpy (given the published record,
//! asking no DNS server). `mailhop check` refuses keys that cannot sign.

mod common;

use std::process::Command;

use common::dkim::{TestKey, authenticator, keygen, quoted_strings};
use common::*;

/// dkimpy's verdict on `message`, the key's record given for any name it asks.
fn dkimpy(dir: &std::path::Path, key: &TestKey, message: &str) -> String {
    const SCRIPT: &str = r#"
import sys, dkim
message = open(sys.argv[1], 'rb').read()
record = open(sys.argv[2], 'rb').read()
asked = []
def dnsfunc(name, timeout=5):
    asked.append(name.decode() if isinstance(name, bytes) else name)
    return record
print("verified" if dkim.verify(message, dnsfunc=dnsfunc) else "failed", " ".join(asked))
"#;
    let message_file = dir.join(format!("{}.eml", key.selector));
    let record_file = dir.join(format!("{}.txt", key.selector));
    std::fs::write(&message_file, message).unwrap();
    std::fs::write(&record_file, key.txt_strings.concat()).unwrap();
    // Debian's python3 (python3-dkim); a `python3` on PATH may be another.
    let out = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .arg(&message_file)
        .arg(&record_file)
        .output()
        .expect("/usr/bin/python3 with python3-dkim (see .ci/run)");
    assert!(
        out.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The `{ ... }` entry of a printed `dkim_sign = [{ ... }]` line.
fn entry(key: &TestKey) -> &str {
    key.directory_line
        .strip_prefix("dkim_sign = [")
        .and_then(|l| l.strip_suffix(']'))
        .unwrap_or_else(|| panic!("{}", key.directory_line))
}

#[test]
fn mail_leaving_by_smtp_is_signed_once_and_verifies_with_mail_auth_and_dkimpy() {
    let keys = tempfile::tempdir().unwrap();
    let rsa = keygen(keys.path(), "acme.com", "mh2026", "rsa");
    let ed = keygen(keys.path(), "acme.nl", "ed2026", "ed25519");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(testkit::Dns::start_zones(vec![
        ("acme.com.", vec![rsa.record()]),
        ("acme.nl.", vec![ed.record()]),
    ]));
    let sink = Sink::start();
    let config = format!(
        "smtp_outside_local_domain = true\nrelay_host = \"[127.0.0.1]:{}\"\ndns_servers = [\"{}\"]\n\
         [configuration.outbound]\ndkim_sign = [{}, {}]\n\
         [configuration.inbound]\nrelay_exempt_hosts = [\"127.0.0.0/8\"]",
        sink.port,
        dns.addr,
        entry(&rsa),
        entry(&ed)
    );
    let server = TestServer::start(Setup::config(&config));
    let mut c = server.client();
    // Out and in: the copy for the Internet is signed, the local one not.
    c.send_ok(
        "jane.doe@acme.com",
        &["friend@example.org", "admin@acme.com"],
        "from acme.com",
    );
    let body = "From: Jane <jane@acme.nl>\nTo: <friend@example.org>\nSubject: from acme.nl\n\
                Date: Mon, 1 Jan 2024 00:00:00 +0000\nMessage-ID: <nl@acme.nl>\nMIME-Version: 1.0\n\
                Content-Type: text/plain; charset=utf-8\n\nTrailing spaces   \n\n\n";
    let r = c.mail("jane@acme.nl", &["friend@example.org"], body);
    assert!(r.starts_with("250"), "{r}");
    // A subdomain is covered by its domain's key.
    c.send_ok(
        "ops@eu.acme.com",
        &["friend@example.org"],
        "from eu.acme.com",
    );
    // A domain with no key: sent as it is.
    c.send_ok(
        "someone@partner.example",
        &["friend@example.org"],
        "not ours",
    );
    c.cmd("QUIT");

    wait_for(|| sink.messages().len() == 4, "four relayed messages");
    wait_for(
        || server.stat("Mail.TotalPending") == 0,
        "an empty mail box",
    );
    let sunk = sink.messages();
    assert_eq!(sunk.len(), 4, "one copy each");
    let by_subject = |s: &str| {
        let found: Vec<&Sunk> = sunk
            .iter()
            .filter(|m| m.data.contains(&format!("\r\nSubject: {s}\r\n")))
            .collect();
        assert_eq!(found.len(), 1, "{s}: {sunk:#?}");
        found[0].data.clone()
    };
    let auth = authenticator(dns.addr);
    for (subject, key, domain) in [
        ("from acme.com", &rsa, "acme.com"),
        ("from acme.nl", &ed, "acme.nl"),
        ("from eu.acme.com", &rsa, "acme.com"),
    ] {
        let data = by_subject(subject);
        assert!(data.starts_with("DKIM-Signature: v=1; a="), "{data}");
        assert_eq!(
            data.matches("DKIM-Signature:").count(),
            1,
            "signed once: {data}"
        );
        let algorithm = if key.algorithm == "rsa" {
            "rsa-sha256"
        } else {
            "ed25519-sha256"
        };
        assert!(
            data.starts_with(&format!(
                "DKIM-Signature: v=1; a={algorithm}; s={}; d={domain}; c=relaxed/relaxed;",
                key.selector
            )),
            "{data}"
        );
        // mail-auth, asking the test's DNS server.
        let results = rt.block_on(async {
            let parsed = mail_auth::AuthenticatedMessage::parse(data.as_bytes()).unwrap();
            auth.verify_dkim(&parsed)
                .await
                .iter()
                .map(|o| {
                    let s = o.signature().unwrap();
                    (o.result().clone(), s.d.clone(), s.s.clone())
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(
            results,
            [(
                mail_auth::DkimResult::Pass,
                domain.to_owned(),
                key.selector.clone()
            )],
            "{subject}"
        );
        // dkimpy, reading the record mailhop dkim keygen printed.
        let verdict = dkimpy(keys.path(), key, &data);
        assert_eq!(
            verdict,
            format!("verified {}._domainkey.{domain}.", key.selector),
            "{subject}"
        );
        // The same verifier fails a copy altered on the way.
        let altered = data
            .replacen("Hello", "Goodbye", 1)
            .replacen("Trailing", "Leading", 1);
        assert!(dkimpy(keys.path(), key, &altered).starts_with("failed"));
    }
    let plain = by_subject("not ours");
    assert!(!plain.contains("DKIM-Signature"), "{plain}");
    let local = server.wait_mail("mail/admin", 1);
    assert_eq!(local.len(), 1);
    let text = server.mailfile_show("mail/admin", local[0]["id"].as_u64().unwrap());
    assert!(
        !text.contains("DKIM-Signature"),
        "local mail is not signed: {text}"
    );
}

#[test]
fn keygen_writes_an_owner_only_key_prints_a_record_that_parses_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let rsa = keygen(dir.path(), "acme.com", "mh2026", "rsa");
    let mode = std::fs::metadata(&rsa.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pem = std::fs::read_to_string(&rsa.path).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
    // The record: strings of at most 255 bytes (RSA-2048 needs two) that
    // join into a DKIM key record mail-auth reads.
    assert!(rsa.txt_strings.len() >= 2, "{}", rsa.txt_record);
    assert!(rsa.txt_strings.iter().all(|s| s.len() <= 255));
    let value = rsa.txt_strings.concat();
    assert!(value.starts_with("v=DKIM1; k=rsa; p=MII"), "{value}");
    use mail_auth::common::parse::TxtRecordParser as _;
    assert!(mail_auth::common::verify::DomainKey::parse(value.as_bytes()).is_ok());
    let ed = keygen(dir.path(), "acme.com", "ed", "ed25519");
    assert_eq!(ed.txt_strings.len(), 1);
    assert!(mail_auth::common::verify::DomainKey::parse(ed.txt_strings[0].as_bytes()).is_ok());
    assert_eq!(
        rsa.directory_line,
        format!(
            "dkim_sign = [{{ domain = \"acme.com\", selector = \"mh2026\", key = \"{}\" }}]",
            rsa.path.display()
        )
    );
    assert_eq!(
        quoted_strings(&rsa.txt_record[rsa.txt_record.find('"').unwrap()..]),
        rsa.txt_strings
    );

    // A second run to the same file refuses, and leaves the key as it was.
    let again = Command::new(BIN)
        .args([
            "dkim",
            "keygen",
            "acme.com",
            "--selector",
            "mh2026",
            "--out",
        ])
        .arg(&rsa.path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists; a key is never overwritten"), "{err}");
    assert_eq!(std::fs::read_to_string(&rsa.path).unwrap(), pem);
    // A name that is not a domain.
    let bad = Command::new(BIN)
        .args(["dkim", "keygen", "acme com", "--out"])
        .arg(dir.path().join("bad.pem"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(!dir.path().join("bad.pem").exists());
}

/// `mailhop check` on a directory whose `dkim_sign` names `key`.
fn check(dir: &std::path::Path, key: &str) -> (bool, String) {
    let file = dir.join("acme.toml");
    std::fs::write(
        &file,
        format!(
            "[domain]\nname = \"Acme\"\n\n[[server]]\nname = \"Mail/Acme\"\nhostname = \"mail.acme.com\"\n\n\
             [[configuration]]\nserver = \"*\"\n[configuration.outbound]\n\
             dkim_sign = [{{ domain = \"acme.com\", selector = \"s\", key = \"{key}\" }}]\n"
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--directory"])
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_refuses_keys_others_may_read_or_that_cannot_sign() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let good = keygen(dir.path(), "acme.com", "s", "ed25519");
    let (ok, out) = check(dir.path(), "acme.com.s.pem");
    assert!(ok, "{out}");
    std::fs::set_permissions(&good.path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, out) = check(dir.path(), "acme.com.s.pem");
    assert!(!ok);
    let file = dir.path().join("acme.toml");
    assert!(
        out.starts_with(&format!(
            "{}:11: configuration[0].outbound.dkim_sign[0].key: the key \"acme.com.s.pem\" may be read by other users (mode 0644)",
            file.display()
        )),
        "{out}"
    );
    // The shape of an RSA key whose numbers are not one: the directory
    // reads it, the signer cannot load it.
    let path = dir.path().join("broken.pem");
    std::fs::write(&path, not_a_real_rsa_key()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, out) = check(dir.path(), "broken.pem");
    assert!(!ok, "{out}");
    assert!(
        out.starts_with(&format!(
            "{}:11: configuration[0].outbound.dkim_sign[0].key: the rsa key ",
            file.display()
        )) && out.contains("cannot sign"),
        "{out}"
    );
}

/// A PKCS#8 PEM with the shape of an RSA-2048 key and numbers that are not
/// one (no secret: every byte is made up here).
fn not_a_real_rsa_key() -> String {
    use base64::Engine as _;
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(content);
        out
    }
    let mut modulus = vec![0x00, 0xc5];
    modulus.extend(std::iter::repeat_n(0x5a, 255));
    let mut rsa = der(0x02, &[0]);
    rsa.extend(der(0x02, &modulus));
    for _ in 0..7 {
        rsa.extend(der(0x02, &[3]));
    }
    let mut algorithm = der(
        0x06,
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
    );
    algorithm.extend([0x05, 0x00]);
    let mut info = der(0x02, &[0]);
    info.extend(der(0x30, &algorithm));
    info.extend(der(0x04, &der(0x30, &rsa)));
    let b64 = base64::engine::general_purpose::STANDARD.encode(der(0x30, &info));
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}
