//! Pruning the routing event log: older events go in bounded batches,
//! newer ones stay.

mod common;

use common::incoming;
use store::{EventQuery, RoutingEvent, Settlement, Store};

fn event(time: i64, recipient: &str) -> RoutingEvent {
    RoutingEvent {
        time,
        message_id: format!("{time}@acme.com"),
        sender: "jane@acme.com".to_owned(),
        recipient: recipient.to_owned(),
        server: "Mail/Acme".to_owned(),
        outcome: "delivered".to_owned(),
        detail: String::new(),
        hop: 1,
        size: 100,
    }
}

#[tokio::test]
async fn events_older_than_the_cut_are_pruned_in_batches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let msg = store
        .accept(incoming("jane@acme.com", &["jdoe@acme.com"], "a"))
        .await
        .expect("accept");
    let mut events: Vec<RoutingEvent> = (0..25).map(|i| event(1_000 + i, "old@acme.com")).collect();
    events.extend((0..3).map(|i| event(10_000 + i, "new@acme.com")));
    store
        .settle(vec![Settlement {
            message: msg.id,
            events,
            ..Settlement::default()
        }])
        .await
        .expect("settle");
    // At most 10 per call, oldest first.
    assert_eq!(store.prune_events(5_000, 10).await.expect("prune"), 10);
    let left = store.events(&EventQuery::default()).expect("events");
    assert_eq!(left.len(), 18);
    assert_eq!(left[0].time, 1_010);
    assert_eq!(store.prune_events(5_000, 10).await.expect("prune"), 10);
    assert_eq!(store.prune_events(5_000, 10).await.expect("prune"), 5);
    assert_eq!(store.prune_events(5_000, 10).await.expect("prune"), 0);
    let left = store.events(&EventQuery::default()).expect("events");
    let times: Vec<i64> = left.iter().map(|e| e.time).collect();
    assert_eq!(times, [10_000, 10_001, 10_002]);
}

#[tokio::test]
async fn a_read_only_store_prunes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Store::open(dir.path()).expect("open store"));
    let ro = Store::open_read_only(dir.path()).expect("read-only");
    assert!(ro.prune_events(i64::MAX, 10).await.is_err());
}
