//! Finding and reading the kubeconfig, the one way every subcommand does it.
//!
//! kubectl's rules: `--kubeconfig FILE` names one file; otherwise `$KUBECONFIG` is a list
//! of files (`a:b`) merged with the first file winning for each cluster, user and context
//! name and the first `current-context` set winning (kube's [`Kubeconfig::merge`]), files
//! that do not exist being skipped; otherwise `~/.kube/config`. The controller-manager
//! falls back to the in-cluster service account when none of them exists.
//!
//! This module owns only the finding and merging; what a command does with a context
//! (timeouts, checks) stays with the command.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A kubeconfig read from disk, with where it came from for error messages.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub kubeconfig: Kubeconfig,
    /// The file, or the `$KUBECONFIG` list, it was read from.
    pub source: String,
}

impl Loaded {
    /// `context`, or the current context when `None`; an error naming the source when the
    /// kubeconfig lacks it.
    pub fn context_name(&self, context: Option<&str>) -> anyhow::Result<String> {
        match context {
            Some(c) if self.kubeconfig.contexts.iter().any(|n| n.name == c) => Ok(c.to_string()),
            Some(c) => bail!("context {c:?} not found in kubeconfig {}", self.source),
            None => match &self.kubeconfig.current_context {
                Some(c) if !c.is_empty() => Ok(c.clone()),
                _ => bail!(
                    "kubeconfig {} sets no current-context: name a context",
                    self.source
                ),
            },
        }
    }

    /// The namespace `context` (the current context when `None`) sets, as kubectl's
    /// default for `-n`.
    pub fn namespace(&self, context: Option<&str>) -> Option<String> {
        let name = self.context_name(context).ok()?;
        self.kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.namespace.clone())
            .filter(|n| !n.is_empty())
    }

    /// The client configuration of `context` (the current context when `None`).
    pub async fn config(&self, context: Option<&str>) -> anyhow::Result<kube::Config> {
        let name = self.context_name(context)?;
        let opts = KubeConfigOptions {
            context: Some(name.clone()),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &opts)
            .await
            .with_context(|| format!("context {name:?} of kubeconfig {}", self.source))
    }
}

/// The kubeconfig `--kubeconfig` names, else `$KUBECONFIG`'s files merged, else
/// `~/.kube/config`; `None` when there is none of them.
pub fn find(flag: Option<&Path>) -> anyhow::Result<Option<Loaded>> {
    if let Some(p) = flag {
        let kubeconfig = Kubeconfig::read_from(p)
            .with_context(|| format!("reading kubeconfig {}", p.display()))?;
        return Ok(Some(Loaded {
            kubeconfig,
            source: p.display().to_string(),
        }));
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let source = list.to_string_lossy().into_owned();
        return Ok(
            merge_existing(std::env::split_paths(&list))?.map(|kubeconfig| Loaded {
                kubeconfig,
                source: format!("$KUBECONFIG ({source})"),
            }),
        );
    }
    let Some(home) = std::env::var_os("HOME") else {
        return Ok(None);
    };
    let default = PathBuf::from(home).join(".kube").join("config");
    if !default.exists() {
        return Ok(None);
    }
    find(Some(&default))
}

/// [`find`], where having no kubeconfig is an error (every command but the
/// controller-manager, which can run in-cluster).
pub fn load(flag: Option<&Path>) -> anyhow::Result<Loaded> {
    find(flag)?
        .context("no kubeconfig: pass --kubeconfig, set $KUBECONFIG or create ~/.kube/config")
}

/// The files of a `$KUBECONFIG` list merged in order; missing files are skipped as
/// kubectl does (a list shared between machines names files some of them lack), a file
/// that exists but does not parse is an error. `None` when no file exists.
fn merge_existing(paths: impl Iterator<Item = PathBuf>) -> anyhow::Result<Option<Kubeconfig>> {
    let mut merged: Option<Kubeconfig> = None;
    for p in paths.filter(|p| !p.as_os_str().is_empty()) {
        if !p.exists() {
            continue;
        }
        let next = Kubeconfig::read_from(&p)
            .with_context(|| format!("reading kubeconfig {}", p.display()))?;
        merged = Some(match merged {
            None => next,
            Some(m) => m
                .merge(next)
                .with_context(|| format!("merging kubeconfig {}", p.display()))?,
        });
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, current: Option<&str>, contexts: &[(&str, &str)]) -> PathBuf {
        let mut y = String::from("apiVersion: v1\nkind: Config\n");
        if let Some(c) = current {
            y.push_str(&format!("current-context: {c}\n"));
        }
        y.push_str("clusters:\n");
        for (ctx, server) in contexts {
            y.push_str(&format!(
                "- name: {ctx}\n  cluster:\n    server: {server}\n"
            ));
        }
        y.push_str("contexts:\n");
        for (ctx, _) in contexts {
            y.push_str(&format!(
                "- name: {ctx}\n  context:\n    cluster: {ctx}\n    user: u\n"
            ));
        }
        y.push_str("users:\n- name: u\n  user:\n    token: t\n");
        let p = dir.join(name);
        std::fs::write(&p, y).unwrap();
        p
    }

    fn server(k: &Kubeconfig, cluster: &str) -> String {
        k.clusters
            .iter()
            .find(|c| c.name == cluster)
            .and_then(|c| c.cluster.as_ref())
            .and_then(|c| c.server.clone())
            .unwrap()
    }

    #[test]
    fn first_file_wins_per_name_and_for_current_context() {
        let d = tempfile::tempdir().unwrap();
        let a = file(
            d.path(),
            "a",
            None,
            &[("shared", "https://a"), ("only-a", "https://a")],
        );
        let b = file(
            d.path(),
            "b",
            Some("only-b"),
            &[("shared", "https://b"), ("only-b", "https://b")],
        );
        let c = file(d.path(), "c", Some("only-a"), &[]);
        let k = merge_existing([a, b, c].into_iter()).unwrap().unwrap();
        assert_eq!(server(&k, "shared"), "https://a");
        assert_eq!(server(&k, "only-b"), "https://b");
        assert_eq!(k.current_context.as_deref(), Some("only-b"));
        assert_eq!(k.contexts.len(), 3);
    }

    #[test]
    fn missing_files_in_the_list_are_skipped_and_a_bad_one_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let a = file(d.path(), "a", Some("x"), &[("x", "https://a")]);
        let k = merge_existing([d.path().join("absent"), a.clone()].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(server(&k, "x"), "https://a");
        assert!(
            merge_existing([d.path().join("absent")].into_iter())
                .unwrap()
                .is_none()
        );
        let bad = d.path().join("bad");
        std::fs::write(&bad, "clusters: [not, a, list, of, clusters").unwrap();
        let e = merge_existing([a, bad].into_iter()).unwrap_err();
        assert!(format!("{e:#}").contains("bad"), "{e:#}");
    }

    #[test]
    fn a_missing_context_names_the_source() {
        let d = tempfile::tempdir().unwrap();
        let a = file(d.path(), "a", None, &[("x", "https://a")]);
        let l = load(Some(&a)).unwrap();
        assert_eq!(l.context_name(Some("x")).unwrap(), "x");
        let e = l.context_name(Some("y")).unwrap_err().to_string();
        assert!(
            e.contains("\"y\"") && e.contains(&a.display().to_string()),
            "{e}"
        );
        assert!(
            l.context_name(None)
                .unwrap_err()
                .to_string()
                .contains("current-context")
        );
    }
}
