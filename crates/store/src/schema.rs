//! The SQLite file: connection settings and the schema with its migrations.
//! Owns table layout; knows nothing of what the rows mean to the router.
//!
//! Claiming work is done today by the one process holding the mail box in
//! memory; the `messages` table keeps integer keys and a state column so a
//! lease (`lease_owner`, `lease_until`) can be added by a later migration
//! without changing any other table.
//!
//! Bodies (version 5): a message's bytes are stored once, in `blob_data`,
//! with its header block in `blob_headers` and its count of references, size
//! and listing fields (From, Subject, Date, Message-ID) in `blobs`, all under
//! one id. `messages.body` and `entries.body` name it; the triggers
//! `*_body_ref`, `*_body_unref` and `*_body_change` on those two tables keep
//! `blobs.refs` equal to the number of rows naming the body, and delete the
//! body (`blobs_delete` takes its header block and bytes) when it reaches 0:
//! expunge, folder delete, a settled or deleted mail box message all free a
//! body with its last reference, whatever code path removed the row. The body
//! columns are not declared foreign keys: checking one on every delete would
//! need an index on each, and the triggers already keep them right.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::error::StoreError;

/// The database file inside the store folder.
pub(crate) const FILE_NAME: &str = "mailhop.db";

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const STATEMENT_CACHE: usize = 64;
/// WAL pages after which a committing connection checkpoints by itself (64 MB).
const WAL_BACKSTOP_PAGES: i64 = 16384;

/// One step of the schema: SQL, or code where rows must be rewritten.
enum Migration {
    Sql(&'static str),
    Code(fn(&Connection) -> rusqlite::Result<()>),
}

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    Migration::Sql(
        r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- The mail box: one row per accepted message, its body stored once.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    state       INTEGER NOT NULL,
    reason      TEXT,
    sender      TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    hop_count   INTEGER NOT NULL,
    origin      TEXT NOT NULL,
    message_id  TEXT,
    subject     TEXT,
    size        INTEGER NOT NULL,
    data        BLOB NOT NULL
);
CREATE INDEX messages_state ON messages(state);

-- Each address once per message (addr_key = lower-cased address), in order (seq).
CREATE TABLE recipients (
    message      INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    addr_key     TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    address      TEXT NOT NULL,
    status       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER,
    last_error   TEXT,
    queue        TEXT,
    PRIMARY KEY (message, addr_key)
) WITHOUT ROWID;

-- Mail files: names are keys (case-insensitive), usage is the running byte total.
CREATE TABLE mailfiles (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE COLLATE NOCASE,
    usage INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE folders (
    id          INTEGER PRIMARY KEY,
    mailfile    INTEGER NOT NULL REFERENCES mailfiles(id),
    name        TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uidnext     INTEGER NOT NULL,
    subscribed  INTEGER NOT NULL,
    special_use INTEGER,
    UNIQUE (mailfile, name)
);

-- Metadata apart from bodies so listing a folder never reads a body.
CREATE TABLE entries (
    id            INTEGER PRIMARY KEY,
    folder        INTEGER NOT NULL REFERENCES folders(id),
    uid           INTEGER NOT NULL,
    flags         INTEGER NOT NULL,
    keywords      TEXT NOT NULL,
    internal_date INTEGER NOT NULL,
    size          INTEGER NOT NULL,
    message_id    TEXT,
    sender        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    date          INTEGER,
    route_servers TEXT NOT NULL,
    route_times   TEXT NOT NULL,
    UNIQUE (folder, uid)
);

CREATE TABLE bodies (
    entry INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
    data  BLOB NOT NULL
);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    time       INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    sender     TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    server     TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    hop        INTEGER NOT NULL,
    size       INTEGER NOT NULL
);
CREATE INDEX events_time ON events(time);
CREATE INDEX events_message_id ON events(message_id);
"#,
    ),
    Migration::Code(add_headers),
    Migration::Sql(
        r#"
-- A folder's listing (IMAP SELECT, STATUS, POP3 login) read from the index
-- alone, in UID order, without visiting the table's rows.
CREATE INDEX IF NOT EXISTS entries_listing ON entries(folder, uid, size, internal_date, flags, keywords);
"#,
    ),
    Migration::Sql(
        r#"
-- A change counter per folder, bumped by every change to its messages
-- (triggers: no write path can forget it), so that a folder's listing kept
-- in memory is known to be current.
ALTER TABLE folders ADD COLUMN modseq INTEGER NOT NULL DEFAULT 0;
CREATE TRIGGER entries_insert_modseq AFTER INSERT ON entries BEGIN
    UPDATE folders SET modseq = modseq + 1 WHERE id = NEW.folder;
END;
CREATE TRIGGER entries_delete_modseq AFTER DELETE ON entries BEGIN
    UPDATE folders SET modseq = modseq + 1 WHERE id = OLD.folder;
END;
CREATE TRIGGER entries_update_modseq AFTER UPDATE ON entries BEGIN
    UPDATE folders SET modseq = modseq + 1 WHERE id IN (OLD.folder, NEW.folder);
END;
"#,
    ),
    Migration::Code(share_bodies),
    Migration::Sql(
        r#"
-- Every recipient is a row, derived ones too: the group or forwarding
-- person it came from (parent), and for a recipient handed to an outbound
-- queue (status 7, Waiting) how it leaves (via), so a restart rebuilds the
-- queues from the rows alone.
ALTER TABLE recipients ADD COLUMN parent TEXT;
ALTER TABLE recipients ADD COLUMN via TEXT;
"#,
    ),
    Migration::Sql(
        r#"
-- Servers of one domain: the servers a message passed before this one
-- (RouteServers / RouteTimes, JSON; '' for none) and its priority
-- (0 low, 1 normal, 2 high).
ALTER TABLE messages ADD COLUMN route TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN priority INTEGER NOT NULL DEFAULT 1;

-- Recipient rows handed over by another server of the domain (its name,
-- its mail box id, the address key), recorded in the transaction that
-- accepts them: a resend after a crash on either side is recognised and
-- not delivered twice. Pruned after a week.
CREATE TABLE transfers_in (
    origin  TEXT NOT NULL,
    message INTEGER NOT NULL,
    rcpt    TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (origin, message, rcpt)
) WITHOUT ROWID;

-- This store's identity, random, made once: with the server's name it
-- names where a handed-over message came from, so a server whose store
-- was made anew (ids starting again from 1) is never taken for a resend.
INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', abs(random() % 9007199254740991));
"#,
    ),
    Migration::Sql(
        r#"
-- The routing events are read in time order (events_time) and filtered;
-- an index on the Message-ID, a random key, cost one more page written
-- per message and no query used it.
DROP INDEX IF EXISTS events_message_id;
"#,
    ),
];

