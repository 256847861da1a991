//! The federated object's status: the `Propagation` condition and `status.clusters`, as
//! KubeFed writes them (an OK cluster has no `status`; anything else names the reason of
//! seed 004's table). Pure.
//!
//! With the type's `statusCollection: Enabled`, each entry carries the member object's
//! `status` as `remoteStatus` (KubeFed's raw resource status collection).
//!
//! Beyond KubeFed, a failing cluster's entry may carry a `message` (the member API's
//! answer, shortened). Messages never cause a write on their own ([`same_status`]): a
//! CRD made by an older `kubefed enable` prunes the field, and comparing it would then
//! rewrite the status for ever.

use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterStatus {
    pub name: String,
    /// `OK` or a per-cluster reason (`ClusterNotReady`, `AlreadyExists`, ...).
    pub status: String,
    /// What the member said, for a failed operation.
    pub message: Option<String>,
    /// The member object's own `status` (the type's `statusCollection: Enabled`).
    pub remote_status: Option<Value>,
}

/// The longest message kept in a cluster's status entry.
pub const MESSAGE_MAX: usize = 256;

impl ClusterStatus {
    pub fn new(name: &str, status: &str) -> Self {
        ClusterStatus {
            name: name.into(),
            status: status.into(),
            message: None,
            remote_status: None,
        }
    }

    pub fn with_message(name: &str, status: &str, message: &str) -> Self {
        let mut m: String = message.chars().take(MESSAGE_MAX).collect();
        if m.len() < message.len() {
            m.push('…');
        }
        ClusterStatus {
            name: name.into(),
            status: status.into(),
            message: Some(m),
            remote_status: None,
        }
    }

    pub fn is_ok(&self) -> bool {
        self.status == "OK"
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropagationStatus {
    /// An aggregate reason that stops propagation (`NamespaceNotFederated`, ...).
    pub reason: Option<String>,
    pub clusters: Vec<ClusterStatus>,
}

impl PropagationStatus {
    /// The status object; transition and update times move only when the condition
    /// changes, so an unchanged status compares equal and is not rewritten.
    pub fn to_value(&self, previous: Option<&Value>, generation: Option<i64>) -> Value {
        let failing = self.clusters.iter().any(|c| !c.is_ok());
        let (cond_status, reason) = match (&self.reason, failing) {
            (Some(r), _) => ("False", r.as_str()),
            (None, true) => ("False", "CheckClusters"),
            (None, false) => ("True", ""),
        };
        let prev = previous
            .and_then(|p| p["conditions"].as_array())
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Propagation"));
        let now = k8s_openapi::jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let same = prev.is_some_and(|p| {
            p["status"] == cond_status && p["reason"].as_str().unwrap_or("") == reason
        });
        let (updated, transitioned) = match prev {
            Some(p) if same => (p["lastUpdateTime"].clone(), p["lastTransitionTime"].clone()),
            Some(p) if p["status"] == cond_status => (json!(now), p["lastTransitionTime"].clone()),
            _ => (json!(now), json!(now)),
        };
        let mut cond = json!({"type": "Propagation", "status": cond_status,
            "lastUpdateTime": updated, "lastTransitionTime": transitioned});
        if !reason.is_empty() {
            cond["reason"] = json!(reason);
        }
        let mut clusters: Vec<&ClusterStatus> = self.clusters.iter().collect();
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        let clusters: Vec<Value> = clusters
            .into_iter()
            .map(|c| {
                let mut v = json!({"name": c.name});
                if !c.is_ok() {
                    v["status"] = json!(c.status);
                    if let Some(m) = &c.message {
                        v["message"] = json!(m);
                    }
                }
                if let Some(r) = &c.remote_status {
                    v["remoteStatus"] = r.clone();
                }
                v
            })
            .collect();
        let mut out = json!({"conditions": [cond], "clusters": clusters});
        if let Some(g) = generation {
            out["observedGeneration"] = json!(g);
        }
        out
    }
}

/// Whether two statuses say the same, cluster messages aside.
pub fn same_status(a: Option<&Value>, b: Option<&Value>) -> bool {
    let strip = |v: Option<&Value>| {
        let mut v = v.cloned().unwrap_or(Value::Null);
        if let Some(cs) = v.get_mut("clusters").and_then(Value::as_array_mut) {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("message");
                }
            }
        }
        v
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_ok_is_true_without_reason_and_ok_clusters_have_no_status() {
        let s = PropagationStatus {
            reason: None,
            clusters: vec![ClusterStatus::new("b", "OK"), ClusterStatus::new("a", "OK")],
        };
        let v = s.to_value(None, Some(3));
        assert_eq!(v["conditions"][0]["status"], "True");
        assert!(v["conditions"][0].get("reason").is_none());
        assert_eq!(v["clusters"], json!([{"name": "a"}, {"name": "b"}]));
        assert_eq!(v["observedGeneration"], 3);
    }

    #[test]
    fn a_failing_cluster_gives_check_clusters() {
        let s = PropagationStatus {
            reason: None,
            clusters: vec![ClusterStatus::new("a", "AlreadyExists")],
        };
        let v = s.to_value(None, None);
        assert_eq!(
            (
                v["conditions"][0]["status"].as_str(),
                v["conditions"][0]["reason"].as_str()
            ),
            (Some("False"), Some("CheckClusters"))
        );
        assert_eq!(v["clusters"][0]["status"], "AlreadyExists");
    }

    #[test]
    fn unchanged_status_keeps_its_times() {
        let s = PropagationStatus {
            reason: Some("NamespaceNotFederated".into()),
            clusters: vec![],
        };
        let first = s.to_value(None, Some(1));
        let again = s.to_value(Some(&first), Some(1));
        assert_eq!(first, again);
    }

    #[test]
    fn messages_are_written_but_never_a_reason_to_write() {
        let s = PropagationStatus {
            reason: None,
            clusters: vec![ClusterStatus::with_message(
                "a",
                "CreationFailed",
                &"x".repeat(1000),
            )],
        };
        let v = s.to_value(None, Some(1));
        let m = v["clusters"][0]["message"].as_str().unwrap();
        assert!(m.chars().count() <= MESSAGE_MAX + 1, "{m}");
        let mut pruned = v.clone();
        pruned["clusters"][0]
            .as_object_mut()
            .unwrap()
            .remove("message");
        assert!(same_status(Some(&v), Some(&pruned)));
        let other = PropagationStatus {
            reason: None,
            clusters: vec![ClusterStatus::new("a", "UpdateFailed")],
        };
        assert!(!same_status(
            Some(&v),
            Some(&other.to_value(Some(&v), Some(1)))
        ));
    }

    #[test]
    fn remote_status_goes_into_the_cluster_entry() {
        let mut c = ClusterStatus::new("a", "OK");
        c.remote_status = Some(json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}));
        let s = PropagationStatus {
            reason: None,
            clusters: vec![c],
        };
        assert_eq!(
            s.to_value(None, None)["clusters"],
            json!([{"name": "a", "remoteStatus": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}}])
        );
    }
}
