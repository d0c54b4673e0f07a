//! Logins under attack, against the real server on loopback with Python's
//! imaplib and smtplib: failed logins are throttled atomically and lock an
//! address or a user out, argon2 runs a few checks at a time so memory
//! stays bounded whatever arrives before login, and what a client sends
//! reaches the log escaped and cut short.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::*;

/// What a wrong password gets from imaplib (the server's `NO` text).
const IMAP_WRONG: &str = "b'[AUTHENTICATIONFAILED] LOGIN invalid user name or password'";

/// Runs every (source address, user, password) IMAP LOGIN at once, each
/// on its own connection (all connect first, then all log in); the answer
/// of each: `OK` or imaplib's error text.
fn imap_logins(port: u16, tries: &[(&str, &str, &str)]) -> Vec<String> {
    let tries: Vec<String> = tries
        .iter()
        .map(|(s, u, p)| format!("[{s:?}, {u:?}, {p:?}]"))
        .collect();
    let script = r#"
import imaplib, json, socket, sys, threading
port, tries = int(sys.argv[1]), json.loads(sys.argv[2])

class IMAP(imaplib.IMAP4):
    def __init__(self, source):
        self.source = source
        super().__init__("127.0.0.1", port, timeout=300)
    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self.source, 0))

ready = threading.Barrier(len(tries))
answers = [None] * len(tries)
def one(i, source, user, password):
    try:
        m = IMAP(source)
    except Exception as e:
        ready.abort()
        answers[i] = "connect: " + repr(e)
        return
    try:
        ready.wait()
        m.login(user, password)
        answers[i] = "OK"
    except imaplib.IMAP4.error as e:
        answers[i] = str(e)
    try:
        m.logout()
    except Exception:
        pass
threads = [threading.Thread(target=one, args=(i, *t)) for i, t in enumerate(tries)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(answers))
"#;
    python_json(script, port, &format!("[{}]", tries.join(",")))
}

/// Runs every (source address, user, password) SMTP AUTH PLAIN at once,
/// one try per connection; the reply code of each.
fn smtp_logins(port: u16, tries: &[(String, String, String)]) -> Vec<String> {
    let tries: Vec<String> = tries
        .iter()
        .map(|(s, u, p)| format!("[{s:?}, {u:?}, {p:?}]"))
        .collect();
    let script = r#"
import json, smtplib, sys, threading
port, tries = int(sys.argv[1]), json.loads(sys.argv[2])
ready = threading.Barrier(len(tries))
answers = [None] * len(tries)
def one(i, source, user, password):
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=300, source_address=(source, 0))
        s.ehlo("client.test")
    except Exception as e:
        ready.abort()
        answers[i] = "connect: " + repr(e)
        return
    try:
        ready.wait()
        s.user, s.password = user, password
        code, _ = s.auth("PLAIN", s.auth_plain)
        answers[i] = str(code)
    except smtplib.SMTPAuthenticationError as e:
        answers[i] = str(e.smtp_code)
    try:
        s.quit()
    except Exception:
        pass
threads = [threading.Thread(target=one, args=(i, *t)) for i, t in enumerate(tries)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(answers))
"#;
    python_json(script, port, &format!("[{}]", tries.join(",")))
}

fn python_json(script: &str, port: u16, arg: &str) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .arg(arg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Log lines containing `what`.
fn log_lines(server: &TestServer, what: &str) -> Vec<String> {
    server
        .log()
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_owned)
        .collect()
}

