//! The settlement model: every recipient a row (derived ones with their
//! parent), rows move only forward, settling is conditional so it happens
//! once, and one process owns a store.

mod common;

use common::{delivery, done, incoming};
use store::{MessageKind, RecipientStatus, RecipientUpdate, Settlement, Store, StoreError};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

fn delivered_to_jdoe(id: i64) -> Settlement {
    Settlement {
        message: id,
        outcomes: vec![("jdoe@acme.com".to_owned(), done(RecipientStatus::Delivered))],
        deliveries: vec![delivery("mail/jdoe", "jdoe@acme.com")],
        ..Settlement::default()
    }
}

fn inbox_count(store: &Store, mail_file: &str) -> usize {
    store
        .messages(mail_file, "Inbox")
        .map(|m| m.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_delivery_settled_twice_is_made_once() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming(
            "jane@acme.com",
            &["jdoe@acme.com", "bob@else.com"],
            "x",
        ))
        .await
        .expect("accept");
    // Two passes over the same message, in one group commit and in two.
    let both = store
        .settle(vec![delivered_to_jdoe(msg.id), delivered_to_jdoe(msg.id)])
        .await
        .expect("settle");
    assert_eq!(both[0].delivered.len(), 1);
    assert!(both[0].skipped.is_empty());
    assert_eq!(both[1].delivered.len(), 0);
    assert_eq!(both[1].skipped, vec!["jdoe@acme.com".to_owned()]);
    let again = store
        .settle(vec![delivered_to_jdoe(msg.id)])
        .await
        .expect("settle");
    assert_eq!(again[0].delivered.len(), 0);
    assert_eq!(inbox_count(&store, "mail/jdoe"), 1);
    // bob is still open: the message stays.
    assert!(store.message(msg.id).expect("read").is_some());
}

#[tokio::test]
async fn derived_rows_keep_their_parent_and_hold_the_message() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming("jane@acme.com", &["sales@acme.com"], "x"))
        .await
        .expect("accept");
    let out = store
        .settle(vec![Settlement {
            message: msg.id,
            derived: vec![
                ("jdoe@acme.com".into(), "sales@acme.com".into()),
                ("emea@acme.com".into(), "sales@acme.com".into()),
                ("ext@example.org".into(), "emea@acme.com".into()),
            ],
            outcomes: vec![
                ("sales@acme.com".into(), done(RecipientStatus::Expanded)),
                ("jdoe@acme.com".into(), done(RecipientStatus::Delivered)),
                ("emea@acme.com".into(), done(RecipientStatus::Expanded)),
                (
                    "ext@example.org".into(),
                    RecipientUpdate::Queued {
                        queue: "example.org".into(),
                        via: "mx:example.org".into(),
                    },
                ),
            ],
            deliveries: vec![delivery("mail/jdoe", "jdoe@acme.com")],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(
        !out[0].removed,
        "a Waiting row keeps the message in the mail box"
    );
    let rows = store
        .message(msg.id)
        .expect("read")
        .expect("there")
        .recipients;
    let view: Vec<_> = rows
        .iter()
        .map(|r| (r.address.as_str(), r.status, r.parent.as_deref()))
        .collect();
    assert_eq!(
        view,
        [
            ("sales@acme.com", RecipientStatus::Expanded, None),
            (
                "jdoe@acme.com",
                RecipientStatus::Delivered,
                Some("sales@acme.com")
            ),
            (
                "emea@acme.com",
                RecipientStatus::Expanded,
                Some("sales@acme.com")
            ),
            (
                "ext@example.org",
                RecipientStatus::Waiting,
                Some("emea@acme.com")
            ),
        ]
    );
    assert_eq!(rows[3].via.as_deref(), Some("mx:example.org"));
    assert_eq!(rows[3].queue.as_deref(), Some("example.org"));
    // Handed to a queue once: a second Queued of the same row is skipped.
    let twice = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![(
                "ext@example.org".into(),
                RecipientUpdate::Queued {
                    queue: "example.org".into(),
                    via: "mx:example.org".into(),
                },
            )],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert_eq!(twice[0].skipped, vec!["ext@example.org".to_owned()]);
    // The transfer settles it; only then the message leaves.
    let last = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![("ext@example.org".into(), done(RecipientStatus::Transferred))],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(last[0].removed);
    assert!(store.message(msg.id).expect("read").is_none());
}

#[tokio::test]
async fn rows_derived_from_a_settled_parent_are_not_added() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming(
            "jane@acme.com",
            &["sales@acme.com", "bob@else.com"],
            "x",
        ))
        .await
        .expect("accept");
    let expand = || Settlement {
        message: msg.id,
        derived: vec![("ann@acme.com".into(), "sales@acme.com".into())],
        outcomes: vec![
            ("sales@acme.com".into(), done(RecipientStatus::Expanded)),
            ("ann@acme.com".into(), done(RecipientStatus::Delivered)),
        ],
        deliveries: vec![delivery("mail/ann", "ann@acme.com")],
        ..Settlement::default()
    };
    store.settle(vec![expand()]).await.expect("first pass");
    // A stale second pass: the group is final, so nothing under it is redone.
    let second = store.settle(vec![expand()]).await.expect("second pass");
    assert_eq!(second[0].delivered.len(), 0);
    assert_eq!(inbox_count(&store, "mail/ann"), 1);
    let rows = store
        .message(msg.id)
        .expect("read")
        .expect("there")
        .recipients;
    assert_eq!(rows.len(), 3, "each address once: {rows:?}");
}

