//! Notes names: hierarchical (`CN=Jane Doe/OU=Sales/O=Acme/C=US`, abbreviated
//! `Jane Doe/Sales/Acme`) and flat (`Jane Doe`). Owns parsing, the two
//! printed forms and the case- and form-insensitive identity of a name; it
//! knows nothing of the documents that carry names.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::{ValueError, shown};

/// A Notes name. Two names are equal when they name the same entity:
/// case-insensitively, whether written abbreviated or canonical.
///
/// In the abbreviated form a last component of exactly two letters after at
/// least two others is the country (`Jane/Acme/US` = `CN=Jane/O=Acme/C=US`),
/// as Notes reads it.
#[derive(Debug, Clone)]
pub struct NotesName {
    common: String,
    org_units: Vec<String>,
    organization: Option<String>,
    country: Option<String>,
    /// Lower-case canonical form: the identity of the name.
    key: String,
}

impl NotesName {
    /// The common name (`Jane Doe`).
    pub fn common_name(&self) -> &str {
        &self.common
    }

    /// Organizational units, as written (first after the common name first).
    pub fn org_units(&self) -> &[String] {
        &self.org_units
    }

    pub fn organization(&self) -> Option<&str> {
        self.organization.as_deref()
    }

    pub fn country(&self) -> Option<&str> {
        self.country.as_deref()
    }

    /// True for a name without organization (`Jane Doe`).
    pub fn is_flat(&self) -> bool {
        self.organization.is_none()
    }

    /// `Jane Doe/Sales/Acme`.
    pub fn abbreviated(&self) -> String {
        self.components()
            .map(|(_, v)| v)
            .collect::<Vec<_>>()
            .join("/")
    }

    /// `CN=Jane Doe/OU=Sales/O=Acme`; a flat name is printed as it is.
    pub fn canonical(&self) -> String {
        if self.is_flat() {
            return self.common.clone();
        }
        self.components()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("/")
    }

    /// The lower-case canonical form: equal for equal names. Use it as a map
    /// key where a `NotesName` itself is not at hand.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn components(&self) -> impl Iterator<Item = (&'static str, &str)> {
        std::iter::once(("CN", self.common.as_str()))
            .chain(self.org_units.iter().map(|ou| ("OU", ou.as_str())))
            .chain(self.organization.iter().map(|o| ("O", o.as_str())))
            .chain(self.country.iter().map(|c| ("C", c.as_str())))
    }

    fn build(
        common: &str,
        org_units: Vec<String>,
        organization: Option<String>,
        country: Option<String>,
    ) -> Self {
        let mut name = Self {
            common: common.to_owned(),
            org_units,
            organization,
            country,
            key: String::new(),
        };
        name.key = name.canonical().to_lowercase();
        name
    }
}

impl PartialEq for NotesName {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for NotesName {}

impl Hash for NotesName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Display for NotesName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.abbreviated())
    }
}

/// The attribute of a canonical component (`CN=`, `OU=`, `O=`, `C=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Attribute {
    Cn,
    Ou,
    O,
    C,
}

fn attribute_of(component: &str) -> Option<(Attribute, &str)> {
    let (key, value) = component.split_once('=')?;
    let attribute = match key.trim().to_ascii_uppercase().as_str() {
        "CN" => Attribute::Cn,
        "OU" => Attribute::Ou,
        "O" => Attribute::O,
        "C" => Attribute::C,
        _ => return None,
    };
    Some((attribute, value.trim()))
}

fn parse_canonical(parts: &[&str]) -> Result<NotesName, ValueError> {
    let mut common = None;
    let mut org_units = Vec::new();
    let mut organization = None;
    let mut country = None;
    let mut last = None;
    for part in parts {
        let Some((attribute, value)) = attribute_of(part) else {
            return Err(ValueError::new(
                "mixes canonical (CN=...) and abbreviated components",
            ));
        };
        if value.is_empty() {
            return Err(ValueError::new(format!("empty value in {part:?}")));
        }
        let repeatable = attribute == Attribute::Ou && last == Some(Attribute::Ou);
        if last.is_some_and(|l| l > attribute || (l == attribute && !repeatable)) {
            return Err(ValueError::new(
                "components must be in the order CN, OU..., O, C",
            ));
        }
        match attribute {
            Attribute::Cn => common = Some(value),
            Attribute::Ou => org_units.push(value.to_owned()),
            Attribute::O => organization = Some(value.to_owned()),
            Attribute::C => country = Some(value.to_owned()),
        }
        last = Some(attribute);
    }
    let Some(common) = common else {
        return Err(ValueError::new("a canonical name starts with CN="));
    };
    if organization.is_none() && (!org_units.is_empty() || country.is_some()) {
        return Err(ValueError::new("OU= and C= need an O= component"));
    }
    Ok(NotesName::build(common, org_units, organization, country))
}

