//! mailhop's durable state for ONE server: the **mail box** (accepted messages
//! and their recipients, Pending/Held/Dead), the **mail files** (folders, IMAP
//! UIDs, flags, bodies) and the **routing event log**.
//!
//! Everything goes through [`Store`], the boundary a PostgreSQL backend can
//! implement later: no SQLite type appears in this API. The store records what
//! it is told; it knows no SMTP and no routing rule.
//!
//! Durability: one SQLite file `<dir>/mailhop.db` in WAL mode with
//! `synchronous=FULL`. Every write is a request to ONE writer thread, which
//! runs all requests waiting at that moment in one transaction (group commit,
//! a SAVEPOINT each so a failing request rolls back alone) and answers them
//! after the commit: an `async` write that returns `Ok` is on disk. A second
//! thread checkpoints the WAL into the database file meanwhile. Reads use
//! their own read-only connections and never wait for the writer; another
//! process (`mailhop mailfile`) can read the same file with
//! [`Store::open_read_only`] while the server runs.
//!
//! Bodies are stored once (Domino's shared mail). Accepting a message stores
//! its bytes, its header block and the header fields a listing shows (From,
//! Subject, Date, Message-ID, read once, on the caller's task) as one body
//! with a reference count. The mail box message refers to it, and so does
//! every mail-file entry holding that message: a delivery to N mail files
//! adds N references and copies no byte (a [`Delivery`] carries no body — it
//! is always the settled message's); IMAP COPY adds a reference, MOVE keeps
//! it, APPEND stores a new body. Triggers on the referring tables count every
//! reference taken or dropped, whatever the write path, and delete a body
//! when its last reference goes: when the mail box message is removed
//! (settled, or [`Store::delete`]) and every entry holding it is expunged or
//! its folder deleted. Nothing the router holds carries a body
//! ([`QueuedMessage`] has its `size`); [`Store::message_data`] reads the bytes
//! where they are needed (a transfer, a report). Schema version 5 moved older
//! stores over: every stored copy became a body of its own.
//!
//! Choices the API leaves open:
//! - Releasing a Held or Dead message (`set_state(id, Pending, _)`) puts every
//!   Failed or Pending recipient back to a fresh Pending (no attempts, no retry
//!   time, no error): the router routes the original recipients again.
//!   Delivered/transferred recipients stay done. A message left with no
//!   Pending recipient is removed.
//! - A settlement for a message no longer in the mail box (an administrator
//!   deleted it) records nothing and says `gone`.
//! - Mail file names are keys, compared case-insensitively. Read calls on a
//!   mail file that does not exist yet see no folders and no usage;
//!   [`Store::ensure_mailfile`] creates it (IMAP/POP3 call it at login).
//! - `expunge(.., Some(uids))` removes those of `uids` that are `\Deleted`
//!   (IMAP UID EXPUNGE).
//! - All times are Unix milliseconds.
//!
//! Additions to the agreed API (nothing of it changed): `SettleOutcome::gone`,
//! `MessageSummary::origin`, `Store::ensure_mailfile`, `ChangeKind` (the kind
//! of a `MailFileChange`), `EventQuery`'s fields, `Flags` helpers,
//! `Store::entries` (`EntryMeta`) and `Store::headers` (schema version 2 keeps
//! each message's header block in its own table; opening an older store
//! back-fills it), `Store::message_data`, `QueuedMessage::size` (instead of
//! its body) and `Delivery::recipient` (instead of a body).

mod bodies;
mod checkpoint;
mod error;
mod events;
mod headers;
mod health;
mod lock;
mod mailbox;
mod mailfile;
mod readers;
mod schema;
mod types;
mod worker;
mod writer;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast;

