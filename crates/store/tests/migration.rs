//! Stores left by an older mailhop open with this one and read the same:
//! schema version 1 (no `headers` table) and version 4 (a body per mail-file
//! entry and one in the mail box message) move to shared bodies.

mod common;

use std::path::Path;

use common::{delivery, done, message_text};
use rusqlite::{Connection, params};
use store::{
    EntryMeta, EventQuery, FlagOp, Flags, MailEntry, MessageKind, MessageState, QueuedMessage,
    QueuedRecipient, RecipientStatus, Settlement, SpecialUse, Store,
};

/// The schema as those versions created it, frozen.
const V1: &str = include_str!("fixtures/schema_v1.sql");
const V2_TO_V4: &str = include_str!("fixtures/schema_v2_to_v4.sql");

const JDOE: &str = "mail/jdoe";
const T: i64 = 1_700_000_000_000;

fn text(subject: &str) -> Vec<u8> {
    message_text(subject, &format!("{subject} body")).into_bytes()
}

fn header(subject: &str) -> Vec<u8> {
    let data = text(subject);
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end")
        + 4;
    data[..end].to_vec()
}

fn size(subject: &str) -> i64 {
    text(subject).len() as i64
}

/// Writes what an older mailhop of schema `version` (1 or 4) left: two
/// messages in the mail box, three in a mail file (one a COPY), an event, as
/// that version's code stored them.
fn old_store(dir: &Path, version: i64) {
    let conn = Connection::open(dir.join("mailhop.db")).expect("sqlite");
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .expect("wal");
    conn.execute_batch(V1).expect("schema 1");
    if version >= 4 {
        conn.execute_batch(V2_TO_V4).expect("schemas 2 to 4");
    }
    conn.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        .expect("version table");
    conn.execute(
        "INSERT INTO schema_version (version) VALUES (?1)",
        [version],
    )
    .expect("version");
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('uidvalidity', 1700000100)",
        [],
    )
    .expect("meta");

    let mut message = conn
        .prepare(
            "INSERT INTO messages (id, state, reason, sender, received_at, kind, hop_count, origin, message_id,
                 subject, size, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .expect("prepare");
    message
        .execute(params![
            1,
            0,
            None::<String>,
            "jane@acme.com",
            T,
            0,
            1,
            "smtp 127.0.0.1 helo=old",
            "queued@acme.com",
            "queued",
            size("queued"),
            text("queued")
        ])
        .expect("message 1");
    message
        .execute(params![
            2,
            1,
            "held: no route",
            "",
            T + 1,
            1,
            0,
            "report about 0",
            None::<String>,
            "held",
            size("held"),
            text("held")
        ])
        .expect("message 2");
    let mut recipient = conn
        .prepare(
            "INSERT INTO recipients (message, addr_key, seq, address, status, attempts, next_attempt, last_error,
                 queue)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .expect("prepare");
    recipient
        .execute(params![
            1,
            "jdoe@acme.com",
            0,
            "jdoe@acme.com",
            1,
            0,
            None::<i64>,
            None::<String>,
            None::<String>
        ])
        .expect("recipient");
    recipient
        .execute(params![
            1,
            "out@else.com",
            1,
            "Out@Else.com",
            0,
            2,
            T + 600_000,
            "421 busy",
            "else.com"
        ])
        .expect("recipient");
    recipient
        .execute(params![
            2,
            "jane@acme.com",
            0,
            "jane@acme.com",
            0,
            0,
            None::<i64>,
            "held: no route",
            None::<String>
        ])
        .expect("recipient");

    let usage = 2 * size("one") + size("three");
    conn.execute(
        "INSERT INTO mailfiles (id, name, usage) VALUES (1, ?1, ?2)",
        params![JDOE, usage],
    )
    .expect("mail file");
    // (id, name, uidvalidity, uidnext, subscribed, special use)
    let folders = [
        (1, "Inbox", 1_700_000_001, 4, true, None),
        (2, "Sent", 1_700_000_002, 1, true, Some(1)),
        (3, "Drafts", 1_700_000_003, 1, true, Some(2)),
        (4, "Trash", 1_700_000_004, 1, true, Some(3)),
        (5, "Junk", 1_700_000_005, 1, true, Some(4)),
        (6, "Archive", 1_700_000_100, 2, false, Some(5)),
    ];
    for (id, name, uidvalidity, uidnext, subscribed, special_use) in folders {
        conn.execute(
            "INSERT INTO folders (id, mailfile, name, uidvalidity, uidnext, subscribed, special_use)
             VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6)",
            params![id, name, uidvalidity, uidnext, subscribed, special_use],
        )
        .expect("folder");
    }
    // (entry, folder, uid, flags, keywords, subject): "one" in Inbox and its COPY in Archive.
    let entries = [
        (1, 1, 1, 0, "", "one"),
        (2, 1, 3, 1 | 4, "$Work", "three"),
        (3, 6, 1, 32, "", "one"),
    ];
    for (id, folder, uid, flags, keywords, subject) in entries {
        conn.execute(
            "INSERT INTO entries (id, folder, uid, flags, keywords, internal_date, size, message_id, sender,
                 subject, date, route_servers, route_times)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'Jane Doe <jane@acme.com>', ?9, ?10, ?11, ?12)",
            params![
                id,
                folder,
                uid,
                flags,
                keywords,
                T + id,
                size(subject),
                format!("{subject}@acme.com"),
                subject,
                T,
                r#"["hub/Acme"]"#,
                format!("[{T}]"),
            ],
        )
        .expect("entry");
        conn.execute(
            "INSERT INTO bodies (entry, data) VALUES (?1, ?2)",
            params![id, text(subject)],
        )
        .expect("body");
        if version >= 2 {
            conn.execute(
                "INSERT INTO headers (entry, data) VALUES (?1, ?2)",
                params![id, header(subject)],
            )
            .expect("header");
        }
    }
    conn.execute(
        "INSERT INTO events (time, message_id, sender, recipient, server, outcome, detail, hop, size)
         VALUES (?1, 'queued@acme.com', 'jane@acme.com', 'jdoe@acme.com', 'hub/Acme', 'delivered', ?2, 1, ?3)",
        params![T, JDOE, size("queued")],
    )
    .expect("event");
}

