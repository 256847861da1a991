//! `kubefed join` / `unjoin`: what kubefedctl does, without needing a
//! kube-controller-manager in the member (the token comes from TokenRequest).
//!
//! Member side: a ServiceAccount `<cluster>-<host cluster name>` in the KubeFed namespace
//! (the host cluster name is `--host-cluster-name`, else the host context), a ClusterRole
//! and ClusterRoleBinding `kubefed-controller-manager:<sa>`. Host side: a Secret (key
//! `token`, plus `ca.crt`) and the KubeFedCluster. Everything is applied server-side, so
//! joining twice converges (unless `--error-on-existing`); a failure undoes what this run
//! created. `--dry-run` checks the input and prints the plan without contacting a server.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::api::core::KubeFedCluster;
use crate::cluster::is_dns_subdomain;
use crate::kube::apply::FIELD_MANAGER;
use crate::kube::kubeconfig::{self, Loaded};

/// Label on a member namespace that `join` created, so `unjoin` removes only those.
pub const CREATED_BY_JOIN: &str = "kubefed.io/created-by-join";

/// Lifetime requested for the member token. Re-running `join` renews it.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Clone, Debug)]
pub struct JoinOptions {
    pub cluster: String,
    /// The member's context; `None`: the cluster name, as kubefedctl does.
    pub cluster_context: Option<String>,
    /// The host's context; `None`: the kubeconfig's current context.
    pub host_context: Option<String>,
    /// The host's name in member-side object names; `None`: the host context.
    pub host_cluster_name: Option<String>,
    pub kubefed_namespace: String,
    pub secret_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    /// Check and print the plan; change nothing.
    pub dry_run: bool,
    /// `join`: fail instead of updating an object that already exists.
    pub error_on_existing: bool,
    /// `unjoin`: remove the host side even when the member side cannot be cleaned.
    pub force: bool,
}

impl JoinOptions {
    /// Options with kubefedctl's defaults for everything but the cluster name.
    pub fn new(cluster: &str) -> JoinOptions {
        JoinOptions {
            cluster: cluster.to_string(),
            cluster_context: None,
            host_context: None,
            host_cluster_name: None,
            kubefed_namespace: crate::api::DEFAULT_KUBEFED_NAMESPACE.into(),
            secret_name: None,
            kubeconfig: None,
            dry_run: false,
            error_on_existing: false,
            force: false,
        }
    }

    pub fn cluster_context(&self) -> &str {
        self.cluster_context.as_deref().unwrap_or(&self.cluster)
    }

    /// The host's name in member-side object names; valid once [`preflight`] resolved
    /// the host context.
    fn host_name(&self, host_context: &str) -> String {
        self.host_cluster_name
            .clone()
            .unwrap_or_else(|| host_context.to_string())
    }
}

/// The names `join` gives its member-side objects, from the resolved host name.
#[derive(Clone, Debug)]
pub struct Names {
    pub host_context: String,
    pub service_account: String,
    pub role: String,
}

impl Names {
    fn new(opts: &JoinOptions, host_context: &str) -> anyhow::Result<Names> {
        let host = opts.host_name(host_context);
        let service_account = format!("{}-{host}", opts.cluster);
        if !is_dns_subdomain(&service_account) {
            bail!(
                "the service account name {service_account:?} (<cluster>-<host cluster name>) is not a valid object name: pass --host-cluster-name with an RFC 1123 name for the host"
            );
        }
        Ok(Names {
            host_context: host_context.to_string(),
            role: format!("kubefed-controller-manager:{service_account}"),
            service_account,
        })
    }
}

struct Contexts {
    loaded: Loaded,
}

impl Contexts {
    fn load(path: Option<&PathBuf>) -> anyhow::Result<Contexts> {
        Ok(Contexts {
            loaded: kubeconfig::load(path.map(PathBuf::as_path))?,
        })
    }

    fn check(&self, context: &str) -> anyhow::Result<()> {
        self.loaded.context_name(Some(context)).map(|_| ())
    }

