//! Allow/deny lists (SPEC §2): the most specific matching entry wins; equally
//! specific, deny wins. Used for inbound relay controls and outbound controls.

use directory::{Config, ListEntry};

use crate::resolve::Failure;

/// `Some(true)` allowed, `Some(false)` denied, `None` when neither list matches.
pub fn list_verdict(
    allow: &[ListEntry],
    deny: &[ListEntry],
    matches: impl Fn(&ListEntry) -> bool,
) -> Option<bool> {
    let best = |list: &[ListEntry]| {
        list.iter()
            .filter(|e| matches(e))
            .map(ListEntry::specificity)
            .max()
    };
    match (best(allow), best(deny)) {
        (None, None) => None,
        (Some(a), Some(d)) => Some(a > d),
        (Some(_), None) => Some(true),
        (None, Some(_)) => Some(false),
    }
}

/// `[configuration.outbound]`: may `from` send to the Internet recipient `rcpt`?
pub fn outbound_refusal(config: &Config, from: &str, rcpt: &str) -> Option<Failure> {
    let o = &config.outbound;
    if list_verdict(&o.allow_to, &o.deny_to, |e| e.matches_address(rcpt)) == Some(false) {
        return Some(Failure {
            reason: "Your Domain does not have access to route messages to the specified domain."
                .into(),
            status: "5.7.1".into(),
        });
    }
    let sender = list_verdict(&o.allow_from, &o.deny_from, |e| e.matches_address(from));
    if sender == Some(false) || (sender.is_none() && !o.allow_from.is_empty()) {
        return Some(Failure {
            reason: format!(
                "Message rejected for policy reasons: {} may not send mail outside the local Internet domain",
                if from.is_empty() { "<>" } else { from }
            ),
            status: "5.7.1".into(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(v: &[&str]) -> Vec<ListEntry> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn most_specific_wins_deny_breaks_ties() {
        let m = |addr: &'static str| move |e: &ListEntry| e.matches_address(addr);
        let allow = entries(&["@x.com"]);
        let deny = entries(&["*"]);
        assert_eq!(list_verdict(&allow, &deny, m("a@x.com")), Some(true));
        assert_eq!(list_verdict(&allow, &deny, m("a@y.com")), Some(false));
        let deny = entries(&["@x.com"]);
        assert_eq!(list_verdict(&allow, &deny, m("a@x.com")), Some(false));
        let deny = entries(&["boss@x.com"]);
        assert_eq!(list_verdict(&allow, &deny, m("boss@x.com")), Some(false));
        assert_eq!(list_verdict(&[], &[], m("a@x.com")), None);
    }

    #[test]
    fn outbound_controls() {
        let mut c = Config::default();
        c.outbound.deny_to = entries(&["@blocked.example"]);
        assert!(outbound_refusal(&c, "a@acme.com", "x@blocked.example").is_some());
        assert!(outbound_refusal(&c, "a@acme.com", "x@fine.example").is_none());
        c.outbound.allow_from = entries(&["@acme.com"]);
        assert!(outbound_refusal(&c, "a@acme.com", "x@fine.example").is_none());
        assert!(outbound_refusal(&c, "a@other.com", "x@fine.example").is_some());
    }
}
