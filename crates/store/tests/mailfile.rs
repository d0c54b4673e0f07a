//! Mail files: deliveries, UIDs, flags, folders, copy/move, usage, changes.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::{delivery, done, incoming, message_text};
use proptest::prelude::*;
use store::{
    ChangeKind, FlagOp, Flags, MailFileChange, RecipientStatus, Settlement, SpecialUse, Store,
    StoreError,
};

const JDOE: &str = "mail/jdoe";

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

/// Delivers one message per subject through the mail box, as the router does.
async fn deliver(store: &Store, subjects: &[&str]) -> Vec<u32> {
    let mut uids = Vec::new();
    for subject in subjects {
        let mut msg = incoming("jane@acme.com", &["jdoe@acme.com"], "");
        msg.data = message_text(subject, "hello").into_bytes();
        let msg = store.accept(msg).await.expect("accept");
        let outcome = store
            .settle(vec![Settlement {
                message: msg.id,
                outcomes: vec![("jdoe@acme.com".to_owned(), done(RecipientStatus::Delivered))],
                deliveries: vec![delivery(JDOE, "jdoe@acme.com")],
                ..Settlement::default()
            }])
            .await
            .expect("settle");
        assert!(outcome[0].removed);
        uids.push(outcome[0].delivered[0].1);
    }
    uids
}

fn size_of(subject: &str) -> u64 {
    message_text(subject, "hello").len() as u64
}

fn deleted() -> Flags {
    Flags {
        deleted: true,
        ..Flags::default()
    }
}

#[tokio::test]
async fn deliveries_get_uids_in_order_with_their_listing_fields() {
    let (_dir, store) = open();
    assert_eq!(deliver(&store, &["one", "two", "three"]).await, [1, 2, 3]);
    let entries = store.messages(JDOE, "INBOX").expect("list");
    let uids: Vec<_> = entries.iter().map(|e| e.uid).collect();
    assert_eq!(uids, [1, 2, 3]);
    let first = &entries[0];
    assert_eq!(first.subject, "one");
    assert_eq!(first.from, "Jane Doe <jane@acme.com>");
    assert_eq!(first.message_id.as_deref(), Some("one@acme.com"));
    assert_eq!(first.date, Some(1_700_000_000_000));
    assert_eq!(first.route_servers, ["hub/Acme", "mail1/Acme"]);
    assert_eq!(first.route_times, [1_700_000_000_000, 1_700_000_001_000]);
    assert_eq!(first.size, size_of("one"));
    assert_eq!(
        store.message_body(JDOE, "Inbox", 2).expect("body"),
        Some(message_text("two", "hello").into_bytes())
    );
    assert_eq!(store.message_body(JDOE, "Inbox", 9).expect("body"), None);

    let folders = store.folders(JDOE).expect("folders");
    let names: Vec<_> = folders
        .iter()
        .map(|f| (f.name.as_str(), f.special_use))
        .collect();
    assert_eq!(
        names,
        [
            ("Inbox", None),
            ("Drafts", Some(SpecialUse::Drafts)),
            ("Junk", Some(SpecialUse::Junk)),
            ("Sent", Some(SpecialUse::Sent)),
            ("Trash", Some(SpecialUse::Trash)),
        ]
    );
    let inbox = &folders[0];
    assert_eq!((inbox.exists, inbox.unseen, inbox.uidnext), (3, 3, 4));
    let validities: HashSet<_> = folders.iter().map(|f| f.uidvalidity).collect();
    assert_eq!(validities.len(), 5, "each folder has its own UIDVALIDITY");
    assert_eq!(
        store.folder("mail/JDOE", "inbox").expect("folder").as_ref(),
        Some(inbox),
        "names are keys, case-insensitive"
    );
}

#[tokio::test]
async fn unknown_mail_files_and_folders() {
    let (_dir, store) = open();
    assert!(store.folders("mail/nobody").expect("folders").is_empty());
    assert_eq!(store.mailfile_usage("mail/nobody"), Ok(0));
    assert_eq!(
        store.messages("mail/nobody", "Inbox"),
        Err(StoreError::NoSuchMailFile("mail/nobody".to_owned()))
    );
    let folders = store.ensure_mailfile("mail/nobody").await.expect("create");
    assert_eq!(folders.len(), 5);
    assert_eq!(store.ensure_mailfile("mail/nobody").await, Ok(folders));
    assert!(matches!(
        store.messages("mail/nobody", "Work"),
        Err(StoreError::NoSuchFolder { .. })
    ));
    assert!(matches!(
        store
            .append("mail/nobody", "Work", b"x".to_vec(), Flags::default(), 0)
            .await,
        Err(StoreError::NoSuchFolder { .. })
    ));
}

