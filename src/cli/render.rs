//! `kubefed render -f FILE`: the DNSEndpoints that the records in FILE produce, offline.

use clap::Args;

#[derive(Args, Debug)]
pub struct RenderArgs {}

pub fn run(_args: RenderArgs) -> anyhow::Result<()> {
    anyhow::bail!("`kubefed render` is not implemented yet (tracked in issue #4)")
}
