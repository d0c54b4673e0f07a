//! The mail box tables: accepted messages, their recipients and states.
//! Write functions run on the writer thread inside a group commit; read
//! functions on a read connection. Knows nothing of routing rules: it records
//! what the router says.

use std::collections::{HashMap, HashSet};

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::bodies::{self, Body};
use crate::error::{Res, StoreError};
use crate::events;
use crate::mailfile::{self, PreparedDelivery};
use crate::types::{
    Hop, Incoming, MailBoxCounts, MessageId, MessageKind, MessageState, MessageSummary, Priority,
    QueueSummary, QueuedMessage, QueuedRecipient, RecipientStatus, RecipientUpdate, SettleOutcome,
    Settlement, TransferOrigin,
};

pub(crate) fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The key an address is unique by within one message.
fn addr_key(address: &str) -> String {
    address.to_lowercase()
}

/// Reads an enum stored as its code; an unknown code is a conversion failure (→ `Corrupt`).
pub(crate) fn code_column<T>(
    row: &Row<'_>,
    idx: usize,
    from_code: fn(i64) -> Option<T>,
) -> rusqlite::Result<T> {
    let code: i64 = row.get(idx)?;
    from_code(code).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            idx,
            Type::Integer,
            format!("unknown code {code}").into(),
        )
    })
}

// ---- writes ----

/// A message for the mail box with its body apart, its header fields read.
pub(crate) struct NewMessage {
    msg: Incoming,
    body: Body,
}

impl NewMessage {
    /// A message whose header fields the caller has read already.
    pub(crate) fn with_fields(mut msg: Incoming, fields: ::headers::Fields) -> NewMessage {
        let body = Body::with_fields(std::mem::take(&mut msg.data), fields);
        NewMessage { msg, body }
    }
}

impl From<Incoming> for NewMessage {
    /// Reads the body's header fields: call it on the caller's task where it
    /// can (`Store::accept`), to keep the writer thread lean.
    fn from(mut msg: Incoming) -> NewMessage {
        let body = Body::new(std::mem::take(&mut msg.data));
        NewMessage { msg, body }
    }
}

/// The route column's text: '' for none, else JSON.
fn encode_route(route: &[Hop]) -> String {
    if route.is_empty() {
        String::new()
    } else {
        serde_json::to_string(route).unwrap_or_default()
    }
}

fn decode_route(text: &str) -> Vec<Hop> {
    if text.is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(text).unwrap_or_default()
    }
}

/// How long a handed-over recipient row is remembered (a resend after
/// longer than this is a new message).
pub(crate) const TRANSFERS_IN_KEPT_MS: i64 = 7 * 24 * 3600 * 1000;