pub use error::StoreError;
pub use types::{
    ChangeKind, Delivery, EntryMeta, EventQuery, FlagOp, Flags, FolderInfo, Hop, Incoming,
    MailBoxCounts, MailEntry, MailFileChange, MessageId, MessageKind, MessageState, MessageSummary,
    Priority, QueueSummary, QueuedMessage, QueuedRecipient, RecipientStatus, RecipientUpdate,
    RoutingEvent, SettleOutcome, Settlement, SpecialUse, TransferOrigin,
};

use mailfile::PreparedDelivery;
use readers::Readers;
use writer::{Tx, Writer};

/// Changes kept for slow subscribers before they see `Lagged`.
const CHANGE_BACKLOG: usize = 4096;

/// The store of one server. Cheap to clone; the file closes when the last
/// clone is dropped (after the writes already queued are committed).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` for a read-only store.
    writer: Option<Writer>,
    /// Why the writer cannot be trusted, if it cannot (a panic, a failed commit).
    health: Arc<health::Health>,
    /// The exclusive lock on the data folder (`mailhop.lock`), held while open.
    _lock: Option<std::fs::File>,
    readers: Readers,
    changes: broadcast::Sender<MailFileChange>,
    /// The database file: what identifies this store (e.g. for POP3 maildrop locks).
    path: std::path::PathBuf,
    listings: mailfile::ListingCache,
    /// This store's identity, made once when it was created.
    id: i64,
}