    async fn client(&self, context: &str) -> anyhow::Result<(kube::Client, kube::Config)> {
        let mut config = self.loaded.config(Some(context)).await?;
        config.connect_timeout = Some(Duration::from_secs(5));
        config.read_timeout = Some(Duration::from_secs(15));
        let client = kube::Client::try_from(config.clone())
            .with_context(|| format!("context {context:?}"))?;
        Ok((client, config))
    }

    /// PEM of the CA the context trusts, as KubeFedCluster.caBundle wants it.
    fn ca_pem(&self, context: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let ctx = self
            .loaded
            .kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref());
        let Some(ctx) = ctx else { return Ok(None) };
        let cluster = self
            .loaded
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
            .loaded
            .kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref());
        ctx.and_then(|ctx| {
            self.loaded
                .kubeconfig
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
        Ok(Err(e)) => bail!("{what} at {url} is unreachable: {}", crate::kube::Brief(&e)),
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
            tracing::warn!(error = %crate::kube::Brief(&e), "undoing a partial join");
        }
    }
}

/// Applies `obj`; `true` when it did not exist before (the caller records it in
/// `created`). With `error_on_existing` an existing object is an error, as kubefedctl's
/// `--error-on-existing`.
async fn apply<K>(
    api: &Api<K>,
    name: &str,
    obj: serde_json::Value,
    error_on_existing: bool,
) -> anyhow::Result<bool>
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let existed = api.get_opt(name).await.map_err(brief)?.is_some();
    if existed && error_on_existing {
        bail!(
            "{} {name:?} already exists (--error-on-existing)",
            K::kind(&())
        );
    }
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(brief)?;
    Ok(!existed)
}

/// A kube error as an anyhow error carrying its one-line message.
fn brief(e: kube::Error) -> anyhow::Error {
    anyhow!("{}", crate::kube::Brief(&e))
}

/// What both commands resolved before touching anything.
struct Preflight {
    contexts: Contexts,
    names: Names,
    cluster_context: String,
}

/// The checks both commands start with, before anything is touched: a valid name, both
/// contexts in the kubeconfig, names that make valid objects. Needs no server.
fn check(opts: &JoinOptions) -> anyhow::Result<Preflight> {
    if !is_dns_subdomain(&opts.cluster) {
        bail!(
            "invalid cluster name {:?}: must be a lower-case RFC 1123 subdomain (a-z, 0-9, '-' and '.', at most 253 characters)",
            opts.cluster
        );
    }
    let contexts = Contexts::load(opts.kubeconfig.as_ref())?;
    let host_context = contexts.loaded.context_name(opts.host_context.as_deref())?;
    let cluster_context = opts.cluster_context().to_string();
    contexts.check(&cluster_context)?;
    let names = Names::new(opts, &host_context)?;
    Ok(Preflight {
        contexts,
        names,
        cluster_context,
    })
}

/// [`check`], then a reachable host that has the KubeFedCluster CRD.
async fn preflight(opts: &JoinOptions) -> anyhow::Result<(Preflight, kube::Client, kube::Config)> {
    let p = check(opts)?;
    let (host, host_cfg) = p.contexts.client(&p.names.host_context).await?;
    reachable(
        &host,
        &format!("host cluster (context {})", p.names.host_context),
        &host_cfg.cluster_url.to_string(),
    )
    .await?;
    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), &opts.kubefed_namespace);
    match clusters.list(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => bail!(
            "the host cluster (context {}) has no KubeFedCluster CRD: install the control plane first (kubefed crds | kubectl apply -f -, or the Helm chart)",
            p.names.host_context
        ),
        Err(e) => bail!(
            "reading KubeFedClusters in the host cluster: {}",
            crate::kube::Brief(&e)
        ),
    }
    Ok((p, host, host_cfg))
}

