//! Multi-cluster DNS: from ServiceDNSRecord/IngressDNSRecord to DNSEndpoint (records),
//! the skydns layout in etcd (skydns) and the authoritative server (server).

pub mod controllers;
pub mod embedded;
pub mod records;
pub mod server;
pub mod skydns;
pub mod writer;