#[test]
fn parallel_wrong_logins_are_checked_up_to_the_limit_then_locked_out() {
    let server = TestServer::start(Setup::config("access_max_sessions_per_host = 500"));
    let checks = server.stat("Auth.PasswordChecks");
    let tries = vec![("127.0.0.2", "jane.doe@acme.com", "wrong"); 200];
    let answers = imap_logins(server.imap.port(), &tries);
    assert_eq!(answers.len(), 200);
    for a in &answers {
        assert_eq!(a, IMAP_WRONG, "every client gets a wrong password's answer");
    }
    // Ten tries were checked; the others were refused while those were
    // undecided, and the tenth failure locked the address and the user.
    assert_eq!(server.stat("Auth.PasswordChecks") - checks, 10);
    assert_eq!(server.stat("Auth.Refused.Throttled"), 190);
    assert_eq!(server.stat("Auth.Lockouts"), 2);
    assert_eq!(server.stat("IMAP.Logins.Failed"), 200);
    // Locked out, the right password gets the same answer, unchecked,
    // from that address and (the user being locked out) from another.
    let answers = imap_logins(
        server.imap.port(),
        &[
            ("127.0.0.2", "jane.doe@acme.com", "jane-secret"),
            // imaplib does not quote user names.
            ("127.0.0.3", "\"Jane Doe\"", "jane-secret"),
        ],
    );
    assert_eq!(answers, [IMAP_WRONG, IMAP_WRONG]);
    assert_eq!(server.stat("Auth.PasswordChecks") - checks, 10);
    // Each checked failure is logged once; each lockout once.
    assert_eq!(
        log_lines(&server, "IMAP Server: Authentication failed for user").len(),
        10
    );
    let locked = log_lines(&server, "is locked out for 15 minutes");
    assert_eq!(locked.len(), 2, "{locked:#?}");
    assert!(
        locked
            .iter()
            .any(|l| l.contains("address 127.0.0.2 is locked out"))
    );
    assert!(
        locked
            .iter()
            .any(|l| l.contains("user jane.doe@acme.com is locked out"))
    );
}

#[test]
fn a_locked_out_address_is_refused_and_a_success_forgets_only_its_own_failures() {
    let server = TestServer::start(Setup::default());
    let port = server.imap.port();
    // Nine failures from one address, as nine names nobody has.
    let ghosts: Vec<String> = (0..9).map(|i| format!("ghost{i}")).collect();
    let tries: Vec<_> = ghosts
        .iter()
        .map(|g| ("127.0.0.4", g.as_str(), "x"))
        .collect();
    assert!(imap_logins(port, &tries).iter().all(|a| a == IMAP_WRONG));
    // Jane logs in from that address: her success does not wipe them...
    assert_eq!(
        imap_logins(port, &[("127.0.0.4", "jane.doe@acme.com", "jane-secret")]),
        ["OK"]
    );
    assert_eq!(server.stat("Auth.Lockouts"), 0);
    // ...so one more failure is the tenth, and locks the address out.
    assert_eq!(
        imap_logins(port, &[("127.0.0.4", "ghost9", "x")]),
        [IMAP_WRONG]
    );
    assert_eq!(server.stat("Auth.Lockouts"), 1);
    assert_eq!(
        imap_logins(port, &[("127.0.0.4", "jane.doe@acme.com", "jane-secret")]),
        [IMAP_WRONG],
        "refused as a wrong password is"
    );
    // Other addresses are not affected.
    assert_eq!(
        imap_logins(port, &[("127.0.0.5", "jane.doe@acme.com", "jane-secret")]),
        ["OK"]
    );
    assert_eq!(
        log_lines(&server, "address 127.0.0.4 is locked out").len(),
        1
    );
}

/// What the server may hold at its peak: its own start (store, router,
/// listeners; well under 100 MiB) and at most 4 argon2 checks of 19 MiB at
/// once. Unbounded, 200 wrong logins took 2.9-4.0 GB and 8 IMAP literals
/// before login 870 MB.
const PEAK_RSS_KIB: u64 = 192 * 1024;

#[test]
fn memory_stays_bounded_before_login() {
    let server = TestServer::start(Setup::default());
    let checks = server.stat("Auth.PasswordChecks");
    // 200 wrong SMTP logins at once from 20 addresses (10 each, under the
    // lockout), as 200 names nobody has: each costs a full argon2 check
    // (against the dummy hash), and they queue for the few threads.
    let tries: Vec<(String, String, String)> = (0..200)
        .map(|i| {
            (
                format!("127.0.1.{}", i % 20 + 1),
                format!("nobody{i}@acme.com"),
                "wrong".to_owned(),
            )
        })
        .collect();
    let answers = smtp_logins(server.smtp.port(), &tries);
    assert_eq!(answers, vec!["535"; 200], "every client gets its answer");
    assert_eq!(server.stat("Auth.PasswordChecks") - checks, 200);
    assert_eq!(server.stat("SMTP.Logins.Failed"), 200);
    // 8 IMAP clients announce 60 MB non-synchronizing literals before login
    // and send them: refused at once, never kept.
    let imap = server.imap;
    let clients: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(move || huge_literal_before_login(imap)))
        .collect();
    for client in clients {
        let answer = client.join().unwrap();
        assert!(
            answer.starts_with("a1 BAD [TOOBIG] literal too big before login\r\n* BYE "),
            "{answer}"
        );
    }
    let peak = server.peak_rss_kib();
    eprintln!("peak RSS of the server: {peak} KiB");
    assert!(
        peak < PEAK_RSS_KIB,
        "peak RSS {peak} KiB is over {PEAK_RSS_KIB} KiB"
    );
}