impl Store {
    /// Opens the store in `dir`, creating the folder, the file and the schema
    /// as needed. One process owns a store: the folder is locked first
    /// (`flock` on `mailhop.lock`), and a store another process holds is
    /// [`StoreError::Locked`] before anything else is touched.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let lock = lock::acquire(dir)?;
        let conn = schema::open_writer(dir)?;
        let path = schema::db_path(dir);
        let id = schema::store_id(&conn).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: format!("no store id: {e}"),
        })?;
        let reader = schema::open_reader(&path)?;
        let (changes, _) = broadcast::channel(CHANGE_BACKLOG);
        let health = Arc::new(health::Health::from_env());
        let writer = Writer::spawn(conn, &path, changes.clone(), health.clone())?;
        Ok(Store {
            inner: Arc::new(Inner {
                writer: Some(writer),
                health,
                _lock: Some(lock),
                readers: Readers::new(path.clone(), reader),
                changes,
                path,
                listings: mailfile::ListingCache::default(),
                id,
            }),
        })
    }

    /// Opens an existing store for reading only, e.g. while its server runs.
    /// Writes return [`StoreError::ReadOnly`].
    pub fn open_read_only(dir: &Path) -> Result<Store, StoreError> {
        let path = schema::db_path(dir);
        let reader = schema::open_reader(&path)?;
        schema::check_version(&reader, &path)?;
        let id = schema::store_id(&reader).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: format!("no store id: {e}"),
        })?;
        let (changes, _) = broadcast::channel(CHANGE_BACKLOG);
        Ok(Store {
            inner: Arc::new(Inner {
                writer: None,
                health: Arc::new(health::Health::default()),
                _lock: None,
                readers: Readers::new(path.clone(), reader),
                changes,
                path,
                listings: mailfile::ListingCache::default(),
                id,
            }),
        })
    }

    /// This store's identity: random, made once when the store was created,
    /// never the same for two stores. Sent with a message handed to another
    /// server, so that a store made anew is never taken for a resend.
    pub fn id(&self) -> i64 {
        self.inner.id
    }

    /// `Err(reason)` while the store's writer cannot be trusted: it stopped
    /// (a panic) or its last commit failed. Callers refuse new work then
    /// (SMTP answers 421) and say why (`show server`).
    pub fn health(&self) -> Result<(), String> {
        self.inner.health.get()
    }

    /// The database file this store keeps its state in.
    pub fn location(&self) -> &Path {
        &self.inner.path
    }

    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> error::Res<T> + Send + 'static,
    {
        match &self.inner.writer {
            Some(writer) => writer.submit(op).await.map_err(|e| match e {
                StoreError::Closed => match self.inner.health.get() {
                    Err(reason) => StoreError::Unhealthy(reason),
                    Ok(()) => StoreError::Closed,
                },
                other => other,
            }),
            None => Err(StoreError::ReadOnly),
        }
    }

    // ---- mail box ----

    /// Puts a message in the mail box; durable when this returns `Ok` (group
    /// commit). Recipients keep their order, each address once (case-insensitive).
    /// The body is stored in the same transaction as the message.
    pub async fn accept(&self, msg: Incoming) -> Result<QueuedMessage, StoreError> {
        // Header fields are read here, on the caller's task, to keep the writer lean.
        self.insert(mailbox::NewMessage::from(msg)).await
    }

    /// [`Store::accept`] for a caller that has read the message's header
    /// fields already (`headers::fields` of `msg.data`): they are not read twice.
    pub async fn accept_with_fields(
        &self,
        msg: Incoming,
        fields: ::headers::Fields,
    ) -> Result<QueuedMessage, StoreError> {
        self.insert(mailbox::NewMessage::with_fields(msg, fields))
            .await
    }

    /// Several messages in the mail box in one transaction (a message and
    /// its journal copy, a report) with routing events (a server mail
    /// rule's): all durable when this returns `Ok`, or none. An event
    /// without a message id is named by the id of the first message
    /// stored. No message at all is fine: the events alone are written.
    pub async fn accept_all(
        &self,
        msgs: Vec<(Incoming, ::headers::Fields)>,
        events: Vec<RoutingEvent>,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let msgs: Vec<mailbox::NewMessage> = msgs
            .into_iter()
            .map(|(msg, fields)| mailbox::NewMessage::with_fields(msg, fields))
            .collect();
        self.write(move |tx| {
            let stored = msgs
                .into_iter()
                .map(|m| mailbox::insert(tx.conn, m))
                .collect::<error::Res<Vec<_>>>()?;
            let first = stored.first().map(|q| q.id.to_string());
            for mut event in events {
                if event.message_id.is_empty() {
                    event.message_id = first.clone().unwrap_or_else(|| "-".to_owned());
                }
                events::insert(tx.conn, &event)?;
            }
            Ok(stored)
        })
        .await
    }

    /// Puts a message handed over by another server of the domain in the
    /// mail box, durable when this returns `Ok`, as [`Store::accept_with_fields`]
    /// does. Each recipient is remembered by (`origin`, address) in the same
    /// transaction, and a recipient remembered already is not stored again:
    /// a resend after a crash on either side delivers nothing twice.
    /// `Ok(None)` when every recipient had been handed over before.
    pub async fn accept_transfer(
        &self,
        msg: Incoming,
        fields: ::headers::Fields,
        origin: TransferOrigin,
    ) -> Result<Option<QueuedMessage>, StoreError> {
        let msg = mailbox::NewMessage::with_fields(msg, fields);
        self.write(move |tx| mailbox::insert_transfer(tx.conn, msg, &origin))
            .await
    }

    /// Forgets handed-over recipient rows older than a week (see
    /// [`Store::accept_transfer`]); returns how many went.
    pub async fn prune_transfers_in(&self, now: i64) -> Result<usize, StoreError> {
        self.write(move |tx| mailbox::prune_transfers_in(tx.conn, now))
            .await
    }

    async fn insert(&self, msg: mailbox::NewMessage) -> Result<QueuedMessage, StoreError> {
        let fault = self.inner.health.fault_on_accept();
        self.write(move |tx| {
            if fault {
                // Fault injection (MAILHOP_STORE_FAULT=writer-panic): the writer dies here.
                panic!("injected store writer fault");
            }
            mailbox::insert(tx.conn, msg)
        })
        .await
    }

    /// The bytes of a mail box message (for a transfer or a report); `None`
    /// if there is no such message.
    pub fn message_data(&self, id: MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner
            .readers
            .read(|conn| bodies::message_data(conn, id))
    }

    /// A Pending mail box message with all its recipients and its bytes, in
    /// one read (a transfer); `None` if it is gone, Held or Dead.
    pub fn pending_with_data(
        &self,
        id: MessageId,
    ) -> Result<Option<(QueuedMessage, Vec<u8>)>, StoreError> {
        self.inner.readers.read(|conn| {
            let Some(msg) = mailbox::message(conn, id)? else {
                return Ok(None);
            };
            if msg.state != MessageState::Pending {
                return Ok(None);
            }
            Ok(bodies::message_data(conn, id)?.map(|data| (msg, data)))
        })
    }

    /// Every Pending message with its recipients whose outcome is not final
    /// (for the router at start-up), by id.
    pub fn pending(&self) -> Result<Vec<QueuedMessage>, StoreError> {
        self.inner.readers.read(mailbox::pending)
    }

    /// Up to `limit` Pending messages with ids above `after`, by id, each with
    /// its open (Pending or Waiting) recipients: the router pages through the
    /// mail box with it at start and on `route *`, never reading it whole.
    pub fn pending_page(
        &self,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        self.inner
            .readers
            .read(|conn| mailbox::pending_page(conn, after, limit))
    }

    /// One mail box entry with all its recipients.
    pub fn message(&self, id: MessageId) -> Result<Option<QueuedMessage>, StoreError> {
        self.inner.readers.read(|conn| mailbox::message(conn, id))
    }

    /// Records what happened to recipients of messages: each `Settlement` is
    /// atomic (outcomes, deliveries, new messages, events, state), and the whole
    /// call commits together, or fails as a whole with the first error.
    pub async fn settle(&self, batch: Vec<Settlement>) -> Result<Vec<SettleOutcome>, StoreError> {
        // Route columns are encoded here, on the caller's task, to keep the writer lean.
        let prepared: Vec<_> = batch
            .into_iter()
            .map(|mut s| {
                let deliveries = std::mem::take(&mut s.deliveries)
                    .into_iter()
                    .map(PreparedDelivery::new)
                    .collect::<Vec<_>>();
                (s, deliveries)
            })
            .collect();
        self.write(move |tx| {
            prepared
                .into_iter()
                .map(|(settlement, deliveries)| mailbox::settle(tx, settlement, deliveries))
                .collect()
        })
        .await
    }

    /// Mail box entries in `state` (all with `None`), by id, for the console.
    pub fn list(&self, state: Option<MessageState>) -> Result<Vec<MessageSummary>, StoreError> {
        self.inner.readers.read(|conn| mailbox::list(conn, state))
    }

    /// Holds, kills (`Dead`) or releases (`Pending`) a message; false if there is
    /// no such message. See the crate documentation for what release resets.
    pub async fn set_state(
        &self,
        id: MessageId,
        state: MessageState,
        reason: Option<String>,
    ) -> Result<bool, StoreError> {
        self.write(move |tx| mailbox::set_state(tx.conn, id, state, reason))
            .await
    }

    /// Removes a message from the mail box; false if there was none. Its body
    /// goes with it unless a mail-file entry still holds it.
    pub async fn delete(&self, id: MessageId) -> Result<bool, StoreError> {
        self.write(move |tx| mailbox::delete(tx.conn, id)).await
    }

    /// Mail box gauges for `show stat` / `show server`.
    /// Waiting recipients grouped by destination queue, without reading messages.
    pub fn queues(&self) -> Result<Vec<QueueSummary>, StoreError> {
        self.inner.readers.read(mailbox::queues)
    }

    pub fn counts(&self) -> Result<MailBoxCounts, StoreError> {
        self.inner.readers.read(mailbox::counts)
    }

    // ---- mail files ----

    /// Bytes stored in the mail file, all folders (quota); a running total.
    pub fn mailfile_usage(&self, mail_file: &str) -> Result<u64, StoreError> {
        self.inner
            .readers
            .read(|conn| mailfile::usage(conn, mail_file))
    }

    /// Creates the mail file with its default folders if it does not exist;
    /// returns its folders.
    pub async fn ensure_mailfile(&self, mail_file: &str) -> Result<Vec<FolderInfo>, StoreError> {
        let mail_file = mail_file.to_owned();
        self.write(move |tx| mailfile::ensure(tx, &mail_file)).await
    }

    /// The mail file's folders, Inbox first, then by name.
    pub fn folders(&self, mail_file: &str) -> Result<Vec<FolderInfo>, StoreError> {
        self.inner
            .readers
            .read(|conn| mailfile::folder_infos(conn, mail_file, None))
    }

    pub fn folder(&self, mail_file: &str, folder: &str) -> Result<Option<FolderInfo>, StoreError> {
        let name = mailfile::folder_name(folder)?;
        self.inner
            .readers
            .read(|conn| Ok(mailfile::folder_infos(conn, mail_file, Some(&name))?.pop()))
    }

    pub async fn create_folder(
        &self,
        mail_file: &str,
        folder: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<FolderInfo, StoreError> {
        let (mail_file, folder) = (mail_file.to_owned(), folder.to_owned());
        self.write(move |tx| mailfile::create_folder(tx, &mail_file, &folder, special_use))
            .await
    }

    /// Deletes a folder and its messages; false if there was none. Inbox cannot be deleted.
    pub async fn delete_folder(&self, mail_file: &str, folder: &str) -> Result<bool, StoreError> {
        let (mail_file, folder) = (mail_file.to_owned(), folder.to_owned());
        self.write(move |tx| mailfile::delete_folder(tx, &mail_file, &folder))
            .await
    }

    /// Renames a folder and the folders under it (`from/...`). Renaming Inbox
    /// moves its messages into the new folder and leaves Inbox empty.
    pub async fn rename_folder(
        &self,
        mail_file: &str,
        from: &str,
        to: &str,
    ) -> Result<(), StoreError> {
        let (mail_file, from, to) = (mail_file.to_owned(), from.to_owned(), to.to_owned());
        self.write(move |tx| mailfile::rename_folder(tx, &mail_file, &from, &to))
            .await
    }

    pub async fn set_subscribed(
        &self,
        mail_file: &str,
        folder: &str,
        on: bool,
    ) -> Result<(), StoreError> {
        let (mail_file, folder) = (mail_file.to_owned(), folder.to_owned());
        self.write(move |tx| mailfile::set_subscribed(tx, &mail_file, &folder, on))
            .await
    }

    /// The folder's messages without bodies, by UID ascending.
    pub fn messages(&self, mail_file: &str, folder: &str) -> Result<Vec<MailEntry>, StoreError> {
        self.inner
            .readers
            .read(|conn| mailfile::messages(conn, mail_file, folder))
    }

    /// UID, size, date and flags of the folder's messages, by UID: all of
    /// them (`None`), or those among `uids` that exist. Cheaper than
    /// [`Store::messages`]: no header field is read.
    /// A folder with its messages' metadata, by UID, in one read (IMAP
    /// SELECT); `None` if there is no such folder.
    pub fn listing(
        &self,
        mail_file: &str,
        folder: &str,
    ) -> Result<Option<(FolderInfo, Vec<EntryMeta>)>, StoreError> {
        self.inner
            .readers
            .read(|conn| mailfile::listing(conn, &self.inner.listings, mail_file, folder))
    }

    pub fn entries(
        &self,
        mail_file: &str,
        folder: &str,
        uids: Option<&[u32]>,
    ) -> Result<Vec<EntryMeta>, StoreError> {
        self.inner
            .readers
            .read(|conn| mailfile::entries(conn, mail_file, folder, uids))
    }

    /// The header blocks (up to and including the empty line) of the folder's
    /// messages among `uids` that exist, by UID, in one read.
    pub fn headers(
        &self,
        mail_file: &str,
        folder: &str,
        uids: &[u32],
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        self.inner
            .readers
            .read(|conn| mailfile::headers(conn, mail_file, folder, uids))
    }

    /// One message as stored (RFC 5322); `None` if the folder has no such UID.
    pub fn message_body(
        &self,
        mail_file: &str,
        folder: &str,
        uid: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner
            .readers
            .read(|conn| mailfile::message_body(conn, mail_file, folder, uid))
    }

    /// IMAP APPEND into an existing folder: a new body, shared with nothing.
    pub async fn append(
        &self,
        mail_file: &str,
        folder: &str,
        data: Vec<u8>,
        flags: Flags,
        internal_date: i64,
    ) -> Result<MailEntry, StoreError> {
        let appended = mailfile::Appended {
            mail_file: mail_file.to_owned(),
            folder: folder.to_owned(),
            body: bodies::Body::new(data),
            flags,
            internal_date,
        };
        self.write(move |tx| mailfile::append(tx, appended)).await
    }

    /// IMAP STORE: returns the new flags of every UID that exists, by UID.
    pub async fn set_flags(
        &self,
        mail_file: &str,
        folder: &str,
        uids: &[u32],
        op: FlagOp,
        flags: Flags,
    ) -> Result<Vec<(u32, Flags)>, StoreError> {
        let (mail_file, folder) = (mail_file.to_owned(), folder.to_owned());
        let uids: BTreeSet<u32> = uids.iter().copied().collect();
        self.write(move |tx| mailfile::set_flags(tx, &mail_file, &folder, &uids, op, &flags))
            .await
    }

    /// Removes `\Deleted` messages (all, or those of `uids`); returns the UIDs removed.
    /// UIDNEXT does not go back. A body no longer held by anything is freed.
    pub async fn expunge(
        &self,
        mail_file: &str,
        folder: &str,
        uids: Option<&[u32]>,
    ) -> Result<Vec<u32>, StoreError> {
        let (mail_file, folder) = (mail_file.to_owned(), folder.to_owned());
        let uids: Option<BTreeSet<u32>> = uids.map(|u| u.iter().copied().collect());
        self.write(move |tx| mailfile::expunge(tx, &mail_file, &folder, uids.as_ref()))
            .await
    }

    /// IMAP COPY, or MOVE with `remove`: returns `(old uid, new uid)` of each
    /// message that existed, by old UID. A copy shares the original's body.
    pub async fn copy(
        &self,
        mail_file: &str,
        from: &str,
        uids: &[u32],
        to: &str,
        remove: bool,
    ) -> Result<Vec<(u32, u32)>, StoreError> {
        let (mail_file, from, to) = (mail_file.to_owned(), from.to_owned(), to.to_owned());
        let uids: BTreeSet<u32> = uids.iter().copied().collect();
        self.write(move |tx| mailfile::copy(tx, &mail_file, &from, &uids, &to, remove))
            .await
    }

    /// Every committed mail-file change of this store from now on. A read-only
    /// store sees none. A receiver that falls more than 4096 changes behind gets
    /// `Lagged` and should re-read what it shows.
    pub fn subscribe(&self) -> broadcast::Receiver<MailFileChange> {
        self.inner.changes.subscribe()
    }

    // ---- routing events ----

    /// Deletes up to `limit` routing events older than `before` (Unix ms),
    /// oldest first, in one write; returns how many were deleted. Call
    /// again while it returns `limit`.
    pub async fn prune_events(&self, before: i64, limit: u32) -> Result<usize, StoreError> {
        self.write(move |tx| events::prune(tx.conn, before, limit))
            .await
    }

    /// Routing events matching every filter of `q`, oldest first.
    pub fn events(&self, q: &EventQuery) -> Result<Vec<RoutingEvent>, StoreError> {
        self.inner.readers.read(|conn| events::query(conn, q))
    }
}
