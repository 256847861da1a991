//! Feeds keep the served [`Snapshot`] current: the etcd feed follows a skydns prefix
//! (list, then watch from the listed revision), the in-process feed takes whole entry
//! sets from the controller manager ([`IndexHandle::replace_entries`]). Both build a new
//! snapshot and swap it in atomically; queries never wait for them.
//!
//! etcd feed guarantees:
//! - after a watch error (etcd away, connection lost) the index keeps serving the last
//!   snapshot; the watch is re-established from the last applied revision + 1, so every
//!   change made meanwhile arrives (no gap, no lost update);
//! - if that revision was compacted, the prefix is listed again and the new snapshot
//!   replaces the old one in one swap, then the watch resumes from the listing's revision;
//! - each zone's SOA serial is the revision of the last put or delete of one of its
//!   keys (`serial`); a listing shows no deletes, so after one the watch starts from
//!   the oldest zone's newest key instead, and the replayed events (at or below the
//!   listing's revision) only move serials: deletes' revisions, nothing applied twice;
//! - a value that cannot be served is skipped, logged once per key and revision, and
//!   counted in `kubefed_dns_malformed_values_total`;
//! - until the first complete listing (or hand-over) the served snapshot is the
//!   unloaded placeholder, answered with SERVFAIL ([`IndexHandle::is_loaded`]);
//! - the time of the last contact that proved the index in sync (a listing, a watch
//!   event, a progress notification) is kept, and `/readyz` fails once it is older
//!   than the configured bound (`IndexHandle::watch_readiness`).
//!
//! Each applied batch costs `O(log n)` per changed key (the index is a persistent map)
//! and tells the new snapshot which paths changed, so the UDP response store keeps what
//! the batch cannot affect; a listing builds the map whole and says nothing changed in
//! particular (the store starts over).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::index::{CaseVariants, Entries, IndexConfig, IndexError, Service, Snapshot, ZoneConfig};
use super::metrics::DnsMetrics;
use super::serial::{self, ZoneRevisions};
use crate::admin::http::Readiness;
use crate::dns::skydns::SkydnsValue;
use crate::dns::skydns::codec;
use crate::dns::skydns::security::EtcdSecurity;
use crate::dns::skydns::store::{Change, EtcdStore, RawEntry, StoreError};

/// Seconds left on each distinct lease of `entries` (one request per lease; a lease
/// that cannot be asked about is left out, and its keys get their usual TTL).
async fn lease_ttls<'e>(
    store: &mut EtcdStore,
    entries: impl IntoIterator<Item = &'e RawEntry>,
) -> HashMap<i64, i64> {
    let mut out = HashMap::new();
    let leases: HashSet<i64> = entries
        .into_iter()
        .map(|e| e.lease)
        .filter(|l| *l != 0)
        .collect();
    for lease in leases {
        match store.lease_ttl(lease).await {
            Ok(Some(ttl)) => {
                out.insert(lease, ttl);
            }
            Ok(None) => {}
            Err(error) => debug!(%error, lease, "asking etcd for a lease's TTL failed"),
        }
    }
    out
}

/// The writer side of the served index. Cheap to clone.
#[derive(Clone)]
pub struct IndexHandle {
    current: Arc<ArcSwap<Snapshot>>,
    cfg: Arc<IndexConfig>,
    metrics: DnsMetrics,
    generation: Arc<AtomicU32>,
    ready: Readiness,
    reported: Arc<Mutex<HashSet<String>>>,
    /// Milliseconds after `epoch` of the last contact proving the index in sync with
    /// etcd; 0 before the first.
    synced_at: Arc<AtomicU64>,
    epoch: Instant,
    /// Bumped on every swap: zone transfers (journal, NOTIFY) follow it.
    published: Arc<tokio::sync::watch::Sender<u64>>,
}

impl IndexHandle {
    pub(crate) fn new(cfg: Arc<IndexConfig>, metrics: DnsMetrics, ready: Readiness) -> Self {
        IndexHandle {
            current: Arc::new(ArcSwap::from_pointee(Snapshot::empty(cfg.clone()))),
            cfg,
            metrics,
            generation: Arc::new(AtomicU32::new(0)),
            ready,
            reported: Default::default(),
            synced_at: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
            published: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }

    /// True once a complete set of entries is served (the first etcd listing, or the
    /// first hand-over); until then every question is answered SERVFAIL.
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_loaded()
    }

    /// Records that the index was just proved in sync with etcd.
    fn mark_synced(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.synced_at.store(ms.max(1), Ordering::Release);
    }

