//! FETCH responses built from a selected mailbox's messages: cheap items
//! (FLAGS, UID, INTERNALDATE, RFC822.SIZE) from the session's state, the rest
//! from the stored bytes. Runs on a blocking thread; reads the store only.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex};

use chrono::DateTime;
use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::core::{Atom, Literal, NString, NString8, Vec1};
use imap_codec::imap_types::datetime::DateTime as ImapDateTime;
use imap_codec::imap_types::envelope::Envelope;
use imap_codec::imap_types::extensions::binary::Literal8;
use imap_codec::imap_types::fetch::{MessageDataItem, MessageDataItemName, Section};
use imap_codec::imap_types::flag::{Flag, FlagFetch};
use imap_codec::imap_types::response::{Data, Response};
use store::{Flags, Store, StoreError};

use super::mime;

/// What the session knows of a message without reading it.
pub(crate) type Meta = store::EntryMeta;

pub(crate) fn flag_list(flags: &Flags) -> Vec<FlagFetch<'static>> {
    let mut list = Vec::new();
    let system = [
        (flags.seen, Flag::Seen),
        (flags.answered, Flag::Answered),
        (flags.flagged, Flag::Flagged),
        (flags.deleted, Flag::Deleted),
        (flags.draft, Flag::Draft),
    ];
    for (on, flag) in system {
        if on {
            list.push(FlagFetch::Flag(flag));
        }
    }
    if flags.recent {
        list.push(FlagFetch::Recent);
    }
    for k in &flags.keywords {
        if let Ok(atom) = Atom::try_from(k.clone()) {
            list.push(FlagFetch::Flag(Flag::Keyword(atom)));
        }
    }
    list
}

/// A FETCH response line for one message.
pub(crate) fn encode_fetch(out: &mut Vec<u8>, seq: u32, items: Vec<MessageDataItem<'static>>) {
    let (Some(seq), Ok(items)) = (NonZeroU32::new(seq), Vec1::try_from(items)) else {
        return;
    };
    let response = Response::Data(Data::Fetch { seq, items });
    out.extend(ResponseCodec::default().encode(&response).dump());
}

/// The selected mailbox a FETCH reads.
pub(crate) struct Mailbox {
    pub mail_file: String,
    pub folder: String,
    pub uidvalidity: u32,
}

/// ENVELOPEs already built, shared by every session of the process. A message
/// never changes under its UID, and UIDVALIDITY changes whenever UIDs could
/// be reused, so (store, mail file, UIDVALIDITY, UID) names one envelope for
/// good. Like Dovecot's cache file, it spares re-reading and re-parsing
/// headers when clients resynchronise a large folder; bounded, it is simply
/// emptied when full.
struct EnvelopeCache {
    map: Mutex<HashMap<EnvelopeKey, Arc<[u8]>>>,
}

/// (store and mail file, UIDVALIDITY, UID).
type EnvelopeKey = (String, u32, u32);

const ENVELOPES_KEPT: usize = 100_000;

static ENVELOPES: LazyLock<EnvelopeCache> = LazyLock::new(|| EnvelopeCache {
    map: Mutex::new(HashMap::new()),
});

impl EnvelopeCache {
    fn prefix(store: &Store, at: &Mailbox) -> String {
        format!(
            "{}\n{}",
            store.location().display(),
            at.mail_file.to_lowercase()
        )
    }

    fn get(&self, prefix: &str, uidvalidity: u32, uids: &[u32]) -> Vec<Option<Arc<[u8]>>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut key = (prefix.to_owned(), uidvalidity, 0);
        uids.iter()
            .map(|uid| {
                key.2 = *uid;
                map.get(&key).cloned()
            })
            .collect()
    }

    fn put(&self, prefix: &str, uidvalidity: u32, found: Vec<(u32, Arc<[u8]>)>) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() + found.len() > ENVELOPES_KEPT {
            map.clear();
        }
        for (uid, env) in found {
            map.insert((prefix.to_owned(), uidvalidity, uid), env);
        }
    }
}

/// `ENVELOPE (...)` as imap-codec encodes it, kept to be spliced into later
/// FETCH responses.
fn encoded_envelope(envelope: Envelope<'static>) -> Arc<[u8]> {
    let mut line = Vec::new();
    encode_fetch(&mut line, 1, vec![MessageDataItem::Envelope(envelope)]);
    let fragment = line
        .strip_prefix(b"* 1 FETCH (".as_slice())
        .and_then(|l| l.strip_suffix(b")\r\n".as_slice()))
        .unwrap_or_default();
    Arc::from(fragment)
}

/// A FETCH response with the other items encoded by imap-codec and the
/// cached ENVELOPE fragment added to their list.
fn encode_fetch_with(
    out: &mut Vec<u8>,
    seq: u32,
    others: Vec<MessageDataItem<'static>>,
    envelope: &[u8],
) {
    if envelope.is_empty() {
        return encode_fetch(out, seq, others);
    }
    if others.is_empty() {
        out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
    } else {
        let start = out.len();
        encode_fetch(out, seq, others);
        // imap-codec ends the line with ")\r\n": the envelope goes before it.
        if out.len() < start + 3 || !out.ends_with(b")\r\n") {
            return;
        }
        out.truncate(out.len() - 3);
        out.push(b' ');
    }
    out.extend_from_slice(envelope);
    out.extend_from_slice(b")\r\n");
}

