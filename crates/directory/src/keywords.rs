//! The keyword values of the directory (`smtp_auth = "required"`, ...): one
//! enum per field, each with the exact words of SPEC §2. Owns the words only.

use std::fmt;
use std::str::FromStr;

use crate::error::{ValueError, shown};

macro_rules! keywords {
    ($(
        $(#[$doc:meta])*
        $name:ident default $default:ident { $($variant:ident = $word:literal),+ $(,)? }
    )+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $(#[doc = concat!("`", $word, "`")] $variant),+
        }

        impl $name {
            /// The word written in the directory.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$default
            }
        }

        impl FromStr for $name {
            type Err = ValueError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $(if s.eq_ignore_ascii_case($word) {
                    return Ok($name::$variant);
                })+
                let words: &[&str] = &[$(concat!("\"", $word, "\"")),+];
                Err(ValueError::new(format!("{s} is not one of {}", words.join(", "), s = shown(s))))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

keywords! {
    /// `smtp_auth` of a server's smtp port.
    SmtpAuth default Optional { Required = "required", Optional = "optional", Off = "off" }

    /// `internet_auth`: which names a user may log in with (SPEC §7).
    InternetAuth default FewerNames { FewerNames = "fewer-names", MoreNames = "more-names" }

    /// `local_part_from`: how a person without an Internet address gets one.
    LocalPartFrom default InternetAddress {
        InternetAddress = "internet-address",
        ShortName = "short-name",
        CommonName = "common-name",
    }

    /// `smtp_within_local_domain`.
    SmtpWithinLocalDomain default Disabled { Disabled = "disabled", MimeOnly = "mime-only", All = "all" }

    /// `smtp_reachable`: servers of the domain reachable by SMTP.
    SmtpReachable default Always { Always = "always", SameNetwork = "same-network" }

    /// `host_name_resolution`.
    HostNameResolution default Dns { Dns = "dns", Hosts = "hosts" }

    /// `address_lookup` (SPEC §3 step 3).
    AddressLookup default FullnameThenLocalpart {
        FullnameThenLocalpart = "fullname-then-localpart",
        FullnameOnly = "fullname-only",
        LocalpartOnly = "localpart-only",
    }

    /// `inbound.relay_enforcement`: which connecting hosts are checked.
    RelayEnforcement default External { All = "all", External = "external", None = "none" }

    /// `inbound.dnsbl_action`: what a client listed by a DNS blacklist gets
    /// (Domino's "Log only", "Log and tag message", "Log and reject message").
    DnsblAction default Reject { Reject = "reject", Tag = "tag", Log = "log" }

    /// `inbound.dmarc_policy`: what a message failing DMARC gets. `report`:
    /// only the `Authentication-Results:` header says so; `enforce`: the
    /// domain's `p=reject` is refused at the end of DATA, `p=quarantine` held.
    DmarcPolicy default Report { Report = "report", Enforce = "enforce" }

    /// `[[connection]] type`.
    ConnectionType default Native { Native = "native", Smtp = "smtp" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_errors_list_choices() {
        for v in [
            AddressLookup::FullnameThenLocalpart,
            AddressLookup::FullnameOnly,
            AddressLookup::LocalpartOnly,
        ] {
            assert_eq!(v.to_string().parse::<AddressLookup>().unwrap(), v);
        }
        assert_eq!("Required".parse::<SmtpAuth>().unwrap(), SmtpAuth::Required);
        let err = "sometimes".parse::<SmtpAuth>().unwrap_err().to_string();
        assert_eq!(
            err,
            r#""sometimes" is not one of "required", "optional", "off""#
        );
        assert_eq!(RelayEnforcement::default(), RelayEnforcement::External);
    }
}
