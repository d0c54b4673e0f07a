//! SASL PLAIN (RFC 4616) decoding, shared by POP3 AUTH and IMAP AUTHENTICATE.

use base64::Engine;

/// User and password of a PLAIN response, or `None` if it is malformed.
/// An authorization identity other than the user is refused (no proxy logins).
pub(crate) fn plain(decoded: &[u8]) -> Option<(String, String)> {
    let mut fields = decoded.split(|b| *b == 0);
    let authz = fields.next()?;
    let user = std::str::from_utf8(fields.next()?).ok()?;
    let password = std::str::from_utf8(fields.next()?).ok()?;
    if fields.next().is_some() || user.is_empty() {
        return None;
    }
    if !authz.is_empty() && authz != user.as_bytes() {
        return None;
    }
    Some((user.to_owned(), password.to_owned()))
}

/// Base64 text (a POP3 AUTH argument or continuation line) decoded.
pub(crate) fn base64(text: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim_ascii())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields() {
        assert_eq!(
            plain(b"\0jdoe\0secret"),
            Some(("jdoe".into(), "secret".into()))
        );
        assert_eq!(
            plain(b"jdoe\0jdoe\0secret"),
            Some(("jdoe".into(), "secret".into()))
        );
        assert_eq!(plain(b"admin\0jdoe\0secret"), None);
        assert_eq!(plain(b"\0jdoe"), None);
        assert_eq!(plain(b"\0\0pw"), None);
        assert_eq!(plain(b"\0a\0b\0c"), None);
        assert_eq!(
            base64(b"AGpkb2UAc2VjcmV0\r\n"),
            Some(b"\0jdoe\0secret".to_vec())
        );
        assert_eq!(base64(b"!!"), None);
    }
}
