//! `core.kubefed.io/v1beta1`: KubeFedCluster, FederatedTypeConfig and KubeFedConfig,
//! field for field as KubeFed v0.8 defines them.

use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validation::{API_GROUP, API_KIND, DNS_1035_LABEL, GO_DURATION};

pub const GROUP: &str = "core.kubefed.io";
pub const VERSION: &str = "v1beta1";

// ---------------------------------------------------------------------------------------
// KubeFedCluster

/// A member cluster as the control plane reaches it: where its API is, how to trust it and
/// which Secret (key `token`) holds the credentials.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubefed.io",
    version = "v1beta1",
    kind = "KubeFedCluster",
    namespaced,
    doc = "A member cluster joined to the federation (`kubefed join`): how the control plane reaches and trusts its API server, and, in status, whether it is ready and where its nodes run.",
    status = "KubeFedClusterStatus",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type=='Ready')].status"
    ),
    printcolumn(
        name = "Region",
        type_ = "string",
        json_path = ".status.region",
        priority = 1
    ),
    printcolumn(
        name = "Zones",
        type_ = "string",
        json_path = ".status.zones",
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KubeFedClusterSpec {
    /// The address of the member's API server (`https://host:port`).
    #[schemars(length(min = 1), pattern(r"^https?://"))]
    pub api_endpoint: String,
    /// PEM CA certificates that sign the member's serving certificate (base64 in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>", extend("format" = "byte"))]
    pub ca_bundle: Option<ByteString>,
    /// The Secret, in the KubeFed namespace, whose key `token` authenticates to the member.
    pub secret_ref: LocalSecretReference,
    /// TLS checks to skip when talking to the member.
    #[serde(
        rename = "disabledTLSValidations",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub disabled_tls_validations: Vec<TlsValidation>,
    /// A proxy in front of the member's API server, as client-go takes it: `http://`,
    /// `https://` (both CONNECT) or `socks5://`, optionally with `user:password@`.
    #[serde(rename = "proxyURL", default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^(https?|socks5)://[^/]+/?$"))]
    pub proxy_url: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalSecretReference {
    /// Name of the Secret in the KubeFed namespace.
    #[schemars(length(min = 1))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum TlsValidation {
    #[serde(rename = "*")]
    All,
    SubjectName,
    ValidityPeriod,
}

/// The member as the health prober last saw it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KubeFedClusterStatus {
    /// The health prober's findings: `Ready` (the member answers `/healthz` with ok),
    /// `Offline` (it does not answer) or `ConfigMalformed` (its Secret or endpoint is
    /// unusable).
    #[serde(default)]
    pub conditions: Vec<ClusterCondition>,
    /// Zones of the member's nodes (`topology.kubernetes.io/zone`), sorted and unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Region of the member's nodes (`topology.kubernetes.io/region`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl KubeFedCluster {
    /// The one definition of a usable member: its stored `Ready` condition is `True`.
    /// The health prober writes it; every controller reads it from the host (never the
    /// prober's memory), so a restarted controller sees what its predecessor saw.
    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == cluster_condition::READY && c.status == ConditionStatus::True)
        })
    }
}

