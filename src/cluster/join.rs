//! `kubefed join` / `unjoin`: what kubefedctl does, without needing a
//! kube-controller-manager in the member (the token comes from TokenRequest).
//!
//! Member side: a ServiceAccount `<cluster>-<host context>` in the KubeFed namespace, a
//! ClusterRole and ClusterRoleBinding `kubefed-controller-manager:<sa>`. Host side: a
//! Secret (key `token`, plus `ca.crt`) and the KubeFedCluster. Everything is applied
//! server-side, so joining twice converges; a failure undoes what this run created.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::api::core::KubeFedCluster;
use crate::cluster::is_dns_label;
use crate::kube::apply::FIELD_MANAGER;

/// Label on a member namespace that `join` created, so `unjoin` removes only those.
pub const CREATED_BY_JOIN: &str = "kubefed.io/created-by-join";

/// Lifetime requested for the member token. Re-running `join` renews it.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct JoinOptions {
    pub cluster: String,
    pub cluster_context: String,
    pub host_context: String,
    pub kubefed_namespace: String,
    pub secret_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
}

impl JoinOptions {
    pub fn service_account(&self) -> String {
        format!("{}-{}", self.cluster, self.host_context)
    }
    pub fn role_name(&self) -> String {
        format!("kubefed-controller-manager:{}", self.service_account())
    }
}

struct Contexts {
    kubeconfig: Kubeconfig,
    path: String,
}

impl Contexts {
    fn load(path: Option<&PathBuf>) -> anyhow::Result<Contexts> {
        match path {
            Some(p) => Ok(Contexts {
                kubeconfig: Kubeconfig::read_from(p)
                    .with_context(|| format!("reading kubeconfig {}", p.display()))?,
                path: p.display().to_string(),
            }),
            None => Ok(Contexts {
                kubeconfig: Kubeconfig::read()
                    .context("reading the kubeconfig ($KUBECONFIG or ~/.kube/config)")?,
                path: std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into()),
            }),
        }
    }

    fn check(&self, context: &str) -> anyhow::Result<()> {
        if self.kubeconfig.contexts.iter().any(|c| c.name == context) {
            Ok(())
        } else {
            bail!("context {context:?} not found in kubeconfig {}", self.path)
        }
    }

    async fn client(&self, context: &str) -> anyhow::Result<(kube::Client, kube::Config)> {
        let opts = KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        let mut config = kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &opts)
            .await
            .with_context(|| format!("context {context:?}"))?;
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(15));
        let client = kube::Client::try_from(config.clone())
            .with_context(|| format!("context {context:?}"))?;
        Ok((client, config))
    }

    /// PEM of the CA the context trusts, as KubeFedCluster.caBundle wants it.
    fn ca_pem(&self, context: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let ctx = self
            .kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref());
        let Some(ctx) = ctx else { return Ok(None) };
        let cluster = self
            .kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.cluster.as_ref())
            .ok_or_else(|| {
                anyhow!(
                    "context {context:?} names cluster {:?}, which the kubeconfig lacks",
                    ctx.cluster
                )
            })?;
        if let Some(data) = &cluster.certificate_authority_data {
            return Ok(Some(
                base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .with_context(|| {
                        format!("certificate-authority-data of context {context:?}")
                    })?,
            ));
        }
        if let Some(file) = &cluster.certificate_authority {
            return Ok(Some(
                std::fs::read(file).with_context(|| format!("reading {file}"))?,
            ));
        }
        Ok(None)
    }

    fn insecure(&self, context: &str) -> bool {
        let ctx = self
            .kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref());
        ctx.and_then(|ctx| {
            self.kubeconfig
                .clusters
                .iter()
                .find(|c| c.name == ctx.cluster)
        })
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.insecure_skip_tls_verify)
        .unwrap_or(false)
    }
}

async fn reachable(client: &kube::Client, what: &str, url: &str) -> anyhow::Result<()> {
    match tokio::time::timeout(Duration::from_secs(15), client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => bail!("{what} at {url} is unreachable: {e}"),
        Err(_) => bail!("{what} at {url} is unreachable: no answer within 15s"),
    }
}

/// What this run created, to undo it on failure.
enum Created {
    Namespace(kube::Client, String),
    ServiceAccount(kube::Client, String, String),
    ClusterRole(kube::Client, String),
    ClusterRoleBinding(kube::Client, String),
    Secret(kube::Client, String, String),
}

async fn undo(created: Vec<Created>) {
    let dp = DeleteParams::default();
    for c in created.into_iter().rev() {
        let r = match c {
            Created::Namespace(cl, n) => {
                Api::<Namespace>::all(cl).delete(&n, &dp).await.map(|_| ())
            }
            Created::ServiceAccount(cl, ns, n) => Api::<ServiceAccount>::namespaced(cl, &ns)
                .delete(&n, &dp)
                .await
                .map(|_| ()),
            Created::ClusterRole(cl, n) => Api::<ClusterRole>::all(cl)
                .delete(&n, &dp)
                .await
                .map(|_| ()),
            Created::ClusterRoleBinding(cl, n) => Api::<ClusterRoleBinding>::all(cl)
                .delete(&n, &dp)
                .await
                .map(|_| ()),
            Created::Secret(cl, ns, n) => Api::<Secret>::namespaced(cl, &ns)
                .delete(&n, &dp)
                .await
                .map(|_| ()),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "undoing a partial join");
        }
    }
}

