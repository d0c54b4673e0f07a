//! Sequence sets (`1:*`, `2,4:7`) resolved against a selected mailbox.
//! Pure; no I/O.

use imap_codec::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

fn value(s: &SeqOrUid, largest: u32) -> u32 {
    match s {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    }
}

/// Whether `set` holds `n`, `*` being `largest`. A range's ends may come in any order.
pub(crate) fn contains(set: &SequenceSet, n: u32, largest: u32) -> bool {
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(v) => value(v, largest) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (value(a, largest), value(b, largest));
            a.min(b) <= n && n <= a.max(b)
        }
    })
}

/// Indexes (0-based) of the messages `set` names: by sequence number, or by UID
/// when `uid` (then `uids` must be ascending).
pub(crate) fn resolve(set: &SequenceSet, uids: &[u32], uid: bool) -> Vec<usize> {
    if uid {
        let largest = uids.last().copied().unwrap_or(0);
        uids.iter()
            .enumerate()
            .filter(|(_, u)| contains(set, **u, largest))
            .map(|(i, _)| i)
            .collect()
    } else {
        let largest = u32::try_from(uids.len()).unwrap_or(u32::MAX);
        (1..=largest)
            .filter(|n| contains(set, *n, largest))
            .map(|n| n as usize - 1)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_and_uid_sets() {
        let uids = [3, 5, 9, 10];
        let set = |s: &str| SequenceSet::try_from(s).unwrap();
        assert_eq!(resolve(&set("1:*"), &uids, false), vec![0, 1, 2, 3]);
        assert_eq!(resolve(&set("2,4"), &uids, false), vec![1, 3]);
        assert_eq!(resolve(&set("*:3"), &uids, false), vec![2, 3]);
        assert_eq!(resolve(&set("5:9"), &uids, true), vec![1, 2]);
        assert_eq!(resolve(&set("11:*"), &uids, true), vec![3]);
        assert_eq!(
            resolve(&set("4000000000"), &uids, true),
            Vec::<usize>::new()
        );
        assert!(resolve(&set("1:*"), &[], true).is_empty());
    }
}