/// The condition types a cluster reports.
pub mod cluster_condition {
    pub const READY: &str = "Ready";
    pub const OFFLINE: &str = "Offline";
    pub const CONFIG_MALFORMED: &str = "ConfigMalformed";
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCondition {
    /// `Ready`, `Offline` or `ConfigMalformed`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// When the prober last looked.
    pub last_probe_time: Time,
    /// When `status` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// A CamelCase word for why (`ClusterReady`, `ClusterNotReachable`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the prober saw, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

// ---------------------------------------------------------------------------------------
// FederatedTypeConfig

/// Enables propagation of one Kubernetes type: names the target type and the
/// `Federated<Kind>` type that carries its template, placement and overrides.
/// Its name is `<target plural>[.<target group>]`.
///
/// KubeFed's admission webhook refused malformed FederatedTypeConfigs; here the same
/// rules are CEL validations in the schema, so the API server refuses them with no
/// webhook: the name, a federated group with a dot, DNS-shaped names, and scopes that
/// fit (a federated type has its target's scope, except that FederatedNamespace is
/// namespaced while Namespace is not).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "core.kubefed.io",
    version = "v1beta1",
    kind = "FederatedTypeConfig",
    namespaced,
    doc = "Enables propagation of one Kubernetes type (`kubefed enable`): names the target type and the `Federated<Kind>` type whose objects carry its template, placement and overrides. Its name is `<target plural>[.<target group>]`.",
    status = "FederatedTypeConfigStatus",
    shortname = "ftc",
    validation = Rule::new(
        "self.metadata.name == (has(self.spec.targetType.group) && self.spec.targetType.group != '' ? self.spec.targetType.pluralName + '.' + self.spec.targetType.group : self.spec.targetType.pluralName)"
    ).message("metadata.name must be '<spec.targetType.pluralName>' for a core type, '<spec.targetType.pluralName>.<spec.targetType.group>' otherwise"),
    printcolumn(name = "Target", type_ = "string", json_path = ".spec.targetType.kind"),
    printcolumn(
        name = "Propagation",
        type_ = "string",
        json_path = ".spec.propagation"
    ),
    printcolumn(
        name = "Controller",
        type_ = "string",
        json_path = ".status.propagationController"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "(self.targetType.kind == 'Namespace' && (!has(self.targetType.group) || self.targetType.group == '')) ? self.federatedType.scope == 'Namespaced' : self.federatedType.scope == self.targetType.scope"
).message("federatedType.scope must equal targetType.scope (and be Namespaced for the Namespace type)"))]
pub struct FederatedTypeConfigSpec {
    /// The type whose objects are created in the member clusters.
    pub target_type: ApiResource,
    /// `Enabled`: the sync controller propagates the federated objects of this type;
    /// `Disabled`: it leaves them and their member copies alone.
    pub propagation: PropagationMode,
    /// The `Federated<Kind>` type (group `types.kubefed.io` by default) holding the
    /// template, placement and overrides.
    #[x_kube(validation = Rule::new("has(self.group) && self.group.contains('.')")
        .message("federatedType.group must be a domain with at least one dot"))]
    pub federated_type: ApiResource,
    /// The type that collects the members' status (KubeFed's `RawResourceStatusCollection`);
    /// accepted for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("has(self.group) && self.group.contains('.')")
        .message("statusType.group must be a domain with at least one dot"))]
    pub status_type: Option<ApiResource>,
    /// `Enabled` or `Disabled`: whether member status is collected into `statusType`;
    /// accepted for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_collection: Option<StatusCollectionMode>,
}

/// A Kubernetes API resource: group (empty for core), version, kind, plural and scope.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiResource {
    /// API group; empty or absent for the core group.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253), pattern(API_GROUP))]
    pub group: String,
    /// API version within the group (`v1`, `v1beta1`).
    #[schemars(length(min = 1, max = 63), pattern(DNS_1035_LABEL))]
    pub version: String,
    /// Kind, in CamelCase (`Deployment`).
    #[schemars(length(min = 1, max = 63), pattern(API_KIND))]
    pub kind: String,
    /// Plural resource name, lower case (`deployments`).
    #[schemars(length(min = 1, max = 63), pattern(DNS_1035_LABEL))]
    pub plural_name: String,
    /// `Namespaced` or `Cluster`.
    pub scope: ResourceScope,
}

