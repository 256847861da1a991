//! The authoritative DNS server: in-memory index, hickory request handler, feeds.
