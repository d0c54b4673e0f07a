//! What IMAP FETCH shows of a message: ENVELOPE, BODYSTRUCTURE and body
//! sections, computed from the stored RFC 5322 bytes with mail-parser. Pure
//! functions; no I/O and no session state.

use std::num::NonZeroU32;

use imap_codec::imap_types::body::{BasicFields, Body, BodyStructure, SpecificFields};
use imap_codec::imap_types::core::{AString, IString, NString, Vec1};
use imap_codec::imap_types::envelope::{Address, Envelope};
use imap_codec::imap_types::fetch::Section;
use mail_parser::{HeaderName, Message, MessageParser, MessagePart, MimeHeaders, PartType};

/// Where the header block ends (after its empty line), or the whole message.
pub(crate) fn header_end(raw: &[u8]) -> usize {
    headers::body_start(raw)
}

pub(crate) fn parse(raw: &[u8]) -> Option<Message<'_>> {
    MessageParser::default().parse(raw)
}

/// A string for IMAP: quoted when it can be, a literal otherwise, NIL if empty or impossible.
pub(crate) fn nstring(value: Option<&str>) -> NString<'static> {
    value
        .filter(|v| !v.is_empty())
        .and_then(|v| IString::try_from(v.to_owned()).ok())
        .map_or(NString(None), |s| NString(Some(s)))
}

fn istring(value: &str) -> IString<'static> {
    IString::try_from(value.to_owned())
        .or_else(|_| IString::try_from(value.replace('\0', "")))
        .unwrap_or_else(|_| IString::Quoted(imap_codec::imap_types::core::Quoted::unvalidated("")))
}

/// The header fields ENVELOPE shows.
const ENVELOPE_FIELDS: [&[u8]; 10] = [
    b"date",
    b"subject",
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"bcc",
    b"in-reply-to",
    b"message-id",
];

/// ENVELOPE of a message: only the header fields it shows are parsed (not
/// Received and the like).
pub(crate) fn envelope(raw: &[u8]) -> Envelope<'static> {
    let header = fields_where(raw, |name| {
        ENVELOPE_FIELDS
            .iter()
            .any(|field| field.eq_ignore_ascii_case(name))
    });
    match parse(&header) {
        Some(message) => envelope_of(&message),
        None => empty_envelope(),
    }
}

fn empty_envelope() -> Envelope<'static> {
    Envelope {
        date: NString(None),
        subject: NString(None),
        from: Vec::new(),
        sender: Vec::new(),
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        in_reply_to: NString(None),
        message_id: NString(None),
    }
}

