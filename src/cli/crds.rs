//! `kubefed crds`: the CRDs generated from the Rust types, the source of `crds/`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::api;

#[derive(Args, Debug)]
pub struct CrdsArgs {
    /// Output format of the stream printed on stdout.
    #[arg(long, short = 'o', value_enum, default_value_t = CrdFormat::Yaml)]
    pub output: CrdFormat,
    /// Write one YAML file per CRD into this directory instead of printing them.
    #[arg(long, short = 'd', conflicts_with = "output")]
    pub output_dir: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdFormat {
    /// A multi-document YAML stream.
    Yaml,
    /// A `v1` `List` holding every CRD (what `kubectl get -o json` prints).
    Json,
}

pub fn run(args: CrdsArgs) -> anyhow::Result<()> {
    let crds = api::crds();
    match (args.output_dir, args.output) {
        (None, CrdFormat::Yaml) => print!("{}", api::crds_yaml(&crds)?),
        (None, CrdFormat::Json) => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": crds});
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        (Some(dir), _) => {
            std::fs::create_dir_all(&dir)?;
            for crd in &crds {
                let path = dir.join(api::crd_file_name(crd));
                std::fs::write(&path, api::crds_yaml(std::slice::from_ref(crd))?)?;
            }
        }
    }
    Ok(())
}
