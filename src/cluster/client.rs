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

/// A client for `cluster` authenticated by `secret`. With `request_timeout` every request
/// (connect, read, write) is bounded, which suits probes; without it only connecting is
/// (watches are long polls and must not be cut by a short read timeout).
pub async fn member_client(
    cluster: &KubeFedCluster,
    secret: &Secret,
    request_timeout: Option<Duration>,
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
    config.connect_timeout = Some(request_timeout.unwrap_or(Duration::from_secs(10)));
    if let Some(t) = request_timeout {
        config.read_timeout = Some(t);
        config.write_timeout = Some(t);
    }
    kube::Client::try_from(config).map_err(|source| ClientError::Client {
        cluster: name,
        source,
    })
}
