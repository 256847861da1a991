//! `deploy/` on real API servers: the plain manifests apply (and meet the "restricted"
//! Pod Security Standard), the controller-manager's RBAC is exactly what it needs (a
//! table of `kubectl auth can-i` answers for its ServiceAccount, and a real
//! controller-manager running on that ServiceAccount's token joins, elects, writes
//! DNSEndpoints and status, deletes, with no request forbidden), and the Helm chart
//! lints, renders, installs and grants the same rules. Plain manifests go to cluster1,
//! the chart to cluster3, so the two tests can run side by side.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kubefed::api::core::{ApiResource, ResourceScope};
use kubefed::api::types;
use kubefed::federation::typeconfig::{self, DiscoveredResource};
use kubefed::kube::apply as kubeutil;
use serde_json::Value;

const NS: &str = "kube-federation-system";
const CM_SA: &str = "kubefed-controller-manager";
const DNS_SA: &str = "kubefed-dns-server";
const LEASE: &str = "kubefed-controller-manager";
const APP_NS: &str = "deploy-app";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// kubectl against one cluster of the shared federation, optionally fed `stdin`.
fn kubectl(ctx: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let kc = common::federation().state.kubeconfig.clone();
    let mut cmd = Command::new(common::kubectl());
    cmd.arg("--kubeconfig")
        .arg(&kc)
        .args(["--context", ctx])
        .args(args);
    run(cmd, stdin)
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs and asserts success; returns (stdout, stderr).
fn ok(what: &str, out: Output) -> (String, String) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    (text(&out.stdout), text(&out.stderr))
}

fn user(sa: &str) -> String {
    format!("--as=system:serviceaccount:{NS}:{sa}")
}

