//! Delivery Failure Reports.
//!
//! Owns the text and structure of the report a sender receives when mailhop
//! could not deliver to some recipients: an RFC 3464 `multipart/report` from
//! the postmaster, with Domino's wording (SPEC §10), the routing path, and the
//! original headers. It only builds bytes; the router decides when a report is
//! due and puts it into the mail box like any other message.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::mime::{BodyPart, MimePart};

/// One recipient the report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecipient {
    /// The address as the sender gave it.
    pub address: String,
    /// The reason in Domino's words, e.g. `User jdoe not listed in Domino Directory`.
    pub reason: String,
    /// RFC 3463 status code, e.g. `5.1.1`.
    pub status: String,
    /// The remote host's reply, when an SMTP peer refused the recipient.
    pub remote_mta: Option<String>,
}

/// What a report is built from.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// Host name of the server writing the report (`Postmaster@HOST`).
    pub reporting_host: &'a str,
    /// The reverse path of the failed message: the report goes there.
    pub original_from: &'a str,
    /// The failed message as stored (headers are attached to the report).
    pub original: &'a [u8],
    /// The servers the message passed (`RouteServers`), this one last.
    pub route_servers: &'a [String],
    /// When the failed message arrived, unix milliseconds.
    pub arrival: i64,
    pub failures: &'a [FailedRecipient],
    /// A unique suffix for the report's Message-ID (e.g. the mail box id).
    pub unique: &'a str,
}

/// A built report, ready for the mail box.
#[derive(Debug, Clone)]
pub struct Report {
    /// The single recipient (the original sender).
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub data: Vec<u8>,
}

/// The header block of a message (up to and including the blank line, or
/// all of it): the one reader's, re-exported for the callers of reports.
pub use headers::block as header_block;

/// The `Subject:` of a message, decoded, or empty.
pub fn subject_of(message: &[u8]) -> String {
    headers::fields(message).subject.unwrap_or_default()
}

/// The human part: Domino's words.
pub fn human_text(input: &ReportInput<'_>, subject: &str) -> String {
    let mut text = String::new();
    text.push_str("Your message\r\n\r\n  Subject: ");
    text.push_str(subject);
    text.push_str("\r\n\r\nwas not delivered to:\r\n\r\n");
    for f in input.failures {
        text.push_str("  ");
        text.push_str(&f.address);
        text.push_str("\r\n");
    }
    text.push_str("\r\nbecause:\r\n\r\n");
    for f in input.failures {
        text.push_str("  ");
        text.push_str(&f.reason);
        text.push_str("\r\n");
    }
    if !input.route_servers.is_empty() {
        text.push_str("\r\nRouting path: ");
        text.push_str(&input.route_servers.join(", "));
        text.push_str("\r\n");
    }
    text.push_str(
        "\r\nWhat you should do: check the recipient's address. If it is right, \
         forward this report to your mail administrator.\r\n",
    );
    text
}

/// The machine-readable `message/delivery-status` part (RFC 3464).
pub fn delivery_status(input: &ReportInput<'_>) -> String {
    let mut s = format!(
        "Reporting-MTA: dns; {}\r\nArrival-Date: {}\r\n",
        seven_bit(input.reporting_host),
        rfc2822(input.arrival)
    );
    for f in input.failures {
        s.push_str("\r\n");
        s.push_str(&format!(
            "Final-Recipient: rfc822; {}\r\n",
            seven_bit(&f.address)
        ));
        s.push_str("Action: failed\r\n");
        s.push_str(&format!("Status: {}\r\n", seven_bit(&f.status)));
        if let Some(mta) = &f.remote_mta {
            s.push_str(&format!("Remote-MTA: dns; {}\r\n", seven_bit(mta)));
        }
        s.push_str(&format!(
            "Diagnostic-Code: X-Notes; {}\r\n",
            seven_bit(&f.reason)
        ));
    }
    s
}

/// Most characters of one field's value in the delivery-status part: the
/// part is 7bit (RFC 3464 §2.1), so its lines stay far below 998 octets.
const FIELD_CHARS: usize = 900;

