//! The container image (`make image`, deploy/image/build-oci.sh) built with umoci, no
//! daemon: an OCI archive whose only contents are the binary, the libraries it links and
//! a non-root user. The test builds it from this test's binary (the same script `make
//! image` runs on the release binary), unpacks it and runs `kubefed --version` and
//! `kubefed dns-server --help` with nothing from the host: the image's own dynamic
//! loader and libraries, and a chroot into the rootfs when the test runs as root.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn tool(name: &str) -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} not found: apt-get install -y umoci (make deps installs it)"
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn blob(layout: &Path, digest: &str) -> Value {
    let (algo, hex) = digest.split_once(':').unwrap();
    serde_json::from_slice(&std::fs::read(layout.join("blobs").join(algo).join(hex)).unwrap())
        .unwrap()
}

#[test]
fn the_image_runs_kubefed_from_its_own_rootfs() {
    let umoci = tool("umoci");
    let dir = common::unique_dir("image");
    let layout = dir.join("kubefed");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/image/build-oci.sh");
    run(Command::new("bash")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_kubefed"))
        .arg(&layout)
        .arg("0.1.0"));
    let archive = dir.join("kubefed.tar");
    assert!(archive.is_file(), "no OCI archive");

    // Unpack the archive, not the layout the script left: the archive is the product.
    let unpacked = dir.join("from-archive");
    std::fs::create_dir_all(&unpacked).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&unpacked));
    let index: Value =
        serde_json::from_slice(&std::fs::read(unpacked.join("index.json")).unwrap()).unwrap();
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "0.1.0"
    );
    let manifest = blob(&unpacked, entry["digest"].as_str().unwrap());
    let config = blob(&unpacked, manifest["config"]["digest"].as_str().unwrap());
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/kubefed"])
    );
    assert_eq!(config["config"]["User"], "65532:65532", "runs as non-root");
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        1,
        "FROM scratch: one layer"
    );

    let bundle = dir.join("bundle");
    run(Command::new(&umoci)
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:0.1.0", unpacked.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    // The image's loader, told to use only the image's libraries (and no host cache).
    let in_image = |args: &[&str]| {
        run(Command::new(rootfs.join("lib64/ld-linux-x86-64.so.2"))
            .arg("--inhibit-cache")
            .arg("--library-path")
            .arg(rootfs.join("lib/x86_64-linux-gnu"))
            .arg(rootfs.join("usr/local/bin/kubefed"))
            .args(args)
            .env_clear())
    };
    let version = in_image(&["--version"]);
    assert!(
        version.starts_with("kubefed 0.1.0\ngit commit: "),
        "{version}"
    );
    let help = in_image(&["dns-server", "--help"]);
    assert!(
        help.contains("--etcd-endpoints") && help.contains("--zone"),
        "{help}"
    );

    if run(Command::new("id").arg("-u")).trim() == "0" {
        let out = run(Command::new(tool("chroot"))
            .arg(&rootfs)
            .args(["/usr/local/bin/kubefed", "dns-server", "--help"])
            .env_clear());
        assert!(out.contains("--etcd-endpoints"), "{out}");
    }
}
