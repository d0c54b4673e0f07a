//! How a recipient leaves by SMTP, written into its mail box row when it is
//! handed to an outbound queue (`relay:HOSTS` or `mx:DOMAIN`), so that a
//! restart rebuilds the queue from the row alone.

use std::str::FromStr;

use crate::SmtpVia;

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
}
