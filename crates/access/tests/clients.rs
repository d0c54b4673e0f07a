//! Real mail clients against the servers: fetchmail (POP3) and mbsync (IMAP),
//! when installed (`apt-get install -y isync fetchmail`); skipped with a note otherwise.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{message, start};

fn installed(binary: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {binary}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!(
            "note: {binary} is not installed; test skipped (apt-get install -y isync fetchmail)"
        );
    }
    found
}

async fn run(mut command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetchmail_downloads_and_deletes() {
    if !installed("fetchmail") {
        return;
    }
    let server = start().await;
    server
        .deliver("mail/jdoe", vec![message(1, "one"), message(2, "two")])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mbox");
    let rc = dir.path().join("fetchmailrc");
    std::fs::write(
        &rc,
        format!(
            "poll 127.0.0.1 with proto POP3 port {} auth password\n  user \"jdoe\" there with password \"secret\" is \"tester\" here\n  options no keep sslproto '' mda \"cat >> {}\"\n",
            server.pop3.port(),
            out.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = Command::new("fetchmail");
    cmd.arg("-f")
        .arg(&rc)
        .arg("--nodetach")
        .arg("--pidfile")
        .arg(dir.path().join("pid"))
        .env("HOME", dir.path())
        .env("FETCHMAILHOME", dir.path());
    let result = run(cmd).await;
    let got = std::fs::read_to_string(&out).unwrap_or_default();
    assert!(
        got.contains("Subject: one") && got.contains("Subject: two"),
        "fetchmail: {}\n{}\n{got}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert!(
        server
            .store
            .messages("mail/jdoe", "Inbox")
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mbsync_mirrors_the_mail_file() {
    if !installed("mbsync") {
        return;
    }
    let server = start().await;
    server
        .deliver("mail/jdoe", vec![message(1, "alpha"), message(2, "beta")])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let rc = dir.path().join("mbsyncrc");
    std::fs::write(
        &rc,
        format!(
            "IMAPAccount t\nHost 127.0.0.1\nPort {}\nUser jdoe\nPass secret\nSSLType None\nAuthMechs LOGIN\n\n\
             IMAPStore remote\nAccount t\n\n\
             MaildirStore local\nPath {m}/\nInbox {m}/INBOX\nSubFolders Verbatim\n\n\
             Channel c\nFar :remote:\nNear :local:\nPatterns *\nCreate Near\nSyncState *\n",
            server.imap.port(),
            m = maildir.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("mbsync");
    cmd.arg("-c").arg(&rc).arg("-a").env("HOME", dir.path());
    let result = run(cmd).await;
    assert!(
        result.status.success(),
        "mbsync: {}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    let inbox = maildir.join("INBOX").join("cur");
    let inbox_new = maildir.join("INBOX").join("new");
    let count = |p: &std::path::Path| std::fs::read_dir(p).map_or(0, |d| d.count());
    assert_eq!(count(&inbox) + count(&inbox_new), 2);
    assert!(
        maildir.join("Sent").exists(),
        "special-use folders mirrored"
    );
}
