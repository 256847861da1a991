//! The runtime every kubefed controller runs on: `kube::runtime::Controller` (a
//! de-duplicating scheduler, bounded concurrency, never two reconciles of one object at
//! once, reconciles held until the store has listed) plus the conventions kubefed adds:
//!
//! - triggers come from shared stores and member events ([`Trigger`]); a controller never
//!   opens a watch of its own;
//! - each controller has one error enum whose variants say what to do next
//!   ([`ControllerError::retry`]) and name a metric label ([`ControllerError::reason`]);
//! - an error requeues its object with a per-object exponential backoff with jitter,
//!   reset by the next success, so a permanently failing object costs less and less;
//! - every controller reports reconciles by result, errors by reason, reconcile duration,
//!   queue depth and reconciles in flight ([`ControllerMetrics`]).
//!
//! Queue depth counts objects triggered but not yet started: kube's scheduler keeps its
//! queue private, so the count is kept beside it from the same triggers. Requeues that
//! wait for their backoff are not counted (client-go's workqueue does not count delayed
//! items either).

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, BoxStream};
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::watch::{Change, Shared};

/// What the runtime does after a failed reconcile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Requeue with the object's exponential backoff (1 s doubling to 5 min).
    Backoff,
    /// Something this process is waiting for (a store to list, a member to connect):
    /// requeue soon and gently (250 ms doubling to 5 s).
    Soon,
    /// Nothing to retry until the object or one of its inputs changes.
    Never,
}

/// The error of one controller.
pub trait ControllerError: std::error::Error + Send + Sync + 'static {
    /// The `reason` label of `kubefed_controller_reconcile_errors_total`.
    fn reason(&self) -> &'static str;
    fn retry(&self) -> Retry {
        Retry::Backoff
    }
}

/// Why an object should be reconciled.
pub enum Trigger<K: Resource> {
    One(ObjectRef<K>),
    /// Every object of the controller's store.
    All,
}

/// One object's trigger for every change of a shared store of the controller's own kind.
pub fn self_triggers<K>(shared: &Shared<K>) -> BoxStream<'static, Trigger<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Send + Sync + Default,
{
    map_changes(shared, |o| vec![ObjectRef::from_obj(o)])
}

/// Triggers from another shared store, through `map` (and every object after a re-list).
pub fn map_changes<O, K, F>(shared: &Shared<O>, map: F) -> BoxStream<'static, Trigger<K>>
where
    O: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    O::DynamicType: Clone + Eq + Hash + Send + Sync,
    K: Resource + 'static,
    K::DynamicType: Send,
    F: Fn(&O) -> Vec<ObjectRef<K>> + Send + 'static,
{
    shared
        .subscribe()
        .flat_map(move |c| {
            stream::iter(match c {
                Change::Applied(o) | Change::Deleted(o) => {
                    map(&o).into_iter().map(Trigger::One).collect()
                }
                Change::Relisted => vec![Trigger::All],
            })
        })
        .boxed()
}

/// Every object whenever a shared store of another kind changes at all.
pub fn all_on_change<O, K>(shared: &Shared<O>) -> BoxStream<'static, Trigger<K>>
where
    O: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    O::DynamicType: Clone + Eq + Hash + Send + Sync,
    K: Resource + 'static,
    K::DynamicType: Send,
{
    shared.subscribe().map(|_| Trigger::All).boxed()
}

#[derive(Clone)]
pub struct ControllerMetrics {
    reconciles: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
    queue: IntGaugeVec,
    in_flight: IntGaugeVec,
}

impl ControllerMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let reconciles = IntCounterVec::new(
            Opts::new(
                "kubefed_controller_reconciles_total",
                "Reconciles by controller and result (success, error)",
            ),
            &["controller", "result"],
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "kubefed_controller_reconcile_errors_total",
                "Failed reconciles by controller and reason",
            ),
            &["controller", "reason"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "kubefed_controller_reconcile_duration_seconds",
                "Duration of reconciles by controller",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["controller"],
        )?;
        let queue = IntGaugeVec::new(
            Opts::new(
                "kubefed_controller_queue_depth",
                "Objects triggered and waiting for a reconcile, by controller",
            ),
            &["controller"],
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new(
                "kubefed_controller_reconciles_in_flight",
                "Reconciles running now, by controller",
            ),
            &["controller"],
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(queue.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(ControllerMetrics {
            reconciles,
            errors,
            duration,
            queue,
            in_flight,
        })
    }
}

/// A controller to run: its name (metric label, log field), the shared store of its
/// kind, what triggers it and how many objects it reconciles at once.
pub struct Spec<K: Resource + 'static>
where
    K::DynamicType: Clone + Eq + Hash,
{
    pub name: &'static str,
    pub source: Shared<K>,
    pub triggers: Vec<BoxStream<'static, Trigger<K>>>,
    /// 0 = unbounded.
    pub concurrency: u16,
}