#[tokio::test]
async fn expunge_never_takes_uidnext_back() {
    let (_dir, store) = open();
    deliver(&store, &["one", "two", "three"]).await;
    store
        .set_flags(JDOE, "Inbox", &[2, 3], FlagOp::Add, deleted())
        .await
        .expect("flag");
    assert_eq!(
        store.expunge(JDOE, "Inbox", Some(&[1, 2])).await,
        Ok(vec![2]),
        "only \\Deleted ones of the set"
    );
    assert_eq!(store.expunge(JDOE, "Inbox", None).await, Ok(vec![3]));
    assert_eq!(store.expunge(JDOE, "Inbox", None).await, Ok(vec![]));
    let inbox = store.folder(JDOE, "Inbox").expect("folder").expect("there");
    assert_eq!((inbox.exists, inbox.uidnext), (1, 4));
    let appended = store
        .append(
            JDOE,
            "Inbox",
            message_text("four", "hello").into_bytes(),
            Flags::default(),
            5,
        )
        .await
        .expect("append");
    assert_eq!(appended.uid, 4);
    assert_eq!(appended.subject, "four");
    assert_eq!(appended.internal_date, 5);
    let uids: Vec<_> = store
        .messages(JDOE, "Inbox")
        .expect("list")
        .iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(uids, [1, 4]);
}

#[tokio::test]
async fn flags_are_set_added_and_removed() {
    let (_dir, store) = open();
    deliver(&store, &["one", "two"]).await;
    let seen_label = Flags {
        seen: true,
        keywords: vec!["$Label1".to_owned()],
        ..Flags::default()
    };
    let result = store
        .set_flags(JDOE, "Inbox", &[2, 1, 7], FlagOp::Add, seen_label.clone())
        .await
        .expect("add");
    assert_eq!(
        result,
        vec![(1, seen_label.clone()), (2, seen_label.clone())],
        "by uid, unknown uids skipped"
    );
    let flagged = Flags {
        flagged: true,
        keywords: vec!["$label1".to_owned()],
        ..Flags::default()
    };
    let result = store
        .set_flags(JDOE, "Inbox", &[1], FlagOp::Add, flagged.clone())
        .await
        .expect("add");
    assert_eq!(
        result[0].1.keywords,
        ["$Label1"],
        "keywords once, case-insensitive"
    );
    assert!(result[0].1.flagged && result[0].1.seen);
    let result = store
        .set_flags(JDOE, "Inbox", &[1], FlagOp::Remove, flagged)
        .await
        .expect("remove");
    assert_eq!(
        result[0].1,
        Flags {
            seen: true,
            ..Flags::default()
        }
    );
    let result = store
        .set_flags(JDOE, "Inbox", &[2], FlagOp::Set, deleted())
        .await
        .expect("set");
    assert_eq!(result[0].1, deleted());
    let entries = store.messages(JDOE, "Inbox").expect("list");
    assert_eq!(
        entries[0].flags,
        Flags {
            seen: true,
            ..Flags::default()
        }
    );
    assert_eq!(entries[1].flags, deleted());
    let inbox = store.folder(JDOE, "Inbox").expect("folder").expect("there");
    assert_eq!(inbox.unseen, 1);
    let bad = Flags {
        keywords: vec!["two words".to_owned()],
        ..Flags::default()
    };
    assert_eq!(
        store.set_flags(JDOE, "Inbox", &[1], FlagOp::Add, bad).await,
        Err(StoreError::InvalidKeyword("two words".to_owned()))
    );
}

