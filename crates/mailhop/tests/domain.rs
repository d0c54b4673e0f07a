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
    let (directory, mail_smtp, smtp_smtp) = write_two_servers(tmp.path());

    let first = Running(serve(&directory, Some("Mail/Acme")));
    wait_for(
        || TcpStream::connect(&mail_smtp).is_ok(),
        "Mail/Acme's SMTP listener",
    );
    wait_up(&directory, "Mail/Acme");
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
    let info = wait_up(&directory, "SMTP/Acme");
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

fn write_two_servers(dir: &std::path::Path) -> (std::path::PathBuf, String, String) {
    let mail_smtp = format!("127.0.0.1:{}", free_port());
    let smtp_smtp = format!("127.0.0.1:{}", free_port());
    let directory = dir.join("directory.toml");
    std::fs::write(
        &directory,
        TWO_SERVERS
            .replace("{MAIL_SMTP}", &mail_smtp)
            .replace("{SMTP_SMTP}", &smtp_smtp),
    )
    .unwrap();
    (directory, mail_smtp, smtp_smtp)
}

fn wait_up(directory: &std::path::Path, server: &str) -> String {
    wait_for(
        || console(directory, server, "show server").is_some(),
        "the console",
    );
    console(directory, server, "show server").unwrap()
}

/// The first `serve` of a domain creates its certifier beside the directory
/// file, and every server it starts gets its ID with nothing else to do; a
/// restart keeps them.
#[test]
fn the_first_serve_certifies_the_domain_and_its_servers() {
    let tmp = tempfile::tempdir().unwrap();
    let (directory, _, _) = write_two_servers(tmp.path());
    let certifier = tmp.path().join("certifier.pem");
    let mail_id = tmp.path().join("data/mail/server.id.pem");
    let smtp_id = tmp.path().join("data/smtp/server.id.pem");
    let ids = {
        let _both = Running(serve(&directory, None));
        let info = wait_up(&directory, "Mail/Acme");
        assert!(
            info.contains("Server ID:              Mail/Acme (certified by")
                && info.contains("Acme certifier"),
            "{info}"
        );
        let info = wait_up(&directory, "SMTP/Acme");
        assert!(info.contains("Server ID:              SMTP/Acme"), "{info}");
        [
            std::fs::read(&certifier).unwrap(),
            std::fs::read(&mail_id).unwrap(),
            std::fs::read(&smtp_id).unwrap(),
        ]
    };
    use std::os::unix::fs::PermissionsExt;
    for key in ["certifier.key", "data/mail/server.id.key"] {
        let mode = std::fs::metadata(tmp.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{key} is readable by others");
    }
    let _again = Running(serve(&directory, None));
    wait_up(&directory, "SMTP/Acme");
    assert_eq!(std::fs::read(&certifier).unwrap(), ids[0]);
    assert_eq!(std::fs::read(&mail_id).unwrap(), ids[1]);
    assert_eq!(std::fs::read(&smtp_id).unwrap(), ids[2]);
}

/// `mailhop certify --server NAME --out DIR` writes the ID a server on
/// another machine runs with: copied into its data folder, it is used as is,
/// and no certifier is created there.
#[test]
fn an_id_written_by_certify_runs_a_server_elsewhere() {
    let home = tempfile::tempdir().unwrap();
    let (directory, _, _) = write_two_servers(home.path());
    let out_dir = home.path().join("for-smtp");
    let out = Command::new(BIN)
        .args(["certify", "--directory"])
        .arg(&directory)
        .args(["--server", "SMTP/Acme", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("created for domain Acme"), "{said}");
    assert!(said.contains("server ID of SMTP/Acme"), "{said}");
    // Asked again, it keeps the certifier and will not overwrite the ID.
    let again = Command::new(BIN)
        .args(["certify", "--directory"])
        .arg(&directory)
        .args(["--server", "SMTP/Acme", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(!again.status.success());

    // "Another machine": the directory file and the copied ID, no certifier.
    let elsewhere = tempfile::tempdir().unwrap();
    let (other_directory, _, _) = write_two_servers(elsewhere.path());
    let data = elsewhere.path().join("data/smtp");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["server.id.pem", "server.id.key"] {
        std::fs::copy(out_dir.join(f), data.join(f)).unwrap();
    }
    let _smtp = Running(serve(&other_directory, Some("SMTP/Acme")));
    let info = wait_up(&other_directory, "SMTP/Acme");
    assert!(
        info.contains("Server ID:              SMTP/Acme (certified by"),
        "{info}"
    );
    assert!(!elsewhere.path().join("certifier.pem").exists());
    assert_eq!(
        std::fs::read(data.join("server.id.pem")).unwrap(),
        std::fs::read(out_dir.join("server.id.pem")).unwrap()
    );
}
