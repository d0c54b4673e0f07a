//! Servers of one domain started from one directory: one process runs every
//! server whose data folder it can own, so the same directory started as two
//! processes forms the same domain.

mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use common::{BIN, free_port, wait_for};

const TWO_SERVERS: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"
data = "data/mail"

[server.listen]
smtp = "{MAIL_SMTP}"

[[server]]
name = "SMTP/Acme"
hostname = "smtp.acme.com"
data = "data/smtp"

[server.listen]
smtp = "{SMTP_SMTP}"

[[configuration]]
server = "*"
"#;

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(directory: &std::path::Path, only: Option<&str>) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve").arg("--directory").arg(directory);
    if let Some(name) = only {
        cmd.arg("--server").arg(name);
    }
    cmd.env("MAILHOP_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn console(directory: &std::path::Path, server: &str, command: &str) -> Option<String> {
    let out = Command::new(BIN)
        .arg("console")
        .arg("--directory")
        .arg(directory)
        .arg("--server")
        .arg(server)
        .args(command.split(' '))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_second_process_runs_the_servers_the_first_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let mail_smtp = format!("127.0.0.1:{}", free_port());
    let smtp_smtp = format!("127.0.0.1:{}", free_port());
    let directory = tmp.path().join("directory.toml");
    std::fs::write(
        &directory,
        TWO_SERVERS
            .replace("{MAIL_SMTP}", &mail_smtp)
            .replace("{SMTP_SMTP}", &smtp_smtp),
    )
    .unwrap();

    let first = Running(serve(&directory, Some("Mail/Acme")));
    wait_for(
        || TcpStream::connect(&mail_smtp).is_ok(),
        "Mail/Acme's SMTP listener",
    );
    wait_for(
        || console(&directory, "Mail/Acme", "show server").is_some(),
        "Mail/Acme's console",
    );
    assert!(TcpStream::connect(&smtp_smtp).is_err());

    // Without --server: Mail/Acme is owned by the first process, so this one
    // says so and runs SMTP/Acme.
    let mut second = Running(serve(&directory, None));
    let stdout = second.0.stdout.take().unwrap();
    let mut said = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.contains(&smtp_smtp);
        said.push(line);
        if done {
            break;
        }
    }
    let said = said.join("\n");
    assert!(
        said.contains("server Mail/Acme not started here")
            && said.contains("in use by another mailhop process"),
        "{said}"
    );
    wait_for(
        || console(&directory, "SMTP/Acme", "show server").is_some(),
        "SMTP/Acme's console",
    );
    let info = console(&directory, "SMTP/Acme", "show server").unwrap();
    assert!(info.contains("CN=SMTP/O=Acme"), "{info}");
    // The first process still runs Mail/Acme.
    let info = console(&directory, "Mail/Acme", "show server").unwrap();
    assert!(info.contains("CN=Mail/O=Acme"), "{info}");

    // A third process finds nothing left to run: it exits non-zero and says why.
    let third = serve(&directory, None).wait_with_output().unwrap();
    assert!(!third.status.success());
    let err = String::from_utf8_lossy(&third.stderr);
    assert!(err.contains("no server of"), "{err}");
    drop(first);
}