#[tokio::test]
async fn copy_and_move_give_new_uids_and_keep_flags() {
    let (_dir, store) = open();
    deliver(&store, &["one", "two", "three"]).await;
    store
        .set_flags(
            JDOE,
            "Inbox",
            &[1],
            FlagOp::Add,
            Flags {
                flagged: true,
                ..Flags::default()
            },
        )
        .await
        .expect("flag");
    store
        .create_folder(JDOE, "Archive", Some(SpecialUse::Archive))
        .await
        .expect("create");
    assert_eq!(
        store
            .copy(JDOE, "Inbox", &[3, 1, 9], "Archive", false)
            .await,
        Ok(vec![(1, 1), (3, 2)])
    );
    let archive = store.messages(JDOE, "Archive").expect("list");
    assert_eq!(archive.len(), 2);
    assert!(archive[0].flags.flagged && archive[0].flags.recent);
    assert_eq!(archive[1].subject, "three");
    assert_eq!(
        store.message_body(JDOE, "Archive", 2).expect("body"),
        store.message_body(JDOE, "Inbox", 3).expect("body")
    );
    assert_eq!(
        store.messages(JDOE, "Inbox").expect("list").len(),
        3,
        "copy leaves the original"
    );

    assert_eq!(
        store.copy(JDOE, "Inbox", &[2, 3], "Archive", true).await,
        Ok(vec![(2, 3), (3, 4)])
    );
    let inbox: Vec<_> = store
        .messages(JDOE, "Inbox")
        .expect("list")
        .iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(inbox, [1], "move removes the originals");
    let subjects: Vec<_> = store
        .messages(JDOE, "Archive")
        .expect("list")
        .into_iter()
        .map(|e| (e.uid, e.subject))
        .collect();
    assert_eq!(
        subjects,
        [
            (1, "one".to_owned()),
            (2, "three".to_owned()),
            (3, "two".to_owned()),
            (4, "three".to_owned())
        ]
    );
    assert_eq!(
        store
            .folder(JDOE, "Inbox")
            .expect("folder")
            .expect("there")
            .uidnext,
        4
    );
    assert!(matches!(
        store.copy(JDOE, "Inbox", &[1], "Nowhere", false).await,
        Err(StoreError::NoSuchFolder { .. })
    ));
}

#[tokio::test]
async fn folders_are_created_renamed_and_deleted() {
    let (_dir, store) = open();
    deliver(&store, &["one", "two"]).await;
    let work = store
        .create_folder(JDOE, "Work", None)
        .await
        .expect("create");
    assert_eq!(
        (
            work.name.as_str(),
            work.exists,
            work.uidnext,
            work.subscribed
        ),
        ("Work", 0, 1, true)
    );
    store
        .create_folder(JDOE, "Work/Plans", None)
        .await
        .expect("create");
    assert_eq!(
        store.create_folder(JDOE, "Work", None).await,
        Err(StoreError::FolderExists {
            mail_file: JDOE.to_owned(),
            folder: "Work".to_owned()
        })
    );
    store
        .copy(JDOE, "Inbox", &[1], "Work/Plans", false)
        .await
        .expect("copy");

    store
        .rename_folder(JDOE, "Work", "Projects")
        .await
        .expect("rename");
    let names: Vec<_> = store
        .folders(JDOE)
        .expect("folders")
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert!(names.contains(&"Projects".to_owned()) && names.contains(&"Projects/Plans".to_owned()));
    assert!(!names.iter().any(|n| n.starts_with("Work")));
    assert_eq!(
        store.messages(JDOE, "Projects/Plans").expect("list").len(),
        1,
        "messages move with the folder"
    );
    assert!(matches!(
        store.rename_folder(JDOE, "Projects", "Sent").await,
        Err(StoreError::FolderExists { .. })
    ));
    assert!(matches!(
        store.rename_folder(JDOE, "Nothing", "Else").await,
        Err(StoreError::NoSuchFolder { .. })
    ));
    assert!(matches!(
        store
            .rename_folder(JDOE, "Projects", "Projects/Inner")
            .await,
        Err(StoreError::InvalidFolderName { .. })
    ));

    // Renaming Inbox moves its messages and leaves it empty.
    store
        .rename_folder(JDOE, "INBOX", "Old mail")
        .await
        .expect("rename inbox");
    assert!(store.messages(JDOE, "Inbox").expect("list").is_empty());
    let old: Vec<_> = store
        .messages(JDOE, "Old mail")
        .expect("list")
        .iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(old, [1, 2]);
    assert_eq!(
        deliver(&store, &["three"]).await,
        [3],
        "Inbox keeps counting"
    );

    store
        .set_subscribed(JDOE, "Projects", false)
        .await
        .expect("unsubscribe");
    assert!(
        !store
            .folder(JDOE, "Projects")
            .expect("folder")
            .expect("there")
            .subscribed
    );

    let before = store
        .folder(JDOE, "Projects")
        .expect("folder")
        .expect("there")
        .uidvalidity;
    assert_eq!(store.delete_folder(JDOE, "Projects").await, Ok(true));
    assert_eq!(store.delete_folder(JDOE, "Projects").await, Ok(false));
    let again = store
        .create_folder(JDOE, "Projects", None)
        .await
        .expect("create again");
    assert_ne!(
        again.uidvalidity, before,
        "a re-created folder has a new UIDVALIDITY"
    );
    assert!(matches!(
        store.delete_folder(JDOE, "inbox").await,
        Err(StoreError::InvalidFolderName { .. })
    ));
    assert!(matches!(
        store.create_folder(JDOE, "a//b", None).await,
        Err(StoreError::InvalidFolderName { .. })
    ));
}

