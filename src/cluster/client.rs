//! A kube client for a member cluster, built from its KubeFedCluster and Secret the way
//! KubeFed does: `apiEndpoint`, `caBundle`, the Secret's `token`, `disabledTLSValidations`
//! and `proxyURL`.

use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;
use thiserror::Error;

use crate::api::core::{KubeFedCluster, TlsValidation};

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("secret {secret} has no key `token`")]
    NoToken { secret: String },
    #[error("building a client for {cluster}: {source}")]
    Config {
        cluster: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("building a client for {cluster}: {source}")]
    Client {
        cluster: String,
        #[source]
        source: kube::Error,
    },
}

/// The token in a join Secret.
pub fn secret_token(secret: &Secret) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get("token"))
        .map(|t| String::from_utf8_lossy(&t.0).trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Every read or write of a member (not a watch) must finish within this, so that a
/// hung member fails its own operations instead of holding a reconcile.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A watch with no bytes for this long is cut and restarted: longer than the 290 s after
/// which kube's watcher asks the server to end a watch, so a healthy idle watch is
/// never cut, but a member that stopped answering is noticed.
pub const WATCH_READ_TIMEOUT: Duration = Duration::from_secs(300);

/// What a member client is for, which decides its timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// Watches: long polls, only [`WATCH_READ_TIMEOUT`].
    Watch,
    /// Reads and writes: every request bounded by [`REQUEST_TIMEOUT`].
    Request,
    /// Health probes: every request bounded by the probe timeout.
    Probe(Duration),
}

/// A client for `cluster` authenticated by `secret`, with the timeouts of `kind`.
pub async fn member_client(
    cluster: &KubeFedCluster,
    secret: &Secret,
    kind: ClientKind,
) -> Result<kube::Client, ClientError> {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let token = secret_token(secret).ok_or_else(|| ClientError::NoToken {
        secret: secret.metadata.name.clone().unwrap_or_default(),
    })?;
    let spec = &cluster.spec;
    // Only "*" maps onto a client setting; SubjectName/ValidityPeriod alone cannot be
    // relaxed separately with rustls, so they also skip verification (docs/api.md).
    let insecure = !spec.disabled_tls_validations.is_empty()
        && spec.disabled_tls_validations.iter().any(|v| {
            matches!(
                v,
                TlsValidation::All | TlsValidation::SubjectName | TlsValidation::ValidityPeriod
            )
        });
    let mut kcluster = json!({"server": spec.api_endpoint});
    if let Some(ca) = &spec.ca_bundle {
        kcluster["certificate-authority-data"] = base64::engine::general_purpose::STANDARD
            .encode(&ca.0)
            .into();
    }
    if insecure {
        kcluster["insecure-skip-tls-verify"] = true.into();
    }
    if let Some(proxy) = &spec.proxy_url {
        kcluster["proxy-url"] = proxy.clone().into();
    }
    let kc: Kubeconfig = serde_json::from_value(json!({
        "clusters": [{"name": name, "cluster": kcluster}],
        "users": [{"name": "kubefed", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "kubefed"}}],
        "current-context": name,
    }))
    .expect("kubeconfig literal");
    let mut config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::Config {
            cluster: name.clone(),
            source,
        })?;
    let (connect, io) = match kind {
        ClientKind::Watch => (REQUEST_TIMEOUT, WATCH_READ_TIMEOUT),
        ClientKind::Request => (REQUEST_TIMEOUT, REQUEST_TIMEOUT),
        ClientKind::Probe(t) => (t, t),
    };
    config.connect_timeout = Some(connect);
    config.read_timeout = Some(io);
    config.write_timeout = Some(io);
    kube::Client::try_from(config).map_err(|source| ClientError::Client {
        cluster: name,
        source,
    })
}
