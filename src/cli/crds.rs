//! `kubefed crds`: the CRDs generated from the Rust types, the source of `crds/`.

use std::path::PathBuf;

use clap::Args;

use crate::api;

#[derive(Args, Debug)]
pub struct CrdsArgs {
    /// Write one file per CRD into this directory instead of printing one YAML stream.
    #[arg(long, short = 'o')]
    pub output_dir: Option<PathBuf>,
}

pub fn run(args: CrdsArgs) -> anyhow::Result<()> {
    let crds = api::crds();
    match args.output_dir {
        None => print!("{}", api::crds_yaml(&crds)?),
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for crd in &crds {
                let path = dir.join(api::crd_file_name(crd));
                std::fs::write(&path, api::crds_yaml(std::slice::from_ref(crd))?)?;
            }
        }
    }
    Ok(())
}