/// A field value fit for the 7bit delivery-status part: printable ASCII
/// kept, line breaks and other controls made spaces, any other character
/// written as RFC 6533's `\x{HEX}`, and at most [`FIELD_CHARS`] long.
fn seven_bit(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if out.len() >= FIELD_CHARS {
            out.push_str("...");
            break;
        }
        match c {
            ' '..='~' => out.push(c),
            c if c.is_ascii_control() => out.push(' '),
            c => out.push_str(&format!("\\x{{{:X}}}", u32::from(c))),
        }
    }
    out
}

fn rfc2822(unix_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(unix_ms)
        .unwrap_or_default()
        .to_rfc2822()
}

/// Build the Delivery Failure Report for `input`.
pub fn delivery_failure(input: &ReportInput<'_>) -> Report {
    let subject = subject_of(input.original);
    let first_reason = input
        .failures
        .first()
        .map(|f| f.reason.as_str())
        .unwrap_or("delivery failed");
    let report_subject = format!("DELIVERY FAILURE: {first_reason}");
    let message_id = format!("dfr.{}@{}", input.unique, input.reporting_host);
    let postmaster = format!("Postmaster@{}", input.reporting_host);

    let human = human_text(input, &subject);
    let status = delivery_status(input);
    let headers = header_block(input.original).to_vec();

    let body = MimePart::new(
        ContentType::new("multipart/report").attribute("report-type", "delivery-status"),
        BodyPart::Multipart(vec![
            MimePart::new("text/plain", human),
            // 7bit, as RFC 3464 requires: every field was made ASCII.
            MimePart::new(
                "message/delivery-status",
                BodyPart::Text(Cow::Owned(status)),
            )
            .transfer_encoding("7bit"),
            MimePart::new("text/rfc822-headers", BodyPart::Binary(Cow::Owned(headers))),
        ]),
    );
    let data = MessageBuilder::new()
        .from(("Mail Delivery Subsystem", postmaster.as_str()))
        .to(input.original_from)
        .subject(report_subject.as_str())
        .message_id(message_id.as_str())
        .header(
            "Auto-Submitted",
            mail_builder::headers::raw::Raw::new("auto-replied"),
        )
        .body(body)
        .write_to_vec()
        .unwrap_or_default();
    Report {
        to: input.original_from.to_owned(),
        subject: report_subject,
        message_id,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_domino_words_and_dsn_part() {
        let original = b"From: a@x.test\r\nSubject: Quarterly\r\nMessage-ID: <1@x>\r\n\r\nbody\r\n";
        let failures = [FailedRecipient {
            address: "nobody@acme.com".into(),
            reason: "User nobody not listed in Domino Directory".into(),
            status: "5.1.1".into(),
            remote_mta: None,
        }];
        let route = ["Mail/Acme".to_owned()];
        let r = delivery_failure(&ReportInput {
            reporting_host: "mail.acme.com",
            original_from: "a@x.test",
            original,
            route_servers: &route,
            arrival: 1_700_000_000_000,
            failures: &failures,
            unique: "42",
        });
        assert_eq!(r.to, "a@x.test");
        assert_eq!(
            r.subject,
            "DELIVERY FAILURE: User nobody not listed in Domino Directory"
        );
        use mail_parser::MimeHeaders as _;
        let parsed = mail_parser::MessageParser::new().parse(&r.data).unwrap();
        assert_eq!(parsed.subject(), Some(r.subject.as_str()));
        let ct = parsed.root_part().content_type().unwrap();
        assert_eq!(ct.ctype(), "multipart");
        assert_eq!(ct.subtype(), Some("report"));
        assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
        let text = String::from_utf8_lossy(&r.data);
        assert!(text.contains("was not delivered to:"));
        assert!(text.contains("  Subject: Quarterly"));
        assert!(text.contains("Status: 5.1.1"));
        assert!(text.contains("Diagnostic-Code: X-Notes; User nobody not listed"));
        assert!(text.contains("Routing path: Mail/Acme"));
        assert!(
            text.contains("Message-ID: <1@x>"),
            "original headers attached"
        );
        assert!(!text.contains("\r\nbody\r\n"), "original body not attached");
    }

    #[test]
    fn header_block_without_body() {
        assert_eq!(header_block(b"A: b\r\n"), b"A: b\r\n");
        assert_eq!(header_block(b"A: b\n\nbody"), b"A: b\n\n");
    }
}