/// Applies `obj` and records it in `created` when it did not exist before.
async fn apply<K>(api: &Api<K>, name: &str, obj: serde_json::Value) -> anyhow::Result<bool>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let existed = api.get_opt(name).await?.is_some();
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await?;
    Ok(!existed)
}

/// The checks both commands start with, before anything is touched: a valid name, both
/// contexts in the kubeconfig, a reachable host. Returns the contexts and the host client.
async fn preflight(opts: &JoinOptions) -> anyhow::Result<(Contexts, kube::Client, kube::Config)> {
    if !is_dns_label(&opts.cluster) {
        bail!(
            "invalid cluster name {:?}: must be a lower-case RFC 1123 label (a-z, 0-9, '-', at most 63 characters)",
            opts.cluster
        );
    }
    let contexts = Contexts::load(opts.kubeconfig.as_ref())?;
    contexts.check(&opts.host_context)?;
    contexts.check(&opts.cluster_context)?;
    let (host, host_cfg) = contexts.client(&opts.host_context).await?;
    reachable(
        &host,
        &format!("host cluster (context {})", opts.host_context),
        &host_cfg.cluster_url.to_string(),
    )
    .await?;
    Ok((contexts, host, host_cfg))
}

pub async fn join(opts: &JoinOptions) -> anyhow::Result<KubeFedCluster> {
    let (contexts, host, _) = preflight(opts).await?;
    let (member, member_cfg) = contexts.client(&opts.cluster_context).await?;
    reachable(
        &member,
        &format!(
            "cluster {} (context {})",
            opts.cluster, opts.cluster_context
        ),
        &member_cfg.cluster_url.to_string(),
    )
    .await?;

    let mut created = Vec::new();
    match join_steps(opts, &contexts, &host, &member, &member_cfg, &mut created).await {
        Ok(c) => Ok(c),
        Err(e) => {
            undo(created).await;
            Err(e)
        }
    }
}

async fn join_steps(
    opts: &JoinOptions,
    contexts: &Contexts,
    host: &kube::Client,
    member: &kube::Client,
    member_cfg: &kube::Config,
    created: &mut Vec<Created>,
) -> anyhow::Result<KubeFedCluster> {
    let ns = &opts.kubefed_namespace;
    let sa = opts.service_account();
    let role = opts.role_name();

    // Member side.
    let nss: Api<Namespace> = Api::all(member.clone());
    if nss.get_opt(ns).await?.is_none() {
        let labels = json!({CREATED_BY_JOIN: "true"});
        apply(&nss, ns, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}))
            .await
            .with_context(|| format!("creating namespace {ns} in cluster {}", opts.cluster))?;
        created.push(Created::Namespace(member.clone(), ns.clone()));
    }
    let sas: Api<ServiceAccount> = Api::namespaced(member.clone(), ns);
    if apply(&sas, &sa, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}))
        .await
        .with_context(|| format!("creating service account {ns}/{sa} in cluster {}", opts.cluster))?
    {
        created.push(Created::ServiceAccount(member.clone(), ns.clone(), sa.clone()));
    }
    // The sync engine propagates any enabled type, so the control plane needs every
    // resource of the member, as with kubefedctl.
    let crs: Api<ClusterRole> = Api::all(member.clone());
    if apply(
        &crs,
        &role,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["/healthz", "/readyz", "/livez", "/version"], "verbs": ["get"]}
            ]
        }),
    )
    .await
    .with_context(|| format!("creating cluster role {role} in cluster {}", opts.cluster))?
    {
        created.push(Created::ClusterRole(member.clone(), role.clone()));
    }
    let crbs: Api<ClusterRoleBinding> = Api::all(member.clone());
    if apply(
        &crbs,
        &role,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
        }),
    )
    .await
    .with_context(|| format!("creating cluster role binding {role} in cluster {}", opts.cluster))?
    {
        created.push(Created::ClusterRoleBinding(member.clone(), role.clone()));
    }
    let tr: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
        "spec": {"audiences": [], "expirationSeconds": TOKEN_LIFETIME.as_secs()}
    }))?;
    let token: TokenRequest = sas
        .create_subresource("token", &sa, &PostParams::default(), &tr)
        .await
        .with_context(|| {
            format!(
                "requesting a token for {ns}/{sa} in cluster {}",
                opts.cluster
            )
        })?;
    let token = token
        .status
        .map(|s| s.token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| anyhow!("TokenRequest returned no token"))?;

    // Host side.
    let host_nss: Api<Namespace> = Api::all(host.clone());
    if host_nss.get_opt(ns).await?.is_none() {
        apply(
            &host_nss,
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await?;
    }
    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), ns);
    let existing = clusters.get_opt(&opts.cluster).await?;
    let secret_name = opts
        .secret_name
        .clone()
        .or_else(|| existing.as_ref().map(|c| c.spec.secret_ref.name.clone()))
        .unwrap_or_else(|| opts.cluster.clone());
    let ca = contexts.ca_pem(&opts.cluster_context)?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut data = json!({"token": b64(token.as_bytes())});
    if let Some(ca) = &ca {
        data["ca.crt"] = b64(ca).into();
    }
    let secrets: Api<Secret> = Api::namespaced(host.clone(), ns);
    if apply(
        &secrets,
        &secret_name,
        json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": secret_name, "namespace": ns, "labels": {"kubefed.io/cluster": opts.cluster}},
               "data": data}),
    )
    .await
    .with_context(|| format!("creating secret {ns}/{secret_name} in the host cluster"))?
    {
        created.push(Created::Secret(host.clone(), ns.clone(), secret_name.clone()));
    }
    let mut spec = json!({
        "apiEndpoint": member_cfg.cluster_url.to_string().trim_end_matches('/'),
        "secretRef": {"name": secret_name},
    });
    if let Some(ca) = &ca {
        spec["caBundle"] = b64(ca).into();
    }
    if contexts.insecure(&opts.cluster_context) {
        spec["disabledTLSValidations"] = json!(["*"]);
    }
    let obj = json!({
        "apiVersion": "core.kubefed.io/v1beta1", "kind": "KubeFedCluster",
        "metadata": {"name": opts.cluster, "namespace": ns},
        "spec": spec,
    });
    let applied = clusters
        .patch(
            &opts.cluster,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(obj),
        )
        .await
        .with_context(|| {
            format!(
                "creating KubeFedCluster {ns}/{} in the host cluster",
                opts.cluster
            )
        })?;
    Ok(applied)
}

