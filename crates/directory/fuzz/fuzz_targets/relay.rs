//! The relay host list parser (`relay.rs`: `;` levels, `,` hosts, names,
//! `[literal]` and `[IPv6:literal]` addresses, ports, Domino's quirks) on
//! arbitrary text.
//!
//! Checked: no panic; a list that parses has no empty level, host names in
//! lower case, no port 0; its canonical form (Display) parses back to the
//! same list and prints the same again.

#![no_main]

use directory::{RelayHosts, RelayTarget};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let Ok(hosts) = text.parse::<RelayHosts>() else {
        return;
    };
    assert_eq!(hosts.is_empty(), text.trim().is_empty());
    for level in &hosts.levels {
        assert!(!level.is_empty(), "empty level in {hosts:?}");
        for host in level {
            assert_ne!(host.port, Some(0), "{text:?}");
            if let RelayTarget::Name(name) = &host.host {
                assert_eq!(name, &name.to_ascii_lowercase());
                assert!(!name.is_empty());
            }
        }
    }
    let canonical = hosts.to_string();
    let again: RelayHosts = canonical
        .parse()
        .unwrap_or_else(|e| panic!("{text:?} printed as {canonical:?}, which fails: {e}"));
    assert_eq!(again, hosts, "{text:?} printed as {canonical:?}");
    assert_eq!(again.to_string(), canonical);
});