/// What of the stored message an item needs, least first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    /// The session's state is enough.
    Nothing,
    /// ENVELOPE, which the cache may already hold.
    Envelope,
    /// The header block (the store keeps it apart).
    Header,
    /// The whole message.
    Body,
}

fn need(name: &MessageDataItemName<'_>) -> Need {
    match name {
        MessageDataItemName::Flags
        | MessageDataItemName::Uid
        | MessageDataItemName::InternalDate
        | MessageDataItemName::Rfc822Size => Need::Nothing,
        MessageDataItemName::Envelope => Need::Envelope,
        MessageDataItemName::Rfc822Header
        | MessageDataItemName::BodyExt {
            section:
                Some(
                    Section::Header(None)
                    | Section::HeaderFields(None, _)
                    | Section::HeaderFieldsNot(None, _),
                ),
            ..
        } => Need::Header,
        _ => Need::Body,
    }
}

/// Whether fetching `name` sets `\Seen`.
pub(crate) fn sets_seen(name: &MessageDataItemName<'_>) -> bool {
    match name {
        MessageDataItemName::BodyExt { peek, .. } | MessageDataItemName::Binary { peek, .. } => {
            !peek
        }
        MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => true,
        _ => false,
    }
}

fn literal(data: Vec<u8>) -> NString<'static> {
    let data = match Literal::validate(&data) {
        Ok(()) => data,
        // A literal cannot carry NUL: shown as a space (BINARY carries it as it is).
        Err(_) => data
            .into_iter()
            .map(|b| if b == 0 { b' ' } else { b })
            .collect(),
    };
    Literal::try_from(data).map_or(NString(None), NString::from)
}

fn partial(data: Vec<u8>, range: Option<(u32, NonZeroU32)>) -> Vec<u8> {
    match range {
        None => data,
        Some((start, len)) => {
            let start = (start as usize).min(data.len());
            let end = start.saturating_add(len.get() as usize).min(data.len());
            data[start..end].to_vec()
        }
    }
}

fn internal_date(millis: i64) -> Option<ImapDateTime> {
    let date = DateTime::from_timestamp(millis.div_euclid(1000), 0)?.fixed_offset();
    ImapDateTime::try_from(date).ok()
}

/// The items of one message; `raw` is read only if an item needs it.
fn items(
    meta: &Meta,
    names: &[MessageDataItemName<'static>],
    raw: Option<&[u8]>,
) -> Vec<MessageDataItem<'static>> {
    let raw_or_empty = raw.unwrap_or_default();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let item = match name {
            MessageDataItemName::Flags => MessageDataItem::Flags(flag_list(&meta.flags)),
            MessageDataItemName::Uid => match NonZeroU32::new(meta.uid) {
                Some(uid) => MessageDataItem::Uid(uid),
                None => continue,
            },
            MessageDataItemName::InternalDate => match internal_date(meta.internal_date) {
                Some(d) => MessageDataItem::InternalDate(d),
                None => continue,
            },
            MessageDataItemName::Rfc822Size => {
                MessageDataItem::Rfc822Size(u32::try_from(meta.size).unwrap_or(u32::MAX))
            }
            MessageDataItemName::Envelope => {
                MessageDataItem::Envelope(mime::envelope(raw_or_empty))
            }
            MessageDataItemName::Body => MessageDataItem::Body(mime::structure_of(raw_or_empty)),
            MessageDataItemName::BodyStructure => {
                MessageDataItem::BodyStructure(mime::structure_of(raw_or_empty))
            }
            MessageDataItemName::BodyExt {
                section,
                partial: range,
                ..
            } => {
                let data = mime::section(raw_or_empty, section.as_ref()).unwrap_or_default();
                MessageDataItem::BodyExt {
                    section: section.clone(),
                    origin: range.map(|r| r.0),
                    data: literal(partial(data, *range)),
                }
            }
            MessageDataItemName::Rfc822 => MessageDataItem::Rfc822(literal(raw_or_empty.to_vec())),
            MessageDataItemName::Rfc822Header => {
                let end = mime::header_end(raw_or_empty);
                MessageDataItem::Rfc822Header(literal(raw_or_empty[..end].to_vec()))
            }
            MessageDataItemName::Rfc822Text => {
                let end = mime::header_end(raw_or_empty);
                MessageDataItem::Rfc822Text(literal(raw_or_empty[end..].to_vec()))
            }
            MessageDataItemName::Binary {
                section,
                partial: range,
                ..
            } => {
                let data = mime::binary(raw_or_empty, section).unwrap_or_default();
                MessageDataItem::Binary {
                    section: section.clone(),
                    value: NString8::Literal8(Literal8 {
                        data: partial(data, *range).into(),
                        mode: imap_codec::imap_types::core::LiteralMode::Sync,
                    }),
                }
            }
            MessageDataItemName::BinarySize { section } => MessageDataItem::BinarySize {
                section: section.clone(),
                size: mime::binary(raw_or_empty, section)
                    .map_or(0, |d| u32::try_from(d.len()).unwrap_or(u32::MAX)),
            },
            #[allow(unreachable_patterns)]
            _ => continue,
        };
        out.push(item);
    }
    out
}

