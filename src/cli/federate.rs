//! `kubefed federate`: the I/O shell around `sync::federate` (look up the type's
//! FederatedTypeConfig, read the object, create its `Federated<Kind>` or print it).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::Value;

use super::enable::{HostOpts, discover, enable_type, host_client};
use crate::api::core::{ApiResource, FederatedTypeConfig, PropagationMode, ResourceScope};
use crate::api::types::DEFAULT_FEDERATED_GROUP;
use crate::federation::federate::federated_from_target;
use crate::federation::typeconfig::{self, DiscoveredResource};

#[derive(Args, Debug)]
pub struct FederateArgs {
    /// The type: kind, plural, `plural.group` or short name (e.g. `deploy`). Not with
    /// --filename, whose objects say their type.
    #[arg(required_unless_present = "filename", requires = "name")]
    pub type_name: Option<String>,
    /// Name of the object.
    pub name: Option<String>,
    /// Namespace of the object, and of namespaced objects in --filename that name none
    /// (default: the kubeconfig context's namespace, else `default`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// With a namespace: also federate every object of an enabled namespaced type in it
    /// (objects a controller owns are skipped).
    #[arg(short = 'c', long, conflicts_with = "filename")]
    pub contents: bool,
    /// Enable federation of the object's type first when it is not enabled (as
    /// `kubefed enable` with the default federated group and version).
    #[arg(short = 't', long)]
    pub enable_type: bool,
    /// Federate the objects in this file (YAML or JSON documents, or a List; `-` for
    /// stdin) instead of one read from the host cluster.
    #[arg(short = 'f', long, conflicts_with = "type_name")]
    pub filename: Option<PathBuf>,
    /// Print the federated objects instead of creating them (`yaml` or `json`); needs
    /// no FederatedTypeConfig.
    #[arg(short = 'o', long, value_parser = ["yaml", "json"])]
    pub output: Option<String>,
    #[command(flatten)]
    pub host: HostOpts,
}

/// The namespace `federate` works in: the flag, else the kubeconfig context's, else
/// `default`, as kubectl chooses.
pub fn effective_namespace(flag: Option<&str>, context: Option<String>) -> String {
    flag.map(str::to_string)
        .or(context.filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "default".to_string())
}

/// The served resource of an object read from a file: by its `apiVersion` and `kind`.
pub fn resource_of(
    obj: &Value,
    resources: &[DiscoveredResource],
) -> anyhow::Result<DiscoveredResource> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    if api_version.is_empty() || kind.is_empty() {
        bail!("an object in the file has no apiVersion or kind");
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let found = resources
        .iter()
        .find(|r| r.group == group && r.kind == kind)
        .with_context(|| format!("{kind} of {api_version} is not served by the host cluster"))?;
    Ok(DiscoveredResource {
        version: version.to_string(),
        ..found.clone()
    })
}

pub async fn run(args: FederateArgs) -> anyhow::Result<()> {
    let client = host_client(&args.host).await?;
    let kns = &args.host.kubefed_namespace;
    let context_ns = crate::kube::kubeconfig::load(args.host.kubeconfig.as_deref())?
        .namespace(args.host.host_cluster_context.as_deref());
    let namespace = effective_namespace(args.namespace.as_deref(), context_ns);
    let resources = discover(&client, None).await?;

    // The objects to federate, each with its type.
    let mut objects: Vec<(DiscoveredResource, Value)> = Vec::new();
    if let Some(path) = &args.filename {
        let (source, text) = super::render::read_input(path)?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .with_context(|| format!("{source} is not valid YAML or JSON"))?;
        for mut doc in super::render::expand_lists(docs) {
            if doc.is_null() {
                continue;
            }
            let target = resource_of(&doc, &resources)?;
            if target.namespaced && doc["metadata"]["namespace"].as_str().is_none() {
                doc["metadata"]["namespace"] = namespace.clone().into();
            }
            objects.push((target, doc));
        }
    }
    if let (Some(type_name), Some(name)) = (&args.type_name, &args.name) {
        let target = typeconfig::resolve_type(type_name, &resources)?;
        let ns = target.namespaced.then_some(namespace.as_str());
        let obj = get_object(&client, &target.api_resource(), ns, name).await?;
        objects.push((target, obj));
    }

    let ftcs: Api<FederatedTypeConfig> = Api::namespaced(client.clone(), kns);
    let mut federated = Vec::new();
    // One read (and with -t one enable) per type, however many objects of it a file has.
    let mut configs: std::collections::HashMap<String, FederatedTypeConfig> =
        std::collections::HashMap::new();
    for (target, obj) in &objects {
        let name = target.qualified_name();
        let ftc = match configs.get(&name) {
            Some(ftc) => ftc.clone(),
            None => {
                let ftc = type_config_for(&client, &ftcs, target, &args).await?;
                configs.insert(name, ftc.clone());
                ftc
            }
        };
        federated.push(federate_one(&ftc, obj)?);
    }
    if args.contents {
        let Some((target, _)) = objects.first() else {
            bail!("--contents needs a namespace");
        };
        if !(target.group.is_empty() && target.kind == "Namespace") {
            bail!("--contents only applies to namespaces");
        }
        let ns = args.name.as_deref().unwrap_or_default();
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
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &dynamic(t));
            let list = api
                .list(&ListParams::default())
                .await
                .with_context(|| format!("listing {} in namespace {ns}", t.plural_name))?;
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

    if let Some(format) = &args.output {
        let docs: Vec<Value> = federated.into_iter().map(|(f, _)| f).collect();
        print!("{}", super::enable::render_objects(&docs, format)?);
        return Ok(());
    }
    for (f, ftc) in &federated {
        create(&client, f, ftc).await?;
    }
    Ok(())
}