fn open_error(path: &Path, reason: impl ToString) -> StoreError {
    StoreError::Open {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

pub(crate) fn db_path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Opens (creating if needed) the write connection and brings the schema up to date.
pub(crate) fn open_writer(dir: &Path) -> Result<Connection, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| open_error(dir, e))?;
    let path = db_path(dir);
    owner_only(&path)?;
    let conn = open_read_write(&path)?;
    migrate(&conn, &path)?;
    Ok(conn)
}

/// The database file exists and only its owner may read it (0600), before
/// SQLite opens it: SQLite gives the `-wal` and `-shm` files it makes the
/// main file's permissions. Files of an older mailhop are tightened too.
pub(crate) fn owner_only(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(open_error(&file, e)),
        }
    }
    Ok(())
}

/// A read-write connection with the store's durability settings.
pub(crate) fn open_read_write(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| open_error(path, e))?;
    configure(&conn, true).map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// The store's identity (see the `store_id` of `meta`).
pub(crate) fn store_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
        r.get(0)
    })
}

/// Opens a read-only connection to an existing store and checks its schema.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(open_error(path, "no mailhop store there"));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
    configure(&conn, false).map_err(|e| open_error(path, e))?;
    Ok(conn)
}

/// Fails unless the schema is one this code reads.
pub(crate) fn check_version(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found = version(conn).map_err(|e| open_error(path, e))?;
    let known = known_version();
    if found > known {
        return Err(StoreError::SchemaTooNew {
            path: path.display().to_string(),
            found,
            known,
        });
    }
    if found < known {
        return Err(open_error(path, "the store was never fully created"));
    }
    Ok(())
}

fn configure(conn: &Connection, writer: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    if writer {
        // journal_mode answers with a row: read it rather than execute.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Every request of a group commit runs in its own SAVEPOINT, and a
        // savepoint journals the pages it changes: in memory, that is a copy;
        // in a temporary file, it is two writes a page.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        // Checkpoints are the checkpointer thread's job; this is only the backstop.
        conn.pragma_update(None, "wal_autocheckpoint", WAL_BACKSTOP_PAGES)?;
    }
    Ok(())
}

/// Version 2: each message's header block apart from its body, so ENVELOPE
/// and header searches read ~1 KB a message, not the whole message; filled
/// for the messages already stored.
fn add_headers(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE headers (
             entry INTEGER PRIMARY KEY REFERENCES entries(id) ON DELETE CASCADE,
             data  BLOB NOT NULL
         );",
    )?;
    backfill_headers(conn)
}