/// `kubectl auth can-i` as a ServiceAccount; `ns` None means all namespaces (or a
/// cluster-scoped resource), extra args e.g. `--subresource=status`.
fn can(ctx: &str, sa: &str, verb: &str, resource: &str, ns: Option<&str>, extra: &[&str]) -> bool {
    let who = user(sa);
    let mut args = vec!["auth", "can-i", verb, resource, who.as_str()];
    match ns {
        Some(n) => args.extend(["-n", n]),
        None if !resource.starts_with("customresourcedefinitions")
            && !resource.starts_with("namespaces")
            && !resource.starts_with("nodes")
            && !resource.starts_with("clusterroles") =>
        {
            args.push("-A")
        }
        None => {}
    }
    args.extend(extra);
    let out = kubectl(ctx, &args, None);
    match out.status.code() {
        Some(0) => true,
        Some(1) if text(&out.stdout).trim() == "no" => false,
        _ => panic!(
            "kubectl {args:?}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        ),
    }
}

/// CRDs that `kubectl auth can-i` needs to resolve resource names: the ExternalDNS
/// DNSEndpoint (also exercised by --externaldns-copy=auto) and a FederatedDeployment
/// (what `kubefed enable deployments` creates).
async fn peer_crds(ctx: &str) {
    let externaldns = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: dnsendpoints.externaldns.k8s.io
  annotations: {api-approved.kubernetes.io: "https://github.com/kubernetes-sigs/external-dns/pull/2007"}
spec:
  group: externaldns.k8s.io
  scope: Namespaced
  names: {plural: dnsendpoints, singular: dnsendpoint, kind: DNSEndpoint, listKind: DNSEndpointList}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#;
    ok(
        "applying the ExternalDNS CRD",
        kubectl(
            ctx,
            &["apply", "--server-side", "-f", "-"],
            Some(externaldns),
        ),
    );
    let deployments = ApiResource {
        group: "apps".into(),
        version: "v1".into(),
        kind: "Deployment".into(),
        plural_name: "deployments".into(),
        scope: ResourceScope::Namespaced,
    };
    let crd = types::federated_crd(&types::federated_type_for(
        &deployments,
        types::DEFAULT_FEDERATED_GROUP,
    ));
    let client = common::client(ctx).await;
    kubeutil::apply_crds(&client, &[crd], Duration::from_secs(60))
        .await
        .unwrap();
    for c in [
        "dnsendpoints.externaldns.k8s.io",
        "federateddeployments.types.kubefed.io",
    ] {
        ok(
            "waiting for a CRD",
            kubectl(
                ctx,
                &[
                    "wait",
                    "--for=condition=Established",
                    "--timeout=60s",
                    &format!("crd/{c}"),
                ],
                None,
            ),
        );
    }
}

/// The RBAC table: what the controller-manager does (from src/cluster, src/admin/leader.rs,
/// src/dns/controllers, src/controller_manager.rs) must be allowed, and nothing around it.
fn check_least_privilege(ctx: &str) {
    let ns = Some(NS);
    let app = Some(APP_NS);
    let all = None;
    let status: &[&str] = &["--subresource=status"];
    let lease = format!("leases.coordination.k8s.io/{LEASE}");
    let allowed: Vec<(&str, &str, Option<&str>, &[&str])> = vec![
        // Cluster registry and health.
        ("get", "kubefedclusters.core.kubefed.io", ns, &[]),
        ("list", "kubefedclusters.core.kubefed.io", ns, &[]),
        ("watch", "kubefedclusters.core.kubefed.io", ns, &[]),
        ("patch", "kubefedclusters.core.kubefed.io", ns, status),
        ("list", "secrets", ns, &[]),
        ("watch", "secrets", ns, &[]),
        ("get", "kubefedconfigs.core.kubefed.io", ns, &[]),
        ("watch", "kubefedconfigs.core.kubefed.io", ns, &[]),
        // Leader election.
        ("create", "leases.coordination.k8s.io", ns, &[]),
        ("get", &lease, ns, &[]),
        ("watch", &lease, ns, &[]),
        ("update", &lease, ns, &[]),
        ("get", "namespaces/kube-system", all, &[]),
        // DNS controllers.
        ("list", "domains.multiclusterdns.kubefed.io", ns, &[]),
        ("watch", "domains.multiclusterdns.kubefed.io", ns, &[]),
        (
            "list",
            "servicednsrecords.multiclusterdns.kubefed.io",
            all,
            &[],
        ),
        (
            "watch",
            "ingressdnsrecords.multiclusterdns.kubefed.io",
            all,
            &[],
        ),
        (
            "patch",
            "servicednsrecords.multiclusterdns.kubefed.io",
            app,
            status,
        ),
        (
            "patch",
            "ingressdnsrecords.multiclusterdns.kubefed.io",
            app,
            status,
        ),
        ("watch", "dnsendpoints.multiclusterdns.kubefed.io", all, &[]),
        (
            "create",
            "dnsendpoints.multiclusterdns.kubefed.io",
            app,
            &[],
        ),
        ("patch", "dnsendpoints.multiclusterdns.kubefed.io", app, &[]),
        (
            "delete",
            "dnsendpoints.multiclusterdns.kubefed.io",
            app,
            &[],
        ),
        ("get", "dnsendpoints.externaldns.k8s.io", app, &[]),
        ("patch", "dnsendpoints.externaldns.k8s.io", app, &[]),
        ("delete", "dnsendpoints.externaldns.k8s.io", app, &[]),
        (
            "get",
            "customresourcedefinitions.apiextensions.k8s.io/dnsendpoints.externaldns.k8s.io",
            all,
            &[],
        ),
        (
            "watch",
            "customresourcedefinitions.apiextensions.k8s.io/dnsendpoints.externaldns.k8s.io",
            all,
            &[],
        ),
        ("create", "events.events.k8s.io", app, &[]),
        ("patch", "events.events.k8s.io", app, &[]),
        // Sync engine and replica scheduling.
        ("list", "federatedtypeconfigs.core.kubefed.io", ns, &[]),
        (
            "watch",
            "replicaschedulingpreferences.scheduling.kubefed.io",
            all,
            &[],
        ),
        ("patch", "federatedtypeconfigs.core.kubefed.io", ns, status),
        ("watch", "federateddeployments.types.kubefed.io", all, &[]),
        ("update", "federateddeployments.types.kubefed.io", app, &[]),
        (
            "patch",
            "federateddeployments.types.kubefed.io",
            app,
            status,
        ),
    ];
    let denied: Vec<(&str, &str, Option<&str>, &[&str])> = vec![
        // Secrets: only reading, only in the KubeFed namespace.
        ("get", "secrets", Some("kube-system"), &[]),
        ("list", "secrets", all, &[]),
        ("create", "secrets", ns, &[]),
        ("delete", "secrets", ns, &[]),
        ("create", "serviceaccounts", ns, &["--subresource=token"]),
        ("get", "configmaps", ns, &[]),
        // Namespaces, RBAC, impersonation: never.
        ("delete", "namespaces", all, &[]),
        ("get", "namespaces/default", all, &[]),
        ("list", "namespaces", all, &[]),
        ("create", "namespaces", all, &[]),
        ("create", "clusterroles.rbac.authorization.k8s.io", all, &[]),
        ("bind", "clusterroles.rbac.authorization.k8s.io", all, &[]),
        ("impersonate", "serviceaccounts", ns, &[]),
        ("*", "*", all, &[]),
        // Joined clusters: status only, spec is the user's.
        ("update", "kubefedclusters.core.kubefed.io", ns, &[]),
        ("delete", "kubefedclusters.core.kubefed.io", ns, &[]),
        ("list", "kubefedclusters.core.kubefed.io", all, &[]),
        ("patch", "kubefedconfigs.core.kubefed.io", ns, &[]),
        // Another Lease, Leases elsewhere.
        ("update", "leases.coordination.k8s.io/someone-else", ns, &[]),
        (
            "get",
            "leases.coordination.k8s.io",
            Some("kube-system"),
            &[],
        ),
        ("delete", &lease, ns, &[]),
        // Records: status only.
        (
            "patch",
            "servicednsrecords.multiclusterdns.kubefed.io",
            app,
            &[],
        ),
        (
            "update",
            "ingressdnsrecords.multiclusterdns.kubefed.io",
            app,
            &[],
        ),
        (
            "delete",
            "servicednsrecords.multiclusterdns.kubefed.io",
            app,
            &[],
        ),
        ("list", "domains.multiclusterdns.kubefed.io", all, &[]),
        ("list", "dnsendpoints.externaldns.k8s.io", all, &[]),
        (
            "deletecollection",
            "dnsendpoints.multiclusterdns.kubefed.io",
            app,
            &[],
        ),
        (
            "update",
            "dnsendpoints.multiclusterdns.kubefed.io",
            app,
            &[],
        ),
        // CRDs: only whether ExternalDNS's exists.
        (
            "get",
            "customresourcedefinitions.apiextensions.k8s.io/kubefedclusters.core.kubefed.io",
            all,
            &[],
        ),
        (
            "create",
            "customresourcedefinitions.apiextensions.k8s.io",
            all,
            &[],
        ),
        // Host workloads: members are read with the joined token, not this account.
        ("list", "services", app, &[]),
        ("list", "pods", all, &[]),
        ("list", "nodes", all, &[]),
        ("list", "endpointslices.discovery.k8s.io", app, &[]),
        // Federated objects are the users' to create and delete.
        ("create", "federateddeployments.types.kubefed.io", app, &[]),
        ("delete", "federateddeployments.types.kubefed.io", app, &[]),
        (
            "update",
            "replicaschedulingpreferences.scheduling.kubefed.io",
            app,
            &[],
        ),
    ];
    let mut wrong = Vec::new();
    for (verb, res, n, extra) in &allowed {
        if !can(ctx, CM_SA, verb, res, *n, extra) {
            wrong.push(format!("denied but needed: {verb} {res} {n:?} {extra:?}"));
        }
    }
    for (verb, res, n, extra) in &denied {
        if can(ctx, CM_SA, verb, res, *n, extra) {
            wrong.push(format!(
                "allowed but not needed: {verb} {res} {n:?} {extra:?}"
            ));
        }
    }
    // The dns-server reads etcd only.
    for (verb, res, n) in [
        ("get", "secrets", ns),
        ("list", "kubefedclusters.core.kubefed.io", ns),
        ("list", "dnsendpoints.multiclusterdns.kubefed.io", all),
        ("create", "leases.coordination.k8s.io", ns),
        ("get", "configmaps", ns),
    ] {
        if can(ctx, DNS_SA, verb, res, n, &[]) {
            wrong.push(format!("dns-server may {verb} {res} {n:?}"));
        }
    }
    assert!(wrong.is_empty(), "RBAC on {ctx}:\n{}", wrong.join("\n"));
    let (sa, _) = ok(
        "reading the dns-server ServiceAccount",
        kubectl(ctx, &["get", "sa", DNS_SA, "-n", NS, "-o", "json"], None),
    );
    let sa: Value = serde_json::from_str(&sa).unwrap();
    assert_eq!(sa["automountServiceAccountToken"], false, "{sa}");
}

fn get_json(ctx: &str, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend(args);
    all.extend(["-o", "json"]);
    let (out, _) = ok("kubectl get", kubectl(ctx, &all, None));
    serde_json::from_str(&out).unwrap()
}

fn assert_dns_service(ctx: &str, name: &str) {
    let svc = get_json(ctx, &["service", name, "-n", NS]);
    let mut ports: Vec<(i64, String)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().unwrap(),
                p["protocol"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ports.sort();
    assert_eq!(
        ports,
        [(53, "TCP".to_string()), (53, "UDP".to_string())],
        "{svc}"
    );
}

fn no_pod_security_warnings(what: &str, stderr: &str) {
    assert!(
        !stderr.contains("PodSecurity"),
        "{what} does not meet the restricted Pod Security Standard:\n{stderr}"
    );
}

/// Every YAML file of deploy/manifests is in its kustomization and the reverse.
#[test]
fn kustomization_lists_every_manifest() {
    let dir = repo().join("deploy/manifests");
    let k = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let k: Value = serde_saphyr::from_str(&k).unwrap();
    let mut listed: Vec<String> = k["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    present.sort();
    assert_eq!(
        listed, present,
        "deploy/manifests/kustomization.yaml must list every manifest of the directory"
    );
}

/// The chart's crds/ is a byte-for-byte copy of the generated crds/.
#[test]
fn chart_crds_equal_the_generated_crds() {
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let src = repo().join("crds");
    let chart = repo().join("deploy/helm/kubefed/crds");
    let fix = "run: rm deploy/helm/kubefed/crds/*.yaml && cp crds/*.yaml deploy/helm/kubefed/crds/";
    assert_eq!(names(&src), names(&chart), "{fix}");
    for n in names(&src) {
        assert!(
            std::fs::read(src.join(&n)).unwrap() == std::fs::read(chart.join(&n)).unwrap(),
            "deploy/helm/kubefed/crds/{n} differs from crds/{n}: {fix}"
        );
    }
}

#[tokio::test]
async fn plain_manifests_install_and_grant_least_privilege() {
    let ctx = "cluster1";
    let crds = repo().join("crds");
    let manifests = repo().join("deploy/manifests");
    ok(
        "applying crds/",
        kubectl(
            ctx,
            &["apply", "--server-side", "-f", crds.to_str().unwrap()],
            None,
        ),
    );
    // For real, not a dry run: a dry run cannot create the namespace its objects need,
    // and the RBAC must exist for the checks below.
    let m = manifests.to_str().unwrap();
    let (out, err) = ok(
        "applying deploy/manifests",
        kubectl(ctx, &["apply", "--server-side", "-k", m], None),
    );
    no_pod_security_warnings("deploy/manifests", &err);
    for obj in [
        "namespace/kube-federation-system",
        "deployment.apps/kubefed-controller-manager",
        "deployment.apps/kubefed-dns-server",
        "service/kubefed-dns",
        "clusterrole.rbac.authorization.k8s.io/kubefed-controller-manager",
        "role.rbac.authorization.k8s.io/kubefed-controller-manager",
    ] {
        assert!(out.contains(obj), "{obj} not applied:\n{out}");
    }
    // The Pod Security check above is live: a careless Deployment is warned about.
    let (_, err) = ok(
        "dry-running a non-compliant Deployment",
        kubectl(
            ctx,
            &[
                "create",
                "deployment",
                "pss-probe",
                "--image=x",
                "-n",
                NS,
                "--dry-run=server",
            ],
            None,
        ),
    );
    assert!(err.contains("would violate PodSecurity"), "{err}");
    assert_dns_service(ctx, "kubefed-dns");

    ok(
        "creating the app namespace",
        kubectl(ctx, &["create", "namespace", APP_NS], None),
    );
    peer_crds(ctx).await;
    check_least_privilege(ctx);
    run_controller_manager_as_its_service_account(ctx).await;
}

/// The least-privilege rules are enough: a controller-manager that authenticates with
/// the ServiceAccount's token leads, probes a joined member, writes a DNSEndpoint (and
/// its ExternalDNS copy), the record's status and an Event, deletes the DNSEndpoints
/// with the record, and releases the Lease, without one forbidden request.
async fn run_controller_manager_as_its_service_account(ctx: &str) {
    let state = &common::federation().state;
    let host = state.cluster(ctx).unwrap();
    let (token, _) = ok(
        "requesting a token",
        kubectl(
            ctx,
            &["create", "token", CM_SA, "-n", NS, "--duration=1h"],
            None,
        ),
    );
    let dir = common::unique_dir("deploy-sa");
    let kc = dir.join("kubeconfig");
    std::fs::write(
        &kc,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: host\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: host\n  context: {{cluster: host, user: sa}}\ncurrent-context: host\n",
            host.api_url,
            host.ca_file.display(),
            token.trim()
        ),
    )
    .unwrap();

    // The user's side, with the admin credentials: join a member, describe a record.
    let out = common::kubefed_fed(&[
        "join",
        "cluster2",
        "--cluster-context",
        "cluster2",
        "--host-cluster-context",
        ctx,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let member = format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: {APP_NS}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: {APP_NS}}}
spec:
  type: LoadBalancer
  selector: {{app: web}}
  ports: [{{port: 80}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: {APP_NS}, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
endpoints: [{{addresses: [10.244.0.5], conditions: {{ready: true}}}}]
ports: [{{port: 80, protocol: TCP}}]
"#
    );
    ok(
        "creating the member's Service",
        kubectl(
            "cluster2",
            &["apply", "--server-side", "-f", "-"],
            Some(&member),
        ),
    );
    ok(
        "setting the member's load balancer",
        kubectl(
            "cluster2",
            &[
                "patch",
                "service",
                "web",
                "-n",
                APP_NS,
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"loadBalancer":{"ingress":[{"ip":"10.0.0.2"}]}}}"#,
            ],
            None,
        ),
    );
    let objects = format!(
        r#"
apiVersion: core.kubefed.io/v1beta1
kind: KubeFedConfig
metadata: {{name: kubefed, namespace: {NS}}}
spec:
  scope: Cluster
  clusterHealthCheck: {{period: 1s, timeout: 1s, failureThreshold: 2}}
---
apiVersion: multiclusterdns.kubefed.io/v1alpha1
kind: Domain
metadata: {{name: deploy-domain, namespace: {NS}}}
domain: example.com
---
apiVersion: multiclusterdns.kubefed.io/v1alpha1
kind: ServiceDNSRecord
metadata: {{name: web, namespace: {APP_NS}}}
spec: {{domainRef: deploy-domain, recordTTL: 300}}
"#
    );
    ok(
        "creating the KubeFedConfig, Domain and record",
        kubectl(ctx, &["apply", "--server-side", "-f", "-"], Some(&objects)),
    );

    let metrics = common::free_addr();
    let kc_s = kc.display().to_string();
    let mut cm = common::Daemon::start(
        &[
            "controller-manager",
            "--kubeconfig",
            &kc_s,
            "--kubefed-namespace",
            NS,
            "--metrics-listen",
            &metrics,
            "--identity",
            "deploy-test",
        ],
        "controller-manager-sa",
    );
    let wait = |what: &'static str, args: Vec<String>, want: &'static str| {
        let cm_log = cm.log.clone();
        async move {
            common::eventually(Duration::from_secs(60), what, || {
                let args = args.clone();
                let cm_log = cm_log.clone();
                async move {
                    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                    let out = kubectl(ctx, &refs, None);
                    let log = std::fs::read_to_string(&cm_log).unwrap_or_default();
                    assert!(
                        !log.to_lowercase().contains("forbidden"),
                        "a request of the controller-manager was forbidden:\n{log}"
                    );
                    (out.status.success() && text(&out.stdout).contains(want)).then_some(())
                }
            })
            .await
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    wait(
        "the Lease held by the ServiceAccount's controller-manager",
        s(&[
            "get",
            "lease",
            LEASE,
            "-n",
            NS,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ]),
        "deploy-test",
    )
    .await;
    wait(
        "cluster2's status written",
        s(&[
            "get",
            "kubefedcluster",
            "cluster2",
            "-n",
            NS,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]),
        "True",
    )
    .await;
    wait(
        "the DNSEndpoint written",
        s(&[
            "get",
            "dnsendpoints.multiclusterdns.kubefed.io",
            "service-web",
            "-n",
            APP_NS,
            "-o",
            "jsonpath={.spec.endpoints[*].targets}",
        ]),
        "10.0.0.2",
    )
    .await;
    wait(
        "the ExternalDNS copy written",
        s(&[
            "get",
            "dnsendpoints.externaldns.k8s.io",
            "service-web",
            "-n",
            APP_NS,
            "-o",
            "jsonpath={.spec.endpoints[*].targets}",
        ]),
        "10.0.0.2",
    )
    .await;
    wait(
        "the record's status written",
        s(&[
            "get",
            "servicednsrecord",
            "web",
            "-n",
            APP_NS,
            "-o",
            "jsonpath={.status.dns[*].cluster}",
        ]),
        "cluster2",
    )
    .await;
    // cluster2 has no Nodes, so no region: the record is not Complete, which is an Event.
    wait(
        "an Event about the record",
        s(&[
            "get",
            "events.events.k8s.io",
            "-n",
            APP_NS,
            "-o",
            "jsonpath={.items[*].regarding.name}",
        ]),
        "web",
    )
    .await;
    let ready = Command::new("curl")
        .args(["-sf", &format!("http://{metrics}/readyz")])
        .output()
        .expect("curl runs");
    assert!(ready.status.success(), "/readyz: {ready:?}");

    ok(
        "deleting the record",
        kubectl(
            ctx,
            &["delete", "servicednsrecord", "web", "-n", APP_NS],
            None,
        ),
    );
    wait(
        "both DNSEndpoints deleted with the record",
        s(&[
            "get",
            "dnsendpoints.multiclusterdns.kubefed.io,dnsendpoints.externaldns.k8s.io",
            "-n",
            APP_NS,
            "-o",
            "jsonpath=count={.items[*].metadata.name}.",
        ]),
        "count=.",
    )
    .await;
    let status = cm.terminate();
    let log = cm.log_text();
    assert!(
        status.success(),
        "controller-manager exited {status}:\n{log}"
    );
    assert!(
        !log.to_lowercase().contains("forbidden"),
        "a request of the controller-manager was forbidden:\n{log}"
    );
    let holder = get_json(ctx, &["lease", LEASE, "-n", NS]);
    assert_ne!(
        holder["spec"]["holderIdentity"], "deploy-test",
        "the Lease was not released: {holder}"
    );
}

fn helm_bin() -> PathBuf {
    let p = kubefed::localup::default_bin_dir().join("helm");
    assert!(
        p.is_file(),
        "{} missing: run `make peers-helm` (bash tests/peers/build-helm.sh)",
        p.display()
    );
    p
}

fn helm(args: &[&str]) -> Output {
    let home = common::unique_dir("helm-home");
    let mut cmd = Command::new(helm_bin());
    cmd.args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    run(cmd, None)
}

fn chart() -> String {
    repo().join("deploy/helm/kubefed").display().to_string()
}

/// Every YAML document of a stream, as JSON values (empty documents dropped).
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap()
        .into_iter()
        .filter(|d| d.is_object())
        .collect()
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn get<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    named(docs, kind, name).unwrap_or_else(|| panic!("no {kind} {name} in {docs:#?}"))
}

/// `helm template` of the chart as release "kubefed" in NS, with `set`.
fn template(set: &[&str]) -> Vec<Value> {
    let chart = chart();
    let mut args = vec!["template", "kubefed", chart.as_str(), "-n", NS];
    args.extend(set);
    let (out, _) = ok(&format!("helm template {set:?}"), helm(&args));
    documents(&out)
}

/// `helm template` with `set` must fail, saying `why`.
/// Every KubeFedConfig value set, for the offline render and the server-side dry run.
const KUBEFED_CONFIG_VALUES: &[&str] = &[
    "--set",
    "kubefedConfig.clusterAvailableDelay=30s,kubefedConfig.clusterUnavailableDelay=2m",
    "--set",
    "kubefedConfig.leaderElect.leaseDuration=20s,kubefedConfig.leaderElect.renewDeadline=15s",
    "--set",
    "kubefedConfig.leaderElect.retryPeriod=3s,kubefedConfig.leaderElect.resourceLock=leases",
    "--set",
    "kubefedConfig.clusterHealthCheck.period=5s,kubefedConfig.clusterHealthCheck.timeout=2s",
    "--set",
    "kubefedConfig.clusterHealthCheck.failureThreshold=4",
    "--set",
    "kubefedConfig.clusterHealthCheck.successThreshold=2",
    "--set",
    "kubefedConfig.syncController.adoptResources=Disabled",
    "--set",
    "kubefedConfig.syncController.maxConcurrentReconciles=16",
];

fn template_refused(set: &[&str], why: &str) {
    let chart = chart();
    let mut args = vec!["template", "kubefed", chart.as_str(), "-n", NS];
    args.extend(set);
    let out = helm(&args);
    assert!(
        !out.status.success() && text(&out.stderr).contains(why),
        "helm template {set:?} must be refused with {why:?}: {out:?}"
    );
}

fn pod_spec<'a>(docs: &'a [Value], deployment: &str) -> &'a Value {
    &get(docs, "Deployment", deployment)["spec"]["template"]["spec"]
}