/// What `join` would do, for `--dry-run`.
fn plan(opts: &JoinOptions, p: &Preflight) -> String {
    let ns = &opts.kubefed_namespace;
    let secret = opts.secret_name.as_deref().unwrap_or(&opts.cluster);
    format!(
        "cluster {c} (context {cc}): namespace {ns}, ServiceAccount {ns}/{sa}, ClusterRole and ClusterRoleBinding {role}, a token for {sa}\n\
         host (context {hc}): Secret {ns}/{secret}, KubeFedCluster {ns}/{c}",
        c = opts.cluster,
        cc = p.cluster_context,
        sa = p.names.service_account,
        role = p.names.role,
        hc = p.names.host_context,
    )
}

/// What `join` did or, with `--dry-run`, would do.
pub enum Joined {
    Cluster(Box<KubeFedCluster>),
    DryRun(String),
}

pub async fn join(opts: &JoinOptions) -> anyhow::Result<Joined> {
    if opts.dry_run {
        let p = check(opts)?;
        return Ok(Joined::DryRun(plan(opts, &p)));
    }
    let (p, host, _) = preflight(opts).await?;
    let (member, member_cfg) = p.contexts.client(&p.cluster_context).await?;
    reachable(
        &member,
        &format!("cluster {} (context {})", opts.cluster, p.cluster_context),
        &member_cfg.cluster_url.to_string(),
    )
    .await?;

    let mut created = Vec::new();
    match join_steps(opts, &p, &host, &member, &member_cfg, &mut created).await {
        Ok(c) => Ok(Joined::Cluster(Box::new(c))),
        Err(e) => {
            undo(created).await;
            Err(e)
        }
    }
}

async fn join_steps(
    opts: &JoinOptions,
    p: &Preflight,
    host: &kube::Client,
    member: &kube::Client,
    member_cfg: &kube::Config,
    created: &mut Vec<Created>,
) -> anyhow::Result<KubeFedCluster> {
    let ns = &opts.kubefed_namespace;
    let sa = &p.names.service_account;
    let role = &p.names.role;
    let strict = opts.error_on_existing;

    // Member side.
    let nss: Api<Namespace> = Api::all(member.clone());
    if nss.get_opt(ns).await.map_err(brief)?.is_none() {
        let labels = json!({CREATED_BY_JOIN: "true"});
        apply(&nss, ns, json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}), false)
            .await
            .with_context(|| format!("creating namespace {ns} in cluster {}", opts.cluster))?;
        created.push(Created::Namespace(member.clone(), ns.clone()));
    }
    let sas: Api<ServiceAccount> = Api::namespaced(member.clone(), ns);
    if apply(&sas, sa, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": ns}}), strict)
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
        role,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": [
                {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                {"nonResourceURLs": ["/healthz", "/readyz", "/livez", "/version"], "verbs": ["get"]}
            ]
        }),
        strict,
    )
    .await
    .with_context(|| format!("creating cluster role {role} in cluster {}", opts.cluster))?
    {
        created.push(Created::ClusterRole(member.clone(), role.clone()));
    }
    let crbs: Api<ClusterRoleBinding> = Api::all(member.clone());
    if apply(
        &crbs,
        role,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]
        }),
        strict,
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
        .create_subresource("token", sa, &PostParams::default(), &tr)
        .await
        .map_err(brief)
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
    if host_nss.get_opt(ns).await.map_err(brief)?.is_none() {
        apply(
            &host_nss,
            ns,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            false,
        )
        .await?;
    }
    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), ns);
    let existing = clusters.get_opt(&opts.cluster).await.map_err(brief)?;
    if existing.is_some() && strict {
        bail!(
            "KubeFedCluster {ns}/{} already exists (--error-on-existing)",
            opts.cluster
        );
    }
    let secret_name = opts
        .secret_name
        .clone()
        .or_else(|| existing.as_ref().map(|c| c.spec.secret_ref.name.clone()))
        .unwrap_or_else(|| opts.cluster.clone());
    let ca = p.contexts.ca_pem(&p.cluster_context)?;
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
        strict,
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
    if p.contexts.insecure(&p.cluster_context) {
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
        .map_err(brief)
        .with_context(|| {
            format!(
                "creating KubeFedCluster {ns}/{} in the host cluster",
                opts.cluster
            )
        })?;
    Ok(applied)
}

