//! Load balancing within a preference level: each message starts at the
//! next host in turn (a rotating counter per level), the remaining hosts
//! follow in random order for failover. Over many messages every host of a
//! level is first equally often.

use std::collections::HashMap;

use parking_lot::Mutex;
use rand::seq::SliceRandom;

/// Levels remembered at most; past that the counters start over (only the
/// fairness of the first choice is lost for a moment, never correctness).
const MAX_LEVELS: usize = 4096;

#[derive(Default)]
pub(crate) struct Balancer {
    turns: Mutex<HashMap<String, usize>>,
}

impl Balancer {
    /// Reorders one level's hosts for the next message. `key` names the level.
    pub(crate) fn order<T>(&self, key: String, hosts: &mut [T]) {
        if hosts.len() < 2 {
            return;
        }
        let turn = {
            let mut turns = self.turns.lock();
            if turns.len() >= MAX_LEVELS && !turns.contains_key(&key) {
                turns.clear();
            }
            let counter = turns.entry(key).or_default();
            let turn = *counter;
            *counter = counter.wrapping_add(1);
            turn
        };
        hosts.rotate_left(turn % hosts.len());
        if let Some((_, rest)) = hosts.split_first_mut() {
            rest.shuffle(&mut rand::rng());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_host_is_first_equally_often() {
        let balancer = Balancer::default();
        let mut firsts = HashMap::new();
        for _ in 0..300 {
            let mut level = vec!["a", "b", "c"];
            balancer.order("a,b,c".into(), &mut level);
            let mut sorted = level.clone();
            sorted.sort();
            assert_eq!(sorted, ["a", "b", "c"]);
            *firsts.entry(level[0]).or_insert(0) += 1;
        }
        assert_eq!(firsts.values().collect::<Vec<_>>(), [&100, &100, &100]);
    }

    #[test]
    fn levels_turn_independently() {
        let balancer = Balancer::default();
        let mut one = vec![1, 2];
        let mut other = vec![1, 2];
        balancer.order("one".into(), &mut one);
        balancer.order("other".into(), &mut other);
        assert_eq!((one[0], other[0]), (1, 1));
        let mut single = vec![7];
        balancer.order("one".into(), &mut single);
        assert_eq!(single, [7]);
    }
}
