//! How a recipient leaves this server, written into its mail box row when
//! it is handed to an outbound queue (`relay:HOSTS` or `mx:DOMAIN` by SMTP,
//! `nrpc:SERVER` to the next server of the domain), so that a restart
//! rebuilds the queue from the row alone.

use std::str::FromStr;

use crate::SmtpVia;

/// How a queued recipient leaves: by SMTP, or natively to the next server
/// of the domain (`NRPC` on the console).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Smtp(SmtpVia),
    /// To this server of the domain, the next hop on the message's path.
    Native(String),
}

impl Via {
    /// The text kept in the mail box row.
    pub fn encode(&self) -> String {
        match self {
            Via::Smtp(smtp) => smtp.encode(),
            Via::Native(server) => format!("nrpc:{server}"),
        }
    }

    /// The inverse of [`Via::encode`]; `None` for text it never wrote.
    pub fn decode(text: &str) -> Option<Via> {
        match text.strip_prefix("nrpc:") {
            Some(server) if !server.trim().is_empty() => Some(Via::Native(server.to_owned())),
            Some(_) => None,
            None => SmtpVia::decode(text).map(Via::Smtp),
        }
    }

    /// The transport as `show queues` names it.
    pub fn transport(&self) -> &'static str {
        match self {
            Via::Smtp(_) => "SMTP",
            Via::Native(_) => "NRPC",
        }
    }
}

impl SmtpVia {
    /// The text kept in the mail box row.
    pub fn encode(&self) -> String {
        match self {
            SmtpVia::Relay(hosts) => format!("relay:{hosts}"),
            SmtpVia::Mx(domain) => format!("mx:{domain}"),
        }
    }

    /// The inverse of [`SmtpVia::encode`]; `None` for text it never wrote.
    pub fn decode(text: &str) -> Option<SmtpVia> {
        if let Some(hosts) = text.strip_prefix("relay:") {
            return directory::RelayHosts::from_str(hosts)
                .ok()
                .map(SmtpVia::Relay);
        }
        text.strip_prefix("mx:")
            .filter(|d| !d.is_empty())
            .map(|d| SmtpVia::Mx(d.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for text in [
            "[127.0.0.1]:2526;[127.0.0.1]:2527,[127.0.0.1]:2528",
            "relay.example.net",
            "[IPv6:::1]:2525",
        ] {
            let hosts = directory::RelayHosts::from_str(text).expect("relay hosts");
            let via = SmtpVia::Relay(hosts);
            assert_eq!(SmtpVia::decode(&via.encode()), Some(via));
        }
        let mx = SmtpVia::Mx("example.org".into());
        assert_eq!(SmtpVia::decode(&mx.encode()), Some(mx));
        assert_eq!(SmtpVia::decode("mx:"), None);
        assert_eq!(SmtpVia::decode("nrpc:x"), None);
    }

    #[test]
    fn native_round_trip() {
        let via = Via::Native("CN=Hub/O=Acme".into());
        assert_eq!(Via::decode(&via.encode()), Some(via));
        assert_eq!(Via::decode("nrpc:"), None);
        let mx = Via::Smtp(SmtpVia::Mx("example.org".into()));
        assert_eq!(Via::decode(&mx.encode()), Some(mx));
    }
}
