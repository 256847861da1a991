//! The embedded DNS feed: `kubefed controller-manager --dns-listen` serves the names of
//! every DNSEndpoint in-process, with no etcd. Zones are the Domains of the KubeFed
//! namespace (their `nameServer` becomes the zone's NS), plus any `--dns-zone`, plus the
//! zone a record last published in when its Domain has been deleted (the record keeps
//! `status.domain` and its DNSEndpoint then, so the etcd path keeps the names too: both
//! paths answer alike). The index is rebuilt from the host index's stores on each change,
//! through the same skydns entries the etcd writer writes.
//!
//! It runs on every replica and reads nothing but the host index, whose stores keep
//! their last complete state through any outage: losing the host or the lease never
//! empties the answers.

use std::time::Duration;

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::admin::http::Readiness;
use crate::api::multiclusterdns::Domain;
use crate::dns::server::{IndexHandle, ZoneConfig};
use crate::dns::skydns::codec::DEFAULT_PREFIX;
use crate::dns::writer::desired_entries;
use crate::host::HostIndex;

/// Zones from Domains and extra zone names, de-duplicated (a Domain's name server wins).
pub fn zones(domains: &[Domain], extra: &[String]) -> Vec<ZoneConfig> {
    let mut out: std::collections::BTreeMap<String, ZoneConfig> = std::collections::BTreeMap::new();
    for z in extra {
        let name = z.trim_end_matches('.').to_lowercase();
        out.entry(name.clone())
            .or_insert_with(|| ZoneConfig::new(name));
    }
    for d in domains {
        let name = d.domain.trim_end_matches('.').to_lowercase();
        if name.is_empty() {
            continue;
        }
        let zone = out
            .entry(name.clone())
            .or_insert_with(|| ZoneConfig::new(name));
        if let Some(ns) = d.name_server.as_ref().filter(|n| !n.is_empty())
            && !zone.nameservers.contains(ns)
        {
            zone.nameservers.push(ns.clone());
        }
    }
    out.into_values().collect()
}

/// Runs until `cancel`, keeping `index` equal to the host's DNSEndpoints; `loaded` is set
/// once the first complete set of names is served.
pub async fn run(
    host: Arc<HostIndex>,
    extra_zones: Vec<String>,
    index: IndexHandle,
    loaded: Readiness,
    cancel: CancellationToken,
) {
    let mut changes = std::pin::pin!(futures::stream::select_all([
        host.endpoints.subscribe().map(|_| ()).boxed(),
        host.domains.subscribe().map(|_| ()).boxed(),
        host.service_records.subscribe().map(|_| ()).boxed(),
    ]));
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = async {
            host.endpoints.ready().await;
            host.domains.ready().await;
            host.service_records.ready().await;
        } => {}
    }
    let (eps, doms, recs) = (
        host.endpoints.store(),
        host.domains.store(),
        host.service_records.store(),
    );
    // What the index was last built from: an event that changes nothing DNS serves (a
    // label, a status write, a watch re-list) keeps the snapshot, its SOA serial and
    // the UDP response store.
    let mut served = None;
    loop {
        let domains: Vec<Domain> = doms.state().iter().map(|d| (**d).clone()).collect();
        let mut extra = extra_zones.clone();
        extra.extend(
            recs.state()
                .iter()
                .filter_map(|r| r.status.as_ref())
                .map(|s| s.domain.clone())
                .filter(|d| !d.is_empty()),
        );
        let zones = zones(&domains, &extra);
        let entries = desired_entries(eps.state().iter().map(|e| e.as_ref()), DEFAULT_PREFIX);
        let desired = (zones, entries);
        if served.as_ref() != Some(&desired) {
            let (zones, entries) = &desired;
            let all = entries
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            match index.replace_zones_and_entries(zones, all) {
                Ok(_) => {
                    info!(
                        zones = zones.len(),
                        entries = entries.len(),
                        "embedded DNS index updated"
                    );
                    served = Some(desired);
                    loaded.set(true);
                }
                Err(e) => {
                    warn!(error = %e, "a Domain is not a valid zone; keeping the previous index")
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            got = changes.next() => {
                if got.is_none() { return }
                // Let a burst of changes settle into one rebuild.
                tokio::time::sleep(Duration::from_millis(10)).await;
                while changes.next().now_or_never().flatten().is_some() {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_follow_domains_with_their_name_servers() {
        let mut d = Domain::new("test-domain", "kube-federation-system", "Example.com.");
        d.name_server = Some("ns1.example.com".into());
        let z = zones(
            &[
                d,
                Domain::new("other", "kube-federation-system", "example.org"),
            ],
            &["example.com".into()],
        );
        assert_eq!(
            z.iter().map(|z| z.name.as_str()).collect::<Vec<_>>(),
            ["example.com", "example.org"]
        );
        assert_eq!(z[0].nameservers, vec!["ns1.example.com".to_string()]);
        assert!(z[1].nameservers.is_empty());
    }
}
