#![allow(dead_code)]
//! Several servers of one domain from one directory file, run by real
//! `mailhop serve` processes: all in one process, or one process each.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{BIN, free_port, wait_for};

pub struct Domain {
    pub tmp: tempfile::TempDir,
    pub directory: PathBuf,
    ports: BTreeMap<String, u16>,
    /// Running processes: the servers each was told to run (empty: all).
    children: Mutex<Vec<(Vec<String>, Child)>>,
    logs: AtomicUsize,
}

impl Domain {
    /// Writes `template` as the directory file; every `{PORT:key}` in it
    /// becomes a free loopback port, the same one for the same key.
    pub fn new(template: &str) -> Domain {
        let tmp = tempfile::tempdir().unwrap();
        let mut ports = BTreeMap::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(at) = rest.find("{PORT:") {
            text.push_str(&rest[..at]);
            let end = rest[at..].find('}').unwrap() + at;
            let key = &rest[at + 6..end];
            let port = *ports.entry(key.to_owned()).or_insert_with(free_port);
            text.push_str(&port.to_string());
            rest = &rest[end + 1..];
        }
        text.push_str(rest);
        let directory = tmp.path().join("directory.toml");
        std::fs::write(&directory, text).unwrap();
        Domain {
            tmp,
            directory,
            ports,
            children: Mutex::new(Vec::new()),
            logs: AtomicUsize::new(0),
        }
    }

    /// The loopback address of `{PORT:key}`.
    pub fn addr(&self, key: &str) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[key]))
    }

    /// One process running `servers` (empty: every server of the
    /// directory); returns once each named server's console answers.
    pub fn start(&self, servers: &[&str], wait: &[&str]) {
        let n = self.logs.fetch_add(1, Ordering::SeqCst) + 1;
        let log = std::fs::File::create(self.tmp.path().join(format!("serve-{n}.log"))).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve").arg("--directory").arg(&self.directory);
        for s in servers {
            cmd.arg("--server").arg(s);
        }
        let child = cmd
            .env("MAILHOP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children
            .lock()
            .unwrap()
            .push((servers.iter().map(|s| (*s).to_owned()).collect(), child));
        for s in wait {
            wait_for(|| self.try_console(s, "show server").is_ok(), "a console");
        }
    }

    /// SIGKILL the process running `server` (as a crash would).
    pub fn kill(&self, server: &str) {
        let mut children = self.children.lock().unwrap();
        if let Some(i) = children
            .iter()
            .position(|(names, _)| names.iter().any(|n| n == server))
        {
            let (_, mut child) = children.remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every process's log.
    pub fn log(&self) -> String {
        (1..=self.logs.load(Ordering::SeqCst))
            .map(|i| {
                std::fs::read_to_string(self.tmp.path().join(format!("serve-{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn try_console(&self, server: &str, cmd: &str) -> Result<String, String> {
        let out = Command::new(BIN)
            .arg("console")
            .arg("--directory")
            .arg(&self.directory)
            .arg("--server")
            .arg(server)
            .args(cmd.split_whitespace())
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn console(&self, server: &str, cmd: &str) -> String {
        self.try_console(server, cmd).unwrap()
    }

    /// A statistic from `show stat` of `server`.
    pub fn stat(&self, server: &str, name: &str) -> i64 {
        let out = self.console(server, &format!("show stat {name}"));
        for line in out.lines() {
            if let Some((n, v)) = line.trim().split_once(" = ")
                && n == name
            {
                return v.trim().parse().unwrap_or(-1);
            }
        }
        panic!("no statistic {name} in:\n{out}");
    }

    /// `mailhop mailfile --server SERVER ls MAIL_FILE --json`.
    pub fn mailfile(&self, server: &str, mail_file: &str) -> Vec<serde_json::Value> {
        let out = Command::new(BIN)
            .args(["mailfile", "--directory"])
            .arg(&self.directory)
            .args(["--server", server, "ls", mail_file, "--json"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("no mail file") {
            return Vec::new(); // not a mail file of that server: nothing delivered there
        }
        assert!(
            out.status.success(),
            "mailfile ls failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn mailfile_show(&self, server: &str, mail_file: &str, id: u64) -> String {
        let out = Command::new(BIN)
            .args(["mailfile", "--directory"])
            .arg(&self.directory)
            .args(["--server", server, "show", mail_file, &id.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `mail_file` on `server` holds at least `n` messages;
    /// returns what it holds then (callers count the copies).
    pub fn wait_mail(&self, server: &str, mail_file: &str, n: usize) -> Vec<serde_json::Value> {
        wait_for(
            || self.mailfile(server, mail_file).len() >= n,
            &format!("{n} messages in {mail_file} on {server}"),
        );
        self.mailfile(server, mail_file)
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        for (_, mut child) in self.children.lock().unwrap().drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