/// `a1 LOGIN {60000000+}` and as much of the literal as the server takes;
/// what the server answered until it closed the connection.
fn huge_literal_before_login(imap: SocketAddr) -> String {
    let stream = TcpStream::connect(imap).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("* OK"), "{greeting}");
    // Read while writing: the answer comes before the close.
    let answer = std::thread::spawn(move || {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    let mut w = stream;
    w.write_all(b"a1 LOGIN {60000000+}\r\n").unwrap();
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..60 {
        if w.write_all(&chunk).is_err() {
            break;
        }
    }
    answer.join().unwrap()
}

/// A raw IMAP client: the greeting read.
fn imap_raw(addr: SocketAddr) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut greeting = String::new();
    r.read_line(&mut greeting).unwrap();
    (r, s)
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

#[test]
fn client_text_reaches_the_log_escaped_and_cut() {
    let server = TestServer::start(Setup::default());
    // A user name with CR LF, as an IMAP literal: once, it forged a log line.
    let forged = "evil\r\n2099-01-01T00:00:00.000000Z  INFO mailhop: forged line";
    let (mut r, mut w) = imap_raw(server.imap);
    w.write_all(format!("a1 LOGIN {{{}}}\r\n", forged.len()).as_bytes())
        .unwrap();
    assert!(line(&mut r).starts_with("+ "));
    w.write_all(forged.as_bytes()).unwrap();
    w.write_all(b" wrong\r\n").unwrap();
    assert!(line(&mut r).starts_with("a1 NO [AUTHENTICATIONFAILED]"));
    // A long name, as big as a literal may be before login.
    let long = "n".repeat(8 * 1024);
    w.write_all(format!("a2 LOGIN {{{}}}\r\n", long.len()).as_bytes())
        .unwrap();
    assert!(line(&mut r).starts_with("+ "));
    w.write_all(long.as_bytes()).unwrap();
    w.write_all(b" wrong\r\n").unwrap();
    assert!(line(&mut r).starts_with("a2 NO [AUTHENTICATIONFAILED]"));
    // A 10 MB name is refused before a byte of it is read.
    w.write_all(b"a3 LOGIN {10485760}\r\n").unwrap();
    assert_eq!(line(&mut r), "a3 NO [TOOBIG] literal too big\r\n");
    // SMTP AUTH PLAIN with an escape sequence and a line feed in the name.
    let mut smtp = server.client();
    let plain = base64_encode(b"\0smtp\x1b[2J\nforged smtp line\0wrong");
    assert!(
        smtp.cmd(&format!("AUTH PLAIN {plain}"))
            .starts_with("535 5.7.8")
    );

    let log = server.log();
    for l in log.lines() {
        assert!(!l.starts_with("2099-01-01"), "a forged line: {l}");
        assert!(!l.starts_with("forged smtp line"), "a forged line: {l}");
        assert!(
            !l.contains('\u{1b}'),
            "an escape sequence reached the log: {l:?}"
        );
        assert!(l.len() < 1024, "a {} byte log line", l.len());
    }
    let failed = log_lines(&server, "Authentication failed for user");
    assert_eq!(failed.len(), 3, "each failed login once: {failed:#?}");
    assert!(
        failed[0].contains(
            r"for user evil\r\n2099-01-01T00:00:00.000000Z  INFO mailhop: forged line from 127.0.0.1"
        ),
        "{}",
        failed[0]
    );
    assert!(failed[1].contains(&format!("for user {}… from", "n".repeat(255))));
    assert!(
        failed[2].contains(
            r"SMTP Server: Authentication failed for user smtp\u{1b}[2J\nforged smtp line from"
        ),
        "{}",
        failed[2]
    );
}

fn base64_encode(bytes: &[u8]) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
