//! IMAP SEARCH criteria evaluated on one message. Pure; the caller hands in
//! what the store knows (flags, size, dates, From, Subject) and a way to read
//! the body when a criterion needs it.

use chrono::{DateTime, NaiveDate, Utc};
use imap_codec::imap_types::search::SearchKey;
use store::{Flags, MailEntry};

use super::mime;
use super::sequence::contains;

/// One message as SEARCH sees it.
pub(crate) struct Candidate<'a> {
    pub seq: u32,
    pub uid: u32,
    pub flags: &'a Flags,
    pub entry: Option<&'a MailEntry>,
    /// Largest sequence number and UID, for `*`.
    pub max_seq: u32,
    pub max_uid: u32,
}

/// Reads the message when a criterion needs it; cached by the caller.
pub(crate) trait Body {
    fn body(&mut self) -> Option<&[u8]>;
}

fn date_of(millis: i64) -> Option<NaiveDate> {
    DateTime::<Utc>::from_timestamp_millis(millis).map(|d| d.date_naive())
}

fn has(haystack: &str, needle: &[u8]) -> bool {
    let needle = String::from_utf8_lossy(needle).to_lowercase();
    haystack.to_lowercase().contains(&needle)
}

fn bytes_have(haystack: &[u8], needle: &[u8]) -> bool {
    has(&String::from_utf8_lossy(haystack), needle)
}

/// The values of header `name` (unfolded), lowercase-compared by the caller.
fn header_values(raw: &[u8], name: &[u8]) -> Vec<String> {
    let header = &raw[..mime::header_end(raw)];
    let mut values: Vec<String> = Vec::new();
    let mut current = false;
    for line in header.split_inclusive(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if current && let Some(last) = values.last_mut() {
                last.push_str(text.trim_end());
            }
            continue;
        }
        current = false;
        if let Some((field, value)) = text.split_once(':')
            && field.trim().as_bytes().eq_ignore_ascii_case(name)
        {
            current = true;
            values.push(value.trim().to_owned());
        }
    }
    values
}

fn header_has(body: &mut dyn Body, name: &[u8], needle: &[u8]) -> bool {
    body.body().is_some_and(|raw| {
        header_values(raw, name)
            .iter()
            .any(|v| needle.is_empty() || has(v, needle))
    })
}

/// Whether the message matches `key`.
pub(crate) fn matches(key: &SearchKey<'_>, c: &Candidate<'_>, body: &mut dyn Body) -> bool {
    let entry = c.entry;
    let internal = entry.and_then(|e| date_of(e.internal_date));
    let sent = entry.and_then(|e| e.date.and_then(date_of)).or(internal);
    let on = |d: Option<NaiveDate>, f: &dyn Fn(NaiveDate) -> bool| d.is_some_and(f);
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(k, c, body)),
        SearchKey::Or(a, b) => matches(a, c, body) || matches(b, c, body),
        SearchKey::Not(k) => !matches(k, c, body),
        SearchKey::All => true,
        SearchKey::SequenceSet(set) => contains(set, c.seq, c.max_seq),
        SearchKey::Uid(set) => contains(set, c.uid, c.max_uid),
        SearchKey::Answered => c.flags.answered,
        SearchKey::Unanswered => !c.flags.answered,
        SearchKey::Deleted => c.flags.deleted,
        SearchKey::Undeleted => !c.flags.deleted,
        SearchKey::Draft => c.flags.draft,
        SearchKey::Undraft => !c.flags.draft,
        SearchKey::Flagged => c.flags.flagged,
        SearchKey::Unflagged => !c.flags.flagged,
        SearchKey::Seen => c.flags.seen,
        SearchKey::Unseen => !c.flags.seen,
        SearchKey::Recent => c.flags.recent,
        SearchKey::New => c.flags.recent && !c.flags.seen,
        SearchKey::Old => !c.flags.recent,
        SearchKey::Keyword(k) => c.flags.has_keyword(k.as_ref()),
        SearchKey::Unkeyword(k) => !c.flags.has_keyword(k.as_ref()),
        SearchKey::Larger(n) => entry.is_some_and(|e| e.size > u64::from(*n)),
        SearchKey::Smaller(n) => entry.is_some_and(|e| e.size < u64::from(*n)),
        SearchKey::Before(d) => on(internal, &|x| x < *d.as_ref()),
        SearchKey::On(d) => on(internal, &|x| x == *d.as_ref()),
        SearchKey::Since(d) => on(internal, &|x| x >= *d.as_ref()),
        SearchKey::SentBefore(d) => on(sent, &|x| x < *d.as_ref()),
        SearchKey::SentOn(d) => on(sent, &|x| x == *d.as_ref()),
        SearchKey::SentSince(d) => on(sent, &|x| x >= *d.as_ref()),
        SearchKey::Subject(s) => match entry {
            Some(e) => has(&e.subject, s.as_ref()),
            None => header_has(body, b"subject", s.as_ref()),
        },
        SearchKey::From(s) => match entry {
            Some(e) if has(&e.from, s.as_ref()) => true,
            _ => header_has(body, b"from", s.as_ref()),
        },
        SearchKey::To(s) => header_has(body, b"to", s.as_ref()),
        SearchKey::Cc(s) => header_has(body, b"cc", s.as_ref()),
        SearchKey::Bcc(s) => header_has(body, b"bcc", s.as_ref()),
        SearchKey::Header(name, s) => header_has(body, name.as_ref(), s.as_ref()),
        SearchKey::Body(s) => body
            .body()
            .is_some_and(|raw| bytes_have(&raw[mime::header_end(raw)..], s.as_ref())),
        SearchKey::Text(s) => body.body().is_some_and(|raw| bytes_have(raw, s.as_ref())),
        // Criteria of extensions this server does not announce.
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_header_values() {
        let raw = b"To: a@x.org,\r\n  b@y.org\r\nCc: c@z.org\r\n\r\nTo: not@header\r\n";
        assert_eq!(
            header_values(raw, b"to"),
            vec!["a@x.org,  b@y.org".to_owned()]
        );
        assert_eq!(header_values(raw, b"CC"), vec!["c@z.org".to_owned()]);
        assert!(header_values(raw, b"bcc").is_empty());
    }
}
