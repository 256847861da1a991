//! `kubefed enable` / `kubefed disable`: the I/O shell around `sync::typeconfig`
//! (discovery on the host cluster, then the CRD and the FederatedTypeConfig).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::api::DEFAULT_KUBEFED_NAMESPACE;
use crate::api::core::{ApiResource, FederatedTypeConfig, PropagationMode};
use crate::api::types::DEFAULT_FEDERATED_GROUP;
use crate::federation::typeconfig::{self, DiscoveredResource};
use crate::kube::apply::FIELD_MANAGER;

/// Flags shared by enable and disable: where the host cluster is.
#[derive(Args, Debug, Clone)]
pub struct HostOpts {
    /// Context of the host cluster (default: the kubeconfig's current context).
    #[arg(long)]
    pub host_cluster_context: Option<String>,
    /// Namespace of the KubeFed control plane in the host cluster.
    #[arg(long, default_value = DEFAULT_KUBEFED_NAMESPACE)]
    pub kubefed_namespace: String,
    /// Kubeconfig file (default: the files of $KUBECONFIG merged as kubectl does, or
    /// ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct EnableArgs {
    /// The type: kind, plural, `plural.group` or short name (e.g. `deployments.apps`).
    pub name: String,
    /// API group of the generated federated type.
    #[arg(long, default_value = DEFAULT_FEDERATED_GROUP)]
    pub federated_group: String,
    /// API version of the target type (default: the server's preferred version).
    #[arg(long)]
    pub version: Option<String>,
    /// Print the objects as YAML instead of creating them (`yaml`).
    #[arg(short = 'o', long, value_parser = ["yaml"])]
    pub output: Option<String>,
    #[command(flatten)]
    pub host: HostOpts,
}

#[derive(Args, Debug)]
pub struct DisableArgs {
    /// The FederatedTypeConfig name (`plural[.group]`) or any name `enable` accepts.
    pub name: String,
    /// Also delete the federated type's CRD and the FederatedTypeConfig (refused while
    /// federated objects of the type exist).
    #[arg(long)]
    pub delete_crd: bool,
    /// API group of the federated type, used with --delete-crd when no
    /// FederatedTypeConfig is left to name it.
    #[arg(long, default_value = DEFAULT_FEDERATED_GROUP)]
    pub federated_group: String,
    #[command(flatten)]
    pub host: HostOpts,
}

const CRD_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn run_enable(args: EnableArgs) -> anyhow::Result<()> {
    let client = host_client(&args.host).await?;
    let ns = &args.host.kubefed_namespace;
    let resources = discover(&client, args.version.as_deref()).await?;
    let target = typeconfig::resolve_type(&args.name, &resources)?;
    let ftc = typeconfig::type_config(&target, &args.federated_group, ns);
    let crd = typeconfig::type_crd(&ftc, &target);
    if args.output.is_some() {
        print!("---\n{}---\n{}", to_yaml(&ftc)?, to_yaml(&crd_doc(&crd)?)?);
        return Ok(());
    }

    let namespaces: Api<Namespace> = Api::all(client.clone());
    if namespaces.get_opt(ns).await?.is_none() {
        bail!(
            "KubeFed namespace {ns:?} does not exist in the host cluster (install the control plane first)"
        );
    }
    let ftcs: Api<FederatedTypeConfig> = Api::namespaced(client.clone(), ns);
    let existing = ftcs.list(&ListParams::default()).await.map_err(|e| match e {
        kube::Error::Api(ref s) if s.code == 404 => anyhow::anyhow!(
            "the FederatedTypeConfig CRD is not installed in the host cluster (kubefed crds | kubectl apply -f -)"
        ),
        e => anyhow::Error::new(e).context("listing FederatedTypeConfigs"),
    })?;
    typeconfig::check_enable_conflicts(&ftc, &existing.items)?;

    let crd_name = crd.name_any();
    crate::kube::apply::apply_crds(&client, std::slice::from_ref(&crd), CRD_TIMEOUT).await?;
    println!("customresourcedefinition.apiextensions.k8s.io/{crd_name} applied");

    let name = ftc.name_any();
    let existed = existing.items.iter().any(|f| f.name_any() == name);
    let mut doc = serde_json::to_value(&ftc)?;
    doc["metadata"] = serde_json::json!({"name": name, "namespace": ns});
    ftcs.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(doc),
    )
    .await
    .with_context(|| format!("applying FederatedTypeConfig {ns}/{name}"))?;
    println!(
        "federatedtypeconfig.core.kubefed.io/{name} {} in namespace {ns}",
        if existed { "updated" } else { "created" }
    );
    Ok(())
}