fn parse_abbreviated(parts: &[&str]) -> NotesName {
    let (common, rest) = parts.split_first().map_or(("", parts), |(c, r)| (*c, r));
    let (country, rest) = match rest.split_last() {
        Some((last, before))
            if !before.is_empty()
                && last.len() == 2
                && last.chars().all(|c| c.is_ascii_alphabetic()) =>
        {
            (Some((*last).to_owned()), before)
        }
        _ => (None, rest),
    };
    let (organization, units) = match rest.split_last() {
        Some((o, units)) => (Some((*o).to_owned()), units),
        None => (None, rest),
    };
    NotesName::build(
        common,
        units.iter().map(|u| (*u).to_owned()).collect(),
        organization,
        country,
    )
}

impl FromStr for NotesName {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ValueError::new("empty name"));
        }
        if s.contains('@') {
            return Err(ValueError::new(
                "a Notes name cannot contain '@' (that separates a Notes domain)",
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(ValueError::new("control character in name"));
        }
        let parts: Vec<&str> = s.split('/').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(ValueError::new(format!(
                "empty component in {s}",
                s = shown(s)
            )));
        }
        if parts.iter().any(|p| attribute_of(p).is_some()) {
            parse_canonical(&parts)
        } else {
            Ok(parse_abbreviated(&parts))
        }
    }
}

/// The lookup key of a name as a user types it: a Notes name's identity when
/// it parses as one, otherwise the trimmed, lower-cased text.
pub(crate) fn name_key(text: &str) -> String {
    match text.parse::<NotesName>() {
        Ok(name) => name.key,
        Err(_) => text.trim().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> NotesName {
        s.parse().unwrap()
    }

    #[test]
    fn abbreviated_and_canonical_are_one_name() {
        assert_eq!(n("CN=Jane Doe/O=Acme"), n("jane doe/acme"));
        assert_eq!(
            n("CN=Jane Doe/OU=Sales/O=Acme/C=US"),
            n("Jane Doe/Sales/Acme/US")
        );
        assert_eq!(n("Jane Doe/Acme").canonical(), "CN=Jane Doe/O=Acme");
        assert_eq!(n("CN=Jane Doe/O=Acme").abbreviated(), "Jane Doe/Acme");
        assert_eq!(
            n("cn=Jane Doe/ou=Sales/o=Acme").to_string(),
            "Jane Doe/Sales/Acme"
        );
        assert_ne!(n("Jane Doe/Acme"), n("Jane Doe/Other"));
        assert_ne!(n("Jane Doe/Acme"), n("Jane Doe"));
    }

    #[test]
    fn flat_names() {
        let flat = n("Jane Doe");
        assert!(flat.is_flat());
        assert_eq!(flat.canonical(), "Jane Doe");
        assert_eq!(flat, n("CN=Jane Doe"));
        assert_eq!(flat.common_name(), "Jane Doe");
    }

    #[test]
    fn parts() {
        let name = n("CN=Jane Doe/OU=East/OU=Sales/O=Acme/C=US");
        assert_eq!(name.common_name(), "Jane Doe");
        assert_eq!(name.org_units(), ["East", "Sales"]);
        assert_eq!(name.organization(), Some("Acme"));
        assert_eq!(name.country(), Some("US"));
        assert_eq!(name.abbreviated(), "Jane Doe/East/Sales/Acme/US");
        // two components: the second is the organization even with two letters
        assert_eq!(n("Mail/IT").organization(), Some("IT"));
    }

    #[test]
    fn bad_names() {
        for bad in [
            "",
            "  ",
            "Jane//Acme",
            "/Acme",
            "CN=Jane/Acme",
            "O=Acme/CN=Jane",
            "CN=Jane/OU=Sales",
            "CN=/O=Acme",
            "Jane@Acme",
            "CN=Jane/O=Acme/O=Other",
        ] {
            assert!(bad.parse::<NotesName>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn keys() {
        assert_eq!(name_key("CN=Jane Doe/O=Acme"), name_key("jane doe/acme"));
        assert_eq!(name_key(" JDoe "), "jdoe");
        assert_eq!(name_key("x@y"), "x@y");
    }
}
