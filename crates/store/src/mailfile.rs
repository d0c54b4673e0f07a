//! Mail files: folders, UIDs, flags and the running usage total. An entry
//! refers to its body (see `bodies`): a delivery shares the mail box
//! message's body, COPY shares the copied entry's, APPEND stores a new one.
//! Write functions run on the writer thread and record the `MailFileChange`s
//! to publish after commit; read functions run on a read connection. Knows
//! nothing of IMAP sessions or quotas: it stores and counts.
//!
//! A mail file is created on first write with Inbox, Sent, Drafts, Trash and
//! Junk. UIDVALIDITY comes from one persisted counter (at least the current
//! Unix second, always increasing), so no two folders ever share one and a
//! re-created folder gets a new one. UIDNEXT never goes back. Folder `inbox`
//! in any case is `Inbox`; other names are case-sensitive, `/` separates levels.

use std::collections::{BTreeSet, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use crate::bodies::{self, Body};
use crate::error::{Res, StoreError};
use crate::mailbox::code_column;
use crate::types::{
    ChangeKind, DELETED_BIT, Delivery, EntryMeta, FlagOp, Flags, FolderInfo, MailEntry,
    MailFileChange, MessageId, RECENT_BIT, SEEN_BIT, SpecialUse,
};
use crate::writer::Tx;

pub(crate) const INBOX: &str = "Inbox";
const SEPARATOR: char = '/';
const MAX_FOLDER_NAME: usize = 512;
const DEFAULT_FOLDERS: [(&str, Option<SpecialUse>); 5] = [
    (INBOX, None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
];

/// A delivery with its route columns already encoded, on the caller's task.
pub(crate) struct PreparedDelivery {
    pub delivery: Delivery,
    route_servers: String,
    route_times: String,
}

impl PreparedDelivery {
    pub(crate) fn new(delivery: Delivery) -> PreparedDelivery {
        PreparedDelivery {
            route_servers: json(&delivery.route_servers),
            route_times: json(&delivery.route_times),
            delivery,
        }
    }
}

/// A list of strings or numbers as JSON (which cannot fail for those).
fn json<T: serde::Serialize>(list: &[T]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

/// The canonical form of a folder name, or why it is not one.
pub(crate) fn folder_name(name: &str) -> Result<String, StoreError> {
    let invalid = |reason| StoreError::InvalidFolderName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > MAX_FOLDER_NAME {
        return Err(invalid("it is longer than 512 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    if name.starts_with(SEPARATOR) || name.ends_with(SEPARATOR) || name.contains("//") {
        return Err(invalid("it has an empty level between '/'"));
    }
    if name.eq_ignore_ascii_case(INBOX) {
        return Ok(INBOX.to_owned());
    }
    Ok(name.to_owned())
}

fn check_keywords(flags: &Flags) -> Result<(), StoreError> {
    match flags
        .keywords
        .iter()
        .find(|k| k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        Some(bad) => Err(StoreError::InvalidKeyword(bad.clone())),
        None => Ok(()),
    }
}

fn keywords_from(text: &str) -> Vec<String> {
    text.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

fn u32_from(value: i64, what: &str) -> Res<u32> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value}")).into())
}

fn no_folder(mail_file: &str, folder: &str) -> StoreError {
    StoreError::NoSuchFolder {
        mail_file: mail_file.to_owned(),
        folder: folder.to_owned(),
    }
}

/// A folder as the write functions need it.
struct FolderRow {
    id: i64,
    /// The mail file's id and its name as stored (the key changes are published under).
    mailfile: i64,
    mail_file: String,
    name: String,
    uidnext: u32,
}

impl FolderRow {
    fn change(&self, kind: ChangeKind) -> MailFileChange {
        MailFileChange {
            mail_file: self.mail_file.clone(),
            folder: self.name.clone(),
            kind,
        }
    }
}

// ---- writes ----

fn next_uidvalidity(conn: &Connection) -> Res<u32> {
    let last: i64 = conn
        .prepare_cached("SELECT value FROM meta WHERE key = 'uidvalidity'")?
        .query_row([], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let next = now.max(last + 1).clamp(1, i64::from(u32::MAX));
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('uidvalidity', ?1)")?
        .execute([next])?;
    u32_from(next, "uidvalidity")
}

fn insert_folder(
    conn: &Connection,
    mailfile: i64,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Res<i64> {
    let uidvalidity = next_uidvalidity(conn)?;
    conn.prepare_cached(
        "INSERT INTO folders (mailfile, name, uidvalidity, uidnext, subscribed, special_use)
         VALUES (?1, ?2, ?3, 1, 1, ?4)",
    )?
    .execute(params![
        mailfile,
        name,
        uidvalidity,
        special_use.map(SpecialUse::code)
    ])?;
    Ok(conn.last_insert_rowid())
}

/// The mail file's id and stored name, creating it with its default folders.
fn ensure_mailfile(conn: &Connection, mail_file: &str) -> Res<(i64, String)> {
    if let Some(found) = conn
        .prepare_cached("SELECT id, name FROM mailfiles WHERE name = ?1")?
        .query_row([mail_file], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
    {
        return Ok(found);
    }
    conn.prepare_cached("INSERT INTO mailfiles (name) VALUES (?1)")?
        .execute([mail_file])?;
    let id = conn.last_insert_rowid();
    for (name, special_use) in DEFAULT_FOLDERS {
        insert_folder(conn, id, name, special_use)?;
    }
    Ok((id, mail_file.to_owned()))
}

fn find_folder(conn: &Connection, mailfile: (i64, String), folder: &str) -> Res<Option<FolderRow>> {
    let (mailfile, mail_file) = mailfile;
    Ok(conn
        .prepare_cached("SELECT id, uidnext FROM folders WHERE mailfile = ?1 AND name = ?2")?
        .query_row(params![mailfile, folder], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .map(|(id, uidnext)| FolderRow {
            id,
            mailfile,
            mail_file,
            name: folder.to_owned(),
            uidnext,
        }))
}

/// The folder, which must exist (its mail file is created if needed).
fn existing_folder(conn: &Connection, mail_file: &str, folder: &str) -> Res<FolderRow> {
    let name = folder_name(folder)?;
    let mailfile = ensure_mailfile(conn, mail_file)?;
    find_folder(conn, mailfile, &name)?.ok_or_else(|| no_folder(mail_file, &name).into())
}

fn add_usage(conn: &Connection, mailfile: i64, delta: i64) -> Res<()> {
    conn.prepare_cached("UPDATE mailfiles SET usage = max(usage + ?2, 0) WHERE id = ?1")?
        .execute(params![mailfile, delta])?;
    Ok(())
}

/// What goes into a new mail-file message.
struct NewEntry<'a> {
    /// The stored body it refers to, and that body's size.
    body: i64,
    size: i64,
    flags: &'a Flags,
    internal_date: i64,
    /// JSON lists.
    route_servers: &'a str,
    route_times: &'a str,
}

/// Stores one message in the folder under its next UID; returns the UID. The
/// entry's insert trigger counts its reference to the body.
fn insert_entry(conn: &Connection, folder: &mut FolderRow, entry: &NewEntry<'_>) -> Res<u32> {
    check_keywords(entry.flags)?;
    let uid = folder.uidnext;
    conn.prepare_cached(
        "INSERT INTO entries (folder, uid, flags, keywords, internal_date, size, body, route_servers, route_times)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        folder.id,
        uid,
        entry.flags.bits(),
        entry.flags.keywords.join(" "),
        entry.internal_date,
        entry.size,
        entry.body,
        entry.route_servers,
        entry.route_times,
    ])?;
    folder.uidnext = uid
        .checked_add(1)
        .ok_or_else(|| StoreError::Corrupt(format!("folder {} has used every UID", folder.name)))?;
    conn.prepare_cached("UPDATE folders SET uidnext = ?2 WHERE id = ?1")?
        .execute(params![folder.id, folder.uidnext])?;
    add_usage(conn, folder.mailfile, entry.size)?;
    Ok(uid)
}

/// Router delivery of mail box message `message`: the entry shares the
/// message's body (its bytes are not read); the mail file and folder are
/// created if missing.
pub(crate) fn deliver(tx: &mut Tx<'_>, message: MessageId, prepared: PreparedDelivery) -> Res<u32> {
    let PreparedDelivery {
        delivery,
        route_servers,
        route_times,
    } = prepared;
    let (body, size): (i64, i64) = tx
        .conn
        .prepare_cached("SELECT body, size FROM messages WHERE id = ?1")?
        .query_row([message], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NoSuchMessage(message))?;
    let name = folder_name(&delivery.folder)?;
    let mailfile = ensure_mailfile(tx.conn, &delivery.mail_file)?;
    let mut folder = match find_folder(tx.conn, mailfile.clone(), &name)? {
        Some(folder) => folder,
        None => {
            insert_folder(tx.conn, mailfile.0, &name, None)?;
            let folder = find_folder(tx.conn, mailfile, &name)?
                .ok_or_else(|| no_folder(&delivery.mail_file, &name))?;
            tx.changes.push(folder.change(ChangeKind::Folders));
            folder
        }
    };
    let uid = insert_entry(
        tx.conn,
        &mut folder,
        &NewEntry {
            body,
            size,
            flags: &delivery.flags,
            internal_date: delivery.internal_date,
            route_servers: &route_servers,
            route_times: &route_times,
        },
    )?;
    tx.changes
        .push(folder.change(ChangeKind::Appended { uids: vec![uid] }));
    Ok(uid)
}

/// What IMAP APPEND puts into a folder.
pub(crate) struct Appended {
    pub mail_file: String,
    pub folder: String,
    pub body: Body,
    pub flags: Flags,
    pub internal_date: i64,
}

/// IMAP APPEND: the folder must exist; the message is a new body of its own.
pub(crate) fn append(tx: &mut Tx<'_>, appended: Appended) -> Res<MailEntry> {
    let Appended {
        mail_file,
        folder,
        body,
        flags,
        internal_date,
    } = appended;
    let mut folder = existing_folder(tx.conn, &mail_file, &folder)?;
    let body_id = bodies::insert(tx.conn, &body)?;
    let uid = insert_entry(
        tx.conn,
        &mut folder,
        &NewEntry {
            body: body_id,
            size: body.size(),
            flags: &flags,
            internal_date,
            route_servers: "[]",
            route_times: "[]",
        },
    )?;
    tx.changes
        .push(folder.change(ChangeKind::Appended { uids: vec![uid] }));
    let meta = body.meta;
    Ok(MailEntry {
        uid,
        size: u64::try_from(body.data.len()).unwrap_or(u64::MAX),
        internal_date,
        flags,
        message_id: meta.message_id,
        from: meta.from,
        subject: meta.subject,
        date: meta.date,
        route_servers: Vec::new(),
        route_times: Vec::new(),
    })
}

pub(crate) fn ensure(tx: &mut Tx<'_>, mail_file: &str) -> Res<Vec<FolderInfo>> {
    ensure_mailfile(tx.conn, mail_file)?;
    folder_infos(tx.conn, mail_file, None)
}

pub(crate) fn create_folder(
    tx: &mut Tx<'_>,
    mail_file: &str,
    folder: &str,
    special_use: Option<SpecialUse>,
) -> Res<FolderInfo> {
    let name = folder_name(folder)?;
    let mailfile = ensure_mailfile(tx.conn, mail_file)?;
    if find_folder(tx.conn, mailfile.clone(), &name)?.is_some() {
        return Err(StoreError::FolderExists {
            mail_file: mail_file.to_owned(),
            folder: name,
        }
        .into());
    }
    insert_folder(tx.conn, mailfile.0, &name, special_use)?;
    tx.changes.push(MailFileChange {
        mail_file: mailfile.1,
        folder: name.clone(),
        kind: ChangeKind::Folders,
    });
    folder_infos(tx.conn, mail_file, Some(&name))?
        .pop()
        .ok_or_else(|| no_folder(mail_file, &name).into())
}

/// Removes the folder's messages (and their usage); returns the UIDs removed.
fn remove_entries(conn: &Connection, folder: &FolderRow, ids: &[(i64, u32, i64)]) -> Res<Vec<u32>> {
    let mut delete = conn.prepare_cached("DELETE FROM entries WHERE id = ?1")?;
    let mut freed = 0i64;
    for (id, _, size) in ids {
        delete.execute([id])?;
        freed = freed.saturating_add(*size);
    }
    add_usage(conn, folder.mailfile, -freed)?;
    Ok(ids.iter().map(|(_, uid, _)| *uid).collect())
}

/// `(id, uid, size)` of the folder's messages, by UID, `deleted_only` those flagged `\Deleted`.
fn entry_ids(conn: &Connection, folder: i64, deleted_only: bool) -> Res<Vec<(i64, u32, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, uid, size FROM entries WHERE folder = ?1 AND (?2 = 0 OR flags & ?2 != 0) ORDER BY uid",
    )?;
    let deleted_bit = if deleted_only { DELETED_BIT } else { 0 };
    let rows = stmt
        .query_map(params![folder, deleted_bit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn delete_folder(tx: &mut Tx<'_>, mail_file: &str, folder: &str) -> Res<bool> {
    let name = folder_name(folder)?;
    if name == INBOX {
        return Err(StoreError::InvalidFolderName {
            name,
            reason: "Inbox cannot be deleted",
        }
        .into());
    }
    let mailfile = ensure_mailfile(tx.conn, mail_file)?;
    let Some(folder) = find_folder(tx.conn, mailfile, &name)? else {
        return Ok(false);
    };
    let all = entry_ids(tx.conn, folder.id, false)?;
    remove_entries(tx.conn, &folder, &all)?;
    tx.conn
        .prepare_cached("DELETE FROM folders WHERE id = ?1")?
        .execute([folder.id])?;
    tx.changes.push(folder.change(ChangeKind::Folders));
    Ok(true)
}

/// Renames a folder and the folders under it. Renaming Inbox moves its
/// messages into the new folder and leaves Inbox empty (IMAP RENAME INBOX).
pub(crate) fn rename_folder(tx: &mut Tx<'_>, mail_file: &str, from: &str, to: &str) -> Res<()> {
    let from = folder_name(from)?;
    let to = folder_name(to)?;
    let exists = |folder: String| StoreError::FolderExists {
        mail_file: mail_file.to_owned(),
        folder,
    };
    if to == INBOX {
        return Err(exists(to).into());
    }
    if to.starts_with(&format!("{from}{SEPARATOR}")) {
        return Err(StoreError::InvalidFolderName {
            name: to,
            reason: "a folder cannot move under itself",
        }
        .into());
    }
    let conn = tx.conn;
    let mailfile = ensure_mailfile(conn, mail_file)?;
    let source =
        find_folder(conn, mailfile.clone(), &from)?.ok_or_else(|| no_folder(mail_file, &from))?;
    if find_folder(conn, mailfile.clone(), &to)?.is_some() {
        return Err(exists(to).into());
    }
    if from == INBOX {
        let target = insert_folder(conn, mailfile.0, &to, None)?;
        let moved = entry_ids(conn, source.id, false)?;
        conn.prepare_cached("UPDATE entries SET folder = ?2 WHERE folder = ?1")?
            .execute(params![source.id, target])?;
        conn.prepare_cached("UPDATE folders SET uidnext = ?2 WHERE id = ?1")?
            .execute(params![target, source.uidnext])?;
        let uids = moved.iter().map(|(_, uid, _)| *uid).collect();
        tx.changes
            .push(source.change(ChangeKind::Expunged { uids }));
    } else {
        let prefix = format!("{from}{SEPARATOR}");
        let mut children = conn.prepare_cached(
            "SELECT id, name FROM folders WHERE mailfile = ?1 AND substr(name, 1, length(?2)) = ?2",
        )?;
        let renamed: Vec<(i64, String, String)> = children
            .query_map(params![mailfile.0, prefix], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter_map(|(id, old)| {
                let new = format!("{to}{SEPARATOR}{}", old.get(prefix.len()..)?);
                Some((id, old, new))
            })
            .chain([(source.id, from.clone(), to.clone())])
            .collect();
        let mut rename = conn.prepare_cached("UPDATE folders SET name = ?2 WHERE id = ?1")?;
        for (id, old, new) in &renamed {
            if find_folder(conn, mailfile.clone(), new)?.is_some() {
                return Err(exists(new.clone()).into());
            }
            rename.execute(params![id, new])?;
            tx.changes.push(MailFileChange {
                mail_file: mailfile.1.clone(),
                folder: old.clone(),
                kind: ChangeKind::Folders,
            });
        }
    }
    tx.changes.push(MailFileChange {
        mail_file: mailfile.1,
        folder: to,
        kind: ChangeKind::Folders,
    });
    Ok(())
}

pub(crate) fn set_subscribed(tx: &mut Tx<'_>, mail_file: &str, folder: &str, on: bool) -> Res<()> {
    let folder = existing_folder(tx.conn, mail_file, folder)?;
    tx.conn
        .prepare_cached("UPDATE folders SET subscribed = ?2 WHERE id = ?1")?
        .execute(params![folder.id, on])?;
    tx.changes.push(folder.change(ChangeKind::Folders));
    Ok(())
}

pub(crate) fn set_flags(
    tx: &mut Tx<'_>,
    mail_file: &str,
    folder: &str,
    uids: &BTreeSet<u32>,
    op: FlagOp,
    flags: &Flags,
) -> Res<Vec<(u32, Flags)>> {
    check_keywords(flags)?;
    let folder = existing_folder(tx.conn, mail_file, folder)?;
    let mut read = tx
        .conn
        .prepare_cached("SELECT id, flags, keywords FROM entries WHERE folder = ?1 AND uid = ?2")?;
    let mut write = tx
        .conn
        .prepare_cached("UPDATE entries SET flags = ?2, keywords = ?3 WHERE id = ?1")?;
    let mut result = Vec::with_capacity(uids.len());
    let mut changed = Vec::new();
    for uid in uids {
        let Some((id, bits, keywords)) = read
            .query_row(params![folder.id, uid], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .optional()?
        else {
            continue;
        };
        let old = Flags::from_bits(bits, keywords_from(&keywords));
        let mut new = old.clone();
        new.apply(op, flags);
        if new != old {
            write.execute(params![id, new.bits(), new.keywords.join(" ")])?;
            changed.push(*uid);
        }
        result.push((*uid, new));
    }
    if !changed.is_empty() {
        tx.changes
            .push(folder.change(ChangeKind::Flags { uids: changed }));
    }
    Ok(result)
}

/// Removes `\Deleted` messages: all of them, or those among `uids`.
pub(crate) fn expunge(
    tx: &mut Tx<'_>,
    mail_file: &str,
    folder: &str,
    uids: Option<&BTreeSet<u32>>,
) -> Res<Vec<u32>> {
    let folder = existing_folder(tx.conn, mail_file, folder)?;
    let doomed: Vec<_> = entry_ids(tx.conn, folder.id, true)?
        .into_iter()
        .filter(|(_, uid, _)| uids.is_none_or(|wanted| wanted.contains(uid)))
        .collect();
    let removed = remove_entries(tx.conn, &folder, &doomed)?;
    if !removed.is_empty() {
        tx.changes.push(folder.change(ChangeKind::Expunged {
            uids: removed.clone(),
        }));
    }
    Ok(removed)
}

/// IMAP COPY / MOVE: the copies get the next UIDs of `to`, keep their flags
/// and are `\Recent`. Returns `(old uid, new uid)` by old UID.
pub(crate) fn copy(
    tx: &mut Tx<'_>,
    mail_file: &str,
    from: &str,
    uids: &BTreeSet<u32>,
    to: &str,
    remove: bool,
) -> Res<Vec<(u32, u32)>> {
    let conn = tx.conn;
    let source = existing_folder(conn, mail_file, from)?;
    let mut target = existing_folder(conn, mail_file, to)?;
    let mut find =
        conn.prepare_cached("SELECT id, size FROM entries WHERE folder = ?1 AND uid = ?2")?;
    let mut pairs = Vec::with_capacity(uids.len());
    let mut added = 0i64;
    // UIDs from `source.uidnext` on did not exist when the command came (COPY into the same folder).
    for uid in uids.range(..source.uidnext) {
        let Some((id, size)) = find
            .query_row(params![source.id, uid], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .optional()?
        else {
            continue;
        };
        let new_uid = target.uidnext;
        target.uidnext = new_uid.checked_add(1).ok_or_else(|| {
            StoreError::Corrupt(format!("folder {} has used every UID", target.name))
        })?;
        if remove {
            conn.prepare_cached(
                "UPDATE entries SET folder = ?2, uid = ?3, flags = flags | ?4 WHERE id = ?1",
            )?
            .execute(params![id, target.id, new_uid, RECENT_BIT])?;
        } else {
            // The copy shares the original's body: one more reference, no bytes copied.
            conn.prepare_cached(
                "INSERT INTO entries (folder, uid, flags, keywords, internal_date, size, body, route_servers,
                     route_times)
                 SELECT ?2, ?3, flags | ?4, keywords, internal_date, size, body, route_servers, route_times
                 FROM entries WHERE id = ?1",
            )?
            .execute(params![id, target.id, new_uid, RECENT_BIT])?;
            added = added.saturating_add(size);
        }
        pairs.push((*uid, new_uid));
    }
    if pairs.is_empty() {
        return Ok(pairs);
    }
    conn.prepare_cached("UPDATE folders SET uidnext = ?2 WHERE id = ?1")?
        .execute(params![target.id, target.uidnext])?;
    add_usage(conn, target.mailfile, added)?;
    if remove {
        let uids = pairs.iter().map(|(old, _)| *old).collect();
        tx.changes
            .push(source.change(ChangeKind::Expunged { uids }));
    }
    let uids = pairs.iter().map(|(_, new)| *new).collect();
    tx.changes
        .push(target.change(ChangeKind::Appended { uids }));
    Ok(pairs)
}

// ---- reads ----

pub(crate) fn usage(conn: &Connection, mail_file: &str) -> Res<u64> {
    Ok(conn
        .prepare_cached("SELECT usage FROM mailfiles WHERE name = ?1")?
        .query_row([mail_file], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// The mail file's folders (Inbox first, then by name), or only `only`.
pub(crate) fn folder_infos(
    conn: &Connection,
    mail_file: &str,
    only: Option<&str>,
) -> Res<Vec<FolderInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.name, f.uidvalidity, f.uidnext, f.subscribed, f.special_use, count(e.id),
             coalesce(sum(e.flags & ?3 = 0), 0), coalesce(sum(e.flags & ?4 != 0), 0)
         FROM folders f JOIN mailfiles m ON m.id = f.mailfile LEFT JOIN entries e ON e.folder = f.id
         WHERE m.name = ?1 AND (?2 IS NULL OR f.name = ?2)
         GROUP BY f.id ORDER BY f.name <> 'Inbox', f.name",
    )?;
    let rows = stmt.query_map(params![mail_file, only, SEEN_BIT, RECENT_BIT], |r| {
        let special_use = match r.get::<_, Option<i64>>(4)? {
            Some(_) => Some(code_column(r, 4, SpecialUse::from_code)?),
            None => None,
        };
        Ok(FolderInfo {
            name: r.get(0)?,
            uidvalidity: r.get(1)?,
            uidnext: r.get(2)?,
            subscribed: r.get(3)?,
            special_use,
            exists: r.get(5)?,
            unseen: r.get(6)?,
            recent: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The folder's id for a read, or why there is none.
/// Folder listings kept in memory, each with the folder's change counter
/// (`modseq`, bumped by triggers on every change to its messages) and
/// UIDVALIDITY at the time it was read: a listing is used only while both
/// still match, so it is never stale. Bounded by the number of entries held.
#[derive(Default)]
pub(crate) struct ListingCache(std::sync::Mutex<HashMap<i64, CachedListing>>);

struct CachedListing {
    uidvalidity: u32,
    modseq: i64,
    entries: std::sync::Arc<Vec<EntryMeta>>,
}

/// Entries held by the listing cache at the most.
const LISTED_ENTRIES_KEPT: usize = 200_000;

impl ListingCache {
    fn get(
        &self,
        folder: i64,
        uidvalidity: u32,
        modseq: i64,
    ) -> Option<std::sync::Arc<Vec<EntryMeta>>> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&folder)
            .filter(|c| c.uidvalidity == uidvalidity && c.modseq == modseq)
            .map(|c| c.entries.clone())
    }

    fn put(
        &self,
        folder: i64,
        uidvalidity: u32,
        modseq: i64,
        entries: std::sync::Arc<Vec<EntryMeta>>,
    ) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&folder);
        let held: usize = map.values().map(|c| c.entries.len()).sum();
        if held + entries.len() > LISTED_ENTRIES_KEPT {
            map.clear();
        }
        map.insert(
            folder,
            CachedListing {
                uidvalidity,
                modseq,
                entries,
            },
        );
    }
}

/// A folder and its messages' metadata, read together (IMAP SELECT): the
/// counts come from the listing rather than from a second pass over the folder.
pub(crate) fn listing(
    conn: &Connection,
    cache: &ListingCache,
    mail_file: &str,
    folder: &str,
) -> Res<Option<(FolderInfo, Vec<EntryMeta>)>> {
    let name = folder_name(folder)?;
    let row = conn
        .prepare_cached(
            "SELECT f.id, f.name, f.uidvalidity, f.uidnext, f.subscribed, f.special_use, f.modseq
             FROM folders f JOIN mailfiles m ON m.id = f.mailfile WHERE m.name = ?1 AND f.name = ?2",
        )?
        .query_row(params![mail_file, name], |r| {
            let special_use = match r.get::<_, Option<i64>>(5)? {
                Some(_) => Some(code_column(r, 5, SpecialUse::from_code)?),
                None => None,
            };
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, i64>(6)?),
                FolderInfo {
                    name: r.get(1)?,
                    uidvalidity: r.get(2)?,
                    uidnext: r.get(3)?,
                    subscribed: r.get(4)?,
                    special_use,
                    exists: 0,
                    unseen: 0,
                    recent: 0,
                },
            ))
        })
        .optional()?;
    let Some(((id, modseq), mut info)) = row else {
        return Ok(None);
    };
    let entries = match cache.get(id, info.uidvalidity, modseq) {
        Some(kept) => kept,
        None => {
            let mut stmt = conn.prepare_cached(ENTRY_META_SQL)?;
            let read: Vec<EntryMeta> = stmt
                .query_map(params![id, 0, u32::MAX], entry_meta)?
                .collect::<Result<_, _>>()?;
            let read = std::sync::Arc::new(read);
            cache.put(id, info.uidvalidity, modseq, read.clone());
            read
        }
    };
    let entries: Vec<EntryMeta> = entries.to_vec();
    let count = |f: fn(&EntryMeta) -> bool| {
        u32::try_from(entries.iter().filter(|e| f(e)).count()).unwrap_or(u32::MAX)
    };
    info.exists = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    info.unseen = count(|e| !e.flags.seen);
    info.recent = count(|e| e.flags.recent);
    Ok(Some((info, entries)))
}

fn read_folder(conn: &Connection, mail_file: &str, folder: &str) -> Res<i64> {
    let name = folder_name(folder)?;
    let found = conn
        .prepare_cached(
            "SELECT f.id FROM folders f JOIN mailfiles m ON m.id = f.mailfile WHERE m.name = ?1 AND f.name = ?2",
        )?
        .query_row(params![mail_file, name], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    let mailfile_exists = conn
        .prepare_cached("SELECT 1 FROM mailfiles WHERE name = ?1")?
        .exists([mail_file])?;
    Err(if mailfile_exists {
        no_folder(mail_file, &name)
    } else {
        StoreError::NoSuchMailFile(mail_file.to_owned())
    }
    .into())
}

pub(crate) fn messages(conn: &Connection, mail_file: &str, folder: &str) -> Res<Vec<MailEntry>> {
    let folder = read_folder(conn, mail_file, folder)?;
    let mut stmt = conn.prepare_cached(
        "SELECT e.uid, e.size, e.internal_date, e.flags, e.keywords, b.message_id, coalesce(b.sender, ''),
             coalesce(b.subject, ''), b.date, e.route_servers, e.route_times
         FROM entries e LEFT JOIN blobs b ON b.id = e.body WHERE e.folder = ?1 ORDER BY e.uid",
    )?;
    let rows = stmt.query_map([folder], |r| {
        Ok(MailEntry {
            uid: r.get(0)?,
            size: r.get(1)?,
            internal_date: r.get(2)?,
            flags: Flags::from_bits(r.get(3)?, keywords_from(r.get_ref(4)?.as_str()?)),
            message_id: r.get(5)?,
            from: r.get(6)?,
            subject: r.get(7)?,
            date: r.get(8)?,
            route_servers: json_column(r, 9)?,
            route_times: json_column(r, 10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// UIDs sparser than one in this many of their range are looked up one by one;
/// denser sets are read in one range scan.
const SPARSE: u64 = 8;

/// Runs `row` for the folder's messages among `uids` (ascending, no
/// duplicates), by UID: one range scan when they are dense, point lookups
/// otherwise. `sql` selects the folder's rows with `?1` the folder and
/// `?2`..`?3` the UID range.
fn for_uids<T>(
    conn: &Connection,
    folder: i64,
    uids: &[u32],
    sql: &str,
    row: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Res<Vec<T>> {
    let (Some(first), Some(last)) = (uids.first(), uids.last()) else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let span = u64::from(last - first) + 1;
    let mut out = Vec::with_capacity(uids.len());
    if span <= (uids.len() as u64).saturating_mul(SPARSE) {
        let mut rows = stmt.query(params![folder, first, last])?;
        let mut wanted = uids.iter().peekable();
        while let Some(r) = rows.next()? {
            let uid: u32 = r.get(0)?;
            while wanted.next_if(|w| **w < uid).is_some() {}
            if wanted.next_if_eq(&&uid).is_some() {
                out.push(row(r)?);
            }
        }
    } else {
        for uid in uids {
            let mut rows = stmt.query(params![folder, uid, uid])?;
            if let Some(r) = rows.next()? {
                out.push(row(r)?);
            }
        }
    }
    Ok(out)
}

/// `uids` sorted, each once.
fn sorted(uids: &[u32]) -> Vec<u32> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    uids
}

/// The header blocks of the folder's messages among `uids`, by UID.
pub(crate) fn headers(
    conn: &Connection,
    mail_file: &str,
    folder: &str,
    uids: &[u32],
) -> Res<Vec<(u32, Vec<u8>)>> {
    let folder = read_folder(conn, mail_file, folder)?;
    for_uids(
        conn,
        folder,
        &sorted(uids),
        "SELECT e.uid, h.data FROM entries e JOIN blob_headers h ON h.blob = e.body
         WHERE e.folder = ?1 AND e.uid BETWEEN ?2 AND ?3 ORDER BY e.uid",
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

const ENTRY_META_SQL: &str = "SELECT uid, size, internal_date, flags, keywords FROM entries
     WHERE folder = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid";

fn entry_meta(r: &rusqlite::Row<'_>) -> rusqlite::Result<EntryMeta> {
    Ok(EntryMeta {
        uid: r.get(0)?,
        size: r.get(1)?,
        internal_date: r.get(2)?,
        flags: Flags::from_bits(r.get(3)?, keywords_from(r.get_ref(4)?.as_str()?)),
    })
}

/// UID, size, date and flags of the folder's messages (all, or those among `uids`), by UID.
pub(crate) fn entries(
    conn: &Connection,
    mail_file: &str,
    folder: &str,
    uids: Option<&[u32]>,
) -> Res<Vec<EntryMeta>> {
    let folder = read_folder(conn, mail_file, folder)?;
    match uids {
        Some(uids) => for_uids(conn, folder, &sorted(uids), ENTRY_META_SQL, entry_meta),
        None => {
            let mut stmt = conn.prepare_cached(ENTRY_META_SQL)?;
            let rows = stmt.query_map(params![folder, 0, u32::MAX], entry_meta)?;
            Ok(rows.collect::<Result<_, _>>()?)
        }
    }
}

/// A JSON column; text that does not parse is a conversion failure (→ `Corrupt`).
fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
    })
}

pub(crate) fn message_body(
    conn: &Connection,
    mail_file: &str,
    folder: &str,
    uid: u32,
) -> Res<Option<Vec<u8>>> {
    let folder = read_folder(conn, mail_file, folder)?;
    Ok(conn
        .prepare_cached(
            "SELECT d.data FROM entries e JOIN blob_data d ON d.blob = e.body WHERE e.folder = ?1 AND e.uid = ?2",
        )?
        .query_row(params![folder, uid], |r| r.get(0))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names() {
        assert_eq!(folder_name("INBOX"), Ok(INBOX.to_owned()));
        assert_eq!(folder_name("Work/Projects"), Ok("Work/Projects".to_owned()));
        for bad in ["", "/x", "x/", "a//b", "tab\there"] {
            assert!(
                matches!(folder_name(bad), Err(StoreError::InvalidFolderName { .. })),
                "{bad:?}"
            );
        }
    }
}