fn env_var(docs: &[Value], deployment: &str, name: &str) -> Option<Value> {
    pod_spec(docs, deployment)["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .cloned()
}

const CM: &str = "kubefed-controller-manager";
const DNS: &str = "kubefed-dns-server";

/// Objects of the chart (default values) that deploy/manifests does not have.
const CHART_ONLY: &[&str] = &[
    "ClusterRole//kubefed-admin",
    "ClusterRole//kubefed-edit",
    "ClusterRole//kubefed-view",
    "KubeFedConfig/kube-federation-system/kubefed",
    "PodDisruptionBudget/kube-federation-system/kubefed-dns-server",
];

/// Every value of the chart does what docs/deploy.md says, offline (`helm template`), and
/// values.schema.json refuses what is not a value.
#[test]
fn helm_chart_values_have_their_effect() {
    let chart = chart();
    ok(
        "helm lint",
        helm(&[
            "lint",
            "--strict",
            &chart,
            "--set",
            "logLevel=debug,logFormat=text,fullnameOverride=fed,dnsServer.priorityClassName=x",
            "--set",
            "metrics.serviceMonitor.enabled=true,kubefedConfig.clusterHealthCheck.period=2s",
            "--set",
            "federatedTypes.enabled=true,dnsServer.podDisruptionBudget.enabled=true",
            "--set-json",
            r#"controllerManager.env=[{"name":"X","value":"1"}]"#,
        ]),
    );

    // Defaults: a KubeFedConfig with only the scope (the CRD's defaults apply), the
    // aggregated roles, a PDB for the 2 dns-server replicas, no ServiceMonitor.
    let docs = template(&[]);
    let cfg = get(&docs, "KubeFedConfig", "kubefed");
    assert_eq!(cfg["metadata"]["namespace"], NS);
    assert_eq!(
        cfg["spec"],
        serde_json::json!({"scope": "Cluster"}),
        "{cfg}"
    );
    for role in ["admin", "edit", "view"] {
        let r = get(&docs, "ClusterRole", &format!("kubefed-{role}"));
        assert_eq!(
            r["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{role}")],
            "true",
            "{r}"
        );
        let groups: Vec<&str> = r["rules"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["apiGroups"].as_array().unwrap())
            .map(|g| g.as_str().unwrap())
            .collect();
        for g in [
            "core.kubefed.io",
            "types.kubefed.io",
            "scheduling.kubefed.io",
            "multiclusterdns.kubefed.io",
        ] {
            assert!(groups.contains(&g), "kubefed-{role} lacks {g}: {r}");
        }
        let writes = r["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["verbs"].as_array().unwrap().contains(&"create".into()));
        assert_eq!(writes, role != "view", "{r}");
    }
    let pdb = get(&docs, "PodDisruptionBudget", DNS);
    assert_eq!(pdb["spec"]["minAvailable"], 1, "{pdb}");
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"],
        "dns-server"
    );
    assert!(docs.iter().all(|d| d["kind"] != "ServiceMonitor"));
    for d in [CM, DNS] {
        assert_eq!(
            env_var(&docs, d, "KUBEFED_LOG"),
            Some(serde_json::json!({"name": "KUBEFED_LOG", "value": "info"}))
        );
        assert!(pod_spec(&docs, d).get("priorityClassName").is_none());
    }

    // KubeFedConfig values.
    let docs = template(KUBEFED_CONFIG_VALUES);
    assert_eq!(
        get(&docs, "KubeFedConfig", "kubefed")["spec"],
        serde_json::json!({
            "scope": "Cluster",
            "controllerDuration": {"availableDelay": "30s", "unavailableDelay": "2m"},
            "leaderElect": {"leaseDuration": "20s", "renewDeadline": "15s",
                "retryPeriod": "3s", "resourceLock": "leases"},
            "clusterHealthCheck": {"period": "5s", "timeout": "2s",
                "failureThreshold": 4, "successThreshold": 2},
            "syncController": {"adoptResources": "Disabled", "maxConcurrentReconciles": 16},
        })
    );
    let docs = template(&[
        "--set",
        "kubefedConfig.create=false,aggregatedClusterRoles.create=false",
    ]);
    assert!(named(&docs, "KubeFedConfig", "kubefed").is_none());
    assert!(named(&docs, "ClusterRole", "kubefed-view").is_none());
    assert!(named(&docs, "ClusterRole", CM).is_some());

    // Logging, env, annotations, priority classes.
    let docs = template(&[
        "--set",
        r"logLevel=info\,kubefed::dns=debug,logFormat=text",
        "--set-json",
        r#"controllerManager.env=[{"name":"RUST_BACKTRACE","value":"1"}]"#,
        "--set-json",
        r#"dnsServer.env=[{"name":"POD_IP","valueFrom":{"fieldRef":{"fieldPath":"status.podIP"}}}]"#,
        "--set",
        "controllerManager.annotations.a=cm-deploy,controllerManager.podAnnotations.b=cm-pod",
        "--set",
        "dnsServer.annotations.a=dns-deploy,dnsServer.podAnnotations.b=dns-pod",
        "--set",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/kubefed",
        "--set",
        "controllerManager.priorityClassName=system-cluster-critical",
        "--set",
        "dnsServer.priorityClassName=dns-critical",
    ]);
    for (d, prefix, priority) in [
        (CM, "cm", "system-cluster-critical"),
        (DNS, "dns", "dns-critical"),
    ] {
        assert_eq!(
            env_var(&docs, d, "KUBEFED_LOG").unwrap()["value"],
            "info,kubefed::dns=debug"
        );
        assert_eq!(
            env_var(&docs, d, "KUBEFED_LOG_FORMAT").unwrap()["value"],
            "text"
        );
        let dep = get(&docs, "Deployment", d);
        assert_eq!(
            dep["metadata"]["annotations"]["a"],
            format!("{prefix}-deploy")
        );
        assert_eq!(
            dep["spec"]["template"]["metadata"]["annotations"]["b"],
            format!("{prefix}-pod")
        );
        assert_eq!(pod_spec(&docs, d)["priorityClassName"], priority);
        assert_eq!(
            get(&docs, "ServiceAccount", d)["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
            "arn:aws:iam::1:role/kubefed"
        );
    }
    assert_eq!(env_var(&docs, CM, "RUST_BACKTRACE").unwrap()["value"], "1");
    assert_eq!(
        env_var(&docs, DNS, "POD_IP").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "status.podIP"
    );

    // etcd TLS and authentication: a mounted Secret and the ETCD_* variables, in both
    // pods; none of it by default.
    let tls = [
        "--set",
        "etcd.endpoints={https://etcd.dns:2379},etcd.tls.secretName=etcd-client",
        "--set",
        "etcd.tls.serverName=etcd.local,etcd.auth.username=kubefed",
        "--set",
        "etcd.auth.passwordSecret.name=etcd-password",
    ];
    let docs = template(&tls);
    for d in [CM, DNS] {
        let pod = pod_spec(&docs, d);
        assert_eq!(
            pod["volumes"],
            serde_json::json!([{"name": "etcd-tls", "secret": {"secretName": "etcd-client"}}]),
            "{d}"
        );
        assert_eq!(
            pod["containers"][0]["volumeMounts"],
            serde_json::json!([{"name": "etcd-tls", "mountPath": "/etc/kubefed/etcd-tls", "readOnly": true}])
        );
        for (var, value) in [
            ("ETCD_CA_FILE", "/etc/kubefed/etcd-tls/ca.crt"),
            ("ETCD_CERT_FILE", "/etc/kubefed/etcd-tls/tls.crt"),
            ("ETCD_KEY_FILE", "/etc/kubefed/etcd-tls/tls.key"),
            ("ETCD_TLS_SERVER_NAME", "etcd.local"),
            ("ETCD_USERNAME", "kubefed"),
        ] {
            assert_eq!(env_var(&docs, d, var).unwrap()["value"], value, "{d} {var}");
        }
        assert_eq!(
            env_var(&docs, d, "ETCD_PASSWORD").unwrap()["valueFrom"]["secretKeyRef"],
            serde_json::json!({"name": "etcd-password", "key": "password"})
        );
    }
    let docs = template(&[
        "--set",
        "etcd.tls.secretName=etcd-ca,etcd.tls.certKey=,etcd.tls.keyKey=",
    ]);
    assert!(env_var(&docs, DNS, "ETCD_CA_FILE").is_some());
    assert!(env_var(&docs, DNS, "ETCD_CERT_FILE").is_none());
    let docs = template(&[]);
    for d in [CM, DNS] {
        assert!(pod_spec(&docs, d).get("volumes").is_none());
        assert!(env_var(&docs, d, "ETCD_CA_FILE").is_none());
        assert!(env_var(&docs, d, "ETCD_PASSWORD").is_none());
    }
    template_refused(
        &["--set", "etcd.auth.username=kubefed"],
        "etcd.auth.passwordSecret.name",
    );

    // Zone transfers: the dns-server's transfer flags and its TSIG key Secret mounted;
    // none of it by default; a rule that is neither key= nor a prefix is refused.
    let docs = template(&[
        "--set",
        "dnsServer.transfers.allowTransfer={key=xfr,10.0.0.0/8}",
        "--set",
        "dnsServer.transfers.notify={10.1.2.3:53\\,key=xfr}",
        "--set",
        "dnsServer.transfers.tsigKeysSecret=tsig,dnsServer.transfers.ixfrJournal=20",
    ]);
    let pod = pod_spec(&docs, DNS);
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    for want in [
        "--allow-transfer=key=xfr",
        "--allow-transfer=10.0.0.0/8",
        "--notify=10.1.2.3:53,key=xfr",
        "--tsig-key-file=/etc/kubefed/tsig/tsig.keys",
        "--ixfr-journal=20",
        "--max-transfers=4",
    ] {
        assert!(args.contains(&want), "{want} in {args:?}");
    }
    assert_eq!(
        pod["volumes"],
        serde_json::json!([{"name": "tsig-keys", "secret": {"secretName": "tsig"}}])
    );
    assert_eq!(
        pod["containers"][0]["volumeMounts"],
        serde_json::json!([{"name": "tsig-keys", "mountPath": "/etc/kubefed/tsig", "readOnly": true}])
    );
    let docs = template(&[]);
    let default_args = pod_spec(&docs, DNS)["containers"][0]["args"].to_string();
    assert!(!default_args.contains("transfer"), "{default_args}");
    template_refused(
        &["--set", "dnsServer.transfers.allowTransfer={everyone}"],
        "allowTransfer",
    );

    // Names.
    let docs = template(&["--set", "fullnameOverride=fed"]);
    assert!(named(&docs, "Deployment", "fed-controller-manager").is_some());
    assert!(named(&docs, "Service", "fed-dns").is_some());
    assert!(named(&docs, "ClusterRole", "fed-view").is_some());
    assert!(named(&docs, "Deployment", CM).is_none());
    let docs = template(&["--set", "nameOverride=mcdns"]);
    let dep = get(&docs, "Deployment", "kubefed-mcdns-controller-manager");
    assert_eq!(
        dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
        "mcdns"
    );

    // ServiceMonitor, opt-in.
    let docs = template(&[
        "--set",
        "metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.interval=15s",
        "--set",
        "metrics.serviceMonitor.labels.release=prometheus",
    ]);
    let sm = get(&docs, "ServiceMonitor", "kubefed");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        sm["spec"]["endpoints"],
        serde_json::json!([{"port": "metrics", "path": "/metrics", "interval": "15s"}])
    );
    // It selects both metrics Services (by labels) and only they have a "metrics" port.
    for svc in [
        "kubefed-controller-manager-metrics",
        "kubefed-dns-server-metrics",
    ] {
        let labels = &get(&docs, "Service", svc)["metadata"]["labels"];
        for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "{svc}");
        }
        let comp = &labels["app.kubernetes.io/component"];
        assert!(
            sm["spec"]["selector"]["matchExpressions"][0]["values"]
                .as_array()
                .unwrap()
                .contains(comp)
        );
    }

    // The dns-server's PodDisruptionBudget: auto with one replica is none, true forces it.
    let pdb = |set: &[&str]| named(&template(set), "PodDisruptionBudget", DNS).cloned();
    assert!(pdb(&["--set", "dnsServer.replicas=1"]).is_none());
    assert!(pdb(&["--set", "dnsServer.podDisruptionBudget.enabled=false"]).is_none());
    let forced = pdb(&[
        "--set",
        "dnsServer.replicas=1,dnsServer.podDisruptionBudget.enabled=true",
        "--set",
        "dnsServer.podDisruptionBudget.maxUnavailable=50%",
    ])
    .unwrap();
    assert_eq!(
        forced["spec"],
        serde_json::json!({
            "maxUnavailable": "50%",
            "selector": {"matchLabels": get(&template(&[]), "Deployment", DNS)["spec"]["selector"]["matchLabels"]},
        })
    );
    assert!(pdb(&["--set", "dnsServer.enabled=false"]).is_none());

    // values.schema.json: no unknown keys at any level, no wrong types or enums.
    for (set, why) in [
        ("controllerManager.replica=3", "replica"),
        ("dnsServer.service.typ=LoadBalancer", "typ"),
        ("kubefedConfig.leaderElect.leaseDuraton=1s", "leaseDuraton"),
        ("metrics.serviceMonitor.enable=true", "enable"),
        ("serviceAccount.annotation.a=b", "annotation"),
        ("featureGates.PushReconciler=true", "featureGates"),
        ("logFormat=xml", "logFormat"),
        ("kubefedConfig.clusterHealthCheck.period=10", "period"),
        (
            "kubefedConfig.syncController.adoptResources=yes",
            "adoptResources",
        ),
        ("dnsServer.podDisruptionBudget.enabled=maybe", "enabled"),
    ] {
        template_refused(&["--set", set], why);
    }
}