impl ApiResource {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The same resource as kube's dynamic API wants it.
    pub fn to_dynamic(&self) -> kube::api::ApiResource {
        kube::api::ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural_name.clone(),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ResourceScope {
    #[default]
    Namespaced,
    Cluster,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum PropagationMode {
    #[default]
    Enabled,
    Disabled,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum StatusCollectionMode {
    Enabled,
    Disabled,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum ControllerStatus {
    Running,
    #[default]
    NotRunning,
}

/// Whether the controllers for this type run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederatedTypeConfigStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: i64,
    /// `Running` while a sync controller propagates this type, else `NotRunning`.
    #[serde(default)]
    pub propagation_controller: ControllerStatus,
    /// Status collection controller state; accepted for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_controller: Option<ControllerStatus>,
}

// ---------------------------------------------------------------------------------------
// KubeFedConfig

/// Control-plane settings. Every field but `scope` is optional and takes KubeFed's
/// default when absent.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "core.kubefed.io",
    version = "v1beta1",
    kind = "KubeFedConfig",
    namespaced,
    doc = "Settings of the KubeFed control plane: one object named `kubefed` in the KubeFed namespace, read by the controller-manager (cluster health checks, leader election, sync options, feature gates).",
    printcolumn(name = "Scope", type_ = "string", json_path = ".spec.scope"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct KubeFedConfigSpec {
    /// `Cluster`: the control plane federates every namespace; `Namespaced`: only the
    /// KubeFed namespace.
    pub scope: ResourceScope,
    /// How long a cluster must be seen available or unavailable before it counts as such.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {}))]
    pub controller_duration: Option<DurationConfig>,
    /// Leader election of the controller-manager replicas (a Lease).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {}))]
    pub leader_elect: Option<LeaderElectConfig>,
    /// Feature gates by name. Absent: KubeFed's gates and defaults. A list that leaves a gate out is stored as
    /// written; the missing gate takes its default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("default" = [
        {"name": "PushReconciler", "configuration": "Enabled"},
        {"name": "RawResourceStatusCollection", "configuration": "Disabled"},
        {"name": "SchedulerPreferences", "configuration": "Enabled"}
    ]))]
    pub feature_gates: Vec<FeatureGatesConfig>,
    /// How often and how patiently each member's `/healthz` is probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {}))]
    pub cluster_health_check: Option<ClusterHealthCheckConfig>,
    /// Options of the controllers that propagate federated objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {}))]
    pub sync_controller: Option<SyncControllerConfig>,
    /// Options of KubeFed's status controller; accepted for compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = {}))]
    pub status_controller: Option<StatusControllerConfig>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DurationConfig {
    /// Delay before a cluster that became available is used again (Go duration, `20s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION), extend("default" = "20s"))]
    pub available_delay: Option<String>,
    /// Delay before a cluster that became unavailable is given up on (Go duration, `1m0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION), extend("default" = "1m0s"))]
    pub unavailable_delay: Option<String>,
    /// How long a controller waits for its caches to list before it gives up (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION))]
    pub cache_sync_timeout: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderElectConfig {
    /// How long a standby waits after the last renewal before taking the lease (Go
    /// duration, `15s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION), extend("default" = "15s"))]
    pub lease_duration: Option<String>,
    /// How long the leader keeps trying to renew before it stops acting (Go duration,
    /// `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION), extend("default" = "10s"))]
    pub renew_deadline: Option<String>,
    /// How often candidates try to acquire and the leader renews (Go duration, `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION), extend("default" = "5s"))]
    pub retry_period: Option<String>,
    /// The lock kind. KubeFed's kinds are accepted for compatibility; this implementation
    /// always locks with a `coordination.k8s.io` Lease, so the default is `leases`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "leases"))]
    pub resource_lock: Option<ResourceLockType>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceLockType {
    Configmaps,
    Endpoints,
    Leases,
    Configmapsleases,
    Endpointsleases,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct FeatureGatesConfig {
    /// The gate (`PushReconciler`, `RawResourceStatusCollection`, `SchedulerPreferences`).
    #[schemars(length(min = 1))]
    pub name: String,
    /// `Enabled` or `Disabled`.
    pub configuration: ConfigurationMode,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConfigurationMode {
    Enabled,
    Disabled,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealthCheckConfig {
    /// Time between two probes of a member (Go duration, `10s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION), extend("default" = "10s"))]
    pub period: Option<String>,
    /// Failed probes in a row before a ready member is marked offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 3))]
    pub failure_threshold: Option<i64>,
    /// Successful probes in a row before an offline member is marked ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 1))]
    pub success_threshold: Option<i64>,
    /// How long one probe may take (Go duration, `3s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(GO_DURATION), extend("default" = "3s"))]
    pub timeout: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncControllerConfig {
    /// Reconciles at once per controller. The default is 8, not KubeFed's 1, so that one
    /// unresponsive member does not hold every other object back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 8))]
    pub max_concurrent_reconciles: Option<i64>,
    /// `Enabled`: an existing member object with the federated object's name is taken
    /// over; `Disabled`: it is left alone and reported as `AlreadyExists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Enabled"))]
    pub adopt_resources: Option<ResourceAdoption>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ResourceAdoption {
    Enabled,
    Disabled,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusControllerConfig {
    /// Accepted for compatibility (remote status is collected by the sync controllers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1), extend("default" = 1))]
    pub max_concurrent_reconciles: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubefedcluster_round_trips_kubefed_json() {
        let kubefed = json!({
            "apiVersion": "core.kubefed.io/v1beta1",
            "kind": "KubeFedCluster",
            "metadata": {"name": "cluster2", "namespace": "kube-federation-system"},
            "spec": {
                "apiEndpoint": "https://127.0.0.1:6443",
                "caBundle": "LS0tLS1CRUdJTg==",
                "secretRef": {"name": "cluster2-x7k2p"},
                "disabledTLSValidations": ["*"],
                "proxyURL": "http://proxy:3128"
            },
            "status": {
                "conditions": [{
                    "type": "Ready", "status": "True",
                    "lastProbeTime": "2026-11-23T08:00:00Z",
                    "lastTransitionTime": "2026-11-23T08:00:00Z",
                    "reason": "ClusterReady", "message": "/healthz responded with ok"
                }],
                "zones": ["z1"], "region": "r1"
            }
        });
        let c: KubeFedCluster = serde_json::from_value(kubefed.clone()).unwrap();
        assert_eq!(c.spec.disabled_tls_validations, vec![TlsValidation::All]);
        assert_eq!(c.spec.ca_bundle.as_ref().unwrap().0, b"-----BEGIN");
        assert_eq!(serde_json::to_value(&c).unwrap(), kubefed);
    }

    #[test]
    fn federatedtypeconfig_round_trips_kubefed_json() {
        let kubefed = json!({
            "apiVersion": "core.kubefed.io/v1beta1",
            "kind": "FederatedTypeConfig",
            "metadata": {"name": "deployments.apps", "namespace": "kube-federation-system"},
            "spec": {
                "federatedType": {"group": "types.kubefed.io", "kind": "FederatedDeployment",
                    "pluralName": "federateddeployments", "scope": "Namespaced", "version": "v1beta1"},
                "propagation": "Enabled",
                "targetType": {"group": "apps", "kind": "Deployment",
                    "pluralName": "deployments", "scope": "Namespaced", "version": "v1"}
            }
        });
        let f: FederatedTypeConfig = serde_json::from_value(kubefed.clone()).unwrap();
        assert_eq!(f.spec.target_type.plural_name, "deployments");
        assert_eq!(serde_json::to_value(&f).unwrap(), kubefed);
    }

    #[test]
    fn kubefedconfig_accepts_kubefed_defaults_document() {
        let kubefed = json!({
            "apiVersion": "core.kubefed.io/v1beta1",
            "kind": "KubeFedConfig",
            "metadata": {"name": "kubefed", "namespace": "kube-federation-system"},
            "spec": {
                "scope": "Cluster",
                "controllerDuration": {"availableDelay": "20s", "unavailableDelay": "1m0s", "cacheSyncTimeout": "5m0s"},
                "leaderElect": {"leaseDuration": "15s", "renewDeadline": "10s", "retryPeriod": "5s", "resourceLock": "configmaps"},
                "featureGates": [{"name": "PushReconciler", "configuration": "Enabled"}],
                "clusterHealthCheck": {"period": "10s", "failureThreshold": 3, "successThreshold": 1, "timeout": "3s"},
                "syncController": {"maxConcurrentReconciles": 1, "adoptResources": "Enabled"},
                "statusController": {"maxConcurrentReconciles": 1}
            }
        });
        let c: KubeFedConfig = serde_json::from_value(kubefed.clone()).unwrap();
        assert_eq!(
            c.spec
                .cluster_health_check
                .as_ref()
                .unwrap()
                .failure_threshold,
            Some(3)
        );
        assert_eq!(serde_json::to_value(&c).unwrap(), kubefed);
    }
}