    /// Makes readiness fail once the index has been out of touch with etcd (no listing,
    /// watch event or progress notification) for longer than `bound`.
    pub(crate) fn watch_readiness(&self, bound: Duration) {
        let (synced_at, epoch) = (self.synced_at.clone(), self.epoch);
        self.ready.add_check(move || {
            let at = synced_at.load(Ordering::Acquire);
            if at == 0 {
                return Ok(());
            }
            let since = epoch.elapsed().saturating_sub(Duration::from_millis(at));
            if since > bound {
                Err(format!(
                    "etcd watch out of touch for {}s (limit {}s)",
                    since.as_secs(),
                    bound.as_secs()
                ))
            } else {
                Ok(())
            }
        });
    }

    pub(crate) fn shared(&self) -> Arc<ArcSwap<Snapshot>> {
        self.current.clone()
    }

    /// Changes (to an unspecified count) each time a new snapshot is served.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// The next generation of the in-process feed; see [`serial::next_generation`].
    fn next_generation(&self) -> u32 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut last = self.generation.load(Ordering::Acquire);
        loop {
            let next = serial::next_generation(last, now);
            match self
                .generation
                .compare_exchange(last, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }

    /// Gives each zone of `next` the serial it had in the served snapshot when its
    /// entries are the same, else `generation`: the in-process feed has no etcd
    /// revisions, and a zone whose data did not change must keep its serial.
    fn carry_zone_serials(&self, next: Snapshot, generation: u32) -> Snapshot {
        let prev = self.current.load();
        let serials = next
            .config()
            .zone_names()
            .enumerate()
            .map(|(j, name)| match prev.zone_index(name) {
                Some(i) if prev.is_loaded() && prev.same_zone_entries(i, &next, j) => {
                    prev.zone_serial(i)
                }
                _ => generation,
            })
            .collect();
        next.with_zone_serials(serials)
    }

    /// The snapshot queries are answered from right now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// True once the index holds real data (first etcd listing, or first
    /// [`IndexHandle::replace_entries`]).
    pub fn is_ready(&self) -> bool {
        self.ready.get()
    }

    /// Replaces everything served with `entries` (full etcd keys under the configured
    /// prefix, e.g. from [`crate::dns::skydns::endpoint_entries`]), in one atomic swap.
    /// Entries that cannot be served are skipped and returned; each distinct one is
    /// logged and counted once.
    pub fn replace_entries(&self, entries: Vec<(String, SkydnsValue)>) -> Vec<IndexError> {
        let serial = self.next_generation();
        let (snapshot, errors) = Snapshot::from_entries(self.cfg.clone(), entries, serial);
        let snapshot = self.carry_zone_serials(snapshot, serial);
        self.report(&errors);
        self.publish(snapshot);
        self.ready.set(true);
        errors
    }

    /// Like [`IndexHandle::replace_entries`], with a new set of zones: the embedded
    /// server follows the Domains, which come and go while it runs. Prefix and default
    /// TTL stay as configured.
    pub fn replace_zones_and_entries(
        &self,
        zones: &[ZoneConfig],
        entries: Vec<(String, SkydnsValue)>,
    ) -> Result<Vec<IndexError>, IndexError> {
        let cfg = Arc::new(IndexConfig::new(
            self.cfg.prefix(),
            zones,
            self.cfg.default_ttl(),
        )?);
        let serial = self.next_generation();
        let (snapshot, errors) = Snapshot::from_entries(cfg, entries, serial);
        let snapshot = self.carry_zone_serials(snapshot, serial);
        self.report(&errors);
        self.publish(snapshot);
        self.ready.set(true);
        Ok(errors)
    }

    fn report(&self, errors: &[IndexError]) {
        let mut reported = self.reported.lock().expect("reported lock");
        let now: HashSet<String> = errors.iter().map(|e| e.to_string()).collect();
        for e in now.difference(&reported) {
            warn!(error = %e, "skipping a DNS entry that cannot be served");
            self.metrics.malformed.inc();
        }
        *reported = now;
    }

    fn publish(&self, snapshot: Snapshot) {
        self.metrics.index_entries.set(snapshot.len() as i64);
        self.metrics.index_serial.set(i64::from(snapshot.serial()));
        self.current.store(Arc::new(snapshot));
        self.published.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The etcd feed's own copy of the prefix, from which snapshots are built.
struct Mirror {
    cfg: Arc<IndexConfig>,
    entries: Entries,
    variants: CaseVariants,
    /// key -> mod revision of values already reported as malformed.
    malformed: HashMap<String, i64>,
    metrics: DnsMetrics,
    /// Paths put or deleted since the last snapshot, and that snapshot's serial; `None`
    /// after a re-list (everything may have changed).
    changed: Option<(u32, Vec<String>)>,
    /// Revision of the last change to each zone: its SOA serial.
    zones: ZoneRevisions,
}

impl Mirror {
    fn put(&mut self, key: &str, value: &[u8], mod_revision: i64, lease_ttl: Option<i64>) {
        self.bump(key, mod_revision);
        match Service::decode(&self.cfg, key, value) {
            Ok(s) => {
                let s = s.with_lease_ttl(lease_ttl);
                self.malformed.remove(key);
                if let Some((_, paths)) = self.changed.as_mut() {
                    paths.push(s.path().to_string());
                }
                self.variants.put(&mut self.entries, s);
            }
            Err(error) => {
                // The old value is gone from etcd: stop serving it.
                self.remove_path(key);
                if self.malformed.get(key) != Some(&mod_revision) {
                    warn!(%error, mod_revision, "skipping a skydns value that cannot be served");
                    self.metrics.malformed.inc();
                    self.malformed.insert(key.to_string(), mod_revision);
                }
            }
        }
    }

    /// Every put or delete of a zone's key moves that zone's serial to its revision,
    /// even a put of an unchanged value: only what etcd records can be recomputed the
    /// same by every replica and after a restart.
    fn bump(&mut self, key: &str, revision: i64) {
        if let Ok(relative) = codec::key_to_path(key, self.cfg.prefix()) {
            let zone = self.cfg.zone_of_path(&relative.to_ascii_lowercase());
            self.zones.bump(zone, revision);
        }
    }

    fn delete(&mut self, key: &str, mod_revision: i64) {
        self.bump(key, mod_revision);
        self.malformed.remove(key);
        self.remove_path(key);
    }

    fn remove_path(&mut self, key: &str) {
        if let Ok(relative) = codec::key_to_path(key, self.cfg.prefix()) {
            self.variants.remove(&mut self.entries, relative);
            if let Some((_, paths)) = self.changed.as_mut() {
                paths.push(relative.to_ascii_lowercase());
            }
        }
    }

    /// Everything may change (a re-list): the next snapshot carries no change list.
    fn clear(&mut self) {
        self.entries.clear();
        self.variants.clear();
        self.changed = None;
    }

    fn snapshot(&mut self, revision: i64) -> Snapshot {
        // The SOA serial is 32 bits; etcd revisions fit for a long time, and wrap is
        // what serial arithmetic (RFC 1982) expects.
        let serial = revision as u32;
        let snapshot = Snapshot::new(self.cfg.clone(), self.entries.clone(), serial)
            .with_zone_serials(self.zones.serials());
        let changed = self.changed.replace((serial, Vec::new()));
        match changed {
            Some((since, paths)) => snapshot.with_changes(since, paths),
            None => snapshot,
        }
    }
}

enum Event<T> {
    Tick,
    Message(T),
    Stop,
}

const PROGRESS_EVERY: u32 = 5;
/// Revisions of history replayed after a listing to find deletes (see
/// [`ZoneRevisions::replay_start`]): enough for any etcd compacted as Kubernetes does
/// (every 5 minutes), small enough to read in a moment.
const MAX_REPLAY: i64 = 100_000;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Follows the prefix until `cancel` fires. Never returns early: every failure is
/// logged and retried with backoff while the last good snapshot keeps being served.
pub(crate) async fn run_etcd(
    endpoints: Vec<String>,
    security: EtcdSecurity,
    handle: IndexHandle,
    cancel: CancellationToken,
) {
    let metrics = handle.metrics.clone();
    let mut mirror = Mirror {
        cfg: handle.cfg.clone(),
        entries: Entries::new(),
        variants: CaseVariants::default(),
        malformed: HashMap::new(),
        metrics: metrics.clone(),
        changed: None,
        zones: ZoneRevisions::new(handle.cfg.zone_names().count()),
    };
    let prefix = handle.cfg.prefix().to_string();
    let mut store: Option<EtcdStore> = None;
    let mut revision: i64 = 0;
    // Events at or below this revision were already in the listing: they only move
    // zone serials (a delete's revision is in no listing), never the entries.
    let mut replay_until: i64 = 0;
    let mut replay: Option<i64> = None;
    let mut relist: Option<&'static str> = Some("initial");
    let mut backoff = Duration::from_millis(100);
    let mut last_sync = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));

    macro_rules! pause {
        () => {{
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            metrics.watch_lag.set(last_sync.elapsed().as_secs_f64());
        }};
    }

    while !cancel.is_cancelled() {
        let st = match store.as_mut() {
            Some(s) => s,
            None => match EtcdStore::connect_with(&endpoints, &prefix, &security).await {
                Ok(s) => store.insert(s),
                Err(error) => {
                    warn!(%error, "etcd unavailable; serving the last good index");
                    pause!();
                    continue;
                }
            },
        };
        if let Some(reason) = relist {
            match st.load().await {
                Ok(listing) => {
                    let before = mirror.entries.len();
                    mirror.clear();
                    let keys: HashSet<&str> =
                        listing.entries.iter().map(|e| e.key.as_str()).collect();
                    mirror.malformed.retain(|k, _| keys.contains(k.as_str()));
                    let leases = lease_ttls(st, &listing.entries).await;
                    for e in &listing.entries {
                        mirror.put(
                            &e.key,
                            &e.value,
                            e.mod_revision,
                            leases.get(&e.lease).copied(),
                        );
                    }
                    revision = listing.revision;
                    replay_until = revision;
                    replay = mirror.zones.replay_start(revision, MAX_REPLAY);
                    handle.publish(mirror.snapshot(revision));
                    if reason != "initial" {
                        metrics.resyncs.with_label_values(&[reason]).inc();
                    }
                    info!(
                        reason,
                        revision,
                        entries = mirror.entries.len(),
                        before,
                        "loaded the skydns prefix"
                    );
                    relist = None;
                    handle.ready.set(true);
                    last_sync = Instant::now();
                    handle.mark_synced();
                    metrics.etcd_revision.set(revision);
                }
                Err(error) => {
                    warn!(%error, "listing the skydns prefix failed; serving the last good index");
                    store = None;
                    pause!();
                    continue;
                }
            }
        }
        let mut watch = match st.watch(replay.take().unwrap_or(revision + 1)).await {
            Ok(w) => w,
            Err(StoreError::Compacted { compact_revision }) if compact_revision <= replay_until => {
                // The history before the listing is gone: serials stay the listing's
                // (see docs/dns-server.md, "The serial"); watch from the listing on.
                debug!(compact_revision, "no history to replay for zone serials");
                continue;
            }
            Err(StoreError::Compacted { compact_revision }) => {
                info!(
                    revision,
                    compact_revision, "watch start revision compacted; listing again"
                );
                relist = Some("compacted");
                continue;
            }
            Err(error) => {
                warn!(%error, "etcd watch failed; serving the last good index");
                store = None;
                pause!();
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        let mut ticks = 0u32;
        loop {
            let ev = tokio::select! {
                _ = cancel.cancelled() => Event::Stop,
                _ = tick.tick() => Event::Tick,
                r = watch.next() => Event::Message(r),
            };
            match ev {
                Event::Stop => return,
                Event::Tick => {
                    metrics.watch_lag.set(last_sync.elapsed().as_secs_f64());
                    ticks += 1;
                    if ticks.is_multiple_of(PROGRESS_EVERY) {
                        let _ = watch.request_progress().await;
                    }
                }
                Event::Message(Ok(batch)) => {
                    let puts: Vec<&RawEntry> = batch
                        .changes
                        .iter()
                        .filter_map(|c| match c {
                            Change::Put(e) if e.mod_revision > replay_until => Some(e),
                            _ => None,
                        })
                        .collect();
                    let leases = match store.as_mut() {
                        Some(st) => lease_ttls(st, puts.iter().copied()).await,
                        None => HashMap::new(),
                    };
                    for c in &batch.changes {
                        // Replayed history (at or below the listing): a delete's revision
                        // moves its zone's serial; nothing else is applied again.
                        if let Change::Delete { key, mod_revision } = c
                            && *mod_revision <= replay_until
                        {
                            mirror.bump(key, *mod_revision);
                            continue;
                        }
                        if let Change::Put(e) = c
                            && e.mod_revision <= replay_until
                        {
                            continue;
                        }
                        match c {
                            Change::Put(e) => mirror.put(
                                &e.key,
                                &e.value,
                                e.mod_revision,
                                leases.get(&e.lease).copied(),
                            ),
                            Change::Delete { key, mod_revision } => {
                                mirror.delete(key, *mod_revision)
                            }
                        }
                    }
                    revision = revision.max(batch.revision);
                    if !batch.changes.is_empty() {
                        handle.publish(mirror.snapshot(revision));
                        debug!(
                            revision,
                            changes = batch.changes.len(),
                            "applied etcd changes"
                        );
                    }
                    last_sync = Instant::now();
                    handle.mark_synced();
                    metrics.watch_lag.set(0.0);
                    metrics.etcd_revision.set(revision);
                }
                Event::Message(Err(StoreError::Compacted { compact_revision })) => {
                    info!(revision, compact_revision, "watch compacted; listing again");
                    relist = Some("compacted");
                    break;
                }
                Event::Message(Err(error)) => {
                    warn!(%error, revision, "etcd watch broke; resuming from the last applied revision");
                    metrics.resyncs.with_label_values(&["rewatch"]).inc();
                    store = None;
                    pause!();
                    break;
                }
            }
        }
    }
}
