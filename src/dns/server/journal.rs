//! The IXFR journal (pure): the last N changes of one zone as differences between flat
//! zones (`flat`), so that a secondary one or a few serials behind gets only what
//! changed (RFC 1995). In memory only: after a restart the journal is empty and an IXFR
//! for an older serial is answered with the whole zone, which RFC 1995 allows.
//!
//! Invariant: the deltas are contiguous (each one's `from` is the previous one's `to`)
//! and the last one ends at the journal's current serial; a change that does not
//! follow on (a serial that did not move forward) resets the journal.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use hickory_proto::rr::Record;

use super::flat::record_key;
use super::serial;

/// Default number of changes kept per zone (`--ixfr-journal`).
pub const DEFAULT_JOURNAL: usize = 100;

/// One change of a zone: from serial `from` to serial `to`.
#[derive(Debug, Clone)]
pub struct Delta {
    pub from: u32,
    pub to: u32,
    pub removed: Vec<Record>,
    pub added: Vec<Record>,
}

/// A zone's flat records at one serial, and the changes that led there.
#[derive(Debug, Clone)]
pub struct Journal {
    pub serial: u32,
    /// Record identity -> record, of the zone at `serial` (without the SOA).
    pub records: Arc<BTreeMap<Vec<u8>, Record>>,
    deltas: VecDeque<Arc<Delta>>,
    capacity: usize,
}

/// What an IXFR for a client serial gets.
#[derive(Debug)]
pub enum Ixfr {
    /// The client is current: one SOA.
    UpToDate,
    /// These deltas, oldest first, take the client to the current serial.
    Deltas(Vec<Arc<Delta>>),
    /// The client's serial is not in the journal: send the whole zone.
    Full,
}

pub fn keyed(records: Vec<Record>) -> BTreeMap<Vec<u8>, Record> {
    records.into_iter().map(|r| (record_key(&r), r)).collect()
}

impl Journal {
    pub fn new(serial: u32, records: Vec<Record>, capacity: usize) -> Journal {
        Journal {
            serial,
            records: Arc::new(keyed(records)),
            deltas: VecDeque::new(),
            capacity,
        }
    }

    /// Moves the zone to `serial` with `records`. Returns whether the serial changed.
    pub fn advance(&mut self, serial: u32, records: Vec<Record>) -> bool {
        if serial == self.serial {
            return false;
        }
        let next = keyed(records);
        if !serial::newer(serial, self.serial) {
            // Not a step forward (the feed's serials only move forward, but an in-process
            // zone may be dropped and re-added): no delta can describe it.
            self.deltas.clear();
        } else if self.capacity > 0 {
            let removed = self
                .records
                .iter()
                .filter(|(k, _)| !next.contains_key(*k))
                .map(|(_, r)| r.clone())
                .collect();
            let added = next
                .iter()
                .filter(|(k, _)| !self.records.contains_key(*k))
                .map(|(_, r)| r.clone())
                .collect();
            self.deltas.push_back(Arc::new(Delta {
                from: self.serial,
                to: serial,
                removed,
                added,
            }));
            while self.deltas.len() > self.capacity {
                self.deltas.pop_front();
            }
        }
        self.serial = serial;
        self.records = Arc::new(next);
        true
    }

    /// What a client at `client` gets.
    pub fn ixfr(&self, client: u32) -> Ixfr {
        if client == self.serial || serial::newer(client, self.serial) {
            // A client ahead of us (RFC 1995 2: "the server ... responds with a single SOA").
            return Ixfr::UpToDate;
        }
        match self.deltas.iter().position(|d| d.from == client) {
            Some(i) => Ixfr::Deltas(self.deltas.iter().skip(i).cloned().collect()),
            None => Ixfr::Full,
        }
    }

    pub fn len(&self) -> usize {
        self.deltas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.deltas.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData};

    use super::*;

    fn a(name: &str, ip: [u8; 4]) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            300,
            RData::A(A(Ipv4Addr::from(ip))),
        )
    }

    #[test]
    fn a_change_is_journaled_as_what_was_removed_and_added() {
        let mut j = Journal::new(10, vec![a("x.example.com.", [10, 0, 0, 1])], 5);
        assert!(j.advance(12, vec![a("x.example.com.", [10, 0, 0, 2])]));
        assert!(!j.advance(12, vec![]), "same serial: nothing to do");
        let Ixfr::Deltas(d) = j.ixfr(10) else {
            panic!()
        };
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].from, d[0].to), (10, 12));
        assert_eq!(d[0].removed, vec![a("x.example.com.", [10, 0, 0, 1])]);
        assert_eq!(d[0].added, vec![a("x.example.com.", [10, 0, 0, 2])]);
        assert!(matches!(j.ixfr(12), Ixfr::UpToDate));
        assert!(matches!(j.ixfr(13), Ixfr::UpToDate));
    }

    #[test]
    fn a_serial_older_than_the_journal_gets_the_whole_zone() {
        let mut j = Journal::new(1, vec![], 2);
        for s in 2..=5u8 {
            j.advance(u32::from(s), vec![a("x.example.com.", [10, 0, 0, s])]);
        }
        assert_eq!(j.len(), 2);
        assert!(matches!(j.ixfr(1), Ixfr::Full));
        assert!(matches!(j.ixfr(2), Ixfr::Full));
        let Ixfr::Deltas(d) = j.ixfr(3) else { panic!() };
        assert_eq!(d.iter().map(|d| d.to).collect::<Vec<_>>(), vec![4, 5]);
        // A serial never served is not in the journal either.
        assert!(matches!(j.ixfr(0), Ixfr::Full));
    }

    #[test]
    fn a_serial_going_back_resets_the_journal() {
        let mut j = Journal::new(10, vec![], 5);
        j.advance(11, vec![]);
        j.advance(3, vec![]);
        assert!(j.is_empty());
        assert!(matches!(j.ixfr(2), Ixfr::Full));
        // A client "ahead" of us gets our SOA (RFC 1995 2), and refreshes nothing.
        assert!(matches!(j.ixfr(10), Ixfr::UpToDate));
    }
}
