//! `kubefed render -f FILE`: the DNSEndpoints that the records in FILE produce, offline.
//!
//! FILE holds YAML or JSON documents (several, separated by `---`; `kind: List` is
//! expanded), typically `kubectl get servicednsrecords,ingressdnsrecords -A -o yaml`.
//! Each ServiceDNSRecord and IngressDNSRecord, with its status, goes through
//! [`records::render_service`] / [`records::render_ingress`], the functions the
//! controller uses; other kinds are skipped with a note on stderr.
//!
//! Offline by default: load balancer hostnames are not looked up (the resolution table
//! is empty), so their addresses are left out and each is reported on stderr as a
//! warning, as are the other [`records::Problem`]s. `--resolve` looks them up as the
//! controller does (the same resolver, system configuration and `/etc/hosts`), so that
//! the output is exactly what the controller would write now.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::Value;

use crate::api::multiclusterdns::{API_VERSION, DNSEndpoint, IngressDNSRecord, ServiceDNSRecord};
use crate::dns::controllers::resolve::HostnameCache;
use crate::dns::records::{self, ExternalDnsEndpoint, Rendered, Resolved};

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// File with ServiceDNSRecord / IngressDNSRecord documents (YAML or JSON); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub filename: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Yaml)]
    pub output: Output,
    /// Namespace of records that do not name one (as `kubectl apply` would use).
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Also print the externaldns.k8s.io/v1alpha1 copy of each DNSEndpoint (what
    /// ExternalDNS >= v0.21 reads; the controller writes it where that CRD is installed).
    #[arg(long)]
    pub externaldns: bool,
    /// Look load balancer hostnames up as the controller does (system resolver and
    /// /etc/hosts), instead of leaving their addresses out.
    #[arg(long)]
    pub resolve: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Yaml,
    Json,
}

pub async fn run(args: RenderArgs) -> anyhow::Result<()> {
    let (source, text) = read_input(&args.filename)?;
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
        .with_context(|| format!("{source} is not valid YAML or JSON"))?;

    // Only with --resolve: the controller's resolver.
    let cache = args.resolve.then(HostnameCache::new);
    let mut out: Vec<Item> = Vec::new();
    let mut failed = 0usize;
    let mut records = 0usize;
    for (index, doc) in expand_lists(docs).into_iter().enumerate() {
        let what = describe(&doc, index);
        let rendered = match (doc.get("apiVersion"), doc.get("kind")) {
            (Some(v), Some(k)) if v == API_VERSION && k == "ServiceDNSRecord" => {
                records += 1;
                match serde_json::from_value::<ServiceDNSRecord>(doc) {
                    Ok(mut rec) => {
                        default_namespace(&mut rec.metadata.namespace, &args.namespace);
                        let resolved =
                            resolve(cache.as_ref(), records::service_hostnames(&rec)).await;
                        records::render_service(&rec, &resolved).map_err(anyhow::Error::from)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            (Some(v), Some(k)) if v == API_VERSION && k == "IngressDNSRecord" => {
                records += 1;
                match serde_json::from_value::<IngressDNSRecord>(doc) {
                    Ok(mut rec) => {
                        default_namespace(&mut rec.metadata.namespace, &args.namespace);
                        let resolved =
                            resolve(cache.as_ref(), records::ingress_hostnames(&rec)).await;
                        records::render_ingress(&rec, &resolved).map_err(anyhow::Error::from)
                    }
                    Err(e) => Err(e.into()),
                }
            }
            _ => {
                if !doc.is_null() {
                    eprintln!("note: skipping {what}: not a ServiceDNSRecord or IngressDNSRecord");
                }
                continue;
            }
        };
        match rendered {
            Ok(Rendered { object, problems }) => {
                for p in &problems {
                    eprintln!("warning: {what}: {p}");
                }
                if args.externaldns {
                    let copy = records::externaldns_copy_object(&object);
                    out.push(Item::Kubefed(object));
                    out.push(Item::ExternalDns(copy));
                } else {
                    out.push(Item::Kubefed(object));
                }
            }
            Err(e) => {
                eprintln!("error: {what}: {e:#}");
                failed += 1;
            }
        }
    }

    let mut stdout = std::io::stdout().lock();
    stdout.write_all(format_output(&out, args.output)?.as_bytes())?;
    stdout.flush()?;

    if records == 0 {
        eprintln!("note: {source} holds no ServiceDNSRecord or IngressDNSRecord");
    }
    if failed > 0 {
        bail!("{failed} of {records} records in {source} could not be rendered");
    }
    Ok(())
}

/// The addresses of `hostnames`, looked up only with `--resolve`.
async fn resolve(cache: Option<&HostnameCache>, hostnames: BTreeSet<String>) -> Resolved {
    match cache {
        Some(c) if !hostnames.is_empty() => c.resolve(&hostnames).await,
        _ => Resolved::new(),
    }
}

pub(crate) fn read_input(path: &PathBuf) -> anyhow::Result<(String, String)> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading stdin")?;
        Ok(("stdin".to_string(), text))
    } else {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok((path.display().to_string(), text))
    }
}

/// `kind: List` documents (what `kubectl get -o yaml` prints) stand for their items.
pub(crate) fn expand_lists(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter()
        .flat_map(|doc| {
            let is_list = doc.get("kind").and_then(Value::as_str) == Some("List")
                || doc
                    .get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.ends_with("List") && doc.get("items").is_some());
            match (is_list, doc) {
                (true, Value::Object(mut m)) => match m.remove("items") {
                    Some(Value::Array(items)) => items,
                    _ => vec![],
                },
                (_, doc) => vec![doc],
            }
        })
        .collect()
}

/// `Kind namespace/name` for messages, or the document's position when it has no name.
fn describe(doc: &Value, index: usize) -> String {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("document");
    let meta = doc.get("metadata");
    let field = |f: &str| meta.and_then(|m| m.get(f)).and_then(Value::as_str);
    match (field("namespace"), field("name")) {
        (Some(ns), Some(name)) => format!("{kind} {ns}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        _ => format!("{kind} #{}", index + 1),
    }
}

fn default_namespace(ns: &mut Option<String>, default: &str) {
    if ns.as_deref().unwrap_or_default().is_empty() {
        *ns = Some(default.to_string());
    }
}

/// One printed object. Typed rather than `serde_json::Value` so that fields keep their
/// usual order (apiVersion, kind, metadata, spec; dnsName, targets, recordType, ...).
#[derive(Serialize)]
#[serde(untagged)]
enum Item {
    Kubefed(DNSEndpoint),
    ExternalDns(ExternalDnsEndpoint),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List<'a> {
    api_version: &'static str,
    kind: &'static str,
    items: &'a [Item],
}

/// YAML: one document per object, each opened by `---` (like `kubefed crds`). JSON: the
/// object itself when there is one, else a `v1` `List` (like `kubectl get -o json`).
fn format_output(objects: &[Item], output: Output) -> anyhow::Result<String> {
    match output {
        Output::Yaml => {
            let mut s = String::new();
            for obj in objects {
                s.push_str("---\n");
                s.push_str(&serde_saphyr::to_string(obj)?);
            }
            Ok(s)
        }
        Output::Json => {
            let text = match objects {
                [one] => serde_json::to_string_pretty(one)?,
                items => serde_json::to_string_pretty(&List {
                    api_version: "v1",
                    kind: "List",
                    items,
                })?,
            };
            Ok(text + "\n")
        }
    }
}
