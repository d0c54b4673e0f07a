//! The mail box: accept, settle, states, counts, events, read-only access.

mod common;

use common::{delivery, done, incoming};
use store::{
    EventQuery, MailBoxCounts, MessageKind, MessageState, RecipientStatus, RecipientUpdate,
    RoutingEvent, Settlement, Store, StoreError,
};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

#[tokio::test]
async fn accepted_messages_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let first = store
        .accept(incoming(
            "jane@acme.com",
            &["a@x.com", "B@x.com", "A@X.com", "b@x.com", "c@x.com"],
            "one",
        ))
        .await
        .expect("accept");
    let second = store
        .accept(incoming("", &["postmaster@acme.com"], "two"))
        .await
        .expect("accept");
    let addresses: Vec<_> = first
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(
        addresses,
        ["a@x.com", "B@x.com", "c@x.com"],
        "in order, each address once"
    );
    drop(store);

    let store = Store::open(dir.path()).expect("reopen");
    let pending = store.pending().expect("pending");
    assert_eq!(pending, vec![first.clone(), second.clone()]);
    assert_eq!(pending[1].from, "", "null reverse path kept");
    assert!(second.id > first.id);
}

#[tokio::test]
async fn a_message_needs_a_recipient() {
    let (_dir, store) = open();
    assert_eq!(
        store.accept(incoming("jane@acme.com", &[], "x")).await,
        Err(StoreError::NoRecipients)
    );
}

#[tokio::test]
async fn settled_messages_leave_the_mail_box_when_every_recipient_is_final() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming(
            "jane@acme.com",
            &["jdoe@acme.com", "out@else.com"],
            "hi",
        ))
        .await
        .expect("accept");
    let outcome = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![("JDOE@acme.com".to_owned(), done(RecipientStatus::Delivered))],
            deliveries: vec![delivery("mail/jdoe", "jdoe@acme.com")],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert_eq!(outcome.len(), 1);
    assert!(!outcome[0].removed && !outcome[0].gone);
    assert_eq!(outcome[0].delivered, vec![("mail/jdoe".to_owned(), 1)]);
    let pending = store.pending().expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].recipients.len(),
        1,
        "only the recipient still to do"
    );
    assert_eq!(pending[0].recipients[0].address, "out@else.com");
    let whole = store.message(msg.id).expect("read").expect("still there");
    assert_eq!(whole.recipients[0].status, RecipientStatus::Delivered);

    let outcome = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![(
                "out@else.com".to_owned(),
                done(RecipientStatus::Transferred),
            )],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(outcome[0].removed);
    assert_eq!(store.message(msg.id).expect("read"), None);
    assert!(store.pending().expect("pending").is_empty());
}

#[tokio::test]
async fn group_members_are_added_once_each() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming("jane@acme.com", &["sales@acme.com"], "hi"))
        .await
        .expect("accept");
    let waiting = |queue: &str| RecipientUpdate::Pending {
        reason: "schedule".to_owned(),
        queue: Some(queue.to_owned()),
    };
    let outcome = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![
                ("sales@acme.com".to_owned(), done(RecipientStatus::Expanded)),
                ("Ann@acme.com".to_owned(), waiting("hub")),
                ("bob@acme.com".to_owned(), waiting("hub")),
                // the same member through a nested group
                ("ann@ACME.com".to_owned(), waiting("hub")),
            ],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(!outcome[0].removed);
    let whole = store.message(msg.id).expect("read").expect("there");
    let rows: Vec<_> = whole
        .recipients
        .iter()
        .map(|r| (r.address.as_str(), r.status))
        .collect();
    assert_eq!(
        rows,
        [
            ("sales@acme.com", RecipientStatus::Expanded),
            ("Ann@acme.com", RecipientStatus::Pending),
            ("bob@acme.com", RecipientStatus::Pending),
        ]
    );
    assert_eq!(whole.recipients[1].queue.as_deref(), Some("hub"));
    assert_eq!(whole.recipients[1].last_error.as_deref(), Some("schedule"));
    assert_eq!(whole.recipients[1].attempts, 0);

    // Retry counts attempts and keeps the queue when none is given.
    for n in 1..=2 {
        store
            .settle(vec![Settlement {
                message: msg.id,
                outcomes: vec![(
                    "ann@acme.com".to_owned(),
                    RecipientUpdate::Retry {
                        error: "Server not responding".to_owned(),
                        next_attempt: 1_700_000_900_000 + n,
                        queue: None,
                    },
                )],
                ..Settlement::default()
            }])
            .await
            .expect("settle");
    }
    let ann = store
        .message(msg.id)
        .expect("read")
        .expect("there")
        .recipients[1]
        .clone();
    assert_eq!(ann.attempts, 2);
    assert_eq!(ann.next_attempt, Some(1_700_000_900_002));
    assert_eq!(ann.last_error.as_deref(), Some("Server not responding"));
    assert_eq!(ann.queue.as_deref(), Some("hub"));
    assert_eq!(ann.status, RecipientStatus::Waiting);

    // The queue as `show queues` reads it: one message, its retry and error.
    assert_eq!(
        store.queues().expect("queues"),
        vec![store::QueueSummary {
            queue: "hub".to_owned(),
            messages: 1,
            attempts: 2,
            last_error: Some("Server not responding".to_owned()),
            next_attempt: Some(1_700_000_900_002),
        }]
    );
}