#[tokio::test]
async fn usage_tracks_stored_bytes() {
    let (_dir, store) = open();
    deliver(&store, &["one", "two"]).await;
    let two = size_of("one") + size_of("two");
    assert_eq!(store.mailfile_usage(JDOE), Ok(two));
    store
        .create_folder(JDOE, "Keep", None)
        .await
        .expect("create");
    store
        .copy(JDOE, "Inbox", &[1], "Keep", false)
        .await
        .expect("copy");
    assert_eq!(store.mailfile_usage(JDOE), Ok(two + size_of("one")));
    store
        .copy(JDOE, "Inbox", &[2], "Keep", true)
        .await
        .expect("move");
    assert_eq!(
        store.mailfile_usage(JDOE),
        Ok(two + size_of("one")),
        "a move stores nothing new"
    );
    store
        .append(JDOE, "Inbox", vec![b'x'; 100], Flags::default(), 0)
        .await
        .expect("append");
    store
        .set_flags(JDOE, "Inbox", &[1, 3], FlagOp::Add, deleted())
        .await
        .expect("flag");
    store.expunge(JDOE, "Inbox", None).await.expect("expunge");
    assert_eq!(store.mailfile_usage(JDOE), Ok(two));
    assert_eq!(store.mailfile_usage("MAIL/JDOE"), Ok(two));
    store.delete_folder(JDOE, "Keep").await.expect("delete");
    assert_eq!(store.mailfile_usage(JDOE), Ok(0));
}

#[tokio::test]
async fn committed_changes_are_published() {
    let (_dir, store) = open();
    deliver(&store, &["one"]).await;
    let mut changes = store.subscribe();
    deliver(&store, &["two"]).await;
    store
        .set_flags(JDOE, "Inbox", &[1, 2], FlagOp::Add, deleted())
        .await
        .expect("flag");
    store
        .set_flags(JDOE, "Inbox", &[1], FlagOp::Add, deleted())
        .await
        .expect("no change");
    store
        .expunge(JDOE, "Inbox", Some(&[2]))
        .await
        .expect("expunge");
    store
        .create_folder(JDOE, "Work", None)
        .await
        .expect("create");
    // A failed request publishes nothing.
    assert!(store.create_folder(JDOE, "Work", None).await.is_err());
    store
        .copy(JDOE, "Inbox", &[1], "Work", true)
        .await
        .expect("move");
    let change = |folder: &str, kind| MailFileChange {
        mail_file: JDOE.to_owned(),
        folder: folder.to_owned(),
        kind,
    };
    let expected = [
        change("Inbox", ChangeKind::Appended { uids: vec![2] }),
        change("Inbox", ChangeKind::Flags { uids: vec![1, 2] }),
        change("Inbox", ChangeKind::Expunged { uids: vec![2] }),
        change("Work", ChangeKind::Folders),
        change("Inbox", ChangeKind::Expunged { uids: vec![1] }),
        change("Work", ChangeKind::Appended { uids: vec![1] }),
    ];
    for want in expected {
        assert_eq!(changes.recv().await.expect("change"), want);
    }
    assert!(changes.try_recv().is_err(), "nothing more");
}

