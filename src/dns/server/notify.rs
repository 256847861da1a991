//! NOTIFY (RFC 1996) to the configured secondaries: when a zone's serial changes, each
//! target gets a NOTIFY over UDP (signed when it has a key), retried with exponential
//! backoff until it answers NOERROR or the attempts run out; each attempt's result is
//! counted in `kubefed_dns_notify_total{target,result}`.
//!
//! A NOTIFY only tells the secondary to look: it then asks for our SOA and transfers
//! (IXFR) if the serial moved. So a lost NOTIFY costs at most the zone's refresh time,
//! and a late retry for a serial that has moved on since is harmless.

use std::net::SocketAddr;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use prometheus::IntCounterVec;
use thiserror::Error;
use tokio::net::UdpSocket;

use super::tsig::{self, Key, Signer};

/// Attempts per NOTIFY (the first and the retries).
pub const ATTEMPTS: usize = 6;
/// How long one attempt waits for the answer.
const ANSWER_WAIT: Duration = Duration::from_secs(2);

/// One secondary to notify: `host:port`, optionally `,key=<name>` (the TSIG key the
/// NOTIFY is signed with).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub key: Option<Name>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("--notify {0:?}: expected host:port[,key=<name>] with an IP address")]
pub struct TargetError(pub String);

impl Target {
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        let bad = || TargetError(s.chars().take(60).collect());
        let (addr, key) = match s.split_once(',') {
            Some((a, k)) => (a, Some(k.strip_prefix("key=").ok_or_else(bad)?)),
            None => (s, None),
        };
        let addr = addr.parse::<SocketAddr>().map_err(|_| bad())?;
        let key = match key {
            Some(k) => {
                let mut n = Name::from_ascii(k).map_err(|_| bad())?;
                n.set_fqdn(true);
                Some(n.to_lowercase())
            }
            None => None,
        };
        Ok(Target { addr, key })
    }
}

/// The NOTIFY message for `zone` at `soa` (pure): opcode NOTIFY, AA, the zone's SOA
/// question and the SOA in the answer section (RFC 1996 3.7: a hint of the new serial).
pub fn message(id: u16, zone: &Name, soa: &Record) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    m.add_query(Query::query(zone.clone(), RecordType::SOA));
    m.add_answer(soa.clone());
    m.to_vec().unwrap_or_default()
}

/// The result label of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Timeout,
    Refused,
    BadSig,
    Error,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::BadSig => "badsig",
            Outcome::Error => "error",
        }
    }
}

/// Whether `reply` acknowledges our NOTIFY `id` (pure). With a key, the reply must be
/// signed over our request's MAC.
pub fn check_reply(reply: &[u8], id: u16, key: Option<(&Key, &[u8])>) -> Outcome {
    let Ok(m) = Message::from_vec(reply) else {
        return Outcome::Error;
    };
    if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
        return Outcome::Error;
    }
    if let Some((key, mac)) = key
        && !tsig::verify_response(key, mac, reply)
    {
        return Outcome::BadSig;
    }
    match m.metadata.response_code {
        ResponseCode::NoError => Outcome::Ok,
        ResponseCode::Refused | ResponseCode::NotAuth => Outcome::Refused,
        _ => Outcome::Error,
    }
}