pub async fn run_disable(args: DisableArgs) -> anyhow::Result<()> {
    let client = host_client(&args.host).await?;
    let ns = &args.host.kubefed_namespace;
    // A name with a dot is taken as the FederatedTypeConfig's own name, as KubeFed does;
    // anything else goes through discovery.
    let mut resolved: Option<DiscoveredResource> = None;
    let name = if args.name.contains('.') {
        args.name.clone()
    } else {
        let r = typeconfig::resolve_type(&args.name, &discover(&client, None).await?)?;
        let n = r.qualified_name();
        resolved = Some(r);
        n
    };
    let ftcs: Api<FederatedTypeConfig> = Api::namespaced(client.clone(), ns);
    let ftc = ftcs
        .get_opt(&name)
        .await
        .with_context(|| format!("reading FederatedTypeConfig {ns}/{name}"))?;

    let Some(ftc) = ftc else {
        println!("FederatedTypeConfig \"{ns}/{name}\" does not exist");
        if args.delete_crd {
            let target = match resolved {
                Some(r) => r,
                None => typeconfig::resolve_type(&name, &discover(&client, None).await?)?,
            };
            let fed = typeconfig::federated_type(&target.api_resource(), &args.federated_group);
            delete_federated_crd(&client, &fed).await?;
        }
        return Ok(());
    };

    if args.delete_crd {
        // Refuse before changing anything.
        ensure_no_instances(&client, &ftc.spec.federated_type).await?;
    }
    if ftc.spec.propagation == PropagationMode::Enabled {
        let patch = serde_json::json!({"spec": {"propagation": "Disabled"}});
        ftcs.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| {
                format!("disabling propagation for FederatedTypeConfig {ns}/{name}")
            })?;
        println!("Disabled propagation for FederatedTypeConfig \"{ns}/{name}\"");
    } else {
        println!("Propagation already disabled for FederatedTypeConfig \"{ns}/{name}\"");
    }
    if args.delete_crd {
        delete_federated_crd(&client, &ftc.spec.federated_type).await?;
        match ftcs.delete(&name, &DeleteParams::default()).await {
            Ok(_) => println!("federatedtypeconfig \"{ns}/{name}\" deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(e).with_context(|| format!("deleting FederatedTypeConfig {ns}/{name}"));
            }
        }
    }
    Ok(())
}

/// A client for the host cluster from `--kubeconfig` and `--host-cluster-context`.
pub async fn host_client(opts: &HostOpts) -> anyhow::Result<Client> {
    let loaded = crate::kube::kubeconfig::load(opts.kubeconfig.as_deref())?;
    let mut config = loaded
        .config(opts.host_cluster_context.as_deref())
        .await
        .context("building the host cluster client")?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    Ok(Client::try_from(config)?)
}

/// The API resources the host serves: the preferred version of every group, or only
/// `version` when given. Groups whose discovery fails (an unavailable aggregated API)
/// are skipped unless nothing at all could be read.
pub async fn discover(
    client: &Client,
    version: Option<&str>,
) -> anyhow::Result<Vec<DiscoveredResource>> {
    let mut group_versions: Vec<(bool, String)> = Vec::new();
    let core = client
        .list_core_api_versions()
        .await
        .context("API discovery (/api)")?;
    for v in core.versions {
        if version.is_none_or(|want| want == v) {
            group_versions.push((true, v));
            if version.is_none() {
                break;
            }
        }
    }
    let groups = client
        .list_api_groups()
        .await
        .context("API discovery (/apis)")?;
    for g in groups.groups {
        match version {
            Some(want) => group_versions.extend(
                g.versions
                    .iter()
                    .filter(|v| v.version == want)
                    .map(|v| (false, v.group_version.clone())),
            ),
            None => {
                if let Some(v) = g.preferred_version.as_ref().or(g.versions.first()) {
                    group_versions.push((false, v.group_version.clone()));
                }
            }
        }
    }
    let lists = futures::future::join_all(group_versions.iter().map(|(core, gv)| async move {
        if *core {
            client.list_core_api_resources(gv).await
        } else {
            client.list_api_group_resources(gv).await
        }
    }))
    .await;
    let mut out = Vec::new();
    let mut first_error = None;
    for (list, (_, gv)) in lists.into_iter().zip(&group_versions) {
        match list {
            Ok(list) => out.extend(typeconfig::discovered_resources(&list)),
            Err(e) => {
                tracing::warn!(group_version = %gv, error = %e, "API discovery failed for a group; skipped");
                first_error.get_or_insert(e);
            }
        }
    }
    if out.is_empty()
        && let Some(e) = first_error
    {
        return Err(e).context("API discovery");
    }
    Ok(out)
}

fn dynamic_resource(r: &ApiResource) -> kube::discovery::ApiResource {
    r.to_dynamic()
}

async fn ensure_no_instances(client: &Client, fed: &ApiResource) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &dynamic_resource(fed));
    let crd = typeconfig::crd_name(fed);
    match api.list(&ListParams::default().limit(1)).await {
        Ok(list) if !list.items.is_empty() => bail!(
            "cannot delete CRD {crd:?} while {} objects exist; delete them first or disable without --delete-crd",
            fed.kind
        ),
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("listing {} objects", fed.kind)),
    }
}

async fn delete_federated_crd(client: &Client, fed: &ApiResource) -> anyhow::Result<()> {
    ensure_no_instances(client, fed).await?;
    let crd = typeconfig::crd_name(fed);
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    match api.delete(&crd, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            println!("customresourcedefinition \"{crd}\" does not exist");
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("deleting CRD {crd}")),
    }
    // Wait until it is gone so that an `enable` right after works.
    let deadline = Instant::now() + CRD_TIMEOUT;
    while api.get_opt(&crd).await?.is_some() {
        if Instant::now() > deadline {
            bail!("CRD {crd} still present {CRD_TIMEOUT:?} after its deletion");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("customresourcedefinition \"{crd}\" deleted");
    Ok(())
}

fn crd_doc(crd: &CustomResourceDefinition) -> anyhow::Result<serde_json::Value> {
    let mut doc = serde_json::to_value(crd)?;
    doc["apiVersion"] = "apiextensions.k8s.io/v1".into();
    doc["kind"] = "CustomResourceDefinition".into();
    Ok(doc)
}

fn to_yaml<T: serde::Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string(v)?)
}
