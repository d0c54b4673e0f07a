//! A real `mailhop` process on loopback ports, for end-to-end tests.
#![allow(dead_code)]

pub mod dkim;
pub mod domain;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mailhop");

/// A free loopback port (bound then released), never the same twice in one
/// test process: tests run in parallel, and a port handed to one test (a
/// relay host that must stay down, a server about to start) must not be
/// handed to another before it is used.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The argon2 hash of `pw`, made by `mailhop passwd`.
pub fn hash(pw: &str) -> String {
    let mut child = Command::new(BIN)
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub struct TestServer {
    pub tmp: tempfile::TempDir,
    pub directory: PathBuf,
    pub smtp: SocketAddr,
    pub submission: SocketAddr,
    pub pop3: SocketAddr,
    pub imap: SocketAddr,
    /// Environment variables the server process is started with.
    pub env: Vec<(String, String)>,
    /// More arguments for `mailhop serve`.
    pub args: Vec<String>,
    child: Option<Child>,
}

/// The Acme directory most tests use; `{SMTP}`, `{SUBMISSION}` and `{EXTRA}` are filled in.
pub const ACME: &str = r#"
[domain]
name = "Acme"

[global_domain]
primary_internet_domain = "acme.com"
alias_internet_domains = ["acme.nl"]

[[server]]
name = "Mail/Acme"
hostname = "mail.acme.com"
smtp_auth = "optional"
data = "data/mail"

[server.listen]
smtp = "{SMTP}"
submission = "{SUBMISSION}"
pop3 = "{POP3}"
imap = "{IMAP}"

[[configuration]]
server = "*"
{CONFIG}

[[person]]
full_name = "CN=Jane Doe/O=Acme"
first_name = "Jane"
last_name = "Doe"
short_name = "jdoe"
internet_address = "jane.doe@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/jdoe"
internet_password = "{JANE_HASH}"

[[person]]
full_name = "CN=Admin/O=Acme"
first_name = "Admin"
last_name = "Acme"
short_name = "admin"
internet_address = "admin@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/admin"

[[person]]
full_name = "CN=John Smith/O=Acme"
first_name = "John"
last_name = "Smith"
short_name = "smith"
internet_address = "john.smith@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/jsmith"

[[person]]
full_name = "CN=Mary Smith/O=Acme"
first_name = "Mary"
last_name = "Smith"
short_name = "smith"
internet_address = "mary.smith@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/msmith"

[[person]]
full_name = "CN=Tiny Box/O=Acme"
first_name = "Tiny"
last_name = "Box"
short_name = "tiny"
internet_address = "tiny@acme.com"
mail_server = "Mail/Acme"
mail_file = "mail/tiny"
quota = "4KB"

[[group]]
name = "Sales"
members = ["Jane Doe/Acme", "Admin/Acme", "Inner"]
internet_address = "sales@acme.com"

[[group]]
name = "Inner"
members = ["jane.doe@acme.com", "Sales"]

{EXTRA}
"#;

#[derive(Default)]
pub struct Setup<'a> {
    pub config: &'a str,
    pub extra: &'a str,
    /// Lines added to the `[[server]]` document of Mail/Acme.
    pub server: &'a str,
    /// More arguments for `mailhop serve`.
    pub args: &'a [&'a str],
    /// Environment variables for the server process.
    pub env: &'a [(&'a str, &'a str)],
}

impl<'a> Setup<'a> {
    /// The Acme directory with these `[[configuration]]` lines.
    pub fn config(config: &'a str) -> Setup<'a> {
        Setup {
            config,
            ..Setup::default()
        }
    }
}

pub fn jane_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash("jane-secret"))
}

impl TestServer {
    pub fn start(setup: Setup<'_>) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let smtp: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let submission: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let pop3: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let imap: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let text = ACME
            .replace("{SMTP}", &smtp.to_string())
            .replace("{SUBMISSION}", &submission.to_string())
            .replace("{POP3}", &pop3.to_string())
            .replace("{IMAP}", &imap.to_string())
            .replace("{CONFIG}", setup.config)
            .replace("{EXTRA}", setup.extra)
            .replace("{JANE_HASH}", jane_hash())
            .replace(
                "data = \"data/mail\"\n",
                &format!("data = \"data/mail\"\n{}\n", setup.server),
            );
        let directory = tmp.path().join("directory.toml");
        std::fs::write(&directory, text).unwrap();
        let mut s = TestServer {
            tmp,
            directory,
            smtp,
            submission,
            pop3,
            imap,
            env: setup
                .env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            args: setup.args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        };
        s.spawn();
        s
    }