async fn attempt(target: &Target, packet: &[u8], id: u16, key: Option<(&Key, &[u8])>) -> Outcome {
    let bind: SocketAddr = if target.addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let Ok(sock) = UdpSocket::bind(bind).await else {
        return Outcome::Error;
    };
    if sock.send_to(packet, target.addr).await.is_err() {
        return Outcome::Error;
    }
    let mut buf = vec![0u8; 4096];
    let deadline = tokio::time::Instant::now() + ANSWER_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
            Err(_) => return Outcome::Timeout,
            Ok(Err(_)) => return Outcome::Error,
            // Only the target's answer counts (anyone may send datagrams to our port).
            Ok(Ok((n, from))) if from == target.addr => {
                return check_reply(&buf[..n], id, key);
            }
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends one NOTIFY for `zone` to `target` with retries; counts every attempt. Stops
/// retrying once `superseded()` says a NOTIFY for a newer serial has been started (so a
/// secondary that is down holds one retrying task per zone, not one per change).
pub async fn send(
    target: Target,
    key: Option<Key>,
    zone: Name,
    soa: Record,
    counter: IntCounterVec,
    superseded: impl Fn() -> bool,
) -> Outcome {
    let label = target.addr.to_string();
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_jitter()
        .with_max_times(ATTEMPTS - 1)
        .build();
    loop {
        let id = rand_id();
        let mut packet = message(id, &zone, &soa);
        let now = super::xfr::unix_now();
        let mut mac = Vec::new();
        if let Some(k) = &key {
            let mut signer = Signer::new(k, Vec::new());
            signer.sign(&mut packet, now);
            mac = signer.last_mac().to_vec();
        }
        let outcome = attempt(
            &target,
            &packet,
            id,
            key.as_ref().map(|k| (k, mac.as_slice())),
        )
        .await;
        counter.with_label_values(&[&label, outcome.label()]).inc();
        if outcome == Outcome::Ok {
            return outcome;
        }
        match delays.next() {
            Some(_) if superseded() => return outcome,
            Some(d) => {
                tracing::debug!(target = %label, zone = %zone, result = outcome.label(), ?d, "NOTIFY not acknowledged; retrying");
                tokio::time::sleep(d).await;
            }
            None => {
                tracing::warn!(target = %label, zone = %zone, result = outcome.label(), "NOTIFY not acknowledged; giving up (the secondary will refresh on its own)");
                return outcome;
            }
        }
    }
}

/// A message ID nobody on the path can predict well enough to forge the answer cheaply.
fn rand_id() -> u16 {
    let mut b = [0u8; 2];
    if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
        return 0x4b46;
    }
    u16::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::SOA;

    use super::*;

    fn zone_and_soa() -> (Name, Record) {
        let zone = Name::from_ascii("example.com.").unwrap();
        let soa = Record::from_rdata(
            zone.clone(),
            30,
            RData::SOA(SOA::new(zone.clone(), zone.clone(), 42, 1, 1, 1, 1)),
        );
        (zone, soa)
    }

    fn counter() -> IntCounterVec {
        IntCounterVec::new(prometheus::Opts::new("n", "n"), &["target", "result"]).unwrap()
    }

    #[tokio::test]
    async fn an_acknowledged_notify_is_counted_ok_and_a_superseded_one_stops_retrying() {
        let (zone, soa) = zone_and_soa();
        // A secondary that answers every NOTIFY.
        let sec = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sec.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sec.recv_from(&mut buf) {
                let mut m = Message::from_vec(&buf[..n]).unwrap();
                m.metadata.message_type = MessageType::Response;
                let _ = sec.send_to(&m.to_vec().unwrap(), from);
            }
        });
        let c = counter();
        let t = Target { addr, key: None };
        let out = send(t, None, zone.clone(), soa.clone(), c.clone(), || false).await;
        assert_eq!(out, Outcome::Ok);
        assert_eq!(c.with_label_values(&[&addr.to_string(), "ok"]).get(), 1);

        // One that never answers: with a newer NOTIFY started, no retry follows.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let c = counter();
        let t = Target { addr, key: None };
        let out = send(t, None, zone, soa, c.clone(), || true).await;
        assert_eq!(out, Outcome::Timeout);
        assert_eq!(
            c.with_label_values(&[&addr.to_string(), "timeout"]).get(),
            1
        );
    }

    #[test]
    fn targets_parse_with_and_without_a_key() {
        assert_eq!(
            Target::parse("127.0.0.1:5301").unwrap(),
            Target {
                addr: "127.0.0.1:5301".parse().unwrap(),
                key: None
            }
        );
        let t = Target::parse("[::1]:53,key=Xfr").unwrap();
        assert_eq!(t.key.unwrap().to_ascii(), "xfr.");
        for bad in ["127.0.0.1", "host:53", "127.0.0.1:53,xfr", ""] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_notify_is_an_authoritative_soa_question_and_its_ack_is_checked() {
        let zone = Name::from_ascii("example.com.").unwrap();
        let soa = Record::from_rdata(
            zone.clone(),
            30,
            RData::SOA(SOA::new(zone.clone(), zone.clone(), 42, 1, 1, 1, 1)),
        );
        let packet = message(7, &zone, &soa);
        let m = Message::from_vec(&packet).unwrap();
        assert_eq!(m.metadata.op_code, OpCode::Notify);
        assert!(m.metadata.authoritative);
        assert_eq!(m.queries[0].query_type(), RecordType::SOA);
        let mut ack = m.clone();
        ack.metadata.message_type = MessageType::Response;
        assert_eq!(check_reply(&ack.to_vec().unwrap(), 7, None), Outcome::Ok);
        assert_eq!(check_reply(&ack.to_vec().unwrap(), 8, None), Outcome::Error);
        ack.metadata.response_code = ResponseCode::NotAuth;
        assert_eq!(
            check_reply(&ack.to_vec().unwrap(), 7, None),
            Outcome::Refused
        );
        assert_eq!(
            check_reply(&packet, 7, None),
            Outcome::Error,
            "a query is not an answer"
        );
        let key = Key::new("k", "hmac-sha256", "c2VjcmV0").unwrap();
        ack.metadata.response_code = ResponseCode::NoError;
        assert_eq!(
            check_reply(&ack.to_vec().unwrap(), 7, Some((&key, b"mac"))),
            Outcome::BadSig,
            "an unsigned answer to a signed NOTIFY"
        );
    }
}
