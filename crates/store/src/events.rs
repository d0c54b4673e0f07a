//! The routing event log: appended by settlements, queried by the console,
//! the CLI and the web console. Records what the router reports; decides nothing.

use rusqlite::{Connection, params};

use crate::error::Res;
use crate::types::{EventQuery, RoutingEvent};

pub(crate) fn insert(conn: &Connection, event: &RoutingEvent) -> Res<()> {
    conn.prepare_cached(
        "INSERT INTO events (time, message_id, sender, recipient, server, outcome, detail, hop, size)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        event.time,
        event.message_id,
        event.sender,
        event.recipient,
        event.server,
        event.outcome,
        event.detail,
        event.hop,
        event.size,
    ])?;
    Ok(())
}

/// Matching events, oldest first; with a limit, the latest `limit` of them.
pub(crate) fn query(conn: &Connection, q: &EventQuery) -> Res<Vec<RoutingEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT time, message_id, sender, recipient, server, outcome, detail, hop, size FROM (
             SELECT * FROM events
             WHERE (?1 IS NULL OR message_id = ?1)
               AND (?2 IS NULL OR instr(lower(sender), ?2) > 0)
               AND (?3 IS NULL OR instr(lower(recipient), ?3) > 0)
               AND (?4 IS NULL OR time >= ?4)
             ORDER BY time DESC, id DESC
             LIMIT ?5)
         ORDER BY time, id",
    )?;
    let limit = q.limit.map_or(-1, i64::from);
    let rows = stmt.query_map(
        params![
            q.message_id,
            q.sender.as_deref().map(str::to_ascii_lowercase),
            q.recipient.as_deref().map(str::to_ascii_lowercase),
            q.since,
            limit,
        ],
        |r| {
            Ok(RoutingEvent {
                time: r.get(0)?,
                message_id: r.get(1)?,
                sender: r.get(2)?,
                recipient: r.get(3)?,
                server: r.get(4)?,
                outcome: r.get(5)?,
                detail: r.get(6)?,
                hop: r.get(7)?,
                size: r.get(8)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes at most `limit` events older than `before` (Unix ms), oldest
/// first; returns how many went. Bounded so a huge log is pruned in many
/// short transactions instead of one that stalls the writer.
pub(crate) fn prune(conn: &Connection, before: i64, limit: u32) -> Res<usize> {
    let n = conn
        .prepare_cached(
            "DELETE FROM events WHERE id IN (
                 SELECT id FROM events WHERE time < ?1 ORDER BY time LIMIT ?2)",
        )?
        .execute(params![before, limit])?;
    Ok(n)
}
