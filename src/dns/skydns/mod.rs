//! The skydns layout (CoreDNS etcd plugin / ExternalDNS coredns provider) and its etcd
//! store: `codec` is pure (names, keys, JSON values, endpoint -> entries), `store` talks
//! to etcd (list with revision, watch from a revision, write), `security` says how a
//! client authenticates to etcd (TLS, user/password).

pub mod codec;
pub mod security;
pub mod store;

pub use codec::{SkydnsValue, endpoint_entries};