#[tokio::test]
async fn reports_are_accepted_with_the_settlement() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming("jane@acme.com", &["nobody@acme.com"], "hi"))
        .await
        .expect("accept");
    let mut report = incoming("", &["jane@acme.com"], "DELIVERY FAILURE");
    report.kind = MessageKind::Report;
    report.origin = format!("report about {}", msg.id);
    let outcome = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![(
                "nobody@acme.com".to_owned(),
                RecipientUpdate::Final {
                    status: RecipientStatus::Failed,
                    reason: Some("User nobody@acme.com not listed in the directory".to_owned()),
                },
            )],
            new_messages: vec![report],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(outcome[0].removed);
    let reports = &outcome[0].new_messages;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].kind, MessageKind::Report);
    assert_eq!(store.pending().expect("pending"), reports.clone());
}

#[tokio::test]
async fn held_and_dead_messages_stay_until_released_or_deleted() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming(
            "jane@acme.com",
            &["jdoe@acme.com", "far@away.com"],
            "hi",
        ))
        .await
        .expect("accept");
    let reason = "No route found to domain away.com from server hub/Acme.  Check Server, Connection and Domain \
                  documents in the Domino Directory.";
    let outcome = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![
                ("jdoe@acme.com".to_owned(), done(RecipientStatus::Delivered)),
                (
                    "far@away.com".to_owned(),
                    RecipientUpdate::Final {
                        status: RecipientStatus::Failed,
                        reason: Some(reason.to_owned()),
                    },
                ),
            ],
            state: Some((MessageState::Held, Some(reason.to_owned()))),
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(
        !outcome[0].removed,
        "held mail stays although every recipient is final"
    );
    assert!(store.pending().expect("pending").is_empty());
    let held = store.list(Some(MessageState::Held)).expect("list");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].reason.as_deref(), Some(reason));
    assert_eq!(held[0].recipients, ["jdoe@acme.com", "far@away.com"]);
    assert_eq!(held[0].origin, "smtp 127.0.0.1 helo=test");
    assert!(
        store
            .list(Some(MessageState::Dead))
            .expect("list")
            .is_empty()
    );

    // Release: the failed recipient is routed again, the delivered one is not.
    assert_eq!(
        store.set_state(msg.id, MessageState::Pending, None).await,
        Ok(true)
    );
    let pending = store.pending().expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, MessageState::Pending);
    let again = &pending[0].recipients;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].address, "far@away.com");
    assert_eq!(
        (
            again[0].attempts,
            again[0].next_attempt,
            again[0].last_error.clone()
        ),
        (0, None, None)
    );

    assert_eq!(
        store
            .set_state(msg.id, MessageState::Dead, Some("dead reason".to_owned()))
            .await,
        Ok(true)
    );
    let dead = store.list(Some(MessageState::Dead)).expect("list");
    assert_eq!(
        (dead[0].id, dead[0].reason.as_deref()),
        (msg.id, Some("dead reason"))
    );
    assert_eq!(store.delete(msg.id).await, Ok(true));
    assert_eq!(store.delete(msg.id).await, Ok(false));
    assert_eq!(
        store.set_state(msg.id, MessageState::Held, None).await,
        Ok(false)
    );
    assert!(store.list(None).expect("list").is_empty());
}

#[tokio::test]
async fn releasing_a_message_with_nothing_left_to_do_removes_it() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming("jane@acme.com", &["jdoe@acme.com"], "hi"))
        .await
        .expect("accept");
    store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![("jdoe@acme.com".to_owned(), done(RecipientStatus::Delivered))],
            state: Some((MessageState::Held, None)),
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert_eq!(
        store.set_state(msg.id, MessageState::Pending, None).await,
        Ok(true)
    );
    assert_eq!(store.message(msg.id).expect("read"), None);
}

