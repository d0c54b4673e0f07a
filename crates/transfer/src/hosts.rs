//! A local hosts file (`/etc/hosts` format) as a name → addresses table, for
//! `host_name_resolution = "hosts"`. Reads the file once; knows nothing of DNS.

use std::collections::HashMap;
use std::net::IpAddr;

/// Names (lower case, without a trailing dot) and their addresses, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostsFile {
    names: HashMap<String, Vec<IpAddr>>,
}

impl HostsFile {
    /// Lines are `ADDRESS NAME [ALIAS...]`; `#` starts a comment; lines whose
    /// first field is not an address are ignored, as the system resolver does.
    pub(crate) fn parse(text: &str) -> Self {
        let mut names: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            for name in fields {
                let addrs = names.entry(normalize(name)).or_default();
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
        Self { names }
    }

    /// The addresses of `name` (case-insensitive, trailing dot ignored).
    pub(crate) fn lookup(&self, name: &str) -> &[IpAddr] {
        self.names
            .get(&normalize(name))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_comments_and_junk() {
        let hosts = HostsFile::parse(
            "# comment\n127.0.0.1 localhost\n10.0.0.5\tRelay.Acme.com relay # the relay\n\
             ::1 relay.acme.com\nnot-an-ip host\n10.0.0.5 relay\n",
        );
        let relay: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(hosts.lookup("relay.acme.com."), relay.as_slice());
        assert_eq!(hosts.lookup("RELAY"), &relay[..1]);
        assert!(hosts.lookup("host").is_empty());
        assert!(hosts.lookup("comment").is_empty());
    }
}
