//! Bodies are stored once: shared by the mail box message and every mail-file
//! entry holding it, freed with the last of them.

mod common;

use common::{delivery, done, incoming, message_text};
use rusqlite::{Connection, OpenFlags};
use store::{FlagOp, Flags, Incoming, MessageKind, RecipientStatus, Settlement, Store};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

/// What the store file holds, read on a connection of its own.
struct Rows {
    /// Rows of each body table: `blobs`, `blob_headers`, `blob_data`.
    bodies: [u64; 3],
    /// `refs` of every body, by id.
    refs: Vec<i64>,
}

fn rows(store: &Store) -> Rows {
    let conn = Connection::open_with_flags(store.location(), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("read-only connection");
    let count = |table: &str| -> u64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    };
    let refs = conn
        .prepare("SELECT refs FROM blobs ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("refs");
    Rows {
        bodies: [count("blobs"), count("blob_headers"), count("blob_data")],
        refs,
    }
}

fn bodies(store: &Store) -> u64 {
    let rows = rows(store);
    assert!(
        rows.bodies.iter().all(|n| *n == rows.bodies[0]),
        "a body is its three rows: {:?}",
        rows.bodies
    );
    rows.bodies[0]
}

fn deleted() -> Flags {
    Flags {
        deleted: true,
        ..Flags::default()
    }
}

fn mail_file(i: usize) -> String {
    format!("mail/user{i}")
}

fn address(i: usize) -> String {
    format!("user{i}@acme.com")
}

/// Accepts one message for `count` users and delivers it to the mail files
/// of the first `delivered`; the others stay pending. Returns its id and bytes.
async fn deliver_to_many(store: &Store, count: usize, delivered: usize) -> (i64, Vec<u8>) {
    let addresses: Vec<String> = (0..count).map(address).collect();
    let to: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let mut msg = incoming("jane@acme.com", &to, "");
    msg.data = message_text("shared", "one body for everybody").into_bytes();
    let data = msg.data.clone();
    let queued = store.accept(msg).await.expect("accept");
    assert_eq!(queued.size, data.len() as u64);
    let outcome = store
        .settle(vec![Settlement {
            message: queued.id,
            outcomes: (0..delivered)
                .map(|i| (address(i), done(RecipientStatus::Delivered)))
                .collect(),
            deliveries: (0..delivered)
                .map(|i| delivery(&mail_file(i), &address(i)))
                .collect(),
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert_eq!(outcome[0].removed, delivered == count);
    assert_eq!(outcome[0].delivered.len(), delivered);
    (queued.id, data)
}

async fn expunge_all(store: &Store, mail_file: &str, folder: &str) {
    let uids: Vec<u32> = store
        .entries(mail_file, folder, None)
        .expect("entries")
        .iter()
        .map(|e| e.uid)
        .collect();
    store
        .set_flags(mail_file, folder, &uids, FlagOp::Add, deleted())
        .await
        .expect("flag");
    assert_eq!(
        store
            .expunge(mail_file, folder, None)
            .await
            .expect("expunge"),
        uids
    );
}

#[tokio::test]
async fn one_message_to_fifty_mail_files_is_stored_once() {
    let (_dir, store) = open();
    let (id, data) = deliver_to_many(&store, 50, 50).await;
    assert_eq!(store.message(id), Ok(None), "settled: out of the mail box");
    assert_eq!(bodies(&store), 1);
    assert_eq!(rows(&store).refs, [50]);
    let header = &data[..data.windows(4).position(|w| w == b"\r\n\r\n").expect("end") + 4];
    for i in 0..50 {
        let entries = store.messages(&mail_file(i), "Inbox").expect("list");
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        assert_eq!(
            (entry.subject.as_str(), entry.from.as_str()),
            ("shared", "Jane Doe <jane@acme.com>")
        );
        assert_eq!(entry.message_id.as_deref(), Some("shared@acme.com"));
        assert_eq!(entry.size, data.len() as u64);
        assert_eq!(
            store.message_body(&mail_file(i), "Inbox", entry.uid),
            Ok(Some(data.clone()))
        );
        assert_eq!(
            store.headers(&mail_file(i), "Inbox", &[entry.uid]),
            Ok(vec![(entry.uid, header.to_vec())])
        );
        assert_eq!(
            store.mailfile_usage(&mail_file(i)),
            Ok(data.len() as u64),
            "each mail file counts the body against its quota"
        );
    }

    for i in 0..49 {
        expunge_all(&store, &mail_file(i), "Inbox").await;
    }
    assert_eq!(bodies(&store), 1, "the 50th mail file still holds it");
    assert_eq!(rows(&store).refs, [1]);
    assert_eq!(
        store.message_body(&mail_file(49), "Inbox", 1),
        Ok(Some(data))
    );
    assert_eq!(store.mailfile_usage(&mail_file(0)), Ok(0));
    expunge_all(&store, &mail_file(49), "Inbox").await;
    assert_eq!(bodies(&store), 0);
}

#[tokio::test]
async fn the_mail_box_message_holds_its_body_until_it_is_removed() {
    let (_dir, store) = open();
    // Delivered to 3 mail files, a 4th recipient still pending.
    let (id, data) = deliver_to_many(&store, 4, 3).await;
    assert_eq!(rows(&store).refs, [4]);
    assert_eq!(store.message_data(id), Ok(Some(data.clone())));
    for i in 0..3 {
        expunge_all(&store, &mail_file(i), "Inbox").await;
    }
    assert_eq!(bodies(&store), 1, "the mail box message still holds it");
    assert_eq!(store.message_data(id), Ok(Some(data)));
    assert_eq!(store.delete(id).await, Ok(true));
    assert_eq!(bodies(&store), 0);
    assert_eq!(store.message_data(id), Ok(None));

    // The other way round: the mail box lets go first (settled), the entries later.
    let (id, _) = deliver_to_many(&store, 2, 1).await;
    let outcome = store
        .settle(vec![Settlement {
            message: id,
            outcomes: vec![(address(1), done(RecipientStatus::Transferred))],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(outcome[0].removed);
    assert_eq!(rows(&store).refs, [1], "the entry's reference is left");
    expunge_all(&store, &mail_file(0), "Inbox").await;
    assert_eq!(bodies(&store), 0);
}

#[tokio::test]
async fn copy_shares_move_keeps_and_folder_delete_frees() {
    let (_dir, store) = open();
    let (_, data) = deliver_to_many(&store, 1, 1).await;
    let user = mail_file(0);
    for folder in ["Keep", "Moved"] {
        store
            .create_folder(&user, folder, None)
            .await
            .expect("create");
    }
    let copied = store
        .copy(&user, "Inbox", &[1], "Keep", false)
        .await
        .expect("copy");
    assert_eq!(copied, [(1, 1)]);
    assert_eq!(bodies(&store), 1, "COPY stores nothing new");
    assert_eq!(rows(&store).refs, [2]);
    assert_eq!(store.message_body(&user, "Keep", 1), Ok(Some(data.clone())));
    assert_eq!(
        store.mailfile_usage(&user),
        Ok(2 * data.len() as u64),
        "the copy counts against the quota as before"
    );
    store
        .copy(&user, "Inbox", &[1], "Moved", true)
        .await
        .expect("move");
    assert_eq!(rows(&store).refs, [2], "MOVE keeps the reference");
    assert_eq!(store.message_body(&user, "Moved", 1), Ok(Some(data)));
    assert!(store.delete_folder(&user, "Keep").await.expect("delete"));
    assert_eq!(rows(&store).refs, [1]);
    assert!(store.delete_folder(&user, "Moved").await.expect("delete"));
    assert_eq!(bodies(&store), 0);
    assert_eq!(store.mailfile_usage(&user), Ok(0));
}

#[tokio::test]
async fn append_stores_a_body_of_its_own() {
    let (_dir, store) = open();
    let (_, data) = deliver_to_many(&store, 1, 1).await;
    let user = mail_file(0);
    for _ in 0..2 {
        let entry = store
            .append(&user, "Inbox", data.clone(), Flags::default(), 5)
            .await
            .expect("append");
        assert_eq!(entry.subject, "shared");
        assert_eq!(entry.size, data.len() as u64);
    }
    assert_eq!(bodies(&store), 3, "the same bytes appended are not shared");
    assert_eq!(rows(&store).refs, [1, 1, 1]);
    let listed = store.messages(&user, "Inbox").expect("list");
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2].internal_date, 5);
    assert_eq!(listed[2].subject, "shared");
    assert_eq!(store.message_body(&user, "Inbox", 3), Ok(Some(data)));
    store
        .set_flags(&user, "Inbox", &[2], FlagOp::Add, deleted())
        .await
        .expect("flag");
    store.expunge(&user, "Inbox", None).await.expect("expunge");
    assert_eq!(bodies(&store), 2);
}

#[tokio::test]
async fn a_report_accepted_with_a_settlement_has_its_own_body() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming("jane@acme.com", &["nobody@acme.com"], "lost"))
        .await
        .expect("accept");
    let report = Incoming {
        from: String::new(),
        recipients: vec!["jane@acme.com".to_owned()],
        data: message_text("Delivery Failure Report", "not delivered").into_bytes(),
        received_at: 1_700_000_000_000,
        kind: MessageKind::Report,
        hop_count: 0,
        origin: format!("report about {}", msg.id),
        message_id: None,
        subject: Some("Delivery Failure Report".to_owned()),
        ..Incoming::default()
    };
    let outcome = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![("nobody@acme.com".to_owned(), done(RecipientStatus::Failed))],
            new_messages: vec![report.clone()],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(outcome[0].removed);
    let queued = &outcome[0].new_messages[0];
    assert_eq!(queued.size, report.data.len() as u64);
    assert_eq!(store.message_data(queued.id), Ok(Some(report.data)));
    assert_eq!(bodies(&store), 1, "the failed message's body went with it");
}