    pub fn spawn(&mut self) {
        let log = std::fs::File::create(self.tmp.path().join("server.log")).unwrap();
        let mut command = Command::new(BIN);
        command
            .arg("serve")
            .arg("--directory")
            .arg(&self.directory)
            .args(&self.args)
            .env("MAILHOP_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in &self.env {
            // An empty value: the variable is not set at all.
            if v.is_empty() {
                command.env_remove(k);
            } else {
                command.env(k, v);
            }
        }
        let child = command.spawn().unwrap();
        self.child = Some(child);
        wait_for(
            || TcpStream::connect(self.smtp).is_ok(),
            "the SMTP listener",
        );
        wait_for(
            || self.try_console("show server").is_ok(),
            "the console socket",
        );
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// The server process's peak resident memory (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("server.log")).unwrap_or_default()
    }

    pub fn try_console(&self, cmd: &str) -> Result<String, String> {
        let out = Command::new(BIN)
            .arg("console")
            .arg("--directory")
            .arg(&self.directory)
            .args(cmd.split_whitespace())
            .output()
            .unwrap();
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    pub fn console(&self, cmd: &str) -> String {
        self.try_console(cmd).unwrap()
    }

    /// A statistic from `show stat`.
    pub fn stat(&self, name: &str) -> i64 {
        let out = self.console(&format!("show stat {name}"));
        for line in out.lines() {
            if let Some((n, v)) = line.trim().split_once(" = ")
                && n == name
            {
                return v.trim().parse().unwrap_or(-1);
            }
        }
        panic!("no statistic {name} in:\n{out}");
    }

    /// `mailhop mailfile ls --json`.
    pub fn mailfile(&self, mail_file: &str) -> Vec<serde_json::Value> {
        let out = Command::new(BIN)
            .args(["mailfile", "--directory"])
            .arg(&self.directory)
            .args(["ls", mail_file, "--json"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stderr).contains("no mail file") {
            return Vec::new(); // not created yet: nothing delivered
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

    pub fn mailfile_show(&self, mail_file: &str, id: u64) -> String {
        let out = Command::new(BIN)
            .args(["mailfile", "--directory"])
            .arg(&self.directory)
            .args(["show", mail_file, &id.to_string()])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait until `mail_file` holds `n` messages; returns them.
    pub fn wait_mail(&self, mail_file: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = self.mailfile(mail_file);
            if m.len() >= n || Instant::now() > deadline {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn rewrite_directory(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(&self.directory).unwrap();
        // Make sure the mtime moves even on coarse clocks.
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::write(&self.directory, f(text)).unwrap();
    }

    /// An SMTP client that has said EHLO.
    pub fn client(&self) -> RawSmtp {
        let mut c = RawSmtp::connect(self.smtp);
        c.cmd("EHLO client.test");
        c
    }

    pub fn data(&self) -> PathBuf {
        self.tmp.path().join("data/mail")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn wait_for(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A plain SMTP conversation over a socket, for the cases real clients won't produce.
pub struct RawSmtp {
    pub r: BufReader<TcpStream>,
    pub w: TcpStream,
}

impl RawSmtp {
    pub fn connect(addr: SocketAddr) -> RawSmtp {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut c = RawSmtp {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let greet = c.reply();
        assert!(greet.starts_with("220"), "greeting: {greet}");
        c
    }

    /// A connection from the loopback address `local` (e.g. 127.0.0.9, a
    /// client "from the Internet"), and the server's first reply, whatever
    /// it is (the greeting, or a refusal).
    pub fn open_from(local: std::net::Ipv4Addr, to: SocketAddr) -> (RawSmtp, String) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let stream = rt.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::from((local, 0))).unwrap();
            socket.connect(to).await.unwrap().into_std().unwrap()
        });
        stream.set_nonblocking(false).unwrap();
        assert_eq!(stream.local_addr().unwrap().ip(), local);
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut c = RawSmtp {
            r: BufReader::new(stream.try_clone().unwrap()),
            w: stream,
        };
        let first = c.reply();
        (c, first)
    }

    /// [`RawSmtp::open_from`], greeted, after `EHLO mx.example.org`.
    pub fn connect_from(local: std::net::Ipv4Addr, to: SocketAddr) -> RawSmtp {
        let (mut c, greet) = RawSmtp::open_from(local, to);
        assert!(greet.starts_with("220"), "greeting: {greet}");
        let ehlo = c.cmd("EHLO mx.example.org");
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        c
    }

    /// Read one (possibly multi-line) reply.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// A whole transaction; returns the reply to the end of DATA.
    pub fn mail(&mut self, from: &str, to: &[&str], body: &str) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>"));
        assert!(r.starts_with("250"), "MAIL: {r}");
        for t in to {
            let r = self.cmd(&format!("RCPT TO:<{t}>"));
            assert!(r.starts_with("250"), "RCPT {t}: {r}");
        }
        let r = self.cmd("DATA");
        assert!(r.starts_with("354"), "DATA: {r}");
        self.send(body.replace('\n', "\r\n").as_bytes());
        self.cmd("\r\n.")
    }

    /// A transaction with a small message that must get a 250.
    pub fn send_ok(&mut self, from: &str, to: &[&str], subject: &str) {
        let r = self.mail(from, to, &message(from, to[0], subject));
        assert!(r.starts_with("250"), "{subject}: {r}");
    }

    pub fn drain(&mut self) -> String {
        let mut s = String::new();
        let _ = self.r.read_to_string(&mut s);
        s
    }
}

pub fn message(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: <{from}>\nTo: <{to}>\nSubject: {subject}\nMessage-ID: <{}.{}@test>\n\nHello {to}.\n",
        subject.replace(' ', "-"),
        std::process::id()
    )
}

pub fn read_file(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A message an SMTP sink received.
#[derive(Debug, Clone)]
pub struct Sunk {
    pub from: String,
    pub rcpts: Vec<String>,
    pub data: String,
}

/// A small SMTP peer on loopback: accepts everything except recipients whose
/// local part starts with `reject` (550 5.1.1) or `later` (451 4.3.0).
pub struct Sink {
    pub port: u16,
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Sunk>>>,
}

impl Sink {
    pub fn start() -> Sink {
        Sink::start_on(0)
    }

    pub fn start_on(port: u16) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let g = g.clone();
                std::thread::spawn(move || sink_session(conn, g));
            }
        });
        Sink { port, got }
    }

    pub fn messages(&self) -> Vec<Sunk> {
        self.got.lock().unwrap().clone()
    }
}

fn sink_session(conn: TcpStream, got: std::sync::Arc<std::sync::Mutex<Vec<Sunk>>>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    let _ = w.write_all(b"220 sink.test ESMTP\r\n");
    let (mut from, mut rcpts) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = line[10..].trim().trim_matches(['<', '>']).to_owned();
            rcpts.clear();
            "250 2.1.0 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = line[8..].trim().trim_matches(['<', '>']).to_owned();
            if rcpt.starts_with("reject") {
                "550 5.1.1 no such user here\r\n".into()
            } else if rcpt.starts_with("later") {
                "451 4.3.0 try again later\r\n".into()
            } else {
                rcpts.push(rcpt);
                "250 2.1.5 ok\r\n".into()
            }
        } else if upper.starts_with("DATA") {
            let _ = w.write_all(b"354 go ahead\r\n");
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 {
                    return;
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(&l);
            }
            got.lock().unwrap().push(Sunk {
                from: from.clone(),
                rcpts: rcpts.clone(),
                data,
            });
            "250 2.0.0 queued\r\n".into()
        } else if upper.starts_with("QUIT") {
            let _ = w.write_all(b"221 bye\r\n");
            return;
        } else {
            "250 ok\r\n".into()
        };
        if w.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// A reply's code and enhanced status, e.g. `550 5.1.1`.
pub fn status(reply: &str) -> String {
    reply
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Acme directory text with no ports bound (`127.0.0.1:0`) and these
/// `[[configuration]]` lines, for `mailhop check`.
pub fn acme_text(config: &str) -> String {
    ACME.replace("{SMTP}", "127.0.0.1:0")
        .replace("{SUBMISSION}", "127.0.0.1:0")
        .replace("{POP3}", "127.0.0.1:0")
        .replace("{IMAP}", "127.0.0.1:0")
        .replace("{CONFIG}", config)
        .replace("{EXTRA}", "")
        .replace("{JANE_HASH}", jane_hash())
}

/// A self-signed certificate for mail.acme.com in `dir` (openssl):
/// (certificate file, key file).
pub fn certificate(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=mail.acme.com",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert.display().to_string(), key.display().to_string())
}
