//! `kubefed federate`: the I/O shell around `sync::federate` (look up the type's
//! FederatedTypeConfig, read the object, create its `Federated<Kind>` or print it).

use anyhow::{Context, bail};
use clap::Args;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::enable::{HostOpts, discover, host_client};
use crate::api::core::{ApiResource, FederatedTypeConfig, PropagationMode, ResourceScope};
use crate::api::types::DEFAULT_FEDERATED_GROUP;
use crate::federation::federate::federated_from_target;
use crate::federation::typeconfig;

#[derive(Args, Debug)]
pub struct FederateArgs {
    /// The type: kind, plural, `plural.group` or short name (e.g. `deploy`).
    pub type_name: String,
    /// Name of the object.
    pub name: String,
    /// Namespace of the object (namespaced types).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// With a namespace: also federate every object of an enabled namespaced type in it
    /// (objects a controller owns are skipped).
    #[arg(long)]
    pub contents: bool,
    /// Print the federated objects as YAML instead of creating them (`yaml`); needs no
    /// FederatedTypeConfig.
    #[arg(short = 'o', long, value_parser = ["yaml"])]
    pub output: Option<String>,
    #[command(flatten)]
    pub host: HostOpts,
}

pub async fn run(args: FederateArgs) -> anyhow::Result<()> {
    let client = host_client(&args.host).await?;
    let kns = &args.host.kubefed_namespace;
    let target = typeconfig::resolve_type(&args.type_name, &discover(&client, None).await?)?;
    let ftc_name = target.qualified_name();
    let ftcs: Api<FederatedTypeConfig> = Api::namespaced(client.clone(), kns);
    let ftc = match ftcs.get_opt(&ftc_name).await {
        Ok(Some(ftc)) => ftc,
        Ok(None) | Err(kube::Error::Api(_)) if args.output.is_some() => {
            typeconfig::type_config(&target, DEFAULT_FEDERATED_GROUP, kns)
        }
        Ok(None) => bail!(
            "{} is not enabled for federation: run `kubefed enable {ftc_name}` first",
            target.kind
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("reading FederatedTypeConfig {kns}/{ftc_name}"));
        }
    };
    let is_namespace = target.group.is_empty() && target.kind == "Namespace";
    if args.contents && !is_namespace {
        bail!("--contents only applies to namespaces");
    }

    let ns = (ftc.spec.target_type.scope == ResourceScope::Namespaced)
        .then_some(args.namespace.as_str());
    let obj = get_object(&client, &ftc.spec.target_type, ns, &args.name).await?;
    let mut federated = vec![federate_one(&ftc, &obj)?];
    if args.contents {
        for ftc in ftcs
            .list(&ListParams::default())
            .await
            .context("listing FederatedTypeConfigs")?
            .items
        {
            let t = &ftc.spec.target_type;
            if t.scope != ResourceScope::Namespaced
                || ftc.spec.propagation != PropagationMode::Enabled
            {
                continue;
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &args.name, &dynamic(t));
            let list = api
                .list(&ListParams::default())
                .await
                .with_context(|| format!("listing {} in namespace {}", t.plural_name, args.name))?;
            for item in list.items {
                let controlled = item
                    .owner_references()
                    .iter()
                    .any(|o| o.controller == Some(true));
                if controlled {
                    continue;
                }
                federated.push(federate_one(&ftc, &serde_json::to_value(&item)?)?);
            }
        }
    }

    if args.output.is_some() {
        for (f, _) in &federated {
            print!("---\n{}", serde_saphyr::to_string(f)?);
        }
        return Ok(());
    }
    for (f, ftc) in &federated {
        create(&client, f, ftc).await?;
    }
    Ok(())
}

fn federate_one(
    ftc: &FederatedTypeConfig,
    obj: &Value,
) -> anyhow::Result<(Value, FederatedTypeConfig)> {
    let (fed, warnings) = federated_from_target(ftc, obj)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok((fed, ftc.clone()))
}

async fn create(client: &Client, fed: &Value, ftc: &FederatedTypeConfig) -> anyhow::Result<()> {
    let fed_type = &ftc.spec.federated_type;
    let name = fed["metadata"]["name"].as_str().unwrap_or_default();
    let ns = fed["metadata"]["namespace"].as_str();
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &dynamic(fed_type)),
        None => Api::all_with(client.clone(), &dynamic(fed_type)),
    };
    let what = match ns {
        Some(ns) => format!("{} {ns}/{name}", fed_type.kind),
        None => format!("{} {name}", fed_type.kind),
    };
    let obj: DynamicObject = serde_json::from_value(fed.clone())?;
    match api.create(&PostParams::default(), &obj).await {
        Ok(_) => println!("{what} created"),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            println!("{what} already exists (left unchanged)")
        }
        Err(kube::Error::Api(s)) if s.code == 404 => bail!(
            "cannot create {what}: {} (is the {} CRD installed? run `kubefed enable`)",
            s.message,
            fed_type.kind
        ),
        Err(e) => return Err(e).with_context(|| format!("creating {what}")),
    }
    Ok(())
}

async fn get_object(
    client: &Client,
    target: &ApiResource,
    ns: Option<&str>,
    name: &str,
) -> anyhow::Result<Value> {
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &dynamic(target)),
        None => Api::all_with(client.clone(), &dynamic(target)),
    };
    let where_ = ns
        .map(|n| format!(" in namespace {n:?}"))
        .unwrap_or_default();
    match api.get_opt(name).await {
        Ok(Some(obj)) => Ok(serde_json::to_value(obj)?),
        Ok(None) => bail!("{} {name:?} not found{where_}", target.kind),
        Err(e) => Err(e).with_context(|| format!("reading {} {name:?}{where_}", target.kind)),
    }
}

fn dynamic(r: &ApiResource) -> kube::discovery::ApiResource {
    kube::discovery::ApiResource {
        group: r.group.clone(),
        version: r.version.clone(),
        api_version: crate::federation::desired::api_version(r),
        kind: r.kind.clone(),
        plural: r.plural_name.clone(),
    }
}
