//! Every kind of refusal the SMTP listener gives, and its `show stat` name.
//!
//! Owns the list of kinds and their counter names only; who refuses is the
//! session's or the handler's business, counting is [`crate::SmtpStats`]'s.
//!
//! The names read `SMTP.<what>.Refused.<why>`, where `<what>` is what the
//! client lost: `Sessions.Inbound` (the connection, before its greeting),
//! `Senders` (MAIL FROM), `Recipients` (RCPT TO), `Messages` (DATA) or
//! `Logins` (AUTH). Two older names are kept as administrators know them
//! (`SMTP.Sessions.Inbound.TooManyErrors`,
//! `SMTP.Messages.Refused.InsufficientStorage`).
//!
//! A new kind is one line in the `refusals!` list below: its variant and
//! its name. A handler's reply is counted by giving it the kind,
//! `Reply::new(...).counted(Refusal::X)`; the session counts it when the
//! reply is sent.

macro_rules! refusals {
    ($($(#[$doc:meta])* $kind:ident => $name:literal,)+) => {
        /// Why the listener refused a connection, a command or a message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Refusal {
            $($(#[$doc])* $kind,)+
        }

        impl Refusal {
            /// Every kind, in the order of the counters.
            pub const ALL: &'static [Refusal] = &[$(Refusal::$kind,)+];

            /// The counter's name in `show stat`.
            pub fn counter_name(self) -> &'static str {
                match self {
                    $(Refusal::$kind => $name,)+
                }
            }
        }
    };
}

refusals! {
    /// The listener had `smtp_max_sessions` sessions (`421`, at connect).
    Busy => "SMTP.Sessions.Inbound.Refused.Busy",
    /// The client's address had `smtp_max_sessions_per_host` sessions.
    PerHost => "SMTP.Sessions.Inbound.Refused.PerHost",
    /// The session reached `smtp_hard_error_limit` 5xx replies and was closed.
    TooManyErrors => "SMTP.Sessions.Inbound.TooManyErrors",
    /// `deny_connections` / `allow_connections` (`554 5.7.1`, at connect).
    ConnectionDenied => "SMTP.Sessions.Inbound.Refused.Denied",
    /// `verify_connecting_host`: no forward-confirmed name (`554 5.7.1`).
    HostNotVerified => "SMTP.Sessions.Inbound.Refused.HostNotVerified",
    /// `deny_senders` / `allow_senders` (`550 5.7.1`).
    SenderDenied => "SMTP.Senders.Refused.Denied",
    /// `verify_sender_domain`: no MX and no address (`553 5.1.8`).
    SenderDomainNotFound => "SMTP.Senders.Refused.DomainNotFound",
    /// A DNS blacklist lists the client (`550 5.7.1`).
    Dnsbl => "SMTP.Senders.Refused.DNSBL",
    /// `deny_recipients` / `allow_recipients` (`550 5.7.1`).
    RecipientDenied => "SMTP.Recipients.Refused.Denied",
    /// A server mail rule's `reject` (`550 5.7.1` at the end of DATA).
    RuleRejected => "SMTP.Messages.Refused.Rule",
    /// DMARC failed and the From: domain publishes `p=reject`, under
    /// `dmarc_policy = "enforce"` (`550 5.7.1` at the end of DATA).
    Dmarc => "SMTP.Messages.Refused.DMARC",
    /// MAIL FROM without AUTH where AUTH is required (`530 5.7.0`).
    AuthRequired => "SMTP.Senders.Refused.AuthRequired",
    /// MAIL FROM or DATA while the mail store cannot take mail (`421`/`451`).
    StoreUnavailable => "SMTP.Messages.Refused.StoreUnavailable",
    /// A recipient outside the local domains the client may not relay to
    /// (`550 5.7.1`).
    RelayDenied => "SMTP.Recipients.Refused.RelayDenied",
    /// A local recipient that cannot be delivered: no such user, or no
    /// route (`550 5.1.1`, `5.4.4`...).
    UnknownRecipient => "SMTP.Recipients.Refused.Unknown",
    /// More recipients than a message may have (`452 4.5.3`).
    TooManyRecipients => "SMTP.Recipients.Refused.TooMany",
    /// Bigger than `max_message_size`, by SIZE= or by its content (`552`).
    MessageTooBig => "SMTP.Messages.Refused.TooBig",
    /// The server's in-flight message budget had no room (`452 4.3.1`).
    InsufficientStorage => "SMTP.Messages.Refused.InsufficientStorage",
    /// A bare LF in the content of an unauthenticated client (`554 5.5.2`).
    BareLf => "SMTP.Messages.Refused.BareLF",
    /// A bare CR in the content of an unauthenticated client (`554 5.5.2`).
    BareCr => "SMTP.Messages.Refused.BareCR",
    /// NUL characters in the content (`554 5.6.0`).
    Nul => "SMTP.Messages.Refused.NUL",
    /// A content line longer than the listener allows (`554 5.6.0`).
    LongLine => "SMTP.Messages.Refused.LongLine",
    /// AUTH with a password in the clear, off loopback and without TLS
    /// (`538 5.7.11`).
    EncryptionRequired => "SMTP.Logins.Refused.EncryptionRequired",
    /// AUTH with a wrong name or password, or while the address or user is
    /// locked out (`535 5.7.8`).
    AuthFailed => "SMTP.Logins.Failed",
}

impl Refusal {
    /// How many kinds there are.
    pub const COUNT: usize = Refusal::ALL.len();

    /// The kind's place among the counters (its place in [`Refusal::ALL`]).
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_read_smtp_dot() {
        let mut names: Vec<&str> = Refusal::ALL.iter().map(|k| k.counter_name()).collect();
        assert!(names.iter().all(|n| n.starts_with("SMTP.")));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Refusal::COUNT);
        for (i, k) in Refusal::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
