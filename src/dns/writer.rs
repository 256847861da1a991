//! The skydns writer: DNSEndpoints from the host cluster into etcd, in the layout
//! ExternalDNS's coredns provider writes (`skydns::codec::endpoint_entries`), so CoreDNS's
//! etcd plugin, ExternalDNS and `kubefed dns-server` share one etcd.
//!
//! Ownership: every key this writer puts has a marker key
//! `<owner prefix>/<owner id><key>` (outside the skydns prefix, so no DNS server sees
//! it), written in the same transaction. The writer only ever overwrites or deletes keys
//! that carry its marker: another writer's records are never touched, and a name another
//! writer already serves is reported as a conflict, not taken over.
//!
//! Safety: the desired state is computed only from a DNSEndpoint store that has completed
//! its initial list; the reflector keeps the last complete state across watch errors,
//! so a slow or absent API server never looks like "no objects" (no mass deletion).
//! Each sync diffs against etcd as it is, so a restart converges without rewriting
//! anything that is already right, and a target removed from an endpoint (or a cluster
//! gone) has its key deleted (unlike ExternalDNS: external-dns#808).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::dns::skydns::security::EtcdSecurity;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp};
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use kube::runtime::reflector::Store;
use prometheus::{IntCounterVec, Opts, Registry};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::multiclusterdns::DNSEndpoint;
use crate::dns::skydns::codec::{self, SkydnsValue};
use crate::dns::skydns::store::list_prefix;
use crate::host::HostIndex;

/// Where ownership markers live unless configured otherwise.
pub const DEFAULT_OWNER_PREFIX: &str = "/kubefed-owners";

#[derive(Clone, Debug)]
pub struct WriterConfig {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub owner_prefix: String,
    /// Distinguishes several control planes writing one etcd.
    pub owner_id: String,
    /// TLS and credentials.
    pub security: EtcdSecurity,
}

impl WriterConfig {
    pub fn new(endpoints: Vec<String>, prefix: &str) -> Self {
        WriterConfig {
            endpoints,
            prefix: codec::normalize_prefix(prefix),
            owner_prefix: DEFAULT_OWNER_PREFIX.into(),
            owner_id: "kubefed".into(),
            security: EtcdSecurity::default(),
        }
    }

    fn marker(&self, key: &str) -> String {
        format!(
            "{}/{}{}",
            self.owner_prefix.trim_end_matches('/'),
            self.owner_id,
            key
        )
    }

    fn marker_root(&self) -> String {
        format!(
            "{}/{}/",
            self.owner_prefix.trim_end_matches('/'),
            self.owner_id
        )
    }
}

#[derive(Clone)]
pub struct WriterMetrics {
    ops: IntCounterVec,
}

impl WriterMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let ops = IntCounterVec::new(
            Opts::new(
                "kubefed_skydns_writer_ops_total",
                "etcd operations of the skydns writer by kind",
            ),
            &["op"],
        )?;
        registry.register(Box::new(ops.clone()))?;
        Ok(WriterMetrics { ops })
    }
}

/// One change to etcd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: SkydnsValue,
    },
    Delete {
        key: String,
    },
    /// The key is wanted but another writer owns it: left alone, reported.
    Conflict {
        key: String,
    },
}

/// What to do, given what the DNSEndpoints want, what etcd holds under the prefix and
/// which of those keys carry our marker. Pure.
pub fn plan(
    desired: &BTreeMap<String, SkydnsValue>,
    current: &BTreeMap<String, Option<SkydnsValue>>,
    owned: &std::collections::BTreeSet<String>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    for (key, value) in desired {
        match current.get(key) {
            Some(_) if !owned.contains(key) => ops.push(Op::Conflict { key: key.clone() }),
            Some(Some(v)) if v == value => {}
            _ => ops.push(Op::Put {
                key: key.clone(),
                value: value.clone(),
            }),
        }
    }
    for key in owned {
        if !desired.contains_key(key) {
            ops.push(Op::Delete { key: key.clone() });
        }
    }
    ops
}

/// The skydns entries of every DNSEndpoint. Two endpoints with the same name and target
/// map to one key; the lower TTL wins so that neither promises more than it should.
pub fn desired_entries<'a>(
    eps: impl IntoIterator<Item = &'a DNSEndpoint>,
    prefix: &str,
) -> BTreeMap<String, SkydnsValue> {
    let mut out: BTreeMap<String, SkydnsValue> = BTreeMap::new();
    for ep in eps {
        for e in &ep.spec.endpoints {
            for (k, v) in codec::endpoint_entries(e, prefix) {
                match out.get_mut(&k) {
                    Some(old) if old.ttl != 0 && (v.ttl == 0 || v.ttl >= old.ttl) => {}
                    Some(old) => *old = v,
                    None => {
                        out.insert(k, v);
                    }
                }
            }
        }
    }
    out
}

