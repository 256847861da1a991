//! Watches: one watch and one reflector store per resource, shared by every controller
//! that reads it ([`Shared`]), with a backoff that recovers within seconds once an API
//! server is back ([`backoff`]).
//!
//! A [`Shared`] store only ever holds a complete list: until the first list it is not
//! ready, and across watch errors it keeps the last complete state (the reflector swaps
//! in a re-list atomically). Readiness is tracked here rather than with
//! `Store::wait_until_ready`, which wakes only the last of several concurrent waiters
//! (it parks them on one oneshot receiver): with one store shared by several tasks, the
//! others would wait for ever. Readers therefore never mistake an outage for "no objects".
//! Changes are announced on a broadcast channel: every applied or deleted object, and
//! [`Change::Relisted`] after a (re-)list, because objects deleted while the watch was
//! down vanish from the store without a delete event. A subscriber that falls behind
//! gets `Relisted` too, so it re-reads everything instead of missing an event.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::utils::{Backoff, ResetTimerBackoff};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher::ExponentialBackoff};
use serde::de::DeserializeOwned;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, warn};

/// How many changes a slow subscriber may fall behind before it is told to re-read all.
const CHANNEL_CAPACITY: usize = 1024;

/// The backoff of every watch: 250 ms doubling to at most 5 s, with jitter, reset after
/// a minute without errors. kube's default (800 ms to 30 s, client-go's) waits up to 30 s
/// after an API server comes back from a restart; a federation wants to notice within
/// seconds, and one list per 5 s against an absent server costs nothing.
pub fn backoff() -> impl Backoff {
    let exp: ExponentialBackoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(Duration::from_secs(5))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into();
    ResetTimerBackoff::new(exp, Duration::from_secs(60))
}

/// What happened to a shared store.
#[derive(Debug)]
pub enum Change<K> {
    Applied(Arc<K>),
    Deleted(Arc<K>),
    /// The store was (re-)listed, or this subscriber fell behind: anything may have
    /// changed, deletions included.
    Relisted,
}

impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Applied(o) => Change::Applied(o.clone()),
            Change::Deleted(o) => Change::Deleted(o.clone()),
            Change::Relisted => Change::Relisted,
        }
    }
}

/// One watch of a resource, its reflector store and a broadcast of its changes.
pub struct Shared<K>
where
    K: Resource + 'static,
    K::DynamicType: Clone + Eq + Hash,
{
    store: Store<K>,
    dyntype: K::DynamicType,
    tx: broadcast::Sender<Change<K>>,
    listed: watch::Receiver<bool>,
    cancel: CancellationToken,
}

impl<K> Clone for Shared<K>
where
    K: Resource + 'static,
    K::DynamicType: Clone + Eq + Hash,
{
    fn clone(&self) -> Self {
        Shared {
            store: self.store.clone(),
            dyntype: self.dyntype.clone(),
            tx: self.tx.clone(),
            listed: self.listed.clone(),
            cancel: self.cancel.clone(),
        }
    }
}

impl<K> Shared<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Default + Send + Sync,
{
    /// Starts watching `api` until `cancel`.
    pub fn start(api: Api<K>, cfg: watcher::Config, cancel: CancellationToken) -> Self {
        Self::start_with(api, cfg, Default::default(), cancel)
    }
}

impl<K> Shared<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync,
{
    /// [`Shared::start`] for a type known at run time.
    pub fn start_with(
        api: Api<K>,
        cfg: watcher::Config,
        dyntype: K::DynamicType,
        cancel: CancellationToken,
    ) -> Self {
        let writer = Writer::<K>::new(dyntype.clone());
        let store = writer.as_reader();
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let (listed_tx, listed) = watch::channel(false);
        let kind = K::kind(&dyntype).to_string();
        let span = tracing::info_span!("watch", kind = %kind);
        tokio::spawn(
            run(
                api,
                cfg,
                writer,
                tx.clone(),
                listed_tx,
                cancel.clone(),
                kind,
            )
            .instrument(span),
        );
        Shared {
            store,
            dyntype,
            tx,
            listed,
            cancel,
        }
    }

    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    pub fn dyntype(&self) -> K::DynamicType {
        self.dyntype.clone()
    }

    /// Listed at least once (and so complete, if possibly stale).
    pub fn is_ready(&self) -> bool {
        *self.listed.borrow()
    }

    /// Resolves once listed, or never if the watch stops first.
    pub async fn ready(&self) {
        let mut listed = self.listed.clone();
        if listed.wait_for(|l| *l).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Changes from now on; falling behind yields [`Change::Relisted`].
    pub fn subscribe(&self) -> BoxStream<'static, Change<K>> {
        changes(self.tx.subscribe()).boxed()
    }

    /// Stops the watch (the store keeps its last state).
    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

/// A broadcast receiver as a stream; lagging becomes `Relisted`.
pub fn changes<K: Send + Sync + 'static>(
    rx: broadcast::Receiver<Change<K>>,
) -> impl Stream<Item = Change<K>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(c) => Some((c, rx)),
            Err(broadcast::error::RecvError::Lagged(_)) => Some((Change::Relisted, rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

async fn run<K>(
    api: Api<K>,
    cfg: watcher::Config,
    writer: Writer<K>,
    tx: broadcast::Sender<Change<K>>,
    listed: watch::Sender<bool>,
    cancel: CancellationToken,
    kind: String,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync,
{
    let stream = watcher::watcher(api, cfg).backoff(backoff());
    let mut stream = std::pin::pin!(reflector::reflector(writer, stream));
    let mut failing = false;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            n = stream.next() => n,
        };
        // No receivers is fine: nobody subscribed yet.
        match next {
            Some(Ok(e)) => {
                if failing {
                    debug!(%kind, "watch recovered");
                    failing = false;
                }
                match e {
                    Event::Apply(o) | Event::InitApply(o) => {
                        let _ = tx.send(Change::Applied(Arc::new(o)));
                    }
                    Event::Delete(o) => {
                        let _ = tx.send(Change::Deleted(Arc::new(o)));
                    }
                    Event::InitDone => {
                        // The reflector has swapped the list into the store already.
                        listed.send_replace(true);
                        let _ = tx.send(Change::Relisted);
                    }
                    Event::Init => {}
                }
            }
            Some(Err(e)) => {
                // Logged once per outage at warn, then at debug: a dead API server must not
                // flood the log with one line per retry.
                if failing {
                    debug!(%kind, error = %super::BriefWatch(&e), "watch failed; retrying with backoff");
                } else {
                    warn!(%kind, error = %super::BriefWatch(&e), "watch failed; retrying with backoff");
                    failing = true;
                }
            }
            None => return,
        }
    }
}
