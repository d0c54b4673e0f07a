//! Accept + settle(deliver) throughput of 2 KB messages with 20 concurrent
//! tasks: each message is accepted, then settled as delivered into one of 100
//! mail files with a routing event. One iteration = one message through the
//! store; criterion prints msgs/s. Two shapes: the server's (20 sessions
//! accept, a router settles in batches meanwhile) and the naive one (each
//! task waits for its settle before accepting the next message). A third
//! case delivers one message to `FAN_OUT` mail files in one settlement: one
//! iteration = one message, its body stored once and referred to by each.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store::{
    Delivery, Flags, Incoming, MessageId, MessageKind, RecipientStatus, RecipientUpdate,
    RoutingEvent, Settlement, Store,
};

const TASKS: u64 = 20;
const MAIL_FILES: u64 = 100;
/// Settlements the router hands over in one `settle` call at most.
const ROUTER_BATCH: usize = 64;
/// Mail files one message goes to in the fan-out case.
const FAN_OUT: u64 = 50;

fn message(n: u64) -> Vec<u8> {
    let mut data = format!(
        "From: Jane Doe <jane@acme.com>\r\nTo: user{n}@acme.com\r\nSubject: bench {n}\r\n\
         Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <{n}@bench.acme.com>\r\n\r\n"
    )
    .into_bytes();
    data.resize(2048, b'x');
    data
}

fn incoming(n: u64) -> (Incoming, String) {
    let address = format!("user{}@acme.com", n % MAIL_FILES);
    let msg = Incoming {
        from: "jane@acme.com".to_owned(),
        recipients: vec![address.clone()],
        data: message(n),
        received_at: 1_700_000_000_000,
        kind: MessageKind::Normal,
        hop_count: 0,
        origin: "smtp 127.0.0.1 helo=bench".to_owned(),
        message_id: Some(format!("{n}@bench.acme.com")),
        subject: Some(format!("bench {n}")),
        ..Incoming::default()
    };
    (msg, address)
}

/// What the router records after delivering message `id` to `address`.
fn delivered(id: MessageId, n: u64, address: String) -> Settlement {
    Settlement {
        message: id,
        outcomes: vec![(
            address.clone(),
            RecipientUpdate::Final {
                status: RecipientStatus::Delivered,
                reason: None,
            },
        )],
        deliveries: vec![Delivery {
            recipient: address.clone(),
            mail_file: format!("mail/user{}", n % MAIL_FILES),
            folder: "Inbox".to_owned(),
            internal_date: 1_700_000_000_000,
            route_servers: vec!["hub/Acme".to_owned()],
            route_times: vec![1_700_000_000_000],
            flags: Flags::default(),
        }],
        events: vec![RoutingEvent {
            time: 1_700_000_000_000,
            message_id: format!("{n}@bench.acme.com"),
            sender: "jane@acme.com".to_owned(),
            recipient: address,
            server: "hub/Acme".to_owned(),
            outcome: "delivered".to_owned(),
            detail: String::new(),
            hop: 1,
            size: 2048,
        }],
        ..Settlement::default()
    }
}

/// Message numbers of one task: `messages` spread over `TASKS` tasks.
fn share(task: u64, messages: u64) -> impl Iterator<Item = u64> {
    let count = messages / TASKS + u64::from(task < messages % TASKS);
    (0..count).map(move |i| i * TASKS + task)
}

/// Each task accepts a message, then settles its delivery, then the next.
async fn sequential(store: &Store, messages: u64) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in share(task, messages) {
                    let (msg, address) = incoming(n);
                    let queued = store.accept(msg).await.expect("accept");
                    let settlement = delivered(queued.id, n, address);
                    store.settle(vec![settlement]).await.expect("settle");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    start.elapsed()
}

/// As in the server: session tasks accept and hand each message to a router
/// task, which settles whatever has arrived in one call while sessions go on.
async fn pipelined(store: &Store, messages: u64) -> Duration {
    let start = Instant::now();
    let (to_router, mut router_in) = tokio::sync::mpsc::unbounded_channel();
    let sessions: Vec<_> = (0..TASKS)
        .map(|task| {
            let (store, to_router) = (store.clone(), to_router.clone());
            tokio::spawn(async move {
                for n in share(task, messages) {
                    let (msg, address) = incoming(n);
                    let queued = store.accept(msg).await.expect("accept");
                    to_router
                        .send(delivered(queued.id, n, address))
                        .expect("router");
                }
            })
        })
        .collect();
    drop(to_router);
    let router_store = store.clone();
    let router = tokio::spawn(async move {
        let mut settling = Vec::new();
        let mut batch = Vec::new();
        while router_in.recv_many(&mut batch, ROUTER_BATCH).await > 0 {
            let store = router_store.clone();
            let settlements = std::mem::take(&mut batch);
            settling.push(tokio::spawn(async move {
                store.settle(settlements).await.expect("settle")
            }));
        }
        for settle in settling {
            settle.await.expect("settle task");
        }
    });
    for session in sessions {
        session.await.expect("session");
    }
    router.await.expect("router");
    start.elapsed()
}

/// Each message goes to `FAN_OUT` users: accepted, then delivered to all
/// their mail files in one settlement.
async fn fan_out(store: &Store, messages: u64) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for n in share(task, messages) {
                    let (mut msg, _) = incoming(n);
                    let users: Vec<u64> = (0..FAN_OUT).map(|i| (n + i) % MAIL_FILES).collect();
                    msg.recipients = users.iter().map(|u| format!("user{u}@acme.com")).collect();
                    let queued = store.accept(msg).await.expect("accept");
                    let settlement = Settlement {
                        message: queued.id,
                        outcomes: users
                            .iter()
                            .map(|u| {
                                (
                                    format!("user{u}@acme.com"),
                                    RecipientUpdate::Final {
                                        status: RecipientStatus::Delivered,
                                        reason: None,
                                    },
                                )
                            })
                            .collect(),
                        deliveries: users
                            .iter()
                            .map(|u| Delivery {
                                recipient: format!("user{u}@acme.com"),
                                mail_file: format!("mail/user{u}"),
                                folder: "Inbox".to_owned(),
                                internal_date: 1_700_000_000_000,
                                route_servers: vec!["hub/Acme".to_owned()],
                                route_times: vec![1_700_000_000_000],
                                flags: Flags::default(),
                            })
                            .collect(),
                        ..Settlement::default()
                    };
                    store.settle(vec![settlement]).await.expect("settle");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    start.elapsed()
}

fn accept_and_deliver(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // On the build disk, not a RAM disk: the fsyncs are real.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.bench_function("20 sessions accept, router settles", |b| {
        b.iter_custom(|messages| runtime.block_on(pipelined(&store, messages)));
    });
    group.bench_function("20 tasks accept then settle", |b| {
        b.iter_custom(|messages| runtime.block_on(sequential(&store, messages)));
    });
    group.bench_function("one message to 50 mail files", |b| {
        b.iter_custom(|messages| runtime.block_on(fan_out(&store, messages)));
    });
    group.finish();
}

criterion_group!(benches, accept_and_deliver);
criterion_main!(benches);