/// Inserts a message handed over by another server of the domain: only the
/// recipients not handed over before (by `origin`, its message id and the
/// address) become rows, and they are remembered in the same transaction.
/// `None` when every recipient was handed over before: nothing is stored.
pub(crate) fn insert_transfer(
    conn: &Connection,
    msg: NewMessage,
    origin: &TransferOrigin,
) -> Res<Option<QueuedMessage>> {
    let NewMessage { mut msg, body } = msg;
    let mut remember = conn.prepare_cached(
        "INSERT OR IGNORE INTO transfers_in (origin, message, rcpt, at) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let origin_key = origin.server.to_lowercase();
    let mut fresh = Vec::with_capacity(msg.recipients.len());
    for address in std::mem::take(&mut msg.recipients) {
        let added = remember.execute(params![
            origin_key,
            origin.message,
            addr_key(&address),
            msg.received_at
        ])?;
        if added > 0 {
            fresh.push(address);
        }
    }
    if fresh.is_empty() {
        return Ok(None);
    }
    msg.recipients = fresh;
    insert(conn, NewMessage { msg, body }).map(Some)
}

/// Forgets handed-over rows older than [`TRANSFERS_IN_KEPT_MS`].
pub(crate) fn prune_transfers_in(conn: &Connection, now: i64) -> Res<usize> {
    Ok(conn
        .prepare_cached("DELETE FROM transfers_in WHERE at < ?1")?
        .execute([now - TRANSFERS_IN_KEPT_MS])?)
}

/// Inserts a message, its body and its recipients (each address once, in order).
pub(crate) fn insert(conn: &Connection, msg: impl Into<NewMessage>) -> Res<QueuedMessage> {
    let NewMessage { mut msg, body } = msg.into();
    let mut seen = HashSet::with_capacity(msg.recipients.len());
    let derived = std::mem::take(&mut msg.derived);
    // Original recipients first, then those a rule added; an address given
    // twice is one row (one copy).
    let recipients: Vec<(String, String, Option<String>)> = msg
        .recipients
        .into_iter()
        .map(|address| (address, None))
        .chain(derived.into_iter().map(|(a, parent)| (a, Some(parent))))
        .filter_map(|(address, parent)| {
            let key = addr_key(&address);
            seen.insert(key.clone()).then_some((key, address, parent))
        })
        .collect();
    if recipients.is_empty() {
        return Err(StoreError::NoRecipients.into());
    }
    let body_id = bodies::insert(conn, &body)?;
    conn.prepare_cached(
        "INSERT INTO messages (state, sender, received_at, kind, hop_count, origin, message_id, subject, size, body, route, priority, reason)
         VALUES (?12, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?13)",
    )?
    .execute(params![
        msg.from,
        msg.received_at,
        msg.kind.code(),
        msg.hop_count,
        msg.origin,
        msg.message_id,
        msg.subject,
        body.size(),
        body_id,
        encode_route(&msg.route),
        msg.priority.code(),
        if msg.held.is_some() {
            MessageState::Held.code()
        } else {
            MessageState::Pending.code()
        },
        msg.held,
    ])?;
    let id = conn.last_insert_rowid();
    let mut add = conn.prepare_cached(
        "INSERT INTO recipients (message, addr_key, seq, address, status, parent) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
    )?;
    let mut queued = Vec::with_capacity(recipients.len());
    for (seq, (key, address, parent)) in recipients.into_iter().enumerate() {
        add.execute(params![id, key, len_i64(seq), address, parent])?;
        queued.push(QueuedRecipient {
            address,
            status: RecipientStatus::Pending,
            attempts: 0,
            next_attempt: None,
            last_error: None,
            queue: None,
            parent,
            via: None,
        });
    }
    Ok(QueuedMessage {
        id,
        from: msg.from,
        size: u64::try_from(body.data.len()).unwrap_or(u64::MAX),
        received_at: msg.received_at,
        kind: msg.kind,
        hop_count: msg.hop_count,
        state: MessageState::Pending,
        message_id: msg.message_id,
        subject: msg.subject,
        route: msg.route,
        priority: msg.priority,
        recipients: queued,
    })
}

fn current_state(conn: &Connection, id: MessageId) -> Res<Option<MessageState>> {
    Ok(conn
        .prepare_cached("SELECT state FROM messages WHERE id = ?1")?
        .query_row([id], |r| code_column(r, 0, MessageState::from_code))
        .optional()?)
}

/// Deletes the message if it is Pending and no recipient row is left open.
fn remove_if_done(conn: &Connection, id: MessageId) -> Res<bool> {
    let done: bool = conn
        .prepare_cached(
            "SELECT state = 0 AND NOT EXISTS (SELECT 1 FROM recipients WHERE message = ?1 AND status IN (0, 7))
             FROM messages WHERE id = ?1",
        )?
        .query_row([id], |r| r.get(0))
        .optional()?
        .unwrap_or(false);
    if done {
        delete(conn, id)?;
    }
    Ok(done)
}

/// The rows of one message as the settlement sees them: status by address key.
struct Rows {
    status: HashMap<String, RecipientStatus>,
    next_seq: i64,
}

impl Rows {
    fn read(conn: &Connection, id: MessageId) -> Res<Rows> {
        let mut stmt =
            conn.prepare_cached("SELECT addr_key, status, seq FROM recipients WHERE message = ?1")?;
        let mut status = HashMap::new();
        let mut next_seq = 0;
        let rows = stmt.query_map([id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                code_column(r, 1, RecipientStatus::from_code)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (key, st, seq) = row?;
            next_seq = next_seq.max(seq + 1);
            status.insert(key, st);
        }
        Ok(Rows { status, next_seq })
    }

    fn add(
        &mut self,
        conn: &Connection,
        id: MessageId,
        address: &str,
        parent: Option<&str>,
    ) -> Res<()> {
        let key = addr_key(address);
        conn.prepare_cached(
            "INSERT INTO recipients (message, addr_key, seq, address, status, parent) VALUES (?1, ?2, ?3, ?4, 0, ?5)",
        )?
        .execute(params![id, key, self.next_seq, address, parent])?;
        self.next_seq += 1;
        self.status.insert(key, RecipientStatus::Pending);
        Ok(())
    }
}

/// The status a row takes for an update.
fn target_status(update: &RecipientUpdate) -> RecipientStatus {
    match update {
        RecipientUpdate::Final { status, .. } => *status,
        RecipientUpdate::Retry { .. }
        | RecipientUpdate::Queued { .. }
        | RecipientUpdate::Moved { .. } => RecipientStatus::Waiting,
        RecipientUpdate::Pending { .. } => RecipientStatus::Pending,
    }
}

/// Whether a row in `current` takes `update`. Beyond the transition rule: a
/// recipient is handed to a queue once (Queued only from Pending), and a
/// Waiting row stays Waiting on its way to Held/Dead or a retry.
fn applies(current: RecipientStatus, update: &RecipientUpdate) -> bool {
    match update {
        RecipientUpdate::Queued { .. } => current == RecipientStatus::Pending,
        RecipientUpdate::Moved { .. } => current == RecipientStatus::Waiting,
        RecipientUpdate::Pending { .. } => current.is_open(),
        _ => current.may_become(target_status(update)),
    }
}

/// Applies one recipient update to its (existing) row.
fn update_recipient(
    conn: &Connection,
    id: MessageId,
    key: &str,
    current: RecipientStatus,
    update: &RecipientUpdate,
) -> Res<RecipientStatus> {
    let (status, attempts, next_attempt, text, queue, via) = match update {
        RecipientUpdate::Final { status, reason } => {
            (*status, 0, None, reason.as_deref(), None, None)
        }
        RecipientUpdate::Retry {
            error,
            next_attempt,
            queue,
        } => (
            RecipientStatus::Waiting,
            1,
            Some(*next_attempt),
            Some(error.as_str()),
            queue.as_deref(),
            None,
        ),
        RecipientUpdate::Queued { queue, via } => (
            RecipientStatus::Waiting,
            0,
            None,
            None,
            Some(queue.as_str()),
            Some(via.as_str()),
        ),
        RecipientUpdate::Moved { queue, via, reason } => (
            RecipientStatus::Waiting,
            0,
            None,
            Some(reason.as_str()),
            Some(queue.as_str()),
            Some(via.as_str()),
        ),
        RecipientUpdate::Pending { reason, queue } => (
            // A Waiting row keeps its place in its queue (Held mail keeps it for release).
            if current == RecipientStatus::Waiting {
                RecipientStatus::Waiting
            } else {
                RecipientStatus::Pending
            },
            0,
            None,
            Some(reason.as_str()),
            queue.as_deref(),
            None,
        ),
    };
    // The status condition makes the update conditional on the row read
    // before: nothing else writes between, but it costs nothing to say so.
    let changed = conn
        .prepare_cached(
            "UPDATE recipients SET status = ?3, attempts = attempts + ?4, next_attempt = ?5, last_error = ?6,
                 queue = coalesce(?7, queue), via = coalesce(?8, via)
             WHERE message = ?1 AND addr_key = ?2 AND status = ?9",
        )?
        .execute(params![
            id,
            key,
            status.code(),
            attempts,
            next_attempt,
            text,
            queue,
            via,
            current.code()
        ])?;
    Ok(if changed > 0 { status } else { current })
}

/// Records one settlement (see `Store::settle` and [`Settlement`]).
pub(crate) fn settle(
    tx: &mut crate::writer::Tx<'_>,
    settlement: Settlement,
    deliveries: Vec<PreparedDelivery>,
) -> Res<SettleOutcome> {
    let conn = tx.conn;
    let id = settlement.message;
    if current_state(conn, id)?.is_none() {
        return Ok(SettleOutcome {
            message: id,
            removed: true,
            gone: true,
            delivered: Vec::new(),
            new_messages: Vec::new(),
            skipped: settlement.outcomes.into_iter().map(|(a, _)| a).collect(),
        });
    }
    let mut rows = Rows::read(conn, id)?;
    // Derived rows whose parent had already moved on: this is old work.
    let mut void: HashSet<String> = HashSet::new();
    let mut added: HashSet<String> = HashSet::new();
    for (address, parent) in &settlement.derived {
        let key = addr_key(address);
        if rows.status.contains_key(&key) {
            continue;
        }
        let pkey = addr_key(parent);
        let parent_open =
            added.contains(&pkey) || rows.status.get(&pkey).is_some_and(|s| s.is_open());
        if !parent_open {
            void.insert(key);
            continue;
        }
        rows.add(conn, id, address, Some(parent))?;
        added.insert(key);
    }
    let mut applied: HashSet<String> = HashSet::new();
    let mut skipped = Vec::new();
    for (address, update) in &settlement.outcomes {
        let key = addr_key(address);
        if void.contains(&key) {
            skipped.push(address.clone());
            continue;
        }
        let current = match rows.status.get(&key) {
            Some(status) => *status,
            None => {
                rows.add(conn, id, address, None)?;
                RecipientStatus::Pending
            }
        };
        if !applies(current, update) {
            skipped.push(address.clone());
            continue;
        }
        let now = update_recipient(conn, id, &key, current, update)?;
        rows.status.insert(key.clone(), now);
        applied.insert(key);
    }
    let nothing_applied = applied.is_empty() && !settlement.outcomes.is_empty();
    let mut delivered = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        if !applied.contains(&addr_key(&delivery.delivery.recipient)) {
            continue;
        }
        let mail_file = delivery.delivery.mail_file.clone();
        let uid = mailfile::deliver(tx, id, delivery)?;
        delivered.push((mail_file, uid));
    }
    // A report is about failed recipients: it is written once, with their failures.
    let failure_skipped = settlement.outcomes.iter().any(|(address, update)| {
        matches!(
            update,
            RecipientUpdate::Final {
                status: RecipientStatus::Failed,
                ..
            }
        ) && !applied.contains(&addr_key(address))
    });
    let new_messages = if !failure_skipped && !nothing_applied {
        settlement
            .new_messages
            .into_iter()
            .map(|msg| insert(conn, msg))
            .collect::<Res<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let skipped_keys: HashSet<String> = skipped.iter().map(|a| addr_key(a)).collect();
    for event in &settlement.events {
        let key = addr_key(&event.recipient);
        // An event about an outcome that was not applied tells of work done before.
        let stale = (skipped_keys.contains(&key) || void.contains(&key)) && !applied.contains(&key);
        if !stale {
            events::insert(conn, event)?;
        }
    }
    if let Some((state, reason)) = &settlement.state
        && !nothing_applied
    {
        conn.prepare_cached("UPDATE messages SET state = ?2, reason = ?3 WHERE id = ?1")?
            .execute(params![id, state.code(), reason])?;
    }
    let removed = remove_if_done(conn, id)?;
    Ok(SettleOutcome {
        message: id,
        removed,
        gone: false,
        delivered,
        new_messages,
        skipped,
    })
}

/// Holds, kills or releases a message. Releasing (→ Pending) puts every Failed
/// or Pending recipient back to a fresh Pending (no attempts, no retry time) for
/// the router to route again; delivered/transferred ones stay done.
pub(crate) fn set_state(
    conn: &Connection,
    id: MessageId,
    state: MessageState,
    reason: Option<String>,
) -> Res<bool> {
    if current_state(conn, id)?.is_none() {
        return Ok(false);
    }
    let reason = if state == MessageState::Pending {
        None
    } else {
        reason
    };
    conn.prepare_cached("UPDATE messages SET state = ?2, reason = ?3 WHERE id = ?1")?
        .execute(params![id, state.code(), reason])?;
    if state == MessageState::Pending {
        conn.prepare_cached(
            "UPDATE recipients SET status = 0, attempts = 0, next_attempt = NULL, last_error = NULL, via = NULL
             WHERE message = ?1 AND status IN (0, 7, ?2)",
        )?
        .execute(params![id, RecipientStatus::Failed.code()])?;
        remove_if_done(conn, id)?;
    }
    Ok(true)
}

pub(crate) fn delete(conn: &Connection, id: MessageId) -> Res<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM messages WHERE id = ?1")?
        .execute([id])?
        > 0)
}

