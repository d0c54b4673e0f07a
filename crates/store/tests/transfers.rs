//! Messages handed over by another server of the domain: each recipient row
//! is accepted once, whatever is resent; the route and priority are kept.

mod common;

use common::incoming;
use store::{Hop, Priority, Store, TransferOrigin};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

fn origin(server: &str, message: i64) -> TransferOrigin {
    TransferOrigin {
        server: server.to_owned(),
        message,
    }
}

fn fields(msg: &store::Incoming) -> headers::Fields {
    headers::fields(&msg.data)
}

#[tokio::test]
async fn a_resend_is_recognised_per_recipient() {
    let (_dir, store) = open();
    let mut first = incoming("jane@acme.com", &["a@acme.com", "b@acme.com"], "one");
    first.route = vec![Hop {
        server: "SMTP/Acme".into(),
        time: 1_700_000_000_000,
    }];
    first.priority = Priority::High;
    let f = fields(&first);
    let stored = store
        .accept_transfer(first.clone(), f.clone(), origin("SMTP/Acme", 7))
        .await
        .expect("accept")
        .expect("new rows");
    assert_eq!(stored.recipients.len(), 2);

    // The same hand-over again: nothing new.
    let again = store
        .accept_transfer(first.clone(), f.clone(), origin("smtp/acme", 7))
        .await
        .expect("accept again");
    assert!(again.is_none(), "a resend must not store a second copy");

    // One more recipient of the same message: only that one is new.
    let mut more = first.clone();
    more.recipients = vec!["B@acme.com".into(), "c@acme.com".into()];
    let third = store
        .accept_transfer(more, f.clone(), origin("SMTP/Acme", 7))
        .await
        .expect("accept more")
        .expect("one new row");
    let addrs: Vec<&str> = third
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(addrs, ["c@acme.com"]);

    // Another message id of the same server is another message.
    let other = store
        .accept_transfer(first, f, origin("SMTP/Acme", 8))
        .await
        .expect("accept other")
        .expect("new message");
    assert_eq!(other.recipients.len(), 2);

    // Mail box: three messages, five rows in all; route and priority kept.
    let pending = store.pending().expect("pending");
    assert_eq!(pending.len(), 3);
    let rows: usize = pending.iter().map(|m| m.recipients.len()).sum();
    assert_eq!(rows, 5);
    for m in &pending {
        assert_eq!(m.priority, Priority::High);
        assert_eq!(m.route.len(), 1);
        assert_eq!(m.route[0].server, "SMTP/Acme");
    }
}

#[tokio::test]
async fn remembered_rows_are_forgotten_after_a_week() {
    let (_dir, store) = open();
    let msg = incoming("jane@acme.com", &["a@acme.com"], "one");
    let at = msg.received_at;
    let f = fields(&msg);
    store
        .accept_transfer(msg.clone(), f.clone(), origin("SMTP/Acme", 1))
        .await
        .expect("accept")
        .expect("new");
    assert_eq!(store.prune_transfers_in(at + 1000).await.expect("prune"), 0);
    let week = 7 * 24 * 3600 * 1000;
    assert_eq!(
        store
            .prune_transfers_in(at + week + 1)
            .await
            .expect("prune"),
        1
    );
    // Forgotten: the same hand-over now is a new message.
    let again = store
        .accept_transfer(msg, f, origin("SMTP/Acme", 1))
        .await
        .expect("accept");
    assert!(again.is_some());
}

#[tokio::test]
async fn mail_from_outside_has_no_route_and_normal_priority() {
    let (_dir, store) = open();
    let q = store
        .accept(incoming("jane@acme.com", &["a@acme.com"], "x"))
        .await
        .expect("accept");
    assert!(q.route.is_empty());
    assert_eq!(q.priority, Priority::Normal);
    let read = store.pending().expect("pending");
    assert!(read[0].route.is_empty());
}

#[tokio::test]
async fn every_store_has_its_own_identity_kept_across_restarts() {
    let (dir, store) = open();
    let id = store.id();
    drop(store);
    let again = Store::open(dir.path()).expect("reopen");
    assert_eq!(again.id(), id);
    let (_other_dir, other) = open();
    assert_ne!(other.id(), id);
    assert_eq!(
        Store::open_read_only(dir.path()).expect("read only").id(),
        id
    );
}
