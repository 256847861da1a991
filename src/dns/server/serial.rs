//! SOA serials (pure): how an etcd revision becomes a zone's serial, and RFC 1982
//! serial arithmetic, which is how secondaries compare them.
//!
//! A `dns-server` zone's serial is the etcd mod revision of the last change (put or
//! delete) to a key of that zone, truncated to 32 bits. Every replica following the same
//! etcd computes the same number from the same events, and a restart with nothing
//! changed lists the same keys with the same mod revisions, so the serial is stable.
//! Truncation wraps after 2^32 revisions, which RFC 1982 arithmetic tolerates as long as
//! a secondary never falls 2^31 revisions behind.

/// The serial for an etcd revision (RFC 1982: arithmetic modulo 2^32).
pub fn from_revision(revision: i64) -> u32 {
    revision as u32
}

/// RFC 1982 3.2: `a` is newer than `b`. Serials exactly 2^31 apart are incomparable:
/// neither is newer.
pub fn newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < (1 << 31)
}

/// The embedded server's next generation: the wall clock's seconds the first time (the
/// generation is not persisted, so after a restart it still starts ahead of what
/// secondaries kept from the last run, unless that run made more changes than it lasted
/// seconds), then one more per change, so one change is one step.
pub fn next_generation(last: u32, unix_seconds: u64) -> u32 {
    if last == 0 {
        (unix_seconds as u32).max(1)
    } else {
        last.wrapping_add(1)
    }
}

/// Per-zone last-change revisions: the etcd feed bumps the zone of every key it applies.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ZoneRevisions(Vec<i64>);

impl ZoneRevisions {
    pub fn new(zones: usize) -> Self {
        ZoneRevisions(vec![0; zones])
    }

    /// A key of zone `zone` changed at `revision`; only ever moves forward (a re-listing
    /// after compaction replays older mod revisions).
    pub fn bump(&mut self, zone: Option<usize>, revision: i64) {
        if let Some(r) = zone.and_then(|z| self.0.get_mut(z)) {
            *r = (*r).max(revision);
        }
    }

    /// Where to replay etcd's history from after a listing at `listed`, so that deletes
    /// since each zone's newest remaining key are seen (a listing shows no deletes):
    /// one past the oldest zone's newest key, but at most `max` revisions back. `None`:
    /// nothing to replay (every zone changed at the listing's revision, or all are empty:
    /// an empty zone's last delete is not looked for, that would replay all history).
    pub fn replay_start(&self, listed: i64, max: i64) -> Option<i64> {
        let oldest = self.0.iter().copied().filter(|r| *r > 0).min()?;
        let start = (oldest + 1).max(listed - max + 1).max(1);
        (start <= listed).then_some(start)
    }

    pub fn serials(&self) -> Vec<u32> {
        self.0.iter().map(|r| from_revision(*r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_arithmetic_follows_rfc_1982() {
        assert!(newer(2, 1));
        assert!(!newer(1, 2));
        assert!(!newer(7, 7));
        // Wrap: 0 follows u32::MAX.
        assert!(newer(0, u32::MAX));
        assert!(newer(5, u32::MAX - 5));
        // 2^31 apart: undefined, so neither is newer.
        assert!(!newer(1 << 31, 0));
        assert!(!newer(0, 1 << 31));
    }

    #[test]
    fn revisions_truncate_to_32_bits() {
        assert_eq!(from_revision(42), 42);
        assert_eq!(from_revision((1 << 32) + 3), 3);
    }

    #[test]
    fn zone_revisions_only_move_forward_and_ignore_keys_of_no_zone() {
        let mut z = ZoneRevisions::new(2);
        z.bump(Some(0), 10);
        z.bump(Some(0), 7);
        z.bump(Some(1), 3);
        z.bump(None, 99);
        z.bump(Some(5), 99);
        assert_eq!(z.serials(), vec![10, 3]);
    }

    #[test]
    fn history_is_replayed_from_the_oldest_zone_change_within_a_bound() {
        let mut z = ZoneRevisions::new(3);
        z.bump(Some(0), 40);
        z.bump(Some(1), 90);
        assert_eq!(z.replay_start(100, 1000), Some(41));
        assert_eq!(z.replay_start(100, 20), Some(81));
        assert_eq!(z.replay_start(40, 1000), None, "nothing after the listing");
        assert_eq!(ZoneRevisions::new(2).replay_start(100, 1000), None);
    }

    #[test]
    fn the_generation_starts_at_the_clock_and_then_counts_changes() {
        assert_eq!(next_generation(0, 1_700_000_000), 1_700_000_000);
        assert_eq!(next_generation(1_700_000_000, 1_700_000_999), 1_700_000_001);
        assert_eq!(next_generation(0, 0), 1);
        // Wrapping (RFC 1982 arithmetic) is fine: 0 follows u32::MAX.
        assert_eq!(next_generation(u32::MAX, 5), 0);
    }
}