fn entry(uid: u32, subject: &str, flags: Flags, internal_date: i64) -> MailEntry {
    MailEntry {
        uid,
        size: size(subject) as u64,
        internal_date,
        flags,
        message_id: Some(format!("{subject}@acme.com")),
        from: "Jane Doe <jane@acme.com>".to_owned(),
        subject: subject.to_owned(),
        date: Some(T),
        route_servers: vec!["hub/Acme".to_owned()],
        route_times: vec![T],
    }
}

fn queued_one() -> QueuedMessage {
    QueuedMessage {
        id: 1,
        from: "jane@acme.com".to_owned(),
        size: size("queued") as u64,
        received_at: T,
        kind: MessageKind::Normal,
        hop_count: 1,
        state: MessageState::Pending,
        message_id: Some("queued@acme.com".to_owned()),
        subject: Some("queued".to_owned()),
        route: Vec::new(),
        priority: store::Priority::Normal,
        recipients: vec![
            QueuedRecipient {
                address: "jdoe@acme.com".to_owned(),
                status: RecipientStatus::Delivered,
                attempts: 0,
                next_attempt: None,
                last_error: None,
                queue: None,
                parent: None,
                via: None,
            },
            QueuedRecipient {
                address: "Out@Else.com".to_owned(),
                status: RecipientStatus::Pending,
                attempts: 2,
                next_attempt: Some(T + 600_000),
                last_error: Some("421 busy".to_owned()),
                queue: Some("else.com".to_owned()),
                parent: None,
                via: None,
            },
        ],
    }
}

/// Everything the old store held reads as it was written.
fn reads_the_same(store: &Store) {
    let three_flags = Flags {
        seen: true,
        flagged: true,
        keywords: vec!["$Work".to_owned()],
        ..Flags::default()
    };
    let recent = Flags {
        recent: true,
        ..Flags::default()
    };
    assert_eq!(
        store.messages(JDOE, "Inbox"),
        Ok(vec![
            entry(1, "one", Flags::default(), T + 1),
            entry(3, "three", three_flags.clone(), T + 2)
        ])
    );
    assert_eq!(
        store.messages(JDOE, "Archive"),
        Ok(vec![entry(1, "one", recent.clone(), T + 3)])
    );
    for (folder, uid, subject) in [
        ("Inbox", 1, "one"),
        ("Inbox", 3, "three"),
        ("Archive", 1, "one"),
    ] {
        assert_eq!(
            store.message_body(JDOE, folder, uid),
            Ok(Some(text(subject)))
        );
        assert_eq!(
            store.headers(JDOE, folder, &[uid]),
            Ok(vec![(uid, header(subject))])
        );
    }
    let metas = vec![
        EntryMeta {
            uid: 1,
            size: size("one") as u64,
            internal_date: T + 1,
            flags: Flags::default(),
        },
        EntryMeta {
            uid: 3,
            size: size("three") as u64,
            internal_date: T + 2,
            flags: three_flags,
        },
    ];
    assert_eq!(store.entries(JDOE, "Inbox", None), Ok(metas.clone()));
    let (info, listed) = store
        .listing(JDOE, "Inbox")
        .expect("listing")
        .expect("Inbox");
    assert_eq!(listed, metas);
    assert_eq!(
        (info.uidvalidity, info.uidnext, info.exists, info.unseen),
        (1_700_000_001, 4, 2, 1)
    );
    let folders: Vec<_> = store
        .folders(JDOE)
        .expect("folders")
        .into_iter()
        .map(|f| (f.name, f.uidvalidity, f.subscribed, f.special_use))
        .collect();
    assert_eq!(
        folders[..2],
        [
            ("Inbox".to_owned(), 1_700_000_001, true, None),
            (
                "Archive".to_owned(),
                1_700_000_100,
                false,
                Some(SpecialUse::Archive)
            ),
        ]
    );
    assert_eq!(
        store.mailfile_usage(JDOE),
        Ok((2 * size("one") + size("three")) as u64)
    );

    assert_eq!(store.message(1), Ok(Some(queued_one())));
    assert_eq!(store.message_data(1), Ok(Some(text("queued"))));
    assert_eq!(store.message_data(2), Ok(Some(text("held"))));
    let mut pending = queued_one();
    pending.recipients.remove(0);
    assert_eq!(store.pending(), Ok(vec![pending]));
    let listed = store.list(None).expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(
        (
            listed[1].state,
            listed[1].reason.as_deref(),
            listed[1].kind,
            listed[1].size
        ),
        (
            MessageState::Held,
            Some("held: no route"),
            MessageKind::Report,
            size("held") as u64
        )
    );
    assert_eq!(listed[0].recipients, ["jdoe@acme.com", "Out@Else.com"]);
    let counts = store.counts().expect("counts");
    assert_eq!(
        (counts.total, counts.held, counts.waiting_recipients),
        (2, 1, 1)
    );
    let events = store.events(&EventQuery::default()).expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].size, size("queued") as u64);
}

