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
            .map_err(|e| anyhow::anyhow!("applying CRD {name}: {e}"))?;
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
        .map_err(|e| anyhow::anyhow!("creating namespace {name}: {e}"))?;
    Ok(())
}