fn envelope_of(message: &Message<'_>) -> Envelope<'static> {
    let from = addresses(message.from());
    let sender = match message.sender() {
        Some(s) => addresses(Some(s)),
        None => from.clone(),
    };
    let reply_to = match message.reply_to() {
        Some(r) => addresses(Some(r)),
        None => from.clone(),
    };
    Envelope {
        date: nstring(message.header_raw(HeaderName::Date).map(str::trim)),
        subject: nstring(message.subject()),
        from,
        sender,
        reply_to,
        to: addresses(message.to()),
        cc: addresses(message.cc()),
        bcc: addresses(message.bcc()),
        in_reply_to: nstring(message.header_raw(HeaderName::InReplyTo).map(str::trim)),
        message_id: nstring(message.header_raw(HeaderName::MessageId).map(str::trim)),
    }
}

fn addresses(list: Option<&mail_parser::Address<'_>>) -> Vec<Address<'static>> {
    let Some(list) = list else {
        return Vec::new();
    };
    let one = |name: Option<&str>, address: Option<&str>| {
        let address = address.unwrap_or_default();
        let (mailbox, host) = address.rsplit_once('@').unwrap_or((address, ""));
        Address {
            name: nstring(name),
            adl: NString(None),
            mailbox: nstring(Some(mailbox)),
            host: nstring(Some(host)),
        }
    };
    match list {
        mail_parser::Address::List(addrs) => addrs
            .iter()
            .map(|a| one(a.name.as_deref(), a.address.as_deref()))
            .collect(),
        mail_parser::Address::Group(groups) => groups
            .iter()
            .flat_map(|g| {
                // RFC 3501: a group is its name as mailbox with NIL host, then members, then an end marker.
                let start = Address {
                    name: NString(None),
                    adl: NString(None),
                    mailbox: nstring(g.name.as_deref()),
                    host: NString(None),
                };
                let end = Address {
                    name: NString(None),
                    adl: NString(None),
                    mailbox: NString(None),
                    host: NString(None),
                };
                let members = g
                    .addresses
                    .iter()
                    .map(|a| one(a.name.as_deref(), a.address.as_deref()));
                let named = g.name.is_some();
                named
                    .then_some(start)
                    .into_iter()
                    .chain(members)
                    .chain(named.then_some(end))
                    .collect::<Vec<_>>()
            })
            .collect(),
    }
}

/// BODYSTRUCTURE (or BODY, which is the same without extension data here).
pub(crate) fn body_structure(message: &Message<'_>) -> BodyStructure<'static> {
    part_structure(message, 0, 0)
}

fn part_structure(message: &Message<'_>, id: usize, depth: usize) -> BodyStructure<'static> {
    let Some(part) = message.parts.get(id) else {
        return text_plain(0, 0);
    };
    let ctype = part.content_type();
    let subtype = |default: &str| {
        ctype
            .and_then(|c| c.subtype())
            .unwrap_or(default)
            .to_ascii_uppercase()
    };
    if let PartType::Multipart(children) = &part.body
        && depth < 32
    {
        let bodies: Vec<_> = children
            .iter()
            .map(|child| part_structure(message, *child as usize, depth + 1))
            .collect();
        if let Ok(bodies) = Vec1::try_from(bodies) {
            return BodyStructure::Multi {
                bodies,
                subtype: istring(&subtype("MIXED")),
                extension_data: None,
            };
        }
    }
    let raw: &[u8] = message.raw_message.as_ref();
    let body_bytes = raw
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    let size = u32::try_from(body_bytes.len()).unwrap_or(u32::MAX);
    let lines = u32::try_from(body_bytes.iter().filter(|b| **b == b'\n').count()).unwrap_or(0);
    let main = ctype.map_or("TEXT".to_owned(), |c| c.ctype().to_ascii_uppercase());
    let mut params: Vec<(IString<'static>, IString<'static>)> = ctype
        .and_then(|c| c.attributes())
        .unwrap_or_default()
        .iter()
        .map(|a| (istring(&a.name.to_ascii_uppercase()), istring(&a.value)))
        .collect();
    if ctype.is_none() {
        params.push((istring("CHARSET"), istring("US-ASCII")));
    }
    let basic = BasicFields {
        parameter_list: params,
        id: nstring(part.content_id()),
        description: nstring(part.content_description()),
        content_transfer_encoding: istring(
            &part
                .content_transfer_encoding()
                .unwrap_or("7BIT")
                .to_ascii_uppercase(),
        ),
        size,
    };
    let specific = match (&part.body, main.as_str()) {
        (PartType::Message(nested), _) if depth < 32 => SpecificFields::Message {
            envelope: Box::new(envelope_of(nested)),
            body_structure: Box::new(part_structure(nested, 0, depth + 1)),
            number_of_lines: lines,
        },
        (_, "TEXT") => SpecificFields::Text {
            subtype: istring(&subtype("PLAIN")),
            number_of_lines: lines,
        },
        _ => SpecificFields::Basic {
            r#type: istring(&main),
            subtype: istring(&subtype("OCTET-STREAM")),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: None,
    }
}

fn text_plain(size: u32, lines: u32) -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(istring("CHARSET"), istring("US-ASCII"))],
                id: NString(None),
                description: NString(None),
                content_transfer_encoding: istring("7BIT"),
                size,
            },
            specific: SpecificFields::Text {
                subtype: istring("PLAIN"),
                number_of_lines: lines,
            },
        },
        extension_data: None,
    }
}