#[tokio::test]
async fn a_report_is_written_once() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming("jane@acme.com", &["nobody@acme.com"], "x"))
        .await
        .expect("accept");
    let fail = || Settlement {
        message: msg.id,
        outcomes: vec![(
            "nobody@acme.com".into(),
            RecipientUpdate::Final {
                status: RecipientStatus::Failed,
                reason: Some("User nobody not listed in Domino Directory".into()),
            },
        )],
        new_messages: vec![{
            let mut report = incoming("", &["jane@acme.com"], "report");
            report.kind = MessageKind::Report;
            report
        }],
        ..Settlement::default()
    };
    let out = store.settle(vec![fail(), fail()]).await.expect("settle");
    assert_eq!(out[0].new_messages.len(), 1);
    assert_eq!(out[1].new_messages.len(), 0);
    assert_eq!(
        store.counts().expect("counts").total,
        1,
        "one report in the mail box"
    );
}

#[tokio::test]
async fn a_final_row_never_changes_and_a_waiting_row_never_goes_back() {
    assert!(RecipientStatus::Pending.may_become(RecipientStatus::Waiting));
    assert!(RecipientStatus::Waiting.may_become(RecipientStatus::Transferred));
    assert!(!RecipientStatus::Waiting.may_become(RecipientStatus::Pending));
    for done in [
        RecipientStatus::Delivered,
        RecipientStatus::Transferred,
        RecipientStatus::Failed,
        RecipientStatus::Expanded,
        RecipientStatus::Forwarded,
        RecipientStatus::Dropped,
    ] {
        for next in [
            RecipientStatus::Pending,
            RecipientStatus::Waiting,
            RecipientStatus::Delivered,
        ] {
            assert!(!done.may_become(next), "{done:?} -> {next:?}");
        }
    }
    let (_dir, store) = open();
    let msg = store
        .accept(incoming("jane@acme.com", &["x@else.com"], "x"))
        .await
        .expect("accept");
    let settle = |update: RecipientUpdate| Settlement {
        message: msg.id,
        outcomes: vec![("x@else.com".into(), update)],
        ..Settlement::default()
    };
    store
        .settle(vec![settle(RecipientUpdate::Queued {
            queue: "else.com".into(),
            via: "mx:else.com".into(),
        })])
        .await
        .expect("queued");
    store
        .settle(vec![settle(done(RecipientStatus::Transferred))])
        .await
        .expect("transferred");
    assert!(store.message(msg.id).expect("read").is_none());
}

#[tokio::test]
async fn the_mail_box_is_read_in_pages() {
    let (_dir, store) = open();
    for i in 0..25 {
        store
            .accept(incoming(
                "jane@acme.com",
                &["jdoe@acme.com"],
                &format!("{i}"),
            ))
            .await
            .expect("accept");
    }
    let mut after = 0;
    let mut pages = Vec::new();
    loop {
        let page = store.pending_page(after, 10).expect("page");
        let Some(last) = page.last() else { break };
        after = last.id;
        pages.push(page.len());
    }
    assert_eq!(pages, [10, 10, 5]);
}

#[test]
fn one_process_owns_a_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Store::open(dir.path()).expect("open");
    match Store::open(dir.path()) {
        Err(StoreError::Locked { .. }) => {}
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second writer opened the same store"),
    }
    // Readers (mailhop mailfile) are welcome meanwhile.
    Store::open_read_only(dir.path()).expect("read-only beside the owner");
    drop(first);
}