/// Removes what `join` made. The host side goes first and always; if the member cannot
/// be reached its leftovers are named in the error.
pub async fn unjoin(opts: &JoinOptions) -> anyhow::Result<()> {
    let (contexts, host, host_cfg) = preflight(opts).await?;
    let ns = &opts.kubefed_namespace;
    let dp = DeleteParams::default();

    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), ns);
    let secret_name = match clusters.get_opt(&opts.cluster).await? {
        Some(c) => Some(c.spec.secret_ref.name),
        None => opts.secret_name.clone(),
    };
    ignore_not_found(clusters.delete(&opts.cluster, &dp).await.map(|_| ()))?;
    if let Some(s) = secret_name {
        ignore_not_found(
            Api::<Secret>::namespaced(host.clone(), ns)
                .delete(&s, &dp)
                .await
                .map(|_| ()),
        )?;
    }

    let (member, member_cfg) = contexts.client(&opts.cluster_context).await?;
    let what = format!(
        "cluster {} (context {})",
        opts.cluster, opts.cluster_context
    );
    if let Err(e) = reachable(&member, &what, &member_cfg.cluster_url.to_string()).await {
        bail!(
            "removed {} from the host, but {e}: delete ClusterRoleBinding/ClusterRole {} and ServiceAccount {ns}/{} there by hand",
            opts.cluster,
            opts.role_name(),
            opts.service_account()
        );
    }
    let role = opts.role_name();
    ignore_not_found(
        Api::<ClusterRoleBinding>::all(member.clone())
            .delete(&role, &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_not_found(
        Api::<ClusterRole>::all(member.clone())
            .delete(&role, &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_not_found(
        Api::<ServiceAccount>::namespaced(member.clone(), ns)
            .delete(&opts.service_account(), &dp)
            .await
            .map(|_| ()),
    )?;
    // The namespace goes only if join created it, it is not the host's own (the host
    // joined to itself: the same URL, or the same kube-system under another URL) and no
    // other joined cluster still uses it.
    let member_nss: Api<Namespace> = Api::all(member.clone());
    let uid = |c: kube::Client| async move {
        Api::<Namespace>::all(c)
            .get("kube-system")
            .await
            .map(|n| n.metadata.uid)
    };
    let is_host = member_cfg.cluster_url == host_cfg.cluster_url
        || uid(member.clone()).await? == uid(host.clone()).await?;
    if !is_host
        && let Some(n) = member_nss.get_opt(ns).await?
        && n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CREATED_BY_JOIN))
            .is_some_and(|v| v == "true")
        && Api::<ServiceAccount>::namespaced(member.clone(), ns)
            .list(&Default::default())
            .await?
            .items
            .iter()
            .all(|s| s.metadata.name.as_deref() == Some("default"))
    {
        ignore_not_found(member_nss.delete(ns, &dp).await.map(|_| ()))?;
    }
    Ok(())
}

fn ignore_not_found(r: Result<(), kube::Error>) -> anyhow::Result<()> {
    match r {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
