//! ServiceDNSRecord / IngressDNSRecord -> DNSEndpoint endpoints: the KubeFed rules. Pure.
