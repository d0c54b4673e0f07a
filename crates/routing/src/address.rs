//! Recipient addresses as the router reads them (SPEC §3 step 1).
//!
//! An Internet address has `@` and a domain with a dot; anything else is a
//! Notes address (a name, optionally `@NotesDomain`). Source routes are
//! dropped, never followed; `%` and `!` stay part of the local part.

/// A parsed recipient address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Internet {
        local: String,
        domain: String,
    },
    Notes {
        name: String,
        domain: Option<String>,
    },
}

/// Why an address cannot be used at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadAddress(pub String);

impl Address {
    /// Parse a recipient as given at RCPT TO or in a group's members.
    pub fn parse(raw: &str) -> Result<Address, BadAddress> {
        let mut s = raw.trim();
        if let Some(inner) = s.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
            s = inner.trim();
        }
        // RFC 5321 source route `@a,@b:user@c`: ignore the route.
        if s.starts_with('@')
            && let Some((_, mailbox)) = s.split_once(':')
        {
            s = mailbox;
        }
        if s.is_empty() {
            return Err(BadAddress("empty address".into()));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(BadAddress(format!(
                "address '{}' has control characters",
                s.escape_debug()
            )));
        }
        match s.rsplit_once('@') {
            Some((local, domain)) if domain.contains('.') && !local.is_empty() => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                if domain.is_empty() || domain.split('.').any(str::is_empty) {
                    return Err(BadAddress(format!("'{s}' has an invalid domain")));
                }
                Ok(Address::Internet {
                    local: local.to_owned(),
                    domain,
                })
            }
            Some((name, domain)) if !name.is_empty() && !domain.is_empty() => Ok(Address::Notes {
                name: name.trim().to_owned(),
                domain: Some(domain.trim().to_owned()),
            }),
            Some(_) => Err(BadAddress(format!("'{s}' is not an address"))),
            None => Ok(Address::Notes {
                name: s.to_owned(),
                domain: None,
            }),
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Address::Internet { local, domain } => write!(f, "{local}@{domain}"),
            Address::Notes { name, domain: None } => f.write_str(name),
            Address::Notes {
                name,
                domain: Some(d),
            } => write!(f, "{name}@{d}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internet_and_notes_forms() {
        assert_eq!(
            Address::parse("<Jane.Doe@ACME.com>").unwrap(),
            Address::Internet {
                local: "Jane.Doe".into(),
                domain: "acme.com".into()
            }
        );
        assert_eq!(
            Address::parse("Jane Doe/Acme@Acme").unwrap(),
            Address::Notes {
                name: "Jane Doe/Acme".into(),
                domain: Some("Acme".into())
            }
        );
        assert_eq!(
            Address::parse("Jane Doe/Acme").unwrap(),
            Address::Notes {
                name: "Jane Doe/Acme".into(),
                domain: None
            }
        );
        assert_eq!(
            Address::parse("@relay.x,@r2.y:u@acme.com").unwrap(),
            Address::Internet {
                local: "u".into(),
                domain: "acme.com".into()
            }
        );
        // `%` hacks stay in the local part
        assert_eq!(
            Address::parse("u%other.example@acme.com").unwrap(),
            Address::Internet {
                local: "u%other.example".into(),
                domain: "acme.com".into()
            }
        );
        assert!(Address::parse("").is_err());
        assert!(Address::parse("@acme.com").is_err());
        assert!(Address::parse("a@b..c").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,60}") {
            let _ = Address::parse(&s);
        }
    }
}
