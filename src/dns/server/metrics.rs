//! The DNS server's Prometheus metrics, registered once by whoever owns the registry and
//! passed in (never global).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use super::answer::Reply;

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
    /// `kubefed_dns_malformed_queries_total`: requests that could not be read (FORMERR).
    pub malformed_queries: IntCounter,
    /// `kubefed_dns_lookup_limited_total`: lookups that hit their budget (entries
    /// visited, CNAMEs chased) and were answered truncated.
    pub lookup_limited: IntCounter,
    /// `kubefed_dns_tcp_connections`: TCP connections open now.
    pub tcp_connections: IntGauge,
    /// `kubefed_dns_tcp_rejected_total`: TCP connections closed at once because the
    /// connection limit was reached.
    pub tcp_rejected: IntCounter,
    /// `kubefed_dns_tcp_accept_errors_total`: failed accepts (EMFILE, ENFILE, ...),
    /// each followed by a backoff.
    pub tcp_accept_errors: IntCounter,
    /// `kubefed_dns_rrl_responses_total{action}`: responses over the rate limit,
    /// `dropped` or `slipped` (sent truncated).
    pub rrl: IntCounterVec,
    /// Rate limit of the warnings about malformed requests (shared by every loop).
    pub(crate) malformed_log: Arc<LogLimit>,
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
            lookup_limited: IntCounter::new(
                "kubefed_dns_lookup_limited_total",
                "DNS lookups cut short by their budget (answered with TC)",
            )?,
            malformed_queries: IntCounter::new(
                "kubefed_dns_malformed_queries_total",
                "DNS requests that could not be read (answered FORMERR)",
            )?,
            tcp_connections: IntGauge::new(
                "kubefed_dns_tcp_connections",
                "Open DNS TCP connections",
            )?,
            tcp_rejected: IntCounter::new(
                "kubefed_dns_tcp_rejected_total",
                "DNS TCP connections closed because the connection limit was reached",
            )?,
            tcp_accept_errors: IntCounter::new(
                "kubefed_dns_tcp_accept_errors_total",
                "Failed DNS TCP accepts (each followed by a backoff)",
            )?,
            rrl: IntCounterVec::new(
                Opts::new(
                    "kubefed_dns_rrl_responses_total",
                    "DNS responses over the response rate limit, by action",
                ),
                &["action"],
            )?,
            malformed_log: Arc::new(LogLimit::new(Duration::from_secs(10))),
        };
        registry.register(Box::new(m.malformed_queries.clone()))?;
        registry.register(Box::new(m.lookup_limited.clone()))?;
        registry.register(Box::new(m.tcp_connections.clone()))?;
        registry.register(Box::new(m.tcp_rejected.clone()))?;
        registry.register(Box::new(m.tcp_accept_errors.clone()))?;
        registry.register(Box::new(m.rrl.clone()))?;
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

impl DnsMetrics {
    /// Counts one answered request (and warns, rate-limited, about a malformed one).
    pub(crate) fn count(&self, reply: &Reply, start: Instant, src: SocketAddr) {
        self.queries
            .with_label_values(&[
                reply.qtype.map(type_label).unwrap_or("none"),
                rcode_label(reply.rcode),
            ])
            .inc();
        self.latency.observe(start.elapsed().as_secs_f64());
        if reply.limited {
            self.lookup_limited.inc();
        }
        if reply.malformed {
            self.malformed_queries.inc();
            if let Some(suppressed) = self.malformed_log.allow() {
                tracing::warn!(
                    %src,
                    suppressed,
                    "answered a malformed DNS request with FORMERR (one warning per 10 s; \
                     kubefed_dns_malformed_queries_total counts them all)"
                );
            }
        }
    }
}

/// At most one log line per period; says how many were held back meanwhile.
pub(crate) struct LogLimit {
    period: Duration,
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl LogLimit {
    pub(crate) fn new(period: Duration) -> LogLimit {
        LogLimit {
            period,
            last: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last line)` when a line may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        let Ok(mut last) = self.last.try_lock() else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        match *last {
            Some(t) if now.duration_since(t) < self.period => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

pub(crate) fn type_label(t: RecordType) -> &'static str {
    match t {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::CNAME => "CNAME",
        RecordType::TXT => "TXT",
        RecordType::SRV => "SRV",
        RecordType::PTR => "PTR",
        RecordType::MX => "MX",
        RecordType::NS => "NS",
        RecordType::SOA => "SOA",
        RecordType::ANY => "ANY",
        _ => "other",
    }
}

pub(crate) fn rcode_label(r: ResponseCode) -> &'static str {
    match r {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::BADVERS => "BADVERS",
        ResponseCode::NotAuth => "NOTAUTH",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_limit_lets_one_line_through_per_period_and_counts_the_rest() {
        let l = LogLimit::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(l.allow(), None);
        }
        *l.last.lock().unwrap() = Some(Instant::now() - Duration::from_secs(7200));
        assert_eq!(l.allow(), Some(5));
    }
}