/// Runs until `cancel`, following the host index's DNSEndpoints.
pub async fn run(
    index: Arc<HostIndex>,
    cfg: WriterConfig,
    metrics: WriterMetrics,
    cancel: CancellationToken,
) {
    let mut changes = std::pin::pin!(index.endpoints.subscribe());
    tokio::select! { _ = cancel.cancelled() => return, _ = index.endpoints.ready() => {} }
    let store = index.endpoints.store();

    let mut client: Option<Client> = None;
    let mut backoff = Duration::from_millis(500);
    // A safety net for keys changed behind our back; the DNSEndpoint watch drives writes.
    let mut resync = tokio::time::interval(Duration::from_secs(300));
    resync.tick().await;
    loop {
        if client.is_none() {
            // Every etcd request is bounded: a stopped etcd fails the sync (retried with
            // backoff) instead of holding the writer.
            let opts = ConnectOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(10));
            match cfg.security.apply(opts, &cfg.endpoints) {
                Ok(opts) => match Client::connect(&cfg.endpoints, Some(opts)).await {
                    Ok(c) => client = Some(c),
                    Err(e) => warn!(error = %e, "connecting to etcd"),
                },
                Err(e) => warn!(error = %e, "etcd TLS or credentials"),
            }
        }
        let ok = match client.as_mut() {
            Some(c) => match sync(c, &store, &cfg, &metrics).await {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, "writing skydns records; retrying");
                    metrics.ops.with_label_values(&["error"]).inc();
                    false
                }
            },
            None => false,
        };
        let wait = if ok {
            backoff = Duration::from_millis(500);
            None
        } else {
            backoff = (backoff * 2).min(Duration::from_secs(15));
            Some(backoff)
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            Some(_) = changes.next() => {
                // Let a burst of DNSEndpoint changes settle into one sync.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while changes.next().now_or_never().flatten().is_some() {}
            }
            _ = resync.tick() => {}
            _ = async { match wait { Some(d) => tokio::time::sleep(d).await, None => std::future::pending().await } } => {}
        }
    }
}