// ---- reads ----

const MESSAGE_COLUMNS: &str =
    "id, sender, size, received_at, kind, hop_count, state, message_id, subject, route, priority";

/// A message row of `MESSAGE_COLUMNS`, recipients still to load.
fn message_row(row: &Row<'_>) -> rusqlite::Result<QueuedMessage> {
    Ok(QueuedMessage {
        id: row.get(0)?,
        from: row.get(1)?,
        size: row.get(2)?,
        received_at: row.get(3)?,
        kind: code_column(row, 4, MessageKind::from_code)?,
        hop_count: row.get(5)?,
        state: code_column(row, 6, MessageState::from_code)?,
        message_id: row.get(7)?,
        subject: row.get(8)?,
        route: decode_route(&row.get::<_, String>(9)?),
        priority: code_column(row, 10, Priority::from_code)?,
        recipients: Vec::new(),
    })
}

fn recipients_of(conn: &Connection, id: MessageId, only_open: bool) -> Res<Vec<QueuedRecipient>> {
    let mut stmt = conn.prepare_cached(
        "SELECT address, status, attempts, next_attempt, last_error, queue, parent, via FROM recipients
         WHERE message = ?1 AND (?2 = 0 OR status IN (0, 7)) ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![id, only_open], |r| {
        Ok(QueuedRecipient {
            address: r.get(0)?,
            status: code_column(r, 1, RecipientStatus::from_code)?,
            attempts: r.get(2)?,
            next_attempt: r.get(3)?,
            last_error: r.get(4)?,
            queue: r.get(5)?,
            parent: r.get(6)?,
            via: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load(conn: &Connection, sql: &str, arg: i64, only_pending: bool) -> Res<Vec<QueuedMessage>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut messages = stmt
        .query_map([arg], message_row)?
        .collect::<Result<Vec<_>, _>>()?;
    for message in &mut messages {
        message.recipients = recipients_of(conn, message.id, only_pending)?;
    }
    Ok(messages)
}

pub(crate) fn pending(conn: &Connection) -> Res<Vec<QueuedMessage>> {
    load(
        conn,
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE state = ?1 ORDER BY id"),
        MessageState::Pending.code(),
        true,
    )
}

/// Up to `limit` Pending messages with ids above `after`, by id, with their open recipients.
pub(crate) fn pending_page(
    conn: &Connection,
    after: MessageId,
    limit: usize,
) -> Res<Vec<QueuedMessage>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE state = 0 AND id > ?1 ORDER BY id LIMIT ?2"
    ))?;
    let mut messages = stmt
        .query_map(params![after, len_i64(limit)], message_row)?
        .collect::<Result<Vec<_>, _>>()?;
    for message in &mut messages {
        message.recipients = recipients_of(conn, message.id, true)?;
    }
    Ok(messages)
}

pub(crate) fn message(conn: &Connection, id: MessageId) -> Res<Option<QueuedMessage>> {
    Ok(load(
        conn,
        &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1"),
        id,
        false,
    )?
    .pop())
}

pub(crate) fn list(conn: &Connection, state: Option<MessageState>) -> Res<Vec<MessageSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, sender, state, reason, received_at, size, subject, message_id, kind, origin FROM messages
         WHERE ?1 IS NULL OR state = ?1 ORDER BY id",
    )?;
    let mut summaries = stmt
        .query_map([state.map(MessageState::code)], |r| {
            Ok(MessageSummary {
                id: r.get(0)?,
                from: r.get(1)?,
                recipients: Vec::new(),
                state: code_column(r, 2, MessageState::from_code)?,
                reason: r.get(3)?,
                received_at: r.get(4)?,
                size: r.get(5)?,
                subject: r.get(6)?,
                message_id: r.get(7)?,
                kind: code_column(r, 8, MessageKind::from_code)?,
                origin: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    for summary in &mut summaries {
        let rows = recipients_of(conn, summary.id, false)?;
        summary.recipients = rows.iter().map(|r| shown_recipient(r, &rows)).collect();
    }
    Ok(summaries)
}

/// A recipient as `show mailbox` lists it: its address, and for a derived
/// one where it came from ("expanded from Sales", "forwarded by Jane Doe").
fn shown_recipient(r: &QueuedRecipient, rows: &[QueuedRecipient]) -> String {
    let Some(parent) = &r.parent else {
        return r.address.clone();
    };
    let how = rows
        .iter()
        .find(|p| p.address.eq_ignore_ascii_case(parent))
        .map(|p| p.status);
    match how {
        Some(RecipientStatus::Forwarded) => format!("{} (forwarded by {parent})", r.address),
        _ => format!("{} (expanded from {parent})", r.address),
    }
}

/// Pending recipients of Pending messages grouped by the queue the router
/// gave them: messages, most attempts and that recipient's last error, the
/// soonest retry.
pub(crate) fn queues(conn: &Connection) -> Res<Vec<QueueSummary>> {
    let mut stmt = conn.prepare_cached(
        "WITH waiting AS (
             SELECT r.queue, r.message, r.attempts, r.last_error, r.next_attempt
             FROM recipients r JOIN messages m ON m.id = r.message
             WHERE r.status IN (0, 7) AND m.state = 0 AND r.queue IS NOT NULL)
         SELECT w.queue, count(DISTINCT w.message), max(w.attempts),
             (SELECT last_error FROM waiting x WHERE x.queue = w.queue
              ORDER BY x.attempts DESC, x.next_attempt DESC LIMIT 1),
             min(w.next_attempt)
         FROM waiting w GROUP BY w.queue ORDER BY w.queue",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(QueueSummary {
            queue: r.get(0)?,
            messages: r.get(1)?,
            attempts: r.get(2)?,
            last_error: r.get(3)?,
            next_attempt: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(crate) fn counts(conn: &Connection) -> Res<MailBoxCounts> {
    let mut counts = MailBoxCounts::default();
    let mut stmt = conn.prepare_cached("SELECT state, count(*) FROM messages GROUP BY state")?;
    for row in stmt.query_map([], |r| {
        Ok((
            code_column(r, 0, MessageState::from_code)?,
            r.get::<_, u64>(1)?,
        ))
    })? {
        let (state, n) = row?;
        match state {
            MessageState::Pending => counts.pending = n,
            MessageState::Held => counts.held = n,
            MessageState::Dead => counts.dead = n,
        }
        counts.total += n;
    }
    counts.waiting_recipients = conn
        .prepare_cached(
            "SELECT count(*) FROM recipients r JOIN messages m ON m.id = r.message WHERE r.status IN (0, 7) AND m.state = 0",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(counts)
}