#[tokio::test]
async fn counts_are_the_mail_box_gauges() {
    let (_dir, store) = open();
    let mut ids = Vec::new();
    for n in 0..4 {
        let to = ["a@x.com", "b@x.com"];
        let msg = store
            .accept(incoming("jane@acme.com", &to[..=n % 2], "hi"))
            .await
            .expect("accept");
        ids.push(msg.id);
    }
    store
        .set_state(ids[0], MessageState::Held, None)
        .await
        .expect("hold");
    store
        .set_state(ids[1], MessageState::Dead, None)
        .await
        .expect("kill");
    assert_eq!(
        store.counts().expect("counts"),
        MailBoxCounts {
            pending: 2,
            held: 1,
            dead: 1,
            // ids[2] has one recipient, ids[3] two
            waiting_recipients: 3,
            total: 4,
        }
    );
}

#[tokio::test]
async fn a_settlement_for_a_deleted_message_records_nothing() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming("jane@acme.com", &["jdoe@acme.com"], "hi"))
        .await
        .expect("accept");
    assert_eq!(store.delete(msg.id).await, Ok(true));
    let outcome = store
        .settle(vec![Settlement {
            message: msg.id,
            outcomes: vec![("jdoe@acme.com".to_owned(), done(RecipientStatus::Delivered))],
            deliveries: vec![delivery("mail/jdoe", "jdoe@acme.com")],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    assert!(outcome[0].gone && outcome[0].removed);
    assert!(outcome[0].delivered.is_empty());
    assert!(store.folders("mail/jdoe").expect("folders").is_empty());
}

#[tokio::test]
async fn a_failing_settlement_fails_the_call_and_records_nothing() {
    let (_dir, store) = open();
    let a = store
        .accept(incoming("jane@acme.com", &["jdoe@acme.com"], "a"))
        .await
        .expect("accept");
    let b = store
        .accept(incoming("jane@acme.com", &["jdoe@acme.com"], "b"))
        .await
        .expect("accept");
    let mut bad = delivery("mail/jdoe", "jdoe@acme.com");
    bad.folder = String::new();
    let result = store
        .settle(vec![
            Settlement {
                message: a.id,
                outcomes: vec![("jdoe@acme.com".to_owned(), done(RecipientStatus::Delivered))],
                deliveries: vec![delivery("mail/jdoe", "jdoe@acme.com")],
                ..Settlement::default()
            },
            Settlement {
                message: b.id,
                outcomes: vec![("jdoe@acme.com".to_owned(), done(RecipientStatus::Delivered))],
                deliveries: vec![bad],
                ..Settlement::default()
            },
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::InvalidFolderName { .. })),
        "{result:?}"
    );
    assert_eq!(store.pending().expect("pending").len(), 2);
    assert_eq!(store.mailfile_usage("mail/jdoe"), Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_request_does_not_fail_the_others() {
    let (_dir, store) = open();
    let mut tasks = Vec::new();
    for n in 0..60 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let to: &[&str] = if n == 30 { &[] } else { &["jdoe@acme.com"] };
            store.accept(incoming("jane@acme.com", to, "x")).await
        }));
    }
    let mut ok = 0;
    for (n, task) in tasks.into_iter().enumerate() {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!((n, e), (30, StoreError::NoRecipients)),
        }
    }
    assert_eq!(ok, 59);
    assert_eq!(store.pending().expect("pending").len(), 59);
}

#[tokio::test]
async fn a_read_only_store_sees_what_the_server_commits() {
    let dir = tempfile::tempdir().expect("temp dir");
    assert!(matches!(
        Store::open_read_only(dir.path()),
        Err(StoreError::Open { .. })
    ));
    let store = Store::open(dir.path()).expect("open");
    let reader = Store::open_read_only(dir.path()).expect("open read-only");
    let first = store
        .accept(incoming("jane@acme.com", &["jdoe@acme.com"], "a"))
        .await
        .expect("accept");
    assert_eq!(reader.message(first.id).expect("read"), Some(first.clone()));
    let second = store
        .accept(incoming("jane@acme.com", &["jdoe@acme.com"], "b"))
        .await
        .expect("accept");
    assert_eq!(
        reader.pending().expect("pending"),
        vec![first.clone(), second]
    );
    assert_eq!(
        reader
            .accept(incoming("jane@acme.com", &["x@y.com"], "c"))
            .await,
        Err(StoreError::ReadOnly)
    );
    assert_eq!(reader.delete(first.id).await, Err(StoreError::ReadOnly));
    drop(store);
    let later = Store::open_read_only(dir.path()).expect("open read-only after the server stopped");
    assert_eq!(later.counts().expect("counts").pending, 2);
}

