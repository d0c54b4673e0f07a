//! Builders shared by the store's integration tests.
#![allow(dead_code)] // each test file uses a different part

use store::{Delivery, Flags, Incoming, MessageKind, RecipientStatus, RecipientUpdate};

pub fn incoming(from: &str, recipients: &[&str], body: &str) -> Incoming {
    Incoming {
        from: from.to_owned(),
        recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
        data: message_text("Test", body).into_bytes(),
        received_at: 1_700_000_000_000,
        kind: MessageKind::Normal,
        hop_count: 1,
        origin: "smtp 127.0.0.1 helo=test".to_owned(),
        message_id: Some("test@acme.com".to_owned()),
        subject: Some("Test".to_owned()),
        ..Incoming::default()
    }
}

pub fn message_text(subject: &str, body: &str) -> String {
    format!(
        "From: \"Jane Doe\" <jane@acme.com>\r\nTo: jdoe@acme.com\r\nSubject: {subject}\r\n\
         Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <{subject}@acme.com>\r\n\r\n{body}\r\n"
    )
}

/// A delivery into `mail_file`'s Inbox for mail box recipient `recipient`
/// (the body is the settled message's).
pub fn delivery(mail_file: &str, recipient: &str) -> Delivery {
    Delivery {
        recipient: recipient.to_owned(),
        mail_file: mail_file.to_owned(),
        folder: "Inbox".to_owned(),
        internal_date: 1_700_000_000_000,
        route_servers: vec!["hub/Acme".to_owned(), "mail1/Acme".to_owned()],
        route_times: vec![1_700_000_000_000, 1_700_000_001_000],
        flags: Flags::default(),
    }
}

pub fn done(status: RecipientStatus) -> RecipientUpdate {
    RecipientUpdate::Final {
        status,
        reason: None,
    }
}