fn tables(dir: &Path) -> Connection {
    Connection::open(dir.join("mailhop.db")).expect("sqlite")
}

fn has(conn: &Connection, sql: &str) -> bool {
    conn.query_row(sql, [], |r| r.get(0)).expect("query")
}

/// Old tables and columns are gone, and each old copy is a body with one reference.
fn moved_over(dir: &Path) {
    let conn = tables(dir);
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .expect("version");
    assert!(
        version >= 5,
        "schema {version}: shared bodies came with version 5"
    );
    for table in ["bodies", "headers"] {
        assert!(
            !has(
                &conn,
                &format!("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE name = '{table}')")
            ),
            "{table} dropped"
        );
    }
    for (table, column) in [
        ("messages", "data"),
        ("entries", "sender"),
        ("entries", "subject"),
        ("entries", "date"),
        ("entries", "message_id"),
    ] {
        assert!(
            !has(
                &conn,
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM pragma_table_info('{table}') WHERE name = '{column}')"
                )
            ),
            "{table}.{column} dropped"
        );
    }
    let refs: Vec<i64> = conn
        .prepare("SELECT refs FROM blobs ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("refs");
    assert_eq!(refs, [1, 1, 1, 1, 1], "3 entries and 2 mail box messages");
    for table in ["blob_headers", "blob_data"] {
        let n: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 5, "{table}");
    }
}

fn bodies(dir: &Path) -> i64 {
    tables(dir)
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .expect("count")
}

/// After the move, writes take and drop references as for a new store.
async fn works_on(store: &Store, dir: &Path) {
    let outcome = store
        .settle(vec![Settlement {
            message: 1,
            outcomes: vec![("out@else.com".to_owned(), done(RecipientStatus::Delivered))],
            deliveries: vec![delivery("mail/out", "Out@Else.com")],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(outcome[0].removed);
    assert_eq!(
        store.message_body("mail/out", "Inbox", 1),
        Ok(Some(text("queued")))
    );
    assert_eq!(bodies(dir), 5, "the mail box's body went to the mail file");
    assert_eq!(store.delete(2).await, Ok(true));
    assert_eq!(bodies(dir), 4);
    store
        .set_flags(
            JDOE,
            "Inbox",
            &[1, 3],
            FlagOp::Add,
            Flags {
                deleted: true,
                ..Flags::default()
            },
        )
        .await
        .expect("flag");
    assert_eq!(store.expunge(JDOE, "Inbox", None).await, Ok(vec![1, 3]));
    assert_eq!(bodies(dir), 2, "the Archive copy and mail/out's are left");
    assert!(store.delete_folder(JDOE, "Archive").await.expect("delete"));
    assert_eq!(bodies(dir), 1);
    assert_eq!(store.mailfile_usage(JDOE), Ok(0));
}

#[tokio::test]
async fn a_version_4_store_moves_to_shared_bodies_and_reads_the_same() {
    let dir = tempfile::tempdir().expect("temp dir");
    old_store(dir.path(), 4);
    let store = Store::open(dir.path()).expect("open the old store");
    moved_over(dir.path());
    reads_the_same(&store);
    let reader = Store::open_read_only(dir.path()).expect("read-only");
    reads_the_same(&reader);
    drop(store);
    let store = Store::open(dir.path()).expect("reopen");
    reads_the_same(&store);
    works_on(&store, dir.path()).await;
}

#[tokio::test]
async fn a_version_1_store_gets_its_headers_and_shared_bodies() {
    let dir = tempfile::tempdir().expect("temp dir");
    old_store(dir.path(), 1);
    let store = Store::open(dir.path()).expect("open the old store");
    moved_over(dir.path());
    reads_the_same(&store);
    works_on(&store, dir.path()).await;
}
