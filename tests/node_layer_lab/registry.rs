//! A registry on the lab network that the nodes pull from only through `spec.registries`,
//! and what leaves the nodes when the registry leaves cluster.yaml.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::lab::*;
use crate::{NODES, REGISTRY};

/// Debian's docker-registry, serving plain HTTP on the lab bridge's own address (the subnet's
/// first, which the lab gave the bridge). The nodes reach it only through `spec.registries`:
/// without its hosts.toml, containerd would speak HTTPS to it and fail. Stopped, its storage
/// removed, when dropped.
pub struct LocalRegistry {
    child: Child,
    /// `10.213.234.1:5234`.
    address: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalRegistry {
    pub fn start(address: &str) -> LocalRegistry {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {address}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        let mut command = Command::new("docker-registry");
        // Killed with the test's thread even when the test itself is killed (SIGTERM, SIGKILL:
        // no Drop runs then), so no registry outlives its lab.
        // SAFETY: prctl is async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .args(["serve", config.to_str().unwrap()])
            .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
            .stderr(Stdio::from(
                std::fs::OpenOptions::new().append(true).open(&log).unwrap(),
            ))
            .spawn()
            .expect("docker-registry (Debian's docker-registry package)");
        let registry = LocalRegistry {
            child,
            address: address.to_string(),
            log,
            _dir: dir,
        };
        wait_for("the registry answers", Duration::from_secs(20), || {
            let out = curl(&["-o", "/dev/null", &format!("http://{address}/v2/")]);
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("{}\n{}", text(&out), registry.log_text()))
            }
        });
        registry
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Push an OCI image archive (as kinit builds them) as `repository:tag`, the registry API
    /// way: each blob uploaded under its digest, then the manifest.
    pub fn push(&self, archive: &[u8], repository: &str, tag: &str) {
        let mut blobs = std::collections::BTreeMap::new();
        let mut index = Value::Null;
        let mut tar = tar::Archive::new(archive);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().to_string();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut data).unwrap();
            if path == "index.json" {
                index = serde_json::from_slice(&data).unwrap();
            } else if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                blobs.insert(format!("sha256:{hex}"), data);
            }
        }
        let manifest = &index["manifests"][0];
        let manifest_digest = manifest["digest"].as_str().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let base = format!("http://{}/v2/{repository}", self.address);
        for (digest, data) in blobs.iter().filter(|(d, _)| *d != manifest_digest) {
            let upload = curl(&[
                "-X",
                "POST",
                "-o",
                "/dev/null",
                "-w",
                "%header{location}",
                &format!("{base}/blobs/uploads/"),
            ]);
            assert!(
                upload.status.success(),
                "upload of {digest}: {}",
                text(&upload)
            );
            let location = String::from_utf8(upload.stdout).unwrap();
            let sep = if location.contains('?') { '&' } else { '?' };
            let file = scratch.path().join("blob");
            std::fs::write(&file, data).unwrap();
            let put = curl(&[
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &format!("@{}", file.display()),
                &format!("{location}{sep}digest={digest}"),
            ]);
            assert!(put.status.success(), "blob {digest}: {}", text(&put));
        }
        let file = scratch.path().join("manifest");
        std::fs::write(&file, &blobs[manifest_digest]).unwrap();
        let put = curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {}", manifest["mediaType"].as_str().unwrap()),
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("{base}/manifests/{tag}"),
        ]);
        assert!(put.status.success(), "manifest: {}", text(&put));
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// curl, failing on an HTTP error, never through a proxy (the registry is on the lab bridge).
fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-fsS", "--noproxy", "*", "--max-time", "30"])
        .args(args)
        .output()
        .expect("curl")
}

/// A registry that leaves cluster.yaml leaves the nodes too: `up` removes the certs.d
/// directory it rendered for it; one kinit did not render stays.
pub fn leaves_the_nodes_with_cluster_yaml(lab: &Lab) {
    let by_hand = "/etc/containerd/certs.d/by-hand.test";
    lab.on(
        "w1",
        &format!(
            "mkdir -p {by_hand} && echo 'server = \"https://by-hand.test\"' > {by_hand}/hosts.toml"
        ),
    );
    let now = std::fs::read_to_string(&lab.config).unwrap();
    let without_registry = now.replacen(
        &format!(
            "\n  registries:\n    - {{name: \"{REGISTRY}\", mirrors: [\"http://{REGISTRY}\"], insecure: true}}\n"
        ),
        "\n",
        1,
    );
    assert_ne!(
        without_registry,
        now,
        "no registries in {}",
        lab.config.display()
    );
    std::fs::write(&lab.config, without_registry).unwrap();
    let (code, summary, all) = lab.up(&[]);
    assert_eq!(code, 0, "up without the registry: {all}");
    assert_eq!(
        summary["filesRemoved"], 5,
        "one certs.d entry per node: {summary}"
    );
    for node in NODES {
        let left = lab.on(node, "ls /etc/containerd/certs.d");
        assert!(!left.contains(REGISTRY), "{node} keeps {REGISTRY}: {left}");
    }
    assert!(
        lab.on("w1", &format!("cat {by_hand}/hosts.toml"))
            .contains("by-hand.test"),
        "the directory kinit did not render went too"
    );
}