async fn sync(
    client: &mut Client,
    store: &Store<DNSEndpoint>,
    cfg: &WriterConfig,
    metrics: &WriterMetrics,
) -> Result<(), etcd_client::Error> {
    let state = store.state();
    let desired = desired_entries(state.iter().map(|e| e.as_ref()), &cfg.prefix);

    let range_prefix = format!("{}/", cfg.prefix.trim_end_matches('/'));
    let (_, listing) = list_prefix(client, &range_prefix).await?;
    let current: BTreeMap<String, Option<SkydnsValue>> = listing
        .into_iter()
        .map(|e| (e.key, SkydnsValue::decode(&e.value).ok()))
        .collect();
    let root = cfg.marker_root();
    let (_, markers) = list_prefix(client, &root).await?;
    let owned: std::collections::BTreeSet<String> = markers
        .into_iter()
        .filter_map(|e| {
            e.key
                .strip_prefix(root.trim_end_matches('/'))
                .map(str::to_string)
        })
        .collect();

    let ops = plan(&desired, &current, &owned);
    let mut conflicts = 0;
    for op in ops {
        match op {
            Op::Put { key, value } => {
                let marker = cfg.marker(&key);
                // Only if the key is still absent or still ours: a racing writer wins.
                let txn = Txn::new()
                    .when(vec![Compare::version(key.as_str(), CompareOp::Equal, 0)])
                    .and_then(vec![
                        TxnOp::put(key.as_str(), value.encode(), None),
                        TxnOp::put(marker.as_str(), "", None),
                    ])
                    .or_else(vec![TxnOp::get(marker.as_str(), None)]);
                let resp = client.txn(txn).await?;
                if !resp.succeeded() {
                    // The key exists; overwrite only when our marker is there.
                    let txn = Txn::new()
                        .when(vec![Compare::version(
                            marker.as_str(),
                            CompareOp::Greater,
                            0,
                        )])
                        .and_then(vec![TxnOp::put(key.as_str(), value.encode(), None)]);
                    if !client.txn(txn).await?.succeeded() {
                        conflicts += 1;
                        continue;
                    }
                }
                metrics.ops.with_label_values(&["put"]).inc();
            }
            Op::Delete { key } => {
                let marker = cfg.marker(&key);
                client
                    .txn(Txn::new().and_then(vec![
                        TxnOp::delete(key.as_str(), None),
                        TxnOp::delete(marker.as_str(), None),
                    ]))
                    .await?;
                metrics.ops.with_label_values(&["delete"]).inc();
            }
            Op::Conflict { key } => {
                conflicts += 1;
                warn!(key = %key, "skydns key exists and belongs to another writer; left alone");
            }
        }
    }
    if conflicts > 0 {
        metrics
            .ops
            .with_label_values(&["conflict"])
            .inc_by(conflicts);
    }
    info!(records = desired.len(), "skydns in sync");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn v(host: &str) -> SkydnsValue {
        SkydnsValue::host(host)
    }

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, SkydnsValue> {
        entries.iter().map(|(k, h)| (k.to_string(), v(h))).collect()
    }

    #[test]
    fn unchanged_owned_keys_are_not_rewritten() {
        let desired = map(&[("/skydns/com/example/a/1", "10.0.0.1")]);
        let current = desired
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let owned = desired.keys().cloned().collect();
        assert_eq!(plan(&desired, &current, &owned), vec![]);
    }

    #[test]
    fn new_changed_and_gone_targets() {
        let desired = map(&[
            ("/skydns/com/example/a/1", "10.0.0.1"),
            ("/skydns/com/example/a/2", "10.0.0.9"),
        ]);
        let mut current = BTreeMap::new();
        current.insert("/skydns/com/example/a/2".to_string(), Some(v("10.0.0.2")));
        current.insert("/skydns/com/example/a/3".to_string(), Some(v("10.0.0.3")));
        let owned: BTreeSet<String> = ["/skydns/com/example/a/2", "/skydns/com/example/a/3"]
            .map(String::from)
            .into();
        assert_eq!(
            plan(&desired, &current, &owned),
            vec![
                Op::Put {
                    key: "/skydns/com/example/a/1".into(),
                    value: v("10.0.0.1")
                },
                Op::Put {
                    key: "/skydns/com/example/a/2".into(),
                    value: v("10.0.0.9")
                },
                Op::Delete {
                    key: "/skydns/com/example/a/3".into()
                },
            ]
        );
    }

    #[test]
    fn another_writers_keys_are_never_touched() {
        let desired = map(&[("/skydns/com/example/a/1", "10.0.0.1")]);
        let mut current = BTreeMap::new();
        current.insert("/skydns/com/example/a/1".to_string(), Some(v("192.0.2.1")));
        current.insert("/skydns/com/example/b/x".to_string(), Some(v("192.0.2.2")));
        let owned = BTreeSet::new();
        assert_eq!(
            plan(&desired, &current, &owned),
            vec![Op::Conflict {
                key: "/skydns/com/example/a/1".into()
            }]
        );
    }

    #[test]
    fn empty_desired_deletes_only_owned_keys() {
        let desired = BTreeMap::new();
        let mut current = BTreeMap::new();
        current.insert("/skydns/com/example/a/1".to_string(), Some(v("10.0.0.1")));
        current.insert("/skydns/com/example/b/1".to_string(), Some(v("10.0.0.2")));
        let owned: BTreeSet<String> = ["/skydns/com/example/a/1".to_string()].into();
        assert_eq!(
            plan(&desired, &current, &owned),
            vec![Op::Delete {
                key: "/skydns/com/example/a/1".into()
            }]
        );
    }

    #[test]
    fn same_name_and_target_in_two_endpoints_keeps_the_lower_ttl() {
        let ep = |ttl| {
            let mut e = DNSEndpoint::new("x", Default::default());
            e.spec
                .endpoints
                .push(crate::api::multiclusterdns::Endpoint {
                    dns_name: "a.example.com".into(),
                    targets: vec!["10.0.0.1".into()],
                    record_type: "A".into(),
                    record_ttl: ttl,
                    labels: Default::default(),
                });
            e
        };
        let (a, b) = (ep(300), ep(60));
        let d = desired_entries([&a, &b], "/skydns");
        assert_eq!(d.len(), 1);
        assert_eq!(d.values().next().unwrap().ttl, 60);
        let d = desired_entries([&b, &a], "/skydns");
        assert_eq!(d.values().next().unwrap().ttl, 60);
    }
}
