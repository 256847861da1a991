//! The embedded DNS feed: `kubefed controller-manager --dns-listen` serves the names of
//! every DNSEndpoint in-process, with no etcd. Zones are the Domains of the KubeFed
//! namespace (their `nameServer` becomes the zone's NS) plus any `--dns-zone`; the
//! index is rebuilt from the host's DNSEndpoint store on each change, through the same
//! skydns entries the etcd writer writes, so both paths answer alike.

use std::time::Duration;

use futures::FutureExt;
use kube::api::Api;
use kube::runtime::reflector;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::multiclusterdns::{DNSEndpoint, Domain};
use crate::cluster::registry::watch_into;
use crate::dns::server::{IndexHandle, ZoneConfig};
use crate::dns::skydns::codec::DEFAULT_PREFIX;
use crate::dns::writer::desired_entries;

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

/// Runs until `cancel`, keeping `index` equal to the host's DNSEndpoints.
pub async fn run(
    host: kube::Client,
    namespace: String,
    extra_zones: Vec<String>,
    index: IndexHandle,
    cancel: CancellationToken,
) {
    let (eps, ep_w) = reflector::store::<DNSEndpoint>();
    let (doms, dom_w) = reflector::store::<Domain>();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
    let t2 = tx.clone();
    tokio::spawn(watch_into(
        Api::<DNSEndpoint>::all(host.clone()),
        ep_w,
        cancel.clone(),
        move |_| {
            let _ = tx.try_send(());
        },
    ));
    tokio::spawn(watch_into(
        Api::<Domain>::namespaced(host, &namespace),
        dom_w,
        cancel.clone(),
        move |_| {
            let _ = t2.try_send(());
        },
    ));
    for ready in [
        eps.wait_until_ready().boxed(),
        doms.wait_until_ready().boxed(),
    ] {
        tokio::select! { _ = cancel.cancelled() => return, _ = ready => {} }
    }
    // What the index was last built from: an event that changes nothing DNS serves (a
    // label, a status write, a watch re-list) keeps the snapshot, its SOA serial and
    // the UDP response store.
    let mut served = None;
    loop {
        let domains: Vec<Domain> = doms.state().iter().map(|d| (**d).clone()).collect();
        let zones = zones(&domains, &extra_zones);
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
                }
                Err(e) => {
                    warn!(error = %e, "a Domain is not a valid zone; keeping the previous index")
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            got = rx.recv() => {
                if got.is_none() { return }
                // Let a burst of changes settle into one rebuild.
                tokio::time::sleep(Duration::from_millis(10)).await;
                while rx.recv().now_or_never().flatten().is_some() {}
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
