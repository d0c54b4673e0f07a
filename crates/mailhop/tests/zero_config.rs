//! `mailhop serve` in an empty folder: a working server with no configuration.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn first_start_creates_data_folder_second_start_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let mut password = None;
    while !printed.contains("Console socket") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(p) = line.split("password: ").nth(1) {
            password = Some(p.trim().to_owned());
        }
        printed.push_str(&line);
    }
    let password = password.expect("the administrator's password is printed");
    assert!(printed.contains("127.0.0.1:2525"), "{printed}");
    assert!(printed.contains("127.0.0.1:2587"), "{printed}");
    let data = tmp.path().join("mailhop-data");
    let dir_text = std::fs::read_to_string(data.join("directory.toml")).unwrap();
    assert!(!dir_text.contains(&password), "only the hash is stored");
    assert!(dir_text.contains("$argon2id$"));

    // The administrator authenticates on the submission port and mails themself.
    let script = format!(
        r#"
import smtplib
with smtplib.SMTP("127.0.0.1", 2587) as s:
    s.ehlo("t")
    s.login("admin@mailhop.localhost", "{password}")
    s.sendmail("admin@mailhop.localhost", ["admin@mailhop.localhost"], "Subject: zero config\r\n\r\nhi\r\n")
with smtplib.SMTP("127.0.0.1", 2587) as s:
    s.ehlo("t")
    try:
        s.login("admin@mailhop.localhost", "wrong")
        raise SystemExit("a wrong password was accepted")
    except smtplib.SMTPAuthenticationError:
        pass
"#
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    // TLS: the certificate verifies for 127.0.0.1 with Python's ssl and the
    // certificate itself as the trust root, on SMTPS and after STARTTLS.
    let cert = data.join("cert.pem");
    let tls = format!(
        r#"
import smtplib, ssl
ctx = ssl.create_default_context(cafile="{cert}")
with smtplib.SMTP_SSL("127.0.0.1", 2465, context=ctx) as s:
    s.ehlo("t")
    name = dict(x[0] for x in s.sock.getpeercert()["subject"])["commonName"]
    print(name)
with smtplib.SMTP("127.0.0.1", 2587) as s:
    s.starttls(context=ctx)
    s.ehlo("t")
bad = ssl.create_default_context()
try:
    with smtplib.SMTP_SSL("127.0.0.1", 2465, context=bad) as s:
        raise SystemExit("verified without its trust root")
except ssl.SSLCertVerificationError:
    pass
"#,
        cert = cert.display()
    );
    let py = Command::new("python3")
        .arg("-c")
        .arg(&tls)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&py.stdout),
        "mail.mailhop.localhost\n"
    );
    {
        use std::os::unix::fs::PermissionsExt as _;
        for name in [
            "cert.pem",
            "key.pem",
            "directory.toml",
            "mail/store/mailhop.db",
            "mail/store/mailhop.db-wal",
        ] {
            let mode = std::fs::metadata(data.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "the data folder");
    }
    let ls = || {
        Command::new(BIN)
            .args(["mailfile", "ls", "mail/admin"])
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    wait_for(
        || String::from_utf8_lossy(&ls().stdout).contains("zero config"),
        "the delivery",
    );
    let _ = child.kill();
    let _ = child.wait();

    // Second start: same folder, no new password.
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("Console socket") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        printed.push_str(&line);
    }
    assert!(!printed.contains("password"), "{printed}");
    assert_eq!(
        std::fs::read_to_string(data.join("directory.toml")).unwrap(),
        dir_text
    );
    std::thread::sleep(Duration::from_millis(100));
    assert!(String::from_utf8_lossy(&ls().stdout).contains("zero config"));
    let _ = child.kill();
    let _ = child.wait();
}
