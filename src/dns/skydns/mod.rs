//! The skydns layout (CoreDNS etcd plugin / ExternalDNS coredns provider) and its etcd store.