#[tokio::test]
async fn a_ten_megabyte_message_goes_through() {
    let (_dir, store) = open();
    let mut msg = incoming("jane@acme.com", &["jdoe@acme.com"], "");
    let mut data = common::message_text("big", "").into_bytes();
    data.extend((0..10 * 1024 * 1024).map(|i| b"abcdefghijklmnopqrstuvwxyz\r\n"[i % 28]));
    msg.data = data.clone();
    let queued = store.accept(msg).await.expect("accept");
    assert_eq!(queued.size, data.len() as u64);
    assert_eq!(store.message_data(queued.id), Ok(Some(data.clone())));
    let big = delivery("mail/jdoe", "jdoe@acme.com");
    let outcome = store
        .settle(vec![Settlement {
            message: queued.id,
            outcomes: vec![("jdoe@acme.com".to_owned(), done(RecipientStatus::Delivered))],
            deliveries: vec![big],
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    let uid = outcome[0].delivered[0].1;
    assert_eq!(
        store.message_body("mail/jdoe", "Inbox", uid).expect("read"),
        Some(data.clone())
    );
    let entries = store.messages("mail/jdoe", "Inbox").expect("list");
    assert_eq!(entries[0].size, data.len() as u64);
    assert_eq!(entries[0].subject, "big");
    assert_eq!(store.mailfile_usage("mail/jdoe"), Ok(data.len() as u64));
}

fn event(time: i64, message_id: &str, recipient: &str, outcome: &str) -> RoutingEvent {
    RoutingEvent {
        time,
        message_id: message_id.to_owned(),
        sender: "Jane@acme.com".to_owned(),
        recipient: recipient.to_owned(),
        server: "hub/Acme".to_owned(),
        outcome: outcome.to_owned(),
        detail: String::new(),
        hop: 1,
        size: 2048,
    }
}

#[tokio::test]
async fn routing_events_are_logged_and_queried() {
    let (_dir, store) = open();
    let msg = store
        .accept(incoming(
            "jane@acme.com",
            &["jdoe@acme.com", "bob@else.com"],
            "a",
        ))
        .await
        .expect("accept");
    let events = vec![
        event(1_000, "m1@acme.com", "jdoe@acme.com", "delivered"),
        event(2_000, "m1@acme.com", "bob@else.com", "retry"),
        event(3_000, "m2@acme.com", "bob@else.com", "transferred"),
    ];
    store
        .settle(vec![Settlement {
            message: msg.id,
            events: events.clone(),
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    let all = store.events(&EventQuery::default()).expect("events");
    assert_eq!(all, events);
    let by_id = store
        .events(&EventQuery {
            message_id: Some("m1@acme.com".to_owned()),
            ..EventQuery::default()
        })
        .expect("events");
    assert_eq!(by_id, events[..2]);
    let to_bob_since = store
        .events(&EventQuery {
            recipient: Some("BOB@".to_owned()),
            sender: Some("jane".to_owned()),
            since: Some(2_500),
            ..EventQuery::default()
        })
        .expect("events");
    assert_eq!(to_bob_since, events[2..]);
    let latest = store
        .events(&EventQuery {
            limit: Some(2),
            ..EventQuery::default()
        })
        .expect("events");
    assert_eq!(latest, events[1..], "the latest two, oldest first");
}

#[tokio::test]
async fn store_files_are_for_their_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    store
        .accept(incoming("jane@acme.com", &["a@x.com"], "one"))
        .await
        .expect("accept");
    let mut seen = Vec::new();
    for name in [
        "mailhop.db",
        "mailhop.db-wal",
        "mailhop.db-shm",
        "mailhop.lock",
    ] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        seen.push((name, mode & 0o777));
    }
    assert_eq!(
        seen,
        [
            ("mailhop.db", 0o600),
            ("mailhop.db-wal", 0o600),
            ("mailhop.db-shm", 0o600),
            ("mailhop.lock", 0o600)
        ]
    );
    drop(store);
    // An existing database left readable by all is made owner-only again.
    std::fs::set_permissions(
        dir.path().join("mailhop.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let store = Store::open(dir.path()).expect("reopen");
    let mode = std::fs::metadata(dir.path().join("mailhop.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(store);
}