#[tokio::test]
async fn helm_chart_lints_renders_installs_and_matches_the_manifests() {
    let ctx = "cluster3";
    let chart = chart();
    for set in [
        &[][..],
        &["--set", "dnsServer.enabled=false"],
        &[
            "--set",
            "dnsServer.service.type=LoadBalancer",
            "--set",
            "dnsServer.service.externalTrafficPolicy=Local",
            "--set",
            "controllerManager.writeEtcd=false",
        ],
    ] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend(set);
        ok("helm lint", helm(&args));
    }
    let out = helm(&[
        "template",
        "kubefed",
        &chart,
        "--set-json",
        "dnsServer.zones=[]",
    ]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("dnsServer.zones"),
        "an empty zone list must be refused: {out:?}"
    );

    // Offline: with the default release name the chart renders the plain manifests'
    // objects, and exactly their RBAC rules.
    let (rendered, _) = ok(
        "helm template",
        helm(&[
            "template",
            "kubefed",
            &chart,
            "-n",
            NS,
            "--set",
            "namespace.create=true",
        ]),
    );
    let docs = documents(&rendered);
    let mut plain = Vec::new();
    for f in [
        "00-namespace.yaml",
        "10-controller-manager-rbac.yaml",
        "20-controller-manager.yaml",
        "30-dns-server.yaml",
    ] {
        plain.extend(documents(
            &std::fs::read_to_string(repo().join("deploy/manifests").join(f)).unwrap(),
        ));
    }
    let ids = |d: &[Value]| {
        let mut v: Vec<String> = d
            .iter()
            .map(|o| {
                format!(
                    "{}/{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["namespace"].as_str().unwrap_or(""),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        v.sort();
        v
    };
    let chart_ids = ids(&docs);
    for id in CHART_ONLY {
        assert!(chart_ids.iter().any(|i| i == id), "the chart lacks {id}");
    }
    let shared: Vec<String> = chart_ids
        .into_iter()
        .filter(|i| !CHART_ONLY.contains(&i.as_str()))
        .collect();
    assert_eq!(
        shared,
        ids(&plain),
        "chart and deploy/manifests differ in objects"
    );
    for kind in ["ClusterRole", "Role"] {
        assert_eq!(
            get(&docs, kind, CM)["rules"],
            get(&plain, kind, CM)["rules"],
            "the chart's {kind} differs from deploy/manifests"
        );
    }
    for d in docs
        .iter()
        .chain(&plain)
        .filter(|d| d["kind"] == "Deployment")
    {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true, "{d}");
        assert_eq!(
            d["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"],
            true
        );
    }

    // For real: install, then dry-run the rendered stream (with CRDs and other values).
    let kcfg = common::federation().state.kubeconfig.display().to_string();
    let (out, _) = ok(
        "helm install",
        helm(&[
            "install",
            "kubefed",
            &chart,
            "-n",
            NS,
            "--create-namespace",
            "--kubeconfig",
            &kcfg,
            "--kube-context",
            ctx,
        ]),
    );
    assert!(out.contains("STATUS: deployed"), "{out}");
    // `--create-namespace` makes a bare namespace; let Pod Security warn in it so the dry
    // runs below prove the chart's pods are "restricted".
    ok(
        "labelling the namespace",
        kubectl(
            ctx,
            &[
                "label",
                "namespace",
                NS,
                "pod-security.kubernetes.io/warn=restricted",
            ],
            None,
        ),
    );
    for set in [
        &["--set", "namespace.create=true"][..],
        &[
            "--set",
            "dnsServer.service.type=LoadBalancer",
            "--set",
            "dnsServer.service.externalTrafficPolicy=Local",
        ],
        &["--set", "dnsServer.enabled=false"],
        // Every KubeFedConfig value: the object must pass the CRD's schema.
        KUBEFED_CONFIG_VALUES,
        // The default federated types: their CRDs and FederatedTypeConfigs validate.
        &["--set", "federatedTypes.enabled=true"],
        // The other options the API server can check (the ServiceMonitor's CRD is absent).
        &[
            "--set",
            "fullnameOverride=fed,logLevel=debug,serviceAccount.annotations.a=b",
            "--set",
            "controllerManager.annotations.a=b,dnsServer.podDisruptionBudget.enabled=true",
            "--set",
            "dnsServer.podDisruptionBudget.maxUnavailable=50%",
            "--set-json",
            r#"controllerManager.env=[{"name":"X","value":"1"}]"#,
            "--set",
            "etcd.endpoints={https://etcd.dns:2379},etcd.tls.secretName=etcd-client",
            "--set",
            "etcd.auth.username=kubefed,etcd.auth.passwordSecret.name=etcd-password",
        ],
    ] {
        let mut args = vec![
            "template",
            "kubefed",
            chart.as_str(),
            "-n",
            NS,
            "--include-crds",
        ];
        args.extend(set);
        let (stream, _) = ok("helm template", helm(&args));
        let (_, err) = ok(
            "server-side dry run of the chart",
            kubectl(
                ctx,
                &[
                    "apply",
                    "--server-side",
                    "--dry-run=server",
                    "--field-manager=deploy-test",
                    // other values than the installed ones: take the fields over.
                    "--force-conflicts",
                    "-f",
                    "-",
                ],
                Some(&stream),
            ),
        );
        no_pod_security_warnings("the chart", &err);
    }
    let crds = get_json(ctx, &["crd"]);
    let names: Vec<&str> = crds["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap())
        .collect();
    for f in std::fs::read_dir(repo().join("crds")).unwrap() {
        let f = f.unwrap().file_name().to_string_lossy().into_owned();
        let name = f.trim_end_matches(".yaml");
        assert!(
            names.contains(&name),
            "helm install did not create CRD {name}"
        );
    }
    assert_dns_service(ctx, "kubefed-dns");
    // The installed KubeFedConfig, read back with the CRD's defaults filled in.
    let cfg = get_json(ctx, &["kubefedconfig", "kubefed", "-n", NS]);
    assert_eq!(cfg["spec"]["scope"], "Cluster", "{cfg}");
    assert_eq!(
        cfg["spec"]["leaderElect"]["resourceLock"], "leases",
        "{cfg}"
    );
    assert_eq!(cfg["spec"]["clusterHealthCheck"]["period"], "10s", "{cfg}");
    ok(
        "creating the app namespace",
        kubectl(ctx, &["create", "namespace", APP_NS], None),
    );
    peer_crds(ctx).await;
    check_least_privilege(ctx);
    check_aggregated_roles(ctx);
}

/// The chart's kubefed-edit and kubefed-view, bound in a namespace, grant what they say.
/// (Aggregation into admin/edit/view is the kube-controller-manager's work, which the
/// test federation does not run; the labels are checked offline.)
fn check_aggregated_roles(ctx: &str) {
    for role in ["edit", "view"] {
        ok(
            "binding a user to an aggregated role",
            kubectl(
                ctx,
                &[
                    "create",
                    "rolebinding",
                    &format!("kubefed-{role}-user"),
                    &format!("--clusterrole=kubefed-{role}"),
                    &format!("--user={role}-user"),
                    "-n",
                    APP_NS,
                ],
                None,
            ),
        );
    }
    let can_as = |who: &str, verb: &str, res: &str, extra: &[&str]| {
        let as_user = format!("--as={who}");
        let mut args = vec!["auth", "can-i", verb, res, as_user.as_str(), "-n", APP_NS];
        args.extend(extra);
        let out = kubectl(ctx, &args, None);
        match out.status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => panic!("kubectl {args:?}: {out:?}"),
        }
    };
    let status: &[&str] = &["--subresource=status"];
    let table: &[(&str, &str, &str, &[&str], bool)] = &[
        (
            "edit-user",
            "create",
            "federateddeployments.types.kubefed.io",
            &[],
            true,
        ),
        (
            "edit-user",
            "delete",
            "servicednsrecords.multiclusterdns.kubefed.io",
            &[],
            true,
        ),
        (
            "edit-user",
            "update",
            "replicaschedulingpreferences.scheduling.kubefed.io",
            &[],
            true,
        ),
        (
            "edit-user",
            "list",
            "dnsendpoints.multiclusterdns.kubefed.io",
            &[],
            true,
        ),
        (
            "edit-user",
            "create",
            "dnsendpoints.multiclusterdns.kubefed.io",
            &[],
            false,
        ),
        (
            "edit-user",
            "patch",
            "servicednsrecords.multiclusterdns.kubefed.io",
            status,
            false,
        ),
        (
            "edit-user",
            "create",
            "kubefedclusters.core.kubefed.io",
            &[],
            false,
        ),
        (
            "edit-user",
            "get",
            "kubefedconfigs.core.kubefed.io",
            &[],
            true,
        ),
        ("edit-user", "get", "secrets", &[], false),
        (
            "view-user",
            "list",
            "federateddeployments.types.kubefed.io",
            &[],
            true,
        ),
        (
            "view-user",
            "watch",
            "kubefedclusters.core.kubefed.io",
            &[],
            true,
        ),
        (
            "view-user",
            "create",
            "federateddeployments.types.kubefed.io",
            &[],
            false,
        ),
        (
            "view-user",
            "delete",
            "ingressdnsrecords.multiclusterdns.kubefed.io",
            &[],
            false,
        ),
    ];
    let wrong: Vec<String> = table
        .iter()
        .filter(|(who, verb, res, extra, want)| can_as(who, verb, res, extra) != *want)
        .map(|(who, verb, res, extra, want)| format!("{who} {verb} {res} {extra:?}: want {want}"))
        .collect();
    assert!(wrong.is_empty(), "aggregated roles:\n{}", wrong.join("\n"));
}

/// KubeFed's chart's default types (ingresses from networking.k8s.io, as `kubefed enable
/// ingresses` resolves today): group, version, kind, plural, namespaced, short names.
type TypeRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
);
const DEFAULT_TYPES: &[TypeRow] = &[
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
    ),
    ("", "v1", "ConfigMap", "configmaps", true, &["cm"]),
    ("apps", "v1", "Deployment", "deployments", true, &["deploy"]),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
    ),
    ("batch", "v1", "Job", "jobs", true, &[]),
    ("", "v1", "Namespace", "namespaces", false, &["ns"]),
    ("apps", "v1", "ReplicaSet", "replicasets", true, &["rs"]),
    ("", "v1", "Secret", "secrets", true, &[]),
    ("", "v1", "ServiceAccount", "serviceaccounts", true, &["sa"]),
    ("", "v1", "Service", "services", true, &["svc"]),
];

