//! Message bodies, each stored once however many rows refer to it (Domino's
//! shared mail). A body is three rows under one id: `blobs` (the reference
//! count, the size and the header fields a listing shows), `blob_headers`
//! (the header block) and `blob_data` (the bytes). The mail box message and
//! every mail-file entry holding a message name its body in their `body`
//! column; triggers on those tables keep the count (insert +1, delete −1, a
//! changed `body` both) and delete a body whose count reaches 0, so no write
//! path can leak or lose one. The count lives apart from the bytes so that
//! taking or dropping a reference rewrites a small row, never the message.
//!
//! Header fields are read once, when a body is stored, on the caller's task
//! (`Body::new`), not on the writer thread and not per delivery.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Res;
use crate::headers::{self, HeaderMeta};
use crate::mailbox::len_i64;

/// A message body ready to be stored: its bytes and what its headers say.
pub(crate) struct Body {
    pub data: Vec<u8>,
    pub meta: HeaderMeta,
}

impl Body {
    /// Reads the listing fields from the header block (not the body).
    pub(crate) fn new(data: Vec<u8>) -> Body {
        let meta = headers::scan(&data);
        Body { data, meta }
    }

    /// A body whose header fields the caller has read already (with the
    /// `headers` crate, as `new` would).
    pub(crate) fn with_fields(data: Vec<u8>, fields: ::headers::Fields) -> Body {
        Body {
            data,
            meta: HeaderMeta::from(fields),
        }
    }

    pub(crate) fn size(&self) -> i64 {
        len_i64(self.data.len())
    }
}

/// Stores a body with no reference yet; returns its id. The row that refers
/// to it must be inserted in the same transaction (its trigger counts it).
pub(crate) fn insert(conn: &Connection, body: &Body) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO blobs (refs, size, message_id, sender, subject, date) VALUES (0, ?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        body.size(),
        body.meta.message_id,
        body.meta.from,
        body.meta.subject,
        body.meta.date,
    ])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO blob_headers (blob, data) VALUES (?1, ?2)")?
        .execute(params![id, headers::header_block(&body.data)])?;
    conn.prepare_cached("INSERT INTO blob_data (blob, data) VALUES (?1, ?2)")?
        .execute(params![id, body.data])?;
    Ok(id)
}

/// The bytes of the mail box message's body; `None` if there is no such message.
pub(crate) fn message_data(conn: &Connection, message: i64) -> Res<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached(
            "SELECT d.data FROM messages m JOIN blob_data d ON d.blob = m.body WHERE m.id = ?1",
        )?
        .query_row([message], |r| r.get(0))
        .optional()?)
}
