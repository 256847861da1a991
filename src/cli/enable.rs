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
use crate::api::types::{DEFAULT_FEDERATED_GROUP, DEFAULT_FEDERATED_VERSION};
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
    /// Optional with --filename, whose directive names it.
    #[arg(required_unless_present = "filename")]
    pub name: Option<String>,
    /// An EnableTypeDirective (YAML or JSON) naming the type and its versions, as
    /// kubefedctl's `enable -f`; flags given on the command line take precedence.
    #[arg(short = 'f', long)]
    pub filename: Option<PathBuf>,
    /// API group of the generated federated type [default: types.kubefed.io].
    #[arg(long)]
    pub federated_group: Option<String>,
    /// API version of the generated federated type [default: v1beta1].
    #[arg(long)]
    pub federated_version: Option<String>,
    /// API version of the target type (default: the server's preferred version).
    #[arg(long)]
    pub version: Option<String>,
    /// Print the objects instead of creating them: `yaml` (documents) or `json` (a
    /// `v1` List, for `kubectl apply -f -`).
    #[arg(short = 'o', long, value_parser = ["yaml", "json"])]
    pub output: Option<String>,
    #[command(flatten)]
    pub host: HostOpts,
}

/// kubefedctl's `EnableTypeDirective` (`core.kubefed.io/v1beta1`): the type to enable
/// in `metadata.name`, the versions in `spec`.
#[derive(serde::Deserialize, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnableTypeDirective {
    #[serde(default)]
    pub metadata: DirectiveMeta,
    #[serde(default)]
    pub spec: DirectiveSpec,
}

#[derive(serde::Deserialize, Debug, Default, PartialEq, Eq)]
pub struct DirectiveMeta {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(serde::Deserialize, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectiveSpec {
    pub target_version: Option<String>,
    pub federated_group: Option<String>,
    pub federated_version: Option<String>,
}

/// What `enable` acts on once the directive file and the flags are combined.
#[derive(Debug, PartialEq, Eq)]
pub struct EnableRequest {
    pub name: String,
    pub target_version: Option<String>,
    pub federated_group: String,
    pub federated_version: String,
}

/// Reads an EnableTypeDirective document (YAML, hence JSON too). One directive per
/// file, as kubefedctl reads it; the kind is checked so that a wrong file is not taken
/// for one.
pub fn parse_directive(text: &str) -> anyhow::Result<EnableTypeDirective> {
    let doc: serde_json::Value =
        serde_saphyr::from_str(text).context("reading the EnableTypeDirective")?;
    let kind = doc.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    if kind != "EnableTypeDirective" {
        bail!("expected kind EnableTypeDirective, found {kind:?}");
    }
    serde_json::from_value(doc).context("reading the EnableTypeDirective")
}

/// Flags over directive over defaults.
pub fn enable_request(
    args: &EnableArgs,
    directive: Option<EnableTypeDirective>,
) -> anyhow::Result<EnableRequest> {
    let d = directive.unwrap_or_default();
    let name = args
        .name
        .clone()
        .or(d.metadata.name)
        .context("the EnableTypeDirective has no metadata.name and no type was given")?;
    Ok(EnableRequest {
        name,
        target_version: args.version.clone().or(d.spec.target_version),
        federated_group: args
            .federated_group
            .clone()
            .or(d.spec.federated_group)
            .unwrap_or_else(|| DEFAULT_FEDERATED_GROUP.to_string()),
        federated_version: args
            .federated_version
            .clone()
            .or(d.spec.federated_version)
            .unwrap_or_else(|| DEFAULT_FEDERATED_VERSION.to_string()),
    })
}

/// Objects printed for `-o`: YAML documents, or one `v1` List in JSON.
pub fn render_objects(objects: &[serde_json::Value], format: &str) -> anyhow::Result<String> {
    if format == "json" {
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects});
        return Ok(format!("{}\n", serde_json::to_string_pretty(&list)?));
    }
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&to_yaml(o)?);
    }
    Ok(out)
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
    let directive = match &args.filename {
        Some(path) => Some(parse_directive(
            &std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?,
        )?),
        None => None,
    };
    let req = enable_request(&args, directive)?;
    let client = host_client(&args.host).await?;
    let ns = &args.host.kubefed_namespace;
    let resources = discover(&client, req.target_version.as_deref()).await?;
    let target = typeconfig::resolve_type(&req.name, &resources)?;
    let mut ftc = typeconfig::type_config(&target, &req.federated_group, ns);
    ftc.spec.federated_type.version = req.federated_version.clone();
    let crd = typeconfig::type_crd(&ftc, &target);
    if let Some(format) = &args.output {
        let mut ftc_doc = serde_json::to_value(&ftc)?;
        ftc_doc["apiVersion"] = "core.kubefed.io/v1beta1".into();
        ftc_doc["kind"] = "FederatedTypeConfig".into();
        print!("{}", render_objects(&[ftc_doc, crd_doc(&crd)?], format)?);
        return Ok(());
    }

    enable_type(&client, ns, &ftc, &crd).await?;
    Ok(())
}

