//! Who holds how many sessions in the memory store, so that eviction falls on whoever holds the
//! most and never on a user with few: one user logging in over and over must not push other
//! users' sessions out.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

#[derive(Default)]
pub(super) struct Owners {
    /// Each owner's sessions, soonest to expire (the oldest, as lifetimes are equal) first.
    sessions: HashMap<String, BTreeSet<(Instant, String)>>,
    /// Owners by how many sessions they hold, most first, then by [`Precedence`].
    by_load: BTreeSet<(Reverse<usize>, Precedence, String)>,
}

/// Which of several owners holding equally many sessions gives one up first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Precedence {
    /// Owners of several: the one who logged in most recently (whose newest session ends
    /// last). Those logging in over and over are the ones filling the store; a user who
    /// logged in on two devices this morning is not.
    MostRecentLogin(Reverse<Instant>),
    /// Owners of one (the store is full of users with one session each): the session closest
    /// to its end goes.
    SoonestEnd(Instant),
}

impl Owners {
    pub(super) fn add(&mut self, owner: &str, expires: Instant, key: &str) {
        self.unindex(owner);
        self.sessions
            .entry(owner.to_string())
            .or_default()
            .insert((expires, key.to_string()));
        self.index(owner);
    }

    pub(super) fn remove(&mut self, owner: &str, expires: Instant, key: &str) {
        self.unindex(owner);
        if let Some(held) = self.sessions.get_mut(owner) {
            held.remove(&(expires, key.to_string()));
            if held.is_empty() {
                self.sessions.remove(owner);
            }
        }
        self.index(owner);
    }

    pub(super) fn count(&self, owner: &str) -> usize {
        self.sessions.get(owner).map_or(0, BTreeSet::len)
    }

    /// The owner's session that expires soonest.
    pub(super) fn oldest_of(&self, owner: &str) -> Option<&str> {
        let held = self.sessions.get(owner)?;
        held.first().map(|(_, key)| key.as_str())
    }

    /// The session to give up when the store is full and `newcomer` adds one: the newcomer's
    /// own oldest if nobody holds more than they do, else the oldest of whoever holds the most.
    /// Whoever holds the most holds at least the average, so nobody below a fair share of the
    /// store ever loses a session to make room.
    pub(super) fn victim_for(&self, newcomer: &str) -> Option<&str> {
        let (Reverse(most), _, heaviest) = self.by_load.first()?;
        if self.count(newcomer) >= *most {
            return self.oldest_of(newcomer);
        }
        self.oldest_of(heaviest)
    }

    fn unindex(&mut self, owner: &str) {
        if let Some(key) = self.load_key(owner) {
            self.by_load.remove(&key);
        }
    }

    fn index(&mut self, owner: &str) {
        if let Some(key) = self.load_key(owner) {
            self.by_load.insert(key);
        }
    }

    fn load_key(&self, owner: &str) -> Option<(Reverse<usize>, Precedence, String)> {
        let held = self.sessions.get(owner)?;
        let ((oldest, _), (newest, _)) = (held.first()?, held.last()?);
        let precedence = if held.len() > 1 {
            Precedence::MostRecentLogin(Reverse(*newest))
        } else {
            Precedence::SoonestEnd(*oldest)
        };
        Some((Reverse(held.len()), precedence, owner.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, base: Instant) -> Instant {
        base + Duration::from_secs(secs)
    }

    #[test]
    fn the_heaviest_owner_gives_up_their_oldest_session() {
        let t = Instant::now();
        let mut o = Owners::default();
        o.add("alice", at(1, t), "a1");
        for (i, key) in ["m1", "m2", "m3"].iter().enumerate() {
            o.add("mallory", at(10 + i as u64, t), key);
        }
        assert_eq!(o.count("mallory"), 3);
        // Alice's session is the oldest in the store, yet mallory holds the most.
        assert_eq!(o.victim_for("bob"), Some("m1"));
        assert_eq!(o.victim_for("alice"), Some("m1"));
        assert_eq!(o.victim_for("mallory"), Some("m1"));
        o.remove("mallory", at(10, t), "m1");
        o.remove("mallory", at(11, t), "m2");
        // Equal holdings: the newcomer's own go first.
        assert_eq!(o.victim_for("mallory"), Some("m3"));
        assert_eq!(o.victim_for("alice"), Some("a1"));
        o.remove("mallory", at(12, t), "m3");
        assert_eq!(o.count("mallory"), 0);
        assert_eq!(o.oldest_of("mallory"), None);
        assert_eq!(o.victim_for("mallory"), Some("a1"));
        o.remove("alice", at(1, t), "a1");
        assert_eq!(o.victim_for("alice"), None);
        assert!(o.by_load.is_empty() && o.sessions.is_empty());
    }

    #[test]
    fn among_equal_holders_the_latest_to_log_in_gives_up_a_session() {
        let t = Instant::now();
        let mut o = Owners::default();
        o.add("bob", at(1, t), "b1");
        o.add("bob", at(2, t), "b2");
        o.add("mallory", at(3, t), "m1");
        o.add("mallory", at(4, t), "m2");
        o.add("alice", at(5, t), "a1");
        o.add("carol", at(6, t), "c1");
        assert_eq!(o.victim_for("eve"), Some("m1"));
        o.remove("mallory", at(3, t), "m1");
        o.remove("mallory", at(4, t), "m2");
        o.remove("bob", at(1, t), "b1");
        // One session each: the one closest to its end.
        assert_eq!(o.victim_for("eve"), Some("b2"));
    }

    #[test]
    fn removing_what_is_not_held_changes_nothing() {
        let t = Instant::now();
        let mut o = Owners::default();
        o.add("alice", at(1, t), "a1");
        o.remove("alice", at(2, t), "a1");
        o.remove("bob", at(1, t), "a1");
        assert_eq!(o.count("alice"), 1);
        assert_eq!(o.by_load.len(), 1);
    }
}