/// BODYSTRUCTURE of raw bytes (a plain text body when they do not parse).
pub(crate) fn structure_of(raw: &[u8]) -> BodyStructure<'static> {
    match parse(raw) {
        Some(message) => body_structure(&message),
        None => {
            let body = &raw[header_end(raw)..];
            let lines = body.iter().filter(|b| **b == b'\n').count();
            text_plain(
                u32::try_from(body.len()).unwrap_or(u32::MAX),
                u32::try_from(lines).unwrap_or(0),
            )
        }
    }
}

/// The part at `path` and the message whose raw bytes its offsets index.
fn find_part<'m, 'x>(
    message: &'m Message<'x>,
    path: &[NonZeroU32],
) -> Option<(&'m Message<'x>, &'m MessagePart<'x>)> {
    let mut msg = message;
    let mut part = msg.parts.first()?;
    for n in path {
        let index = usize::try_from(n.get() - 1).ok()?;
        match &part.body {
            PartType::Multipart(children) => part = msg.parts.get(*children.get(index)? as usize)?,
            PartType::Message(nested) => {
                msg = nested;
                let root = msg.parts.first()?;
                part = match &root.body {
                    PartType::Multipart(children) => {
                        msg.parts.get(*children.get(index)? as usize)?
                    }
                    _ if index == 0 => root,
                    _ => return None,
                };
            }
            _ if index == 0 => {}
            _ => return None,
        }
    }
    Some((msg, part))
}

/// The bytes of a BODY[section]; `None` when the section does not exist.
pub(crate) fn section(raw: &[u8], section: Option<&Section<'_>>) -> Option<Vec<u8>> {
    let Some(section) = section else {
        return Some(raw.to_vec());
    };
    let top_level = |part: &Option<imap_codec::imap_types::fetch::Part>| {
        part.as_ref().map(|p| p.0.as_ref().to_vec())
    };
    // The message (top or message/rfc822 part) whose header/text is asked.
    let inner = |path: Option<Vec<NonZeroU32>>| -> Option<Vec<u8>> {
        match path {
            None => Some(raw.to_vec()),
            Some(path) => {
                let parsed = parse(raw)?;
                let (msg, part) = find_part(&parsed, &path)?;
                match &part.body {
                    PartType::Message(nested) => Some(nested.raw_message().to_vec()),
                    _ => msg
                        .raw_message
                        .get(part.offset_body as usize..part.offset_end as usize)
                        .map(<[u8]>::to_vec),
                }
            }
        }
    };
    match section {
        Section::Part(part) => {
            let path = part.0.as_ref();
            let parsed = parse(raw)?;
            let (msg, part) = find_part(&parsed, path)?;
            msg.raw_message
                .get(part.offset_body as usize..part.offset_end as usize)
                .map(<[u8]>::to_vec)
        }
        Section::Mime(part) => {
            let parsed = parse(raw)?;
            let (msg, part) = find_part(&parsed, part.0.as_ref())?;
            msg.raw_message
                .get(part.offset_header as usize..part.offset_body as usize)
                .map(<[u8]>::to_vec)
        }
        Section::Header(part) => {
            let m = inner(top_level(part))?;
            Some(m[..header_end(&m)].to_vec())
        }
        Section::Text(part) => {
            let m = inner(top_level(part))?;
            Some(m[header_end(&m)..].to_vec())
        }
        Section::HeaderFields(part, names) => {
            let m = inner(top_level(part))?;
            Some(header_fields(&m, names.as_ref(), true))
        }
        Section::HeaderFieldsNot(part, names) => {
            let m = inner(top_level(part))?;
            Some(header_fields(&m, names.as_ref(), false))
        }
    }
}