/// What `kubefed enable <type>` creates for each default type: (FederatedTypeConfig name,
/// {"crd": the Federated<Kind> CRD, "typeConfig": the FederatedTypeConfig}).
fn default_type_objects() -> Vec<(String, Value)> {
    DEFAULT_TYPES
        .iter()
        .map(|(group, version, kind, plural, namespaced, short)| {
            let d = DiscoveredResource {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                plural: plural.to_string(),
                singular: kind.to_lowercase(),
                short_names: short.iter().map(|s| s.to_string()).collect(),
                namespaced: *namespaced,
            };
            let ftc = typeconfig::type_config(&d, types::DEFAULT_FEDERATED_GROUP, NS);
            let crd = typeconfig::type_crd(&ftc, &d);
            let mut ftc = serde_json::to_value(&ftc).unwrap();
            ftc["metadata"].as_object_mut().unwrap().remove("namespace");
            (
                d.qualified_name(),
                serde_json::json!({"crd": crd, "typeConfig": ftc}),
            )
        })
        .collect()
}

/// The chart's files/federated-types/<type>.json are what `kubefed enable` generates
/// (KUBEFED_WRITE_CHART_FILES=1 rewrites them), and `federatedTypes.enabled=true` renders
/// them: the CRDs (kept on uninstall) and the FederatedTypeConfigs in the release namespace.
#[test]
fn chart_federated_types_are_what_kubefed_enable_makes() {
    let dir = repo().join("deploy/helm/kubefed/files/federated-types");
    let objects = default_type_objects();
    if std::env::var_os("KUBEFED_WRITE_CHART_FILES").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, v) in &objects {
            let body = serde_json::to_string_pretty(v).unwrap() + "\n";
            std::fs::write(dir.join(format!("{name}.json")), body).unwrap();
        }
    }
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = objects.iter().map(|(n, _)| format!("{n}.json")).collect();
    want.sort();
    let fix = "run KUBEFED_WRITE_CHART_FILES=1 cargo test --test deploy chart_federated_types";
    assert_eq!(files, want, "{fix}");
    for (name, v) in &objects {
        let file: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            &file, v,
            "files/federated-types/{name}.json is stale: {fix}"
        );
    }

    let off = template(&[]);
    assert!(off.iter().all(|d| d["kind"] != "FederatedTypeConfig"));
    let docs = template(&["--set", "federatedTypes.enabled=true"]);
    for (name, v) in &objects {
        let ftc = get(&docs, "FederatedTypeConfig", name);
        assert_eq!(ftc["metadata"]["namespace"], NS);
        assert_eq!(ftc["spec"], v["typeConfig"]["spec"], "{name}");
        assert_eq!(ftc["apiVersion"], "core.kubefed.io/v1beta1");
        let crd_name = v["crd"]["metadata"]["name"].as_str().unwrap();
        let crd = get(&docs, "CustomResourceDefinition", crd_name);
        assert_eq!(crd["spec"], v["crd"]["spec"], "{crd_name}");
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    let some = template(&[
        "--set",
        "federatedTypes.enabled=true",
        "--set-json",
        r#"federatedTypes.types=["deployments.apps","services"]"#,
    ]);
    let ftcs: Vec<&str> = some
        .iter()
        .filter(|d| d["kind"] == "FederatedTypeConfig")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(ftcs, ["deployments.apps", "services"]);
    template_refused(
        &[
            "--set",
            "federatedTypes.enabled=true",
            "--set-json",
            r#"federatedTypes.types=["deployment"]"#,
        ],
        "federatedTypes",
    );
}
