//! Who may transfer a zone (pure). The default is nobody: without `--allow-transfer`
//! every AXFR/IXFR is REFUSED. A rule is `key=<name>` (the request carries a valid TSIG
//! of that key) or a source prefix (`10.0.0.0/8`, `2001:db8::/32`, or one address); a
//! request is allowed when any rule matches. Rules of both kinds do not combine into
//! "this key from that prefix": list only `key=` rules to require a key everywhere.

use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("--allow-transfer {0:?}: expected key=<name>, an address or a CIDR prefix")]
pub struct AclError(pub String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    Key(Name),
    Prefix(IpNet),
}

impl Rule {
    pub fn parse(s: &str) -> Result<Rule, AclError> {
        let bad = || AclError(s.chars().take(60).collect());
        if let Some(name) = s.strip_prefix("key=") {
            let mut n = Name::from_ascii(name).map_err(|_| bad())?;
            if name.is_empty() {
                return Err(bad());
            }
            n.set_fqdn(true);
            return Ok(Rule::Key(n.to_lowercase()));
        }
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Rule::Prefix(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Rule::Prefix(IpNet::from(ip)))
            .map_err(|_| bad())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl(Vec<Rule>);

impl Acl {
    pub fn new(rules: Vec<Rule>) -> Acl {
        Acl(rules)
    }

    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Acl, AclError> {
        specs
            .iter()
            .map(|s| Rule::parse(s.as_ref()))
            .collect::<Result<_, _>>()
            .map(Acl)
    }

    /// Whether a request from `src`, signed with the (verified) key `key`, may transfer.
    pub fn allows(&self, src: IpAddr, key: Option<&Name>) -> bool {
        let src = src.to_canonical();
        self.0.iter().any(|r| match r {
            Rule::Key(k) => key.is_some_and(|key| key.to_lowercase() == *k),
            Rule::Prefix(net) => net.contains(&src),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let acl = Acl::default();
        assert!(!acl.allows(ip("127.0.0.1"), None));
        assert!(!acl.allows(ip("127.0.0.1"), Some(&name("any-key."))));
    }

    #[test]
    fn keys_and_prefixes_each_allow_on_their_own() {
        let acl = Acl::parse(&["key=Xfr-Key", "10.1.0.0/16", "2001:db8::1"]).unwrap();
        assert!(acl.allows(ip("192.0.2.1"), Some(&name("xfr-key."))));
        assert!(!acl.allows(ip("192.0.2.1"), Some(&name("other."))));
        assert!(!acl.allows(ip("192.0.2.1"), None));
        assert!(acl.allows(ip("10.1.200.3"), None));
        assert!(!acl.allows(ip("10.2.0.1"), None));
        assert!(acl.allows(ip("2001:db8::1"), None));
        assert!(!acl.allows(ip("2001:db8::2"), None));
        // An IPv4 client seen on a dual-stack socket.
        assert!(acl.allows(ip("::ffff:10.1.0.9"), None));
    }

    #[test]
    fn bad_rules_are_errors() {
        for bad in ["key=", "10.0.0.0/33", "nonsense", ""] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Rule::parse("10.1.2.3/8").unwrap(),
            Rule::Prefix("10.0.0.0/8".parse().unwrap())
        );
    }
}