/// The header fields named (or, with `keep` false, not named), then the empty line.
fn header_fields(message: &[u8], names: &[AString<'_>], keep: bool) -> Vec<u8> {
    fields_where(message, |name| {
        names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(name)) == keep
    })
}

/// The header fields whose name `keep` accepts (with their folded lines), then the empty line.
fn fields_where(message: &[u8], keep: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let header = &message[..header_end(message)];
    let mut out = Vec::new();
    let mut keeping = false;
    for line in header.split_inclusive(|b| *b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ' | b'\t')) {
            let name = line.split(|b| *b == b':').next().unwrap_or_default();
            keeping = keep(name.trim_ascii());
        }
        if keeping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The decoded content of BINARY[path] (the whole message for an empty path).
pub(crate) fn binary(raw: &[u8], path: &[NonZeroU32]) -> Option<Vec<u8>> {
    if path.is_empty() {
        return Some(raw.to_vec());
    }
    let parsed = parse(raw)?;
    let (_, part) = find_part(&parsed, path)?;
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => Some(t.as_bytes().to_vec()),
        PartType::Binary(b) | PartType::InlineBinary(b) => Some(b.to_vec()),
        PartType::Message(m) => Some(m.raw_message().to_vec()),
        PartType::Multipart(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &[u8] = b"From: A <a@x.org>\r\nTo: b@y.org, C <c@z.org>\r\nSubject: hi\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BB\"\r\n\r\n\
preamble\r\n--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n\
--BB\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: i@n.org\r\n\r\ninner body\r\n\
--BB--\r\n";

    fn path(p: &[u32]) -> Vec<NonZeroU32> {
        p.iter().map(|n| NonZeroU32::new(*n).unwrap()).collect()
    }

    #[test]
    fn sections_of_a_multipart() {
        let part = |p: &[u32]| {
            let part = imap_codec::imap_types::fetch::Part(Vec1::try_from(path(p)).unwrap());
            section(MULTI, Some(&Section::Part(part)))
        };
        assert_eq!(part(&[1]).unwrap(), b"first part");
        assert_eq!(part(&[9]), None);
        let inner_text = part(&[2, 1]).unwrap();
        assert_eq!(inner_text, b"inner body");
        let p2 = imap_codec::imap_types::fetch::Part(Vec1::try_from(path(&[2])).unwrap());
        let header = section(MULTI, Some(&Section::Header(Some(p2)))).unwrap();
        assert_eq!(header, b"Subject: inner\r\nFrom: i@n.org\r\n\r\n");
        let names = Vec1::try_from(vec![AString::try_from("subject").unwrap()]).unwrap();
        let fields = section(MULTI, Some(&Section::HeaderFields(None, names))).unwrap();
        assert_eq!(fields, b"Subject: hi\r\n\r\n");
    }

    #[test]
    fn envelope_and_structure() {
        let env = envelope(MULTI);
        assert_eq!(env.to.len(), 2);
        assert_eq!(env.from[0].host, nstring(Some("x.org")));
        match structure_of(MULTI) {
            BodyStructure::Multi { bodies, .. } => assert_eq!(bodies.as_ref().len(), 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envelope_reads_its_fields_only_folded_or_not() {
        let raw = b"Received: from a (b [192.0.2.1]) by c; Mon, 1 Mar 2025 10:00:00 +0000\r\n\
Subject: =?utf-8?q?caf=C3=A9?=\r\nTO: a@x.org,\r\n B <b@y.org>\r\nX-Other: z\r\n\
Message-ID: <m@x.org>\r\n\r\nSubject: body\r\n";
        let env = envelope(raw);
        assert_eq!(env.subject, nstring(Some("café")));
        assert_eq!(env.to.len(), 2);
        assert_eq!(env.message_id, nstring(Some("<m@x.org>")));
        assert_eq!(env.from, Vec::new());
    }
}