/// What `unjoin` did.
pub enum Unjoined {
    Done,
    /// `--dry-run`: what it would do.
    DryRun(String),
    /// `--force`: the host side is gone; what is left in the member.
    Forced(String),
}

/// Removes what `join` made, as kubefedctl does: the member side first; if it cannot be
/// cleaned (unreachable, RBAC) the host side is kept so that a retry can finish, unless
/// `--force`, which removes the host side anyway and names the leftovers in a warning.
pub async fn unjoin(opts: &JoinOptions) -> anyhow::Result<Unjoined> {
    if opts.dry_run {
        let p = check(opts)?;
        return Ok(Unjoined::DryRun(format!(
            "dry run: unjoin would delete ClusterRoleBinding and ClusterRole {role}, ServiceAccount {ns}/{sa} from cluster {c} (context {cc}); KubeFedCluster {ns}/{c} and its Secret from the host (context {hc})",
            ns = opts.kubefed_namespace,
            c = opts.cluster,
            hc = p.names.host_context,
            role = p.names.role,
            sa = p.names.service_account,
            cc = p.cluster_context,
        )));
    }
    let (p, host, host_cfg) = preflight(opts).await?;
    let ns = &opts.kubefed_namespace;
    let dp = DeleteParams::default();

    let member_side = async {
        let (member, member_cfg) = p.contexts.client(&p.cluster_context).await?;
        let what = format!("cluster {} (context {})", opts.cluster, p.cluster_context);
        reachable(&member, &what, &member_cfg.cluster_url.to_string()).await?;
        unjoin_member(opts, &p.names, &host, &host_cfg, &member, &member_cfg).await
    };
    let outcome = match member_side.await {
        Ok(()) => Unjoined::Done,
        Err(e) if opts.force => Unjoined::Forced(format!(
            "{e:#}: delete ClusterRoleBinding/ClusterRole {} and ServiceAccount {ns}/{} in cluster {} by hand",
            p.names.role, p.names.service_account, opts.cluster
        )),
        Err(e) => {
            return Err(e.context(format!(
                "cleaning cluster {} (nothing was removed from the host; --force removes it anyway)",
                opts.cluster
            )));
        }
    };

    let clusters: Api<KubeFedCluster> = Api::namespaced(host.clone(), ns);
    let secret_name = match clusters.get_opt(&opts.cluster).await.map_err(brief)? {
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
    Ok(outcome)
}

async fn unjoin_member(
    opts: &JoinOptions,
    names: &Names,
    host: &kube::Client,
    host_cfg: &kube::Config,
    member: &kube::Client,
    member_cfg: &kube::Config,
) -> anyhow::Result<()> {
    let ns = &opts.kubefed_namespace;
    let dp = DeleteParams::default();
    let role = &names.role;
    ignore_not_found(
        Api::<ClusterRoleBinding>::all(member.clone())
            .delete(role, &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_not_found(
        Api::<ClusterRole>::all(member.clone())
            .delete(role, &dp)
            .await
            .map(|_| ()),
    )?;
    ignore_not_found(
        Api::<ServiceAccount>::namespaced(member.clone(), ns)
            .delete(&names.service_account, &dp)
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
            .map_err(brief)
    };
    let is_host = member_cfg.cluster_url == host_cfg.cluster_url
        || uid(member.clone()).await? == uid(host.clone()).await?;
    if !is_host
        && let Some(n) = member_nss.get_opt(ns).await.map_err(brief)?
        && n.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CREATED_BY_JOIN))
            .is_some_and(|v| v == "true")
        && Api::<ServiceAccount>::namespaced(member.clone(), ns)
            .list(&Default::default())
            .await
            .map_err(brief)?
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
        Err(e) => Err(brief(e)),
    }
}
