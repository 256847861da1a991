//! Retention: fields of a member's object that the member cluster (its API server or its
//! controllers) owns, copied into the desired object before an update so that the sync
//! controller neither fights the member nor asks for an impossible change.
//!
//! Kept, as KubeFed's sync controller keeps them:
//! - `metadata.resourceVersion` (optimistic concurrency for the update);
//! - `metadata.finalizers` and `metadata.annotations` of the member object (member
//!   controllers set them; the template may not, see [`super::desired`]; overrides,
//!   applied after retention, may still add to them);
//! - Service: `spec.clusterIP`, `spec.clusterIPs`, `spec.healthCheckNodePort` and each
//!   port's `nodePort` (allocated by the member and immutable or sticky);
//! - ServiceAccount: `secrets`, unless the template sets them (the member's token
//!   controller fills them; clearing them makes it regenerate for ever);
//! - any other kind: `spec.replicas` when the federated object sets `spec.retainReplicas`
//!   (an HPA in the member owns the count).
//!
//! Where KubeFed overwrote a value the template sets explicitly, this module keeps the
//! template's value instead: a Service template that names a `clusterIP` or a `nodePort`
//! gets it (the member then accepts it or rejects the update with a clear error,
//! reported as `UpdateFailed`), rather than having the request silently ignored.

use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RetainError {
    #[error("{what} of the desired object is not an object")]
    NotAnObject { what: &'static str },
}

/// Copies the member-owned fields of `cluster_obj` into `desired` (see the module doc).
/// `target_kind` is the target type's kind; `federated` the federated object (for
/// `spec.retainReplicas`).
pub fn retain_cluster_fields(
    target_kind: &str,
    desired: &mut Value,
    cluster_obj: &Value,
    federated: &Value,
) -> Result<(), RetainError> {
    let meta = object_at(desired, "metadata")?;
    let cluster_meta = &cluster_obj["metadata"];
    for field in ["resourceVersion", "finalizers", "annotations"] {
        match cluster_meta.get(field) {
            Some(v) if !v.is_null() => {
                meta.insert(field.to_string(), v.clone());
            }
            _ => {
                meta.remove(field);
            }
        }
    }
    match target_kind {
        "Service" => retain_service(desired, cluster_obj),
        "ServiceAccount" => retain_service_account(desired, cluster_obj),
        _ => retain_replicas(desired, cluster_obj, federated),
    }
}

fn retain_service(desired: &mut Value, cluster_obj: &Value) -> Result<(), RetainError> {
    let cluster_spec = &cluster_obj["spec"];
    let spec = object_at(desired, "spec")?;
    if let Some(port) = cluster_spec
        .get("healthCheckNodePort")
        .filter(|p| p.as_i64().is_some_and(|p| p > 0))
        && is_unset(spec.get("healthCheckNodePort"))
    {
        spec.insert("healthCheckNodePort".into(), port.clone());
    }
    // clusterIP and clusterIPs go together: a template that sets either keeps its own.
    if is_unset(spec.get("clusterIP")) && is_unset(spec.get("clusterIPs")) {
        if let Some(ip) = cluster_spec
            .get("clusterIP")
            .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        {
            spec.insert("clusterIP".into(), ip.clone());
        }
        if let Some(ips) = cluster_spec
            .get("clusterIPs")
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            spec.insert("clusterIPs".into(), ips.clone());
        }
    }
    let Some(cluster_ports) = cluster_spec.get("ports").and_then(Value::as_array) else {
        return Ok(());
    };
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            if !is_unset(port.get("nodePort")) {
                continue;
            }
            // The same port: name, protocol and port number all equal (absent == absent),
            // as KubeFed matches them.
            let same = |c: &&Value| {
                ["name", "protocol", "port"]
                    .iter()
                    .all(|k| c.get(*k) == port.get(*k))
            };
            if let Some(node_port) = cluster_ports
                .iter()
                .find(same)
                .and_then(|c| c.get("nodePort"))
            {
                port.insert("nodePort".into(), node_port.clone());
            }
        }
    }
    Ok(())
}

fn retain_service_account(desired: &mut Value, cluster_obj: &Value) -> Result<(), RetainError> {
    let desired_has = desired
        .get("secrets")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if desired_has {
        return Ok(());
    }
    if let Some(secrets) = cluster_obj
        .get("secrets")
        .filter(|s| s.as_array().is_some_and(|a| !a.is_empty()))
    {
        let obj = desired
            .as_object_mut()
            .ok_or(RetainError::NotAnObject { what: "the root" })?;
        obj.insert("secrets".into(), secrets.clone());
    }
    Ok(())
}

fn retain_replicas(
    desired: &mut Value,
    cluster_obj: &Value,
    federated: &Value,
) -> Result<(), RetainError> {
    if federated["spec"]["retainReplicas"].as_bool() != Some(true) {
        return Ok(());
    }
    if let Some(replicas) = cluster_obj["spec"]
        .get("replicas")
        .filter(|r| r.is_i64() || r.is_u64())
    {
        object_at(desired, "spec")?.insert("replicas".into(), replicas.clone());
    }
    Ok(())
}

fn is_unset(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => false,
    }
}

