//! `kubefed orphaning-deletion enable|disable|status`: kubefedctl's switch for keeping a
//! federated object's member copies when it is deleted, the `kubefed.io/orphan: "true"`
//! annotation that the sync controller honours.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::json;

use super::enable::{HostOpts, discover, host_client};
use crate::federation::sync::ORPHAN_ANNOTATION;
use crate::federation::typeconfig;
use crate::kube::Brief;

#[derive(Subcommand, Debug)]
pub enum OrphaningCommand {
    /// Keep the member copies when the federated object is deleted.
    Enable(OrphanTarget),
    /// Delete the member copies with the federated object (the default).
    Disable(OrphanTarget),
    /// Print `Enabled` or `Disabled`.
    Status(OrphanTarget),
}

#[derive(Args, Debug)]
pub struct OrphanTarget {
    /// The federated type: kind, plural or `plural.group` (e.g. `FederatedDeployment`).
    pub type_name: String,
    /// Name of the federated object.
    pub name: String,
    /// Namespace of the object (default: the context's namespace, else `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub host: HostOpts,
}

pub async fn run(cmd: OrphaningCommand) -> anyhow::Result<()> {
    let (target, want) = match cmd {
        OrphaningCommand::Enable(t) => (t, Some(true)),
        OrphaningCommand::Disable(t) => (t, Some(false)),
        OrphaningCommand::Status(t) => (t, None),
    };
    let client = host_client(&target.host).await?;
    let found = typeconfig::resolve_type(&target.type_name, &discover(&client, None).await?)?;
    if found.group != crate::api::types::DEFAULT_FEDERATED_GROUP
        && !found.kind.starts_with("Federated")
    {
        eprintln!(
            "warning: {} might not be a federated type",
            found.qualified_name()
        );
    }
    let ar = found.api_resource();
    let dynamic = kube::discovery::ApiResource {
        group: ar.group.clone(),
        version: ar.version.clone(),
        api_version: crate::federation::desired::api_version(&ar),
        kind: ar.kind.clone(),
        plural: ar.plural_name.clone(),
    };
    let namespace = match &target.namespace {
        Some(n) => n.clone(),
        None => crate::kube::kubeconfig::load(target.host.kubeconfig.as_deref())?
            .namespace(target.host.host_cluster_context.as_deref())
            .unwrap_or_else(|| "default".into()),
    };
    let api: Api<DynamicObject> = if found.namespaced {
        Api::namespaced_with(client, &namespace, &dynamic)
    } else {
        Api::all_with(client, &dynamic)
    };
    let name = &target.name;
    let what = if found.namespaced {
        format!("{} {namespace}/{name}", found.kind)
    } else {
        format!("{} {name}", found.kind)
    };
    let obj = match api.get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => bail!("{what} not found"),
        Err(e) => bail!("reading {what}: {}", Brief(&e)),
    };
    let enabled = obj
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ORPHAN_ANNOTATION))
        .is_some_and(|v| v == "true");
    let Some(want) = want else {
        println!("{}", if enabled { "Enabled" } else { "Disabled" });
        return Ok(());
    };
    if want != enabled {
        let value = if want { json!("true") } else { json!(null) };
        let patch = json!({"metadata": {"annotations": {ORPHAN_ANNOTATION: value}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| anyhow::anyhow!("{}", Brief(&e)))
            .with_context(|| format!("annotating {what}"))?;
    }
    println!(
        "orphaning deletion {} for {what}",
        if want { "enabled" } else { "disabled" }
    );
    Ok(())
}
