//! `kubefed dns-server`: the authoritative DNS server over an etcd skydns prefix.

use clap::Args;

#[derive(Args, Debug)]
pub struct DnsServerArgs {}

pub async fn run(_args: DnsServerArgs) -> anyhow::Result<()> {
    anyhow::bail!("`kubefed dns-server` is not implemented yet (tracked in issue #5)")
}
