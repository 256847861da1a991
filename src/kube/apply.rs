//! Helpers over a `kube::Client` shared by the CLI, the demo and the tests: applying CRDs
//! and waiting until the API server serves them.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};

/// The field manager of everything this binary applies.
pub const FIELD_MANAGER: &str = "kubefed";

/// Server-side applies `crds` and waits until each one is Established.
pub async fn apply_crds(
    client: &Client,
    crds: &[CustomResourceDefinition],
    timeout: Duration,
) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let mut crd = crd.clone();
        crd.metadata.managed_fields = None;
        let name = crd.name_any();
        let mut doc = serde_json::to_value(&crd)?;
        doc["apiVersion"] = "apiextensions.k8s.io/v1".into();
        doc["kind"] = "CustomResourceDefinition".into();
        api.patch(&name, &pp, &Patch::Apply(doc))
            .await
            .map_err(|e| anyhow::anyhow!("applying CRD {name}: {}", super::Brief(&e)))?;
    }
    let deadline = Instant::now() + timeout;
    for crd in crds {
        let name = crd.name_any();
        loop {
            let got = api.get(&name).await?;
            let established = got
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!("CRD {name} not Established after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Creates a namespace unless it exists.
pub async fn ensure_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(ns))
        .await
        .map_err(|e| anyhow::anyhow!("creating namespace {name}: {}", super::Brief(&e)))?;
    Ok(())
}

/// Server-side applies every object of a multi-document YAML stream, resolving each kind
/// through discovery. Returns `kind/name` of what it applied, in order.
pub async fn apply_yaml(
    client: &Client,
    yaml: &str,
    default_namespace: &str,
) -> anyhow::Result<Vec<String>> {
    use kube::api::DynamicObject;
    use kube::discovery::{Discovery, Scope};
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(yaml)?;
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut applied = Vec::new();
    for doc in docs.into_iter().filter(|d| d.is_object()) {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let (ar, caps) = discovery
            .groups()
            .find(|g| g.name() == group)
            .and_then(|g| {
                g.versioned_resources(version)
                    .into_iter()
                    .find(|(ar, _)| ar.kind == kind)
            })
            .ok_or_else(|| {
                anyhow::anyhow!("{api_version} {kind} is not served by the API server")
            })?;
        let name = doc["metadata"]["name"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("{kind} without metadata.name"))?;
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = doc["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(default_namespace);
                Api::namespaced_with(client.clone(), ns, &ar)
            }
            Scope::Cluster => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&doc),
        )
        .await
        .map_err(|e| anyhow::anyhow!("applying {kind} {name}: {}", super::Brief(&e)))?;
        applied.push(format!("{kind}/{name}"));
    }
    Ok(applied)
}