/// The FederatedTypeConfig of `target`: the host's; with -o, the one `enable` would
/// create when there is none; with --enable-type, that one after creating it.
async fn type_config_for(
    client: &Client,
    ftcs: &Api<FederatedTypeConfig>,
    target: &DiscoveredResource,
    args: &FederateArgs,
) -> anyhow::Result<FederatedTypeConfig> {
    let kns = &args.host.kubefed_namespace;
    let ftc_name = target.qualified_name();
    let derived = || typeconfig::type_config(target, DEFAULT_FEDERATED_GROUP, kns);
    match ftcs.get_opt(&ftc_name).await {
        Ok(Some(ftc)) => Ok(ftc),
        Ok(None) | Err(kube::Error::Api(_)) if args.output.is_some() => Ok(derived()),
        Ok(None) if args.enable_type => {
            let ftc = derived();
            enable_type(client, kns, &ftc, &typeconfig::type_crd(&ftc, target)).await?;
            Ok(ftc)
        }
        Ok(None) => bail!(
            "{} is not enabled for federation: run `kubefed enable {ftc_name}` first (or federate with --enable-type)",
            target.kind
        ),
        Err(e) => Err(e).with_context(|| format!("reading FederatedTypeConfig {kns}/{ftc_name}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, version: &str, kind: &str, namespaced: bool) -> DiscoveredResource {
        DiscoveredResource {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: format!("{}s", kind.to_lowercase()),
            singular: kind.to_lowercase(),
            short_names: vec![],
            namespaced,
        }
    }

    #[test]
    fn the_namespace_is_the_flag_then_the_context_then_default() {
        assert_eq!(effective_namespace(Some("a"), Some("b".into())), "a");
        assert_eq!(effective_namespace(None, Some("b".into())), "b");
        assert_eq!(effective_namespace(None, Some(String::new())), "default");
        assert_eq!(effective_namespace(None, None), "default");
    }

    #[test]
    fn a_file_object_is_typed_by_its_api_version_and_kind() {
        let served = [
            res("", "v1", "Secret", true),
            res("apps", "v1", "Deployment", true),
            res("extensions.example.io", "v1", "Deployment", true),
        ];
        let obj = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert_eq!(resource_of(&obj, &served).unwrap().group, "apps");
        let obj = serde_json::json!({"apiVersion": "v1", "kind": "Secret"});
        assert_eq!(resource_of(&obj, &served).unwrap().group, "");
        let obj = serde_json::json!({"apiVersion": "apps/v1beta2", "kind": "Deployment"});
        assert_eq!(resource_of(&obj, &served).unwrap().version, "v1beta2");
        let obj = serde_json::json!({"apiVersion": "batch/v1", "kind": "Job"});
        let err = resource_of(&obj, &served).unwrap_err().to_string();
        assert!(err.contains("Job of batch/v1 is not served"), "{err}");
        assert!(resource_of(&serde_json::json!({"kind": "Secret"}), &served).is_err());
    }
}