/// Version 5: every body stored once (see `bodies`), referred to by the mail
/// box message and the mail-file entries holding it, counted by triggers.
/// Each stored copy of a body — a mail-file entry's (`bodies`, `headers`,
/// its listing fields) or a mail box message's (`messages.data`, its header
/// fields read here) — becomes a body with one reference.
fn share_bodies(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        r#"
CREATE TABLE blobs (
    id         INTEGER PRIMARY KEY,
    refs       INTEGER NOT NULL,
    size       INTEGER NOT NULL,
    message_id TEXT,
    sender     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    date       INTEGER
);
CREATE TABLE blob_headers (
    blob INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE blob_data (
    blob INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);

ALTER TABLE entries ADD COLUMN body INTEGER NOT NULL DEFAULT 0;
INSERT INTO blobs (id, refs, size, message_id, sender, subject, date)
    SELECT id, 1, size, message_id, sender, subject, date FROM entries;
INSERT INTO blob_headers (blob, data) SELECT entry, data FROM headers;
INSERT INTO blob_data (blob, data) SELECT entry, data FROM bodies;
UPDATE entries SET body = id;
ALTER TABLE messages ADD COLUMN body INTEGER NOT NULL DEFAULT 0;
"#,
    )?;
    let ids: Vec<i64> = conn
        .prepare("SELECT id FROM messages ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut read = conn.prepare("SELECT data FROM messages WHERE id = ?1")?;
    let mut refer = conn.prepare("UPDATE messages SET body = ?2 WHERE id = ?1")?;
    let mut count = conn.prepare("UPDATE blobs SET refs = 1 WHERE id = ?1")?;
    for id in ids {
        let data: Vec<u8> = read.query_row([id], |r| r.get(0))?;
        let body = crate::bodies::insert(conn, &crate::bodies::Body::new(data))?;
        count.execute([body])?;
        refer.execute([id, body])?;
    }
    conn.execute_batch(
        r#"
DROP TABLE bodies;
DROP TABLE headers;
ALTER TABLE messages DROP COLUMN data;
ALTER TABLE entries DROP COLUMN message_id;
ALTER TABLE entries DROP COLUMN sender;
ALTER TABLE entries DROP COLUMN subject;
ALTER TABLE entries DROP COLUMN date;

CREATE TRIGGER messages_body_ref AFTER INSERT ON messages BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE id = NEW.body;
END;
CREATE TRIGGER messages_body_unref AFTER DELETE ON messages BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE id = OLD.body;
    DELETE FROM blobs WHERE id = OLD.body AND refs <= 0;
END;
CREATE TRIGGER messages_body_change AFTER UPDATE OF body ON messages
WHEN NEW.body IS NOT OLD.body BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE id = NEW.body;
    UPDATE blobs SET refs = refs - 1 WHERE id = OLD.body;
    DELETE FROM blobs WHERE id = OLD.body AND refs <= 0;
END;
CREATE TRIGGER entries_body_ref AFTER INSERT ON entries BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE id = NEW.body;
END;
CREATE TRIGGER entries_body_unref AFTER DELETE ON entries BEGIN
    UPDATE blobs SET refs = refs - 1 WHERE id = OLD.body;
    DELETE FROM blobs WHERE id = OLD.body AND refs <= 0;
END;
CREATE TRIGGER entries_body_change AFTER UPDATE OF body ON entries
WHEN NEW.body IS NOT OLD.body BEGIN
    UPDATE blobs SET refs = refs + 1 WHERE id = NEW.body;
    UPDATE blobs SET refs = refs - 1 WHERE id = OLD.body;
    DELETE FROM blobs WHERE id = OLD.body AND refs <= 0;
END;
CREATE TRIGGER blobs_delete AFTER DELETE ON blobs BEGIN
    DELETE FROM blob_headers WHERE blob = OLD.id;
    DELETE FROM blob_data WHERE blob = OLD.id;
END;
"#,
    )
}

/// Stores the header block of every message stored before the `headers` table.
fn backfill_headers(conn: &Connection) -> rusqlite::Result<()> {
    let mut read = conn.prepare(
        "SELECT b.entry, b.data FROM bodies b WHERE NOT EXISTS (SELECT 1 FROM headers h WHERE h.entry = b.entry)",
    )?;
    let mut write = conn.prepare("INSERT INTO headers (entry, data) VALUES (?1, ?2)")?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let (entry, data): (i64, Vec<u8>) = (row.get(0)?, row.get(1)?);
        write.execute(rusqlite::params![
            entry,
            crate::headers::header_block(&data)
        ])?;
    }
    Ok(())
}

fn known_version() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

fn version(conn: &Connection) -> rusqlite::Result<i64> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(0);
    }
    Ok(conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |e: rusqlite::Error| open_error(path, format!("schema migration: {e}"));
    conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
    match run_migrations(conn, path) {
        Ok(()) => conn.execute_batch("COMMIT").map_err(fail),
        Err(e) => {
            // The error that matters is the migration's; a failed rollback changes nothing.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

fn run_migrations(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |e: rusqlite::Error| open_error(path, format!("schema migration: {e}"));
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .map_err(fail)?;
    let current = version(conn).map_err(fail)?;
    let known = known_version();
    if current > known {
        return Err(StoreError::SchemaTooNew {
            path: path.display().to_string(),
            found: current,
            known,
        });
    }
    if current == known {
        return Ok(());
    }
    let done = usize::try_from(current).unwrap_or(0);
    for migration in MIGRATIONS.iter().skip(done) {
        match migration {
            Migration::Sql(sql) => conn.execute_batch(sql),
            Migration::Code(run) => run(conn),
        }
        .map_err(fail)?;
    }
    conn.execute("DELETE FROM schema_version", [])
        .map_err(fail)?;
    conn.execute("INSERT INTO schema_version (version) VALUES (?1)", [known])
        .map_err(fail)?;
    Ok(())
}
