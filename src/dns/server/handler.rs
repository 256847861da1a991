//! The hickory [`RequestHandler`] that answers from the current [`Snapshot`]: one atomic
//! load per query, no lock, no etcd read. It serves TCP through hickory-server and the
//! UDP datagrams `udp` does not answer from its response store. Protocol concerns live
//! here (opcodes, EDNS, flags, metrics); what to answer is the index's business.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use hickory_net::runtime::Time;
use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{DNSClass, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;

use super::index::{Outcome, Snapshot, rcode};
use super::metrics::DnsMetrics;

/// Largest UDP payload we accept to send (RFC 9715's advice for avoiding fragmentation
/// is 1232; a client's larger EDNS size is honoured up to this).
pub(super) const MAX_UDP_PAYLOAD: u16 = 4096;

#[derive(Clone)]
pub struct DnsHandler {
    index: Arc<ArcSwap<Snapshot>>,
    metrics: DnsMetrics,
}

impl DnsHandler {
    pub fn new(index: Arc<ArcSwap<Snapshot>>, metrics: DnsMetrics) -> Self {
        DnsHandler { index, metrics }
    }
}

pub(super) fn type_label(t: RecordType) -> &'static str {
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

pub(super) fn rcode_label(r: ResponseCode) -> &'static str {
    match r {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::BADVERS => "BADVERS",
        _ => "other",
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let start = Instant::now();
        let edns = request.edns.as_ref().map(|req| {
            let mut e = Edns::new();
            e.set_max_payload(
                req.max_payload()
                    .clamp(super::wire::MIN_PAYLOAD, MAX_UDP_PAYLOAD),
            );
            e.set_version(0);
            e
        });
        let mut meta = Metadata::response_from_request(&request.metadata);
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());

        let query = request
            .request_info()
            .ok()
            .map(|i| i.query.original().clone());
        let qtype = query.as_ref().map(|q| q.query_type);
        let early = if request.metadata.message_type != MessageType::Query {
            Some(ResponseCode::FormErr)
        } else if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            Some(ResponseCode::BADVERS)
        } else if query.is_none() {
            Some(ResponseCode::FormErr)
        } else {
            None
        };

        let sent = match (early, query) {
            (None, Some(q)) => {
                let (outcome, ans) = if q.query_class != DNSClass::IN {
                    (Outcome::NotImplemented, Default::default())
                } else {
                    let snapshot = self.index.load();
                    snapshot.lookup(&q.name, q.query_type)
                };
                meta.response_code = rcode(outcome);
                meta.authoritative = matches!(
                    outcome,
                    Outcome::Answer | Outcome::NoData | Outcome::NxDomain
                );
                let response = builder.build(
                    meta,
                    ans.answers.iter(),
                    ans.authority.iter(),
                    std::iter::empty(),
                    ans.additionals.iter(),
                );
                response_handle.send_response(response).await
            }
            (code, _) => {
                let code = code.unwrap_or(ResponseCode::FormErr);
                meta.response_code = code;
                response_handle
                    .send_response(builder.error_msg(&request.metadata, code))
                    .await
            }
        };
        let info = match sent {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "sending a DNS response failed");
                meta.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: meta,
                    counts: HeaderCounts::default(),
                })
            }
        };
        self.metrics
            .queries
            .with_label_values(&[
                qtype.map(type_label).unwrap_or("none"),
                rcode_label(info.response_code),
            ])
            .inc();
        self.metrics.latency.observe(start.elapsed().as_secs_f64());
        info
    }
}