/// FETCH responses for `targets` (sequence number, message, by sequence
/// number); header blocks are read in one go when no item needs more, bodies
/// one by one when one does.
pub(crate) fn build(
    store: &Store,
    at: &Mailbox,
    targets: &[(u32, Meta)],
    names: &[MessageDataItemName<'static>],
) -> Result<Vec<u8>, StoreError> {
    let (mail_file, folder) = (at.mail_file.as_str(), at.folder.as_str());
    // Room for a typical FLAGS+ENVELOPE line each: no regrowing of a large response.
    let mut out = Vec::with_capacity(targets.len().saturating_mul(320));
    match names.iter().map(need).max().unwrap_or(Need::Nothing) {
        Need::Nothing => {
            for (seq, meta) in targets {
                encode_fetch(&mut out, *seq, items(meta, names, None));
            }
        }
        Need::Envelope => {
            let prefix = EnvelopeCache::prefix(store, at);
            let uids: Vec<u32> = targets.iter().map(|(_, meta)| meta.uid).collect();
            let mut envelopes = ENVELOPES.get(&prefix, at.uidvalidity, &uids);
            let missing: Vec<u32> = (uids.iter().zip(&envelopes))
                .filter(|(_, e)| e.is_none())
                .map(|(uid, _)| *uid)
                .collect();
            if !missing.is_empty() {
                let built: Vec<(u32, Arc<[u8]>)> = store
                    .headers(mail_file, folder, &missing)?
                    .into_iter()
                    .map(|(uid, header)| (uid, encoded_envelope(mime::envelope(&header))))
                    .collect();
                for (slot, uid) in envelopes.iter_mut().zip(&uids) {
                    if slot.is_none()
                        && let Ok(i) = built.binary_search_by_key(uid, |(u, _)| *u)
                    {
                        *slot = Some(built[i].1.clone());
                    }
                }
                ENVELOPES.put(&prefix, at.uidvalidity, built);
            }
            let others: Vec<MessageDataItemName<'static>> = names
                .iter()
                .filter(|n| **n != MessageDataItemName::Envelope)
                .cloned()
                .collect();
            for ((seq, meta), env) in targets.iter().zip(envelopes) {
                // Missing: expunged by another session meanwhile, nothing to show.
                if let Some(env) = env {
                    encode_fetch_with(&mut out, *seq, items(meta, &others, None), &env);
                }
            }
        }
        Need::Header => {
            let uids: Vec<u32> = targets.iter().map(|(_, meta)| meta.uid).collect();
            let headers = store.headers(mail_file, folder, &uids)?;
            for (seq, meta) in targets {
                // Missing: expunged by another session meanwhile, nothing to show.
                if let Ok(i) = headers.binary_search_by_key(&meta.uid, |(uid, _)| *uid) {
                    encode_fetch(&mut out, *seq, items(meta, names, Some(&headers[i].1)));
                }
            }
        }
        Need::Body => {
            for (seq, meta) in targets {
                if let Some(raw) = store.message_body(mail_file, folder, meta.uid)? {
                    encode_fetch(&mut out, *seq, items(meta, names, Some(&raw)));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod splice_tests {
    use super::*;

    #[test]
    fn spliced_envelope_is_what_the_codec_writes() {
        let raw = b"From: \"Jane \\\"J\\\" Doe\" <jane@acme.com>\r\nSubject: =?utf-8?q?h=C3=A9llo?= (x)\r\nMessage-ID: <1@x>\r\n\r\n";
        let envelope = mime::envelope(raw);
        let uid = MessageDataItem::Uid(NonZeroU32::new(7).unwrap());
        let flags = MessageDataItem::Flags(vec![FlagFetch::Flag(Flag::Seen)]);
        let mut whole = Vec::new();
        encode_fetch(
            &mut whole,
            3,
            vec![
                uid.clone(),
                flags.clone(),
                MessageDataItem::Envelope(envelope.clone()),
            ],
        );
        let fragment = encoded_envelope(envelope.clone());
        let mut spliced = Vec::new();
        encode_fetch_with(&mut spliced, 3, vec![uid, flags], &fragment);
        assert_eq!(
            String::from_utf8_lossy(&spliced),
            String::from_utf8_lossy(&whole)
        );
        let mut alone = Vec::new();
        encode_fetch(&mut alone, 4, vec![MessageDataItem::Envelope(envelope)]);
        let mut spliced_alone = Vec::new();
        encode_fetch_with(&mut spliced_alone, 4, Vec::new(), &fragment);
        assert_eq!(spliced_alone, alone);
    }
}
