//! SASL PLAIN (RFC 4616) and LOGIN decoding for SMTP AUTH (RFC 4954).
//!
//! Owns the base64 and message formats only; checking the password is the
//! handler's business and the dialogue is the session's.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Why a client's AUTH data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("Invalid base64 data")]
    Base64,
    #[error("Credentials are not valid UTF-8")]
    Utf8,
    #[error("Malformed PLAIN response")]
    Malformed,
    #[error("Authorization identity must match the user name")]
    ForeignAuthzid,
}

/// A user name and password as the client sent them.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The mechanisms this listener offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// Maps smtp-proto's mechanism bit; `None` for mechanisms not offered.
    pub(crate) fn from_proto(bits: u64) -> Option<Mechanism> {
        match bits {
            smtp_proto::AUTH_PLAIN => Some(Mechanism::Plain),
            smtp_proto::AUTH_LOGIN => Some(Mechanism::Login),
            _ => None,
        }
    }
}

/// Decodes one base64 line into text (`=` is the empty response).
pub(crate) fn decode_text(line: &str) -> Result<String, AuthError> {
    let bytes = decode_bytes(line)?;
    String::from_utf8(bytes).map_err(|_| AuthError::Utf8)
}

/// Decodes a PLAIN response: `[authzid] NUL authcid NUL passwd`.
pub(crate) fn decode_plain(line: &str) -> Result<Credentials, AuthError> {
    let text = decode_text(line)?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AuthError::Malformed);
    };
    if user.is_empty() {
        return Err(AuthError::Malformed);
    }
    if !authzid.is_empty() && authzid != user {
        return Err(AuthError::ForeignAuthzid);
    }
    Ok(Credentials {
        user: user.to_owned(),
        password: password.to_owned(),
    })
}

/// Encodes a server challenge.
pub(crate) fn encode(text: &str) -> String {
    STANDARD.encode(text)
}

fn decode_bytes(line: &str) -> Result<Vec<u8>, AuthError> {
    let line = line.trim();
    if line == "=" {
        return Ok(Vec::new());
    }
    STANDARD.decode(line).map_err(|_| AuthError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_with_and_without_authzid() {
        let creds = decode_plain(&encode("\0alice\0secret")).expect("valid");
        assert_eq!(creds.user, "alice");
        assert_eq!(creds.password, "secret");
        let creds = decode_plain(&encode("alice\0alice\0pw")).expect("valid");
        assert_eq!(creds.user, "alice");
    }

    #[test]
    fn plain_rejects_bad_input() {
        assert_eq!(decode_plain("!!!"), Err(AuthError::Base64));
        assert_eq!(decode_plain(&encode("alice")), Err(AuthError::Malformed));
        assert_eq!(decode_plain(&encode("\0\0pw")), Err(AuthError::Malformed));
        assert_eq!(
            decode_plain(&encode("a\0b\0c\0d")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            decode_plain(&encode("bob\0alice\0pw")),
            Err(AuthError::ForeignAuthzid)
        );
        assert_eq!(
            decode_plain(&STANDARD.encode([0, b'a', 0, 0xff])),
            Err(AuthError::Utf8)
        );
    }

    #[test]
    fn login_pieces_and_empty_response() {
        assert_eq!(decode_text(&encode("alice")), Ok("alice".to_owned()));
        assert_eq!(decode_text("="), Ok(String::new()));
        assert_eq!(encode("Username:"), "VXNlcm5hbWU6");
    }

    #[test]
    fn debug_hides_the_password() {
        let creds = Credentials {
            user: "alice".into(),
            password: "secret".into(),
        };
        assert!(!format!("{creds:?}").contains("secret"));
    }
}
