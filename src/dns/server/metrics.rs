//! The DNS server's Prometheus metrics, registered once by whoever owns the registry and
//! passed in (never global).

use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

#[derive(Clone)]
pub struct DnsMetrics {
    /// `kubefed_dns_queries_total{type, rcode}`
    pub queries: IntCounterVec,
    /// `kubefed_dns_answer_duration_seconds`: from a parsed request to the response handed
    /// to the socket.
    pub latency: Histogram,
    /// `kubefed_dns_udp_response_cache_total{result}`: UDP plain queries answered from
    /// the current snapshot's stored responses (`hit`) or through the full path (`miss`).
    pub response_cache: IntCounterVec,
    /// `kubefed_dns_index_entries`: records in the current snapshot.
    pub index_entries: IntGauge,
    /// `kubefed_dns_index_serial`: serial (etcd revision or generation) of the snapshot.
    pub index_serial: IntGauge,
    /// `kubefed_dns_malformed_values_total`: values skipped (counted once per key and
    /// revision, however often the prefix is re-listed).
    pub malformed: IntCounter,
    /// `kubefed_dns_etcd_resyncs_total{reason}`: full re-lists after the first load
    /// (`compacted`, `watch_error`).
    pub resyncs: IntCounterVec,
    /// `kubefed_dns_etcd_watch_lag_seconds`: time since the index was last known to match
    /// etcd (a load, a watch event or a progress notification).
    pub watch_lag: Gauge,
    /// `kubefed_dns_etcd_revision`: the etcd revision the index reflects.
    pub etcd_revision: IntGauge,
}

impl DnsMetrics {
    /// Registers the metrics every DNS server has (see [`DnsMetrics::register_etcd`]).
    pub fn register(registry: &Registry) -> prometheus::Result<DnsMetrics> {
        let m = DnsMetrics {
            queries: IntCounterVec::new(
                Opts::new("kubefed_dns_queries_total", "DNS queries by type and rcode"),
                &["type", "rcode"],
            )?,
            latency: Histogram::with_opts(
                HistogramOpts::new(
                    "kubefed_dns_answer_duration_seconds",
                    "Time to answer a DNS query",
                )
                .buckets(vec![
                    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
                    0.002_5, 0.005, 0.01,
                ]),
            )?,
            response_cache: IntCounterVec::new(
                Opts::new(
                    "kubefed_dns_udp_response_cache_total",
                    "UDP queries answered from stored responses (hit) or the full path (miss)",
                ),
                &["result"],
            )?,
            index_entries: IntGauge::new("kubefed_dns_index_entries", "Records in the index")?,
            index_serial: IntGauge::new(
                "kubefed_dns_index_serial",
                "Serial of the current index snapshot",
            )?,
            malformed: IntCounter::new(
                "kubefed_dns_malformed_values_total",
                "skydns values skipped because they cannot be served",
            )?,
            resyncs: IntCounterVec::new(
                Opts::new(
                    "kubefed_dns_etcd_resyncs_total",
                    "Full re-lists of the etcd prefix after the first load",
                ),
                &["reason"],
            )?,
            watch_lag: Gauge::new(
                "kubefed_dns_etcd_watch_lag_seconds",
                "Seconds since the index was last known to match etcd",
            )?,
            etcd_revision: IntGauge::new(
                "kubefed_dns_etcd_revision",
                "etcd revision reflected by the index",
            )?,
        };
        registry.register(Box::new(m.queries.clone()))?;
        registry.register(Box::new(m.latency.clone()))?;
        registry.register(Box::new(m.response_cache.clone()))?;
        registry.register(Box::new(m.index_entries.clone()))?;
        registry.register(Box::new(m.index_serial.clone()))?;
        registry.register(Box::new(m.malformed.clone()))?;
        Ok(m)
    }

    /// Exports the `kubefed_dns_etcd_*` metrics, for a server fed from etcd only: the
    /// embedded server has no etcd, and a revision of 0 there would read as a broken feed.
    pub fn register_etcd(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.resyncs.clone()))?;
        registry.register(Box::new(self.watch_lag.clone()))?;
        registry.register(Box::new(self.etcd_revision.clone()))?;
        Ok(())
    }
}
