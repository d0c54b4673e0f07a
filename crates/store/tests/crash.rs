//! A crash loses nothing acknowledged: a child process accepts messages from
//! several tasks and prints each id once `accept` returned; the parent kills it
//! with SIGKILL mid-stream, reopens the store and finds every printed id.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::incoming;
use store::Store;

const CHILD_DIR: &str = "MAILHOP_STORE_CRASH_DIR";
const ACK: &str = "accepted ";
/// Ids the parent reads before it kills the child.
const KILL_AFTER: usize = 300;

/// The child's side: runs only when the parent starts this binary with `CHILD_DIR` set.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = Store::open(dir.as_ref()).expect("open");
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    // Bounded: the parent kills the child long before this ends.
                    for n in 0..100_000 {
                        let body = format!("task {task} message {n}");
                        let msg = store
                            .accept(incoming("jane@acme.com", &["jdoe@acme.com"], &body))
                            .await
                            .expect("accept");
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "{ACK}{}", msg.id).expect("stdout");
                        out.flush().expect("stdout");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
    });
}

#[test]
fn every_acknowledged_message_survives_sigkill() {
    if std::env::var_os(CHILD_DIR).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let mut acknowledged = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read child");
        if let Some(id) = line.strip_prefix(ACK) {
            acknowledged.push(id.parse::<i64>().expect("id"));
            if acknowledged.len() == KILL_AFTER {
                child.kill().expect("SIGKILL");
                break;
            }
        }
    }
    child.wait().expect("reap child");
    assert_eq!(acknowledged.len(), KILL_AFTER, "the child stopped early");

    let store = Store::open(dir.path()).expect("reopen after the crash");
    for id in acknowledged {
        assert!(
            store.message(id).expect("read").is_some(),
            "message {id} was acknowledged but lost"
        );
    }
}
