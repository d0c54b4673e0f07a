//! The mail box tables: accepted messages, their recipients and states.
//! Write functions run on the writer thread inside a group commit; read
//! functions on a read connection. Knows nothing of routing rules: it records
//! what the router says.

use std::collections::HashSet;

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::bodies::{self, Body};
use crate::error::{Res, StoreError};
use crate::events;
use crate::mailfile::{self, PreparedDelivery};
use crate::types::{
    Incoming, MailBoxCounts, MessageId, MessageKind, MessageState, MessageSummary, QueueSummary,
    QueuedMessage, QueuedRecipient, RecipientStatus, RecipientUpdate, SettleOutcome, Settlement,
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

impl From<Incoming> for NewMessage {
    /// Reads the body's header fields: call it on the caller's task where it
    /// can (`Store::accept`), to keep the writer thread lean.
    fn from(mut msg: Incoming) -> NewMessage {
        let body = Body::new(std::mem::take(&mut msg.data));
        NewMessage { msg, body }
    }
}

/// Inserts a message, its body and its recipients (each address once, in order).
pub(crate) fn insert(conn: &Connection, msg: impl Into<NewMessage>) -> Res<QueuedMessage> {
    let NewMessage { msg, body } = msg.into();
    let mut seen = HashSet::with_capacity(msg.recipients.len());
    let recipients: Vec<(String, String)> = msg
        .recipients
        .into_iter()
        .filter_map(|address| {
            let key = addr_key(&address);
            seen.insert(key.clone()).then_some((key, address))
        })
        .collect();
    if recipients.is_empty() {
        return Err(StoreError::NoRecipients.into());
    }
    let body_id = bodies::insert(conn, &body)?;
    conn.prepare_cached(
        "INSERT INTO messages (state, sender, received_at, kind, hop_count, origin, message_id, subject, size, body)
         VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
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
    ])?;
    let id = conn.last_insert_rowid();
    let mut add = conn.prepare_cached(
        "INSERT INTO recipients (message, addr_key, seq, address, status) VALUES (?1, ?2, ?3, ?4, 0)",
    )?;
    let mut queued = Vec::with_capacity(recipients.len());
    for (seq, (key, address)) in recipients.into_iter().enumerate() {
        add.execute(params![id, key, len_i64(seq), address])?;
        queued.push(QueuedRecipient {
            address,
            status: RecipientStatus::Pending,
            attempts: 0,
            next_attempt: None,
            last_error: None,
            queue: None,
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
        recipients: queued,
    })
}

fn current_state(conn: &Connection, id: MessageId) -> Res<Option<MessageState>> {
    Ok(conn
        .prepare_cached("SELECT state FROM messages WHERE id = ?1")?
        .query_row([id], |r| code_column(r, 0, MessageState::from_code))
        .optional()?)
}

/// Deletes the message if it is Pending and no recipient is left Pending.
fn remove_if_done(conn: &Connection, id: MessageId) -> Res<bool> {
    let done: bool = conn
        .prepare_cached(
            "SELECT state = 0 AND NOT EXISTS (SELECT 1 FROM recipients WHERE message = ?1 AND status = 0)
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

/// Applies one recipient update; adds the recipient if the message does not have it yet.
fn update_recipient(
    conn: &Connection,
    id: MessageId,
    address: &str,
    update: &RecipientUpdate,
    next_seq: &mut Option<i64>,
) -> Res<()> {
    let (status, attempts, next_attempt, text, queue) = match update {
        RecipientUpdate::Final { status, reason } => (*status, 0, None, reason.as_deref(), None),
        RecipientUpdate::Retry {
            error,
            next_attempt,
            queue,
        } => (
            RecipientStatus::Pending,
            1,
            Some(*next_attempt),
            Some(error.as_str()),
            queue.as_deref(),
        ),
        RecipientUpdate::Waiting { reason, queue } => (
            RecipientStatus::Pending,
            0,
            None,
            Some(reason.as_str()),
            queue.as_deref(),
        ),
    };
    let key = addr_key(address);
    let changed = conn
        .prepare_cached(
            "UPDATE recipients SET status = ?3, attempts = attempts + ?4, next_attempt = ?5, last_error = ?6,
                 queue = coalesce(?7, queue)
             WHERE message = ?1 AND addr_key = ?2",
        )?
        .execute(params![id, key, status.code(), attempts, next_attempt, text, queue])?;
    if changed > 0 {
        return Ok(());
    }
    let seq = match *next_seq {
        Some(seq) => seq,
        None => conn
            .prepare_cached("SELECT coalesce(max(seq) + 1, 0) FROM recipients WHERE message = ?1")?
            .query_row([id], |r| r.get(0))?,
    };
    *next_seq = Some(seq + 1);
    conn.prepare_cached(
        "INSERT INTO recipients (message, addr_key, seq, address, status, attempts, next_attempt, last_error, queue)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![id, key, seq, address, status.code(), attempts, next_attempt, text, queue])?;
    Ok(())
}

/// Records one settlement (see `Store::settle`).
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
        });
    }
    let mut next_seq = None;
    for (address, update) in &settlement.outcomes {
        update_recipient(conn, id, address, update, &mut next_seq)?;
    }
    let mut delivered = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let mail_file = delivery.delivery.mail_file.clone();
        let uid = mailfile::deliver(tx, id, delivery)?;
        delivered.push((mail_file, uid));
    }
    let new_messages = settlement
        .new_messages
        .into_iter()
        .map(|msg| insert(conn, msg))
        .collect::<Res<Vec<_>>>()?;
    for event in &settlement.events {
        events::insert(conn, event)?;
    }
    if let Some((state, reason)) = &settlement.state {
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
            "UPDATE recipients SET status = 0, attempts = 0, next_attempt = NULL, last_error = NULL
             WHERE message = ?1 AND status IN (0, ?2)",
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
    "id, sender, size, received_at, kind, hop_count, state, message_id, subject";

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
        recipients: Vec::new(),
    })
}

fn recipients_of(
    conn: &Connection,
    id: MessageId,
    only_pending: bool,
) -> Res<Vec<QueuedRecipient>> {
    let mut stmt = conn.prepare_cached(
        "SELECT address, status, attempts, next_attempt, last_error, queue FROM recipients
         WHERE message = ?1 AND (?2 = 0 OR status = 0) ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![id, only_pending], |r| {
        Ok(QueuedRecipient {
            address: r.get(0)?,
            status: code_column(r, 1, RecipientStatus::from_code)?,
            attempts: r.get(2)?,
            next_attempt: r.get(3)?,
            last_error: r.get(4)?,
            queue: r.get(5)?,
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
        summary.recipients = recipients_of(conn, summary.id, false)?
            .into_iter()
            .map(|r| r.address)
            .collect();
    }
    Ok(summaries)
}

/// Pending recipients of Pending messages grouped by the queue the router
/// gave them: messages, most attempts and that recipient's last error, the
/// soonest retry.
pub(crate) fn queues(conn: &Connection) -> Res<Vec<QueueSummary>> {
    let mut stmt = conn.prepare_cached(
        "WITH waiting AS (
             SELECT r.queue, r.message, r.attempts, r.last_error, r.next_attempt
             FROM recipients r JOIN messages m ON m.id = r.message
             WHERE r.status = 0 AND m.state = 0 AND r.queue IS NOT NULL)
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
            "SELECT count(*) FROM recipients r JOIN messages m ON m.id = r.message WHERE r.status = 0 AND m.state = 0",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(counts)
}