/// `desired[field]` as an object, created when absent.
fn object_at<'a>(
    desired: &'a mut Value,
    field: &'static str,
) -> Result<&'a mut Map<String, Value>, RetainError> {
    let root = desired
        .as_object_mut()
        .ok_or(RetainError::NotAnObject { what: "the root" })?;
    let v = root
        .entry(field)
        .or_insert_with(|| Value::Object(Map::new()));
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
        .ok_or(RetainError::NotAnObject { what: field })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_fed() -> Value {
        json!({"spec": {}})
    }

    #[test]
    fn metadata_from_the_member_is_kept() {
        let mut desired = json!({"metadata": {"name": "a", "annotations": {"t": "1"}, "finalizers": ["t"]}, "data": {}});
        let member = json!({"metadata": {"name": "a", "resourceVersion": "42",
            "annotations": {"m": "2"}, "finalizers": ["member/f"]}});
        retain_cluster_fields("ConfigMap", &mut desired, &member, &no_fed()).unwrap();
        assert_eq!(
            desired["metadata"],
            json!({"name": "a", "resourceVersion": "42", "annotations": {"m": "2"}, "finalizers": ["member/f"]})
        );
        let mut desired = json!({"metadata": {"name": "a", "annotations": {"t": "1"}}});
        retain_cluster_fields(
            "ConfigMap",
            &mut desired,
            &json!({"metadata": {"resourceVersion": "7"}}),
            &no_fed(),
        )
        .unwrap();
        assert_eq!(
            desired["metadata"],
            json!({"name": "a", "resourceVersion": "7"})
        );
    }

    fn member_service() -> Value {
        json!({
            "metadata": {"name": "web", "resourceVersion": "9"},
            "spec": {
                "type": "LoadBalancer", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                "healthCheckNodePort": 31000,
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080},
                    {"name": "https", "protocol": "TCP", "port": 443, "nodePort": 30443}
                ]
            }
        })
    }

    #[test]
    fn service_keeps_member_allocations_the_template_leaves_unset() {
        let mut desired = json!({
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "ports": [
                {"name": "http", "protocol": "TCP", "port": 80},
                {"name": "https", "protocol": "TCP", "port": 8443},
                {"name": "admin", "protocol": "TCP", "port": 9000}
            ]}
        });
        retain_cluster_fields("Service", &mut desired, &member_service(), &no_fed()).unwrap();
        assert_eq!(desired["metadata"]["resourceVersion"], "9");
        assert_eq!(desired["spec"]["clusterIP"], "10.0.0.7");
        assert_eq!(desired["spec"]["clusterIPs"], json!(["10.0.0.7"]));
        assert_eq!(desired["spec"]["healthCheckNodePort"], 31000);
        let ports = &desired["spec"]["ports"];
        assert_eq!(ports[0]["nodePort"], 30080, "same name/protocol/port");
        assert!(
            ports[1].get("nodePort").is_none(),
            "port number changed: a new port"
        );
        assert!(
            ports[2].get("nodePort").is_none(),
            "port unknown to the member"
        );
    }

    #[test]
    fn service_template_values_win() {
        let mut desired = json!({
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 31111}]}
        });
        retain_cluster_fields("Service", &mut desired, &member_service(), &no_fed()).unwrap();
        assert_eq!(desired["spec"]["clusterIP"], "None");
        assert_eq!(desired["spec"]["ports"][0]["nodePort"], 31111);
        assert!(
            desired["spec"].get("clusterIPs").is_none(),
            "not mixed with the template's clusterIP"
        );
    }

    #[test]
    fn service_without_member_allocations_is_unchanged() {
        let mut desired = json!({"metadata": {}, "spec": {"ports": [{"port": 80}]}});
        let member = json!({"metadata": {}, "spec": {"clusterIP": "", "ports": [{"port": 80}]}});
        retain_cluster_fields("Service", &mut desired, &member, &no_fed()).unwrap();
        assert_eq!(
            desired,
            json!({"metadata": {}, "spec": {"ports": [{"port": 80}]}})
        );
    }

    #[test]
    fn service_account_secrets() {
        let member = json!({"metadata": {}, "secrets": [{"name": "sa-token-abc"}]});
        let mut desired = json!({"metadata": {}});
        retain_cluster_fields("ServiceAccount", &mut desired, &member, &no_fed()).unwrap();
        assert_eq!(desired["secrets"], json!([{"name": "sa-token-abc"}]));
        let mut desired = json!({"metadata": {}, "secrets": [{"name": "mine"}]});
        retain_cluster_fields("ServiceAccount", &mut desired, &member, &no_fed()).unwrap();
        assert_eq!(desired["secrets"], json!([{"name": "mine"}]));
    }

    #[test]
    fn replicas_only_with_retain_replicas() {
        let member = json!({"metadata": {}, "spec": {"replicas": 7}});
        let mut desired = json!({"metadata": {}, "spec": {"replicas": 3}});
        retain_cluster_fields("Deployment", &mut desired, &member, &no_fed()).unwrap();
        assert_eq!(desired["spec"]["replicas"], 3);
        let fed = json!({"spec": {"retainReplicas": true}});
        retain_cluster_fields("Deployment", &mut desired, &member, &fed).unwrap();
        assert_eq!(desired["spec"]["replicas"], 7);
    }

    #[test]
    fn a_non_object_is_an_error() {
        let err = retain_cluster_fields("Service", &mut json!([]), &member_service(), &no_fed())
            .unwrap_err();
        assert_eq!(err, RetainError::NotAnObject { what: "the root" });
        let err = retain_cluster_fields(
            "Service",
            &mut json!({"spec": 1}),
            &member_service(),
            &no_fed(),
        )
        .unwrap_err();
        assert_eq!(err, RetainError::NotAnObject { what: "spec" });
    }
}
