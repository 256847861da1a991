//! Load balancer hostnames to addresses, as KubeFed did (so the DNSEndpoint stays
//! identical), through the system resolver configuration and `/etc/hosts`. Answers are
//! cached for `CACHE_TTL`; records with hostnames are re-reconciled periodically so the
//! addresses stay fresh.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;

use crate::dns::records::{Resolution, Resolved};

const CACHE_TTL: Duration = Duration::from_secs(30);

pub struct HostnameCache {
    resolver: Option<TokioResolver>,
    cache: Mutex<BTreeMap<String, (Instant, Resolution)>>,
}

impl HostnameCache {
    pub fn new() -> Self {
        let resolver = match TokioResolver::builder_tokio().and_then(|b| b.build()) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "no system resolver: load balancer hostnames will not resolve");
                None
            }
        };
        HostnameCache {
            resolver,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    pub async fn resolve(&self, hostnames: &BTreeSet<String>) -> Resolved {
        let mut out = Resolved::new();
        for h in hostnames {
            if let Some((at, r)) = self.cache.lock().unwrap().get(h)
                && at.elapsed() < CACHE_TTL
            {
                out.insert(h.clone(), r.clone());
                continue;
            }
            let r = match &self.resolver {
                None => Resolution::Failed("no resolver configured".into()),
                Some(res) => {
                    match tokio::time::timeout(Duration::from_secs(5), res.lookup_ip(h.as_str()))
                        .await
                    {
                        Ok(Ok(ips)) => {
                            let mut v: Vec<IpAddr> = ips.iter().collect();
                            v.sort();
                            v.dedup();
                            Resolution::Addresses(v)
                        }
                        Ok(Err(e)) => Resolution::Failed(e.to_string()),
                        Err(_) => Resolution::Failed("lookup timed out".into()),
                    }
                }
            };
            self.cache
                .lock()
                .unwrap()
                .insert(h.clone(), (Instant::now(), r.clone()));
            out.insert(h.clone(), r);
        }
        out
    }
}