/// What a folder holds in the model: uid → (size, deleted).
type Model = BTreeMap<u32, (u64, bool)>;

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    Delete(Vec<u32>),
    Expunge,
    Move(Vec<u32>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..300).prop_map(Op::Append),
        proptest::collection::vec(1u32..12, 0..4).prop_map(Op::Delete),
        Just(Op::Expunge),
        proptest::collection::vec(1u32..12, 0..4).prop_map(Op::Move),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// UIDs only grow, UIDNEXT never goes back, usage is the sum of what is stored.
    #[test]
    fn folders_follow_the_model(ops in proptest::collection::vec(op(), 1..20)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(async {
            let (_dir, store) = open();
            store.create_folder(JDOE, "Other", None).await.expect("create");
            let (mut inbox, mut other) = (Model::new(), Model::new());
            let (mut inbox_next, mut other_next) = (1u32, 1u32);
            for op in ops {
                match op {
                    Op::Append(size) => {
                        let entry = store.append(JDOE, "Inbox", vec![b'a'; size], Flags::default(), 0).await.expect("append");
                        prop_assert_eq!(entry.uid, inbox_next);
                        inbox.insert(inbox_next, (size as u64, false));
                        inbox_next += 1;
                    }
                    Op::Delete(uids) => {
                        store.set_flags(JDOE, "Inbox", &uids, FlagOp::Add, deleted()).await.expect("flag");
                        for uid in uids {
                            if let Some(entry) = inbox.get_mut(&uid) { entry.1 = true; }
                        }
                    }
                    Op::Expunge => {
                        let gone = store.expunge(JDOE, "Inbox", None).await.expect("expunge");
                        let want: Vec<u32> = inbox.iter().filter(|(_, (_, d))| *d).map(|(uid, _)| *uid).collect();
                        prop_assert_eq!(&gone, &want);
                        inbox.retain(|_, (_, d)| !*d);
                    }
                    Op::Move(uids) => {
                        let pairs = store.copy(JDOE, "Inbox", &uids, "Other", true).await.expect("move");
                        let mut want: Vec<u32> = uids.into_iter().filter(|u| inbox.contains_key(u)).collect();
                        want.sort_unstable();
                        want.dedup();
                        prop_assert_eq!(pairs.iter().map(|(old, _)| *old).collect::<Vec<_>>(), want);
                        for (old, new) in pairs {
                            prop_assert_eq!(new, other_next);
                            other_next += 1;
                            let moved = inbox.remove(&old).expect("in model");
                            other.insert(new, moved);
                        }
                    }
                }
                let listed: Vec<u32> = store.messages(JDOE, "Inbox").expect("list").iter().map(|e| e.uid).collect();
                prop_assert_eq!(listed, inbox.keys().copied().collect::<Vec<_>>());
                let info = store.folder(JDOE, "Inbox").expect("folder").expect("there");
                prop_assert_eq!(info.uidnext, inbox_next);
                prop_assert_eq!(store.folder(JDOE, "Other").expect("folder").expect("there").uidnext, other_next);
                let usage: u64 = inbox.values().chain(other.values()).map(|(size, _)| size).sum();
                prop_assert_eq!(store.mailfile_usage(JDOE).expect("usage"), usage);
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}

fn header_of(subject: &str) -> Vec<u8> {
    let text = message_text(subject, "hello");
    let end = text.find("\r\n\r\n").expect("header end") + 4;
    text.as_bytes()[..end].to_vec()
}

#[tokio::test]
async fn headers_come_by_uid_for_dense_and_sparse_sets() {
    let (_dir, store) = open();
    let subjects: Vec<String> = (1..=20).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = subjects.iter().map(String::as_str).collect();
    deliver(&store, &refs).await;
    // Dense: one range scan; unknown UIDs and duplicates are left out.
    assert_eq!(
        store
            .headers(JDOE, "INBOX", &[3, 1, 2, 2, 99])
            .expect("headers"),
        vec![
            (1, header_of("m1")),
            (2, header_of("m2")),
            (3, header_of("m3"))
        ]
    );
    // Sparse: point lookups.
    assert_eq!(
        store.headers(JDOE, "INBOX", &[20, 1]).expect("headers"),
        vec![(1, header_of("m1")), (20, header_of("m20"))]
    );
    assert_eq!(store.headers(JDOE, "INBOX", &[]), Ok(Vec::new()));
    assert!(matches!(
        store.headers(JDOE, "Nowhere", &[1]),
        Err(StoreError::NoSuchFolder { .. })
    ));
}

#[tokio::test]
async fn entries_are_the_listing_without_header_fields() {
    let (_dir, store) = open();
    deliver(&store, &["one", "two", "three"]).await;
    store
        .set_flags(JDOE, "INBOX", &[2], FlagOp::Add, deleted())
        .await
        .expect("flags");
    let full = store.messages(JDOE, "INBOX").expect("messages");
    let all = store.entries(JDOE, "INBOX", None).expect("entries");
    assert_eq!(all.len(), 3);
    for (meta, entry) in all.iter().zip(&full) {
        assert_eq!(
            (meta.uid, meta.size, meta.internal_date, &meta.flags),
            (entry.uid, entry.size, entry.internal_date, &entry.flags)
        );
    }
    let some = store
        .entries(JDOE, "INBOX", Some(&[2, 7]))
        .expect("entries");
    assert_eq!(some, vec![all[1].clone()]);
    assert!(some[0].flags.deleted);
}

#[tokio::test]
async fn copies_keep_their_headers_and_expunged_ones_lose_them() {
    let (_dir, store) = open();
    deliver(&store, &["one", "two"]).await;
    store
        .create_folder(JDOE, "Archive", None)
        .await
        .expect("create");
    let pairs = store
        .copy(JDOE, "Inbox", &[2], "Archive", false)
        .await
        .expect("copy");
    assert_eq!(
        store
            .headers(JDOE, "Archive", &[pairs[0].1])
            .expect("headers"),
        vec![(pairs[0].1, header_of("two"))]
    );
    store
        .set_flags(JDOE, "INBOX", &[1], FlagOp::Add, deleted())
        .await
        .expect("flags");
    store.expunge(JDOE, "INBOX", None).await.expect("expunge");
    assert_eq!(
        store.headers(JDOE, "INBOX", &[1, 2]).expect("headers"),
        vec![(2, header_of("two"))]
    );
}

/// The listing kept in memory never shows a folder as it was: every change
/// (delivery, flags, expunge, a folder made anew under the same name) is seen.
#[tokio::test]
async fn a_kept_listing_follows_every_change() {
    let (_dir, store) = open();
    deliver(&store, &["one", "two"]).await;
    let uids = |store: &Store| -> Vec<(u32, bool)> {
        let (info, entries) = store
            .listing(JDOE, "INBOX")
            .expect("listing")
            .expect("folder");
        assert_eq!(info.exists as usize, entries.len());
        entries.iter().map(|e| (e.uid, e.flags.deleted)).collect()
    };
    assert_eq!(uids(&store), vec![(1, false), (2, false)]);
    assert_eq!(
        uids(&store),
        vec![(1, false), (2, false)],
        "read twice: kept"
    );
    deliver(&store, &["three"]).await;
    assert_eq!(uids(&store), vec![(1, false), (2, false), (3, false)]);
    store
        .set_flags(JDOE, "Inbox", &[2], FlagOp::Add, deleted())
        .await
        .expect("flags");
    assert_eq!(uids(&store), vec![(1, false), (2, true), (3, false)]);
    store.expunge(JDOE, "Inbox", None).await.expect("expunge");
    assert_eq!(uids(&store), vec![(1, false), (3, false)]);

    store
        .create_folder(JDOE, "Work", None)
        .await
        .expect("create");
    store
        .copy(JDOE, "Inbox", &[1], "Work", false)
        .await
        .expect("copy");
    let work = store
        .listing(JDOE, "Work")
        .expect("listing")
        .expect("folder");
    assert_eq!(work.1.len(), 1);
    assert!(store.delete_folder(JDOE, "Work").await.expect("delete"));
    store
        .create_folder(JDOE, "Work", None)
        .await
        .expect("again");
    let work = store
        .listing(JDOE, "Work")
        .expect("listing")
        .expect("folder");
    assert!(work.1.is_empty(), "a folder made anew starts empty");
    assert!(store.listing(JDOE, "Nowhere").expect("listing").is_none());
}
