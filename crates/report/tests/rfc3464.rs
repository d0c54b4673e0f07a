//! A Delivery Failure Report read by an independent parser, Python's `email`
//! package: the structure and the fields RFC 3464 requires, a 7bit
//! delivery-status part whatever the failure's text holds.

use std::io::Write as _;
use std::process::{Command, Stdio};

use report::{FailedRecipient, ReportInput, delivery_failure};

/// Reads a report on standard input and prints `ok` or what is wrong.
const CHECK: &str = r#"
import email, re, sys
from email import policy
raw = sys.stdin.buffer.read()
msg = email.message_from_bytes(raw, policy=policy.compat32)
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
need(msg.get_content_type() == "multipart/report", "top type " + msg.get_content_type())
need(msg.get_param("report-type") == "delivery-status", "report-type")
need(msg["Auto-Submitted"] == "auto-replied", "Auto-Submitted")
parts = msg.get_payload()
need(len(parts) == 3, "three parts, got %d" % len(parts))
human, dsn, headers = parts
need(human.get_content_type() == "text/plain", "first part " + human.get_content_type())
need(dsn.get_content_type() == "message/delivery-status", "second part " + dsn.get_content_type())
cte = (dsn["Content-Transfer-Encoding"] or "7bit").lower()
need(cte == "7bit", "delivery-status encoding " + cte)
# The part's own bytes: ASCII, lines under 998 octets.
start = raw.find(b"message/delivery-status")
need(start > 0, "delivery-status part in the bytes")
body = raw[start:].split(b"\r\n\r\n", 1)[1].split(b"\r\n--", 1)[0]
need(all(b < 128 for b in body), "ASCII only")
need(all(len(l) <= 998 for l in body.split(b"\r\n")), "lines under 998 octets")
blocks = dsn.get_payload()
need(len(blocks) == 1 + int(sys.argv[1]), "per-message block and %s recipient blocks, got %d" % (sys.argv[1], len(blocks)))
per_message = blocks[0]
need(re.match(r"^dns; \S+$", per_message["Reporting-MTA"] or ""), "Reporting-MTA " + str(per_message["Reporting-MTA"]))
need(email.utils.parsedate_tz(per_message["Arrival-Date"] or "") is not None, "Arrival-Date")
for r in blocks[1:]:
    need(re.match(r"^rfc822; \S+$", r["Final-Recipient"] or ""), "Final-Recipient " + str(r["Final-Recipient"]))
    need(r["Action"] == "failed", "Action " + str(r["Action"]))
    need(re.match(r"^[245]\.\d{1,3}\.\d{1,3}$", r["Status"] or ""), "Status " + str(r["Status"]))
    need(r["Diagnostic-Code"] is not None and r["Diagnostic-Code"].startswith("X-Notes; "), "Diagnostic-Code")
need(headers.get_content_type() == "text/rfc822-headers", "third part " + headers.get_content_type())
print("ok" if not problems else "\n".join(problems))
for r in blocks[1:]:
    print(r["Final-Recipient"])
    print(r["Diagnostic-Code"])
"#;

fn python_check(report: &[u8], recipients: usize) -> String {
    let mut child = Command::new("python3")
        .args(["-c", CHECK, &recipients.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 on the PATH");
    child.stdin.take().unwrap().write_all(report).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_report_passes_an_rfc_3464_check_by_pythons_email_package() {
    let original =
        "From: a@x.test\r\nSubject: Quarterly ümlaut\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n";
    let long = "refused ".repeat(300);
    let failures = [
        FailedRecipient {
            address: "nobody@acme.com".into(),
            reason: "User nobody not listed in Domino Directory".into(),
            status: "5.1.1".into(),
            remote_mta: None,
        },
        FailedRecipient {
            address: "jürgen@acme.com".into(),
            reason: format!("Zustellung fehlgeschlagen:\r\n{long}"),
            status: "5.7.1".into(),
            remote_mta: Some("mx.acme.com".into()),
        },
    ];
    let route = ["Mail/Acme".to_owned()];
    let r = delivery_failure(&ReportInput {
        reporting_host: "mail.acme.com",
        original_from: "a@x.test",
        original: original.as_bytes(),
        route_servers: &route,
        arrival: 1_700_000_000_000,
        failures: &failures,
        unique: "42",
    });
    let out = python_check(&r.data, 2);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ok"), "{out}");
    assert_eq!(lines.next(), Some("rfc822; nobody@acme.com"));
    assert_eq!(
        lines.next(),
        Some("X-Notes; User nobody not listed in Domino Directory")
    );
    // The address is kept readable as RFC 6533 writes what is not ASCII.
    assert_eq!(lines.next(), Some("rfc822; j\\x{FC}rgen@acme.com"));
    let diag = lines.next().unwrap();
    assert!(
        diag.starts_with("X-Notes; Zustellung fehlgeschlagen:  refused"),
        "{diag}"
    );
    assert!(diag.ends_with("..."), "cut short: {diag}");
}