type Key = (Option<String>, String);

fn key_of<K: Resource>(r: &ObjectRef<K>) -> Key {
    (r.namespace.clone(), r.name.clone())
}

/// Per-object retry state and the queue-depth bookkeeping.
struct State {
    name: &'static str,
    metrics: ControllerMetrics,
    backoffs: Mutex<HashMap<Key, (Retry, backon::ExponentialBackoff)>>,
    queued: Mutex<HashSet<Key>>,
}

impl State {
    fn queued(&self, k: Key) {
        let mut q = self.queued.lock().unwrap();
        q.insert(k);
        self.metrics
            .queue
            .with_label_values(&[self.name])
            .set(q.len() as i64);
    }

    fn started(&self, k: &Key) {
        let mut q = self.queued.lock().unwrap();
        q.remove(k);
        self.metrics
            .queue
            .with_label_values(&[self.name])
            .set(q.len() as i64);
    }

    /// A success, or the object is gone: its backoff starts over.
    fn succeeded(&self, k: &Key) {
        self.backoffs.lock().unwrap().remove(k);
    }

    /// The delay before the next attempt, `None` to wait for a change.
    fn next_delay(&self, k: Key, retry: Retry) -> Option<Duration> {
        let build = |retry| {
            let (min, max) = match retry {
                Retry::Soon => (Duration::from_millis(250), Duration::from_secs(5)),
                _ => (Duration::from_secs(1), Duration::from_secs(300)),
            };
            backon::BackoffBuilder::build(
                backon::ExponentialBuilder::default()
                    .with_min_delay(min)
                    .with_max_delay(max)
                    .with_factor(2.0)
                    .with_jitter()
                    .without_max_times(),
            )
        };
        if retry == Retry::Never {
            self.backoffs.lock().unwrap().remove(&k);
            return None;
        }
        let mut b = self.backoffs.lock().unwrap();
        let entry = b.entry(k).or_insert_with(|| (retry, build(retry)));
        if entry.0 != retry {
            *entry = (retry, build(retry));
        }
        entry.1.next()
    }
}

struct Inner<C, F> {
    ctx: Arc<C>,
    reconcile: F,
    state: Arc<State>,
}