/// Creates or updates the federated type's CRD and then its FederatedTypeConfig in
/// `ns`, refusing a config that conflicts with an existing one. Shared with
/// `federate --enable-type`.
pub async fn enable_type(
    client: &Client,
    ns: &str,
    ftc: &FederatedTypeConfig,
    crd: &CustomResourceDefinition,
) -> anyhow::Result<()> {
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
    typeconfig::check_enable_conflicts(ftc, &existing.items)?;

    let crd_name = crd.name_any();
    crate::kube::apply::apply_crds(client, std::slice::from_ref(crd), CRD_TIMEOUT).await?;
    println!("customresourcedefinition.apiextensions.k8s.io/{crd_name} applied");

    let name = ftc.name_any();
    let existed = existing.items.iter().any(|f| f.name_any() == name);
    let mut doc = serde_json::to_value(ftc)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        enable: EnableArgs,
    }

    fn args(argv: &[&str]) -> EnableArgs {
        Cli::try_parse_from(std::iter::once("enable").chain(argv.iter().copied()))
            .unwrap()
            .enable
    }

    const DIRECTIVE: &str = "apiVersion: core.kubefed.io/v1beta1
kind: EnableTypeDirective
metadata:
  name: deployments.apps
spec:
  targetVersion: v1
  federatedGroup: types.example.io
  federatedVersion: v1alpha1
";

    #[test]
    fn a_directive_file_names_the_type_and_flags_override_it() {
        let d = parse_directive(DIRECTIVE).unwrap();
        let req = enable_request(&args(&["-f", "x"]), Some(d)).unwrap();
        assert_eq!(
            req,
            EnableRequest {
                name: "deployments.apps".into(),
                target_version: Some("v1".into()),
                federated_group: "types.example.io".into(),
                federated_version: "v1alpha1".into(),
            }
        );
        let d = parse_directive(DIRECTIVE).unwrap();
        let req = enable_request(
            &args(&["secrets", "-f", "x", "--federated-version", "v2"]),
            Some(d),
        )
        .unwrap();
        assert_eq!(req.name, "secrets");
        assert_eq!(req.federated_version, "v2");
        assert_eq!(req.federated_group, "types.example.io");
    }

    #[test]
    fn without_a_directive_the_defaults_are_kubefeds() {
        let req = enable_request(&args(&["deploy"]), None).unwrap();
        assert_eq!(req.federated_group, "types.kubefed.io");
        assert_eq!(req.federated_version, "v1beta1");
        assert_eq!(req.target_version, None);
        assert!(
            Cli::try_parse_from(["enable"]).is_err(),
            "a type or a file is required"
        );
    }

    #[test]
    fn a_file_that_is_not_a_directive_is_refused() {
        let err = parse_directive("kind: ConfigMap\nmetadata: {name: x}\n").unwrap_err();
        assert!(err.to_string().contains("EnableTypeDirective"), "{err}");
        let err = parse_directive(
            "kind: EnableTypeDirective\nmetadata: {name: x}\nspec: {federatedVersoin: v1}\n",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("federatedVersoin"), "{err:#}");
    }

    #[test]
    fn json_output_is_one_list() {
        let objs = [
            serde_json::json!({"kind": "A"}),
            serde_json::json!({"kind": "B"}),
        ];
        let list: serde_json::Value =
            serde_json::from_str(&render_objects(&objs, "json").unwrap()).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"].as_array().unwrap().len(), 2);
        let yaml = render_objects(&objs, "yaml").unwrap();
        assert_eq!(yaml.matches("---\n").count(), 2);
    }
}