/// Runs `spec` until `cancel`: reconciles are aborted at once on cancel (every controller
/// is idempotent, so an interrupted write is redone by the next leader). `on_missing` is
/// told about a triggered object that is no longer in the store (it was deleted).
pub async fn run<K, C, F, Fut, E>(
    spec: Spec<K>,
    metrics: ControllerMetrics,
    ctx: Arc<C>,
    reconcile: F,
    on_missing: impl Fn(Option<&str>, &str) + Send + 'static,
    cancel: CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + Hash + Debug + Unpin + Send + Sync,
    C: Send + Sync + 'static,
    F: Fn(Arc<K>, Arc<C>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: ControllerError,
{
    let name = spec.name;
    // Start once the store has listed: kube's runtime waits for that itself, but its wait
    // is woken only if it is the store's sole waiter (see `watch::Shared`).
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = spec.source.ready() => {}
    }
    let state = Arc::new(State {
        name,
        metrics: metrics.clone(),
        backoffs: Default::default(),
        queued: Default::default(),
    });
    let store = spec.source.store();
    let dyntype = spec.source.dyntype();
    let st = state.clone();
    let dt = dyntype.clone();
    // Everything once at the start: changes announced before this controller subscribed
    // (the initial list above all) reached nobody.
    let triggers = stream::once(std::future::ready(Trigger::All))
        .chain(stream::select_all(spec.triggers))
        .flat_map(move |t| {
            let refs: Vec<ObjectRef<K>> = match t {
                Trigger::One(r) => vec![r],
                Trigger::All => store
                    .state()
                    .iter()
                    .map(|o| ObjectRef::from_obj_with(&**o, dt.clone()))
                    .collect(),
            };
            for r in &refs {
                st.queued(key_of(r));
            }
            stream::iter(refs)
        })
        .boxed();
    let controller = Controller::for_stream_with(
        stream::empty::<Result<K, watcher::Error>>(),
        spec.source.store(),
        dyntype.clone(),
    )
    .reconcile_on(triggers)
    .with_config(controller::Config::default().concurrency(spec.concurrency));

    let inner = Arc::new(Inner {
        ctx,
        reconcile,
        state: state.clone(),
    });
    let dt = dyntype.clone();
    let results = controller.run(
        move |obj: Arc<K>, inner: Arc<Inner<C, F>>| {
            let key = key_of(&ObjectRef::from_obj_with(&*obj, dt.clone()));
            inner.state.started(&key);
            let fut = (inner.reconcile)(obj, inner.ctx.clone());
            let state = inner.state.clone();
            async move {
                let m = &state.metrics;
                let in_flight = m.in_flight.with_label_values(&[state.name]);
                in_flight.inc();
                let started = Instant::now();
                let result = fut.await;
                in_flight.dec();
                m.duration
                    .with_label_values(&[state.name])
                    .observe(started.elapsed().as_secs_f64());
                match &result {
                    Ok(_) => {
                        m.reconciles
                            .with_label_values(&[state.name, "success"])
                            .inc();
                        state.succeeded(&key);
                    }
                    Err(e) => {
                        m.reconciles.with_label_values(&[state.name, "error"]).inc();
                        m.errors.with_label_values(&[state.name, e.reason()]).inc();
                    }
                }
                result
            }
        },
        move |obj: Arc<K>, err: &E, inner: Arc<Inner<C, F>>| {
            let r = ObjectRef::from_obj_with(&*obj, dyntype.clone());
            let delay = inner.state.next_delay(key_of(&r), err.retry());
            // Logged here rather than from the result stream, so the line can say when the
            // next attempt comes: one line per backoff step, the error's own one-line text.
            let name = inner.state.name;
            let retry_in = delay.map_or_else(
                || "on the next change".to_string(),
                |d| format!("{:.1}s", d.as_secs_f64()),
            );
            if err.retry() == Retry::Soon {
                debug!(controller = name, object = %r, error = %err, retry_in, "not ready yet");
            } else {
                warn!(controller = name, object = %r, reason = err.reason(), error = %err, retry_in, "reconcile failed");
            }
            match delay {
                Some(d) => Action::requeue(d),
                None => Action::await_change(),
            }
        },
        inner,
    );
    let mut results = std::pin::pin!(results);
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            n = results.next() => n,
        };
        match next {
            None => return,
            Some(Ok(_)) => {}
            Some(Err(controller::Error::ObjectNotFound(r))) => {
                let key = (r.namespace.clone(), r.name.clone());
                state.started(&key);
                state.succeeded(&key);
                on_missing(r.namespace.as_deref(), &r.name);
            }
            // Logged by the error policy above.
            Some(Err(controller::Error::ReconcilerFailed(..))) => {}
            Some(Err(e)) => warn!(controller = name, error = %e, "controller runtime error"),
        }
    }
}

/// A stream of `()` from a stream of anything, for [`Trigger::All`] sources.
pub fn all_on<S, K>(s: S) -> BoxStream<'static, Trigger<K>>
where
    S: Stream + Send + 'static,
    K: Resource + 'static,
    K::DynamicType: Send,
{
    s.map(|_| Trigger::All).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        let registry = Registry::new();
        State {
            name: "test",
            metrics: ControllerMetrics::register(&registry).unwrap(),
            backoffs: Default::default(),
            queued: Default::default(),
        }
    }

    fn k(n: &str) -> Key {
        (Some("ns".into()), n.into())
    }

    #[test]
    fn backoff_grows_per_object_and_a_success_resets_it() {
        let s = state();
        let first = s.next_delay(k("a"), Retry::Backoff).unwrap();
        let mut last = first;
        for _ in 0..5 {
            last = s.next_delay(k("a"), Retry::Backoff).unwrap();
        }
        // Jitter adds at most one more delay's worth; five doublings beat it.
        assert!(last > first * 4, "{first:?} then {last:?}");
        // Another object starts from the bottom.
        assert!(s.next_delay(k("b"), Retry::Backoff).unwrap() < Duration::from_secs(3));
        s.succeeded(&k("a"));
        assert!(s.next_delay(k("a"), Retry::Backoff).unwrap() < Duration::from_secs(3));
    }

    #[test]
    fn soon_is_gentle_and_capped_and_never_waits_for_a_change() {
        let s = state();
        let mut max = Duration::ZERO;
        for _ in 0..20 {
            max = max.max(s.next_delay(k("a"), Retry::Soon).unwrap());
        }
        assert!(max <= Duration::from_secs(10), "{max:?}");
        assert_eq!(s.next_delay(k("a"), Retry::Never), None);
    }

    #[test]
    fn queue_depth_counts_each_object_once_until_it_starts() {
        let s = state();
        s.queued(k("a"));
        s.queued(k("a"));
        s.queued(k("b"));
        let depth = || s.metrics.queue.with_label_values(&["test"]).get();
        assert_eq!(depth(), 2);
        s.started(&k("a"));
        assert_eq!(depth(), 1);
    }
}
