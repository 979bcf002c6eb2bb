//! The lab's artifacts bundle, `<lab>/bundle` with a SHA256SUMS file, so `kinit up` on lab
//! nodes uploads real binaries through the same checksum-verified path as on real hosts. Either
//! the Kubernetes bundle `hack/build-upstream.sh` builds (etcd 3.6 and the control plane's
//! programs: the lab then runs a real control plane as systemd units), or etcd and etcdctl
//! from the image's Debian packages (etcd-server, etcd-client).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::LabError;
use super::plan::LabBundleChoice;

/// (file in the bundle, where the Debian package installs it in the image).
pub const IMAGE_BINARIES: &[(&str, &str)] =
    &[("etcd", "usr/bin/etcd"), ("etcdctl", "usr/bin/etcdctl")];

/// What a Kubernetes bundle must hold for the lab's systemd control plane.
pub const KUBERNETES_BINARIES: &[&str] = &[
    "etcd",
    "etcdctl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    // etcd 3.6 restores snapshots with etcdutl alone.
    "etcdutl",
];

/// What a runtime lab's bundle adds (`--runtime`): (file in the bundle, file in the source
/// directory, as `hack/build-upstream.sh DIR --set node` and the kubernetes set lay them out).
pub const RUNTIME_BINARIES: &[(&str, &str)] = &[
    ("kubelet", "kubelet"),
    ("kube-proxy", "kube-proxy"),
    ("containerd", "containerd"),
    ("containerd-shim-runc-v2", "containerd-shim-runc-v2"),
    ("ctr", "ctr"),
    ("runc", "runc"),
    ("crictl", "crictl"),
    ("cni/bridge", "bridge"),
    ("cni/host-local", "host-local"),
    ("cni/loopback", "loopback"),
    ("cni/portmap", "portmap"),
];
/// The images a runtime lab's bundle carries, built from static binaries of the source
/// directory as `kinit bundle import` does (the sandbox, CoreDNS, the control plane's static
/// pods): every one of [`crate::bundle::image::BUNDLE_IMAGES`].
fn runtime_images() -> impl Iterator<Item = &'static crate::bundle::image::BundleImage> {
    crate::bundle::image::BUNDLE_IMAGES.iter()
}

/// The release of the etcd at `path`, as it says (the lab runs on this machine: so does it).
fn etcd_release(path: &Path) -> Result<String, LabError> {
    let said = std::process::Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| LabError::io(path, "running", e))?;
    let out = String::from_utf8_lossy(&said.stdout);
    crate::etcd::version::EtcdVersion::from_version_output(&out)
        .map(|v| v.to_string())
        .map_err(|e| {
            LabError::step(
                "reading the lab's etcd release",
                format!("{}: {e}", path.display()),
            )
        })
}

/// Where `hack/build-upstream.sh` puts its binaries by default (README, `.ci/run`).
pub const DEFAULT_UPSTREAM_DIR: &str = "/var/cache/kinit-test/bundle-bin";

/// Where a lab's binaries come from, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabBundleSource {
    Image,
    Kubernetes { dir: PathBuf, version: String },
}

impl LabBundleSource {
    /// The Kubernetes release, when the bundle carries one.
    pub fn kubernetes(&self) -> Option<String> {
        match self {
            LabBundleSource::Image => None,
            LabBundleSource::Kubernetes { version, .. } => Some(version.clone()),
        }
    }
}

/// The source a request asks for: the default Kubernetes bundle only when it is there.
pub fn resolve(choice: &LabBundleChoice, runtime: bool) -> Result<LabBundleSource, LabError> {
    let dir = match choice {
        LabBundleChoice::Image if runtime => {
            return Err(LabError::Invalid(
                "--runtime needs a Kubernetes bundle directory (kubelet, containerd, runc, ...), not `image`".into(),
            ));
        }
        LabBundleChoice::Image => return Ok(LabBundleSource::Image),
        LabBundleChoice::Default => {
            let dir = PathBuf::from(DEFAULT_UPSTREAM_DIR);
            if !dir.join("kube-apiserver").is_file() && !runtime {
                return Ok(LabBundleSource::Image);
            }
            dir
        }
        LabBundleChoice::Dir(dir) => dir.clone(),
    };
    if runtime && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Err(LabError::Invalid(
            "--runtime gives each node writable cgroup v1 controllers of its own, and this machine \
             has cgroup v2 only (a unified hierarchy); nodes that run containers under cgroup v2 \
             are not implemented"
                .into(),
        ));
    }
    let runtime_files = runtime
        .then(|| {
            RUNTIME_BINARIES
                .iter()
                .map(|(_, from)| *from)
                .chain(runtime_images().map(|i| i.binary))
        })
        .into_iter()
        .flatten();
    let missing: Vec<&str> = KUBERNETES_BINARIES
        .iter()
        .copied()
        .chain(runtime_files)
        .filter(|f| !dir.join(f).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(LabError::step(
            "reading the lab's bundle",
            format!(
                "{} lacks {}; build them with `hack/build-upstream.sh {}{}`",
                dir.display(),
                missing.join(", "),
                dir.display(),
                if runtime {
                    " --set kubernetes --set etcd --set node"
                } else {
                    ""
                }
            ),
        ));
    }
    let version = apiserver_version(&dir)?;
    Ok(LabBundleSource::Kubernetes { dir, version })
}

/// `kube-apiserver --version` → `v1.37.2`.
fn apiserver_version(dir: &Path) -> Result<String, LabError> {
    let bin = dir.join("kube-apiserver");
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .map_err(|e| LabError::io(&bin, "running", e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_kubernetes_version(&text).ok_or_else(|| {
        LabError::step(
            "reading the lab's bundle",
            format!(
                "`{} --version` said {:?}, not `Kubernetes vX.Y.Z`",
                bin.display(),
                text.trim()
            ),
        )
    })
}

/// `Kubernetes v1.37.2` → `v1.37.2`.
pub fn parse_kubernetes_version(text: &str) -> Option<String> {
    let v = text.trim().strip_prefix("Kubernetes ")?;
    let digits = v.strip_prefix('v')?;
    let parts: Vec<&str> = digits.split('.').collect();
    (parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
    .then(|| v.to_string())
}

/// `<lab>/bundle`, made once. Built beside its final name and renamed, so a bundle is either
/// whole or absent. Kubernetes binaries are hard links to the source when it is on the same
/// file system (SHA256SUMS, checked before each upload, catches a source changed later).
pub fn ensure(
    lab_dir: &Path,
    image_rootfs: &Path,
    source: &LabBundleSource,
    runtime: bool,
) -> Result<PathBuf, LabError> {
    let dir = lab_dir.join("bundle");
    if dir.join("SHA256SUMS").is_file() {
        return Ok(dir);
    }
    let tmp = lab_dir.join(".bundle.tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| LabError::io(&tmp, "creating", e))?;
    let mut files: Vec<(String, PathBuf)> = match source {
        LabBundleSource::Image => IMAGE_BINARIES
            .iter()
            .map(|(name, at)| (name.to_string(), image_rootfs.join(at)))
            .collect(),
        LabBundleSource::Kubernetes { dir, .. } => KUBERNETES_BINARIES
            .iter()
            .map(|name| (name.to_string(), dir.join(name)))
            .collect(),
    };
    if let (true, LabBundleSource::Kubernetes { dir, .. }) = (runtime, source) {
        files.extend(
            RUNTIME_BINARIES
                .iter()
                .map(|(name, from)| (name.to_string(), dir.join(from))),
        );
        let images = tmp.join("images");
        fs::create_dir_all(&images).map_err(|e| LabError::io(&images, "creating", e))?;
        let release = source.kubernetes().unwrap_or_default();
        for image in runtime_images() {
            let from = dir.join(image.binary);
            // etcd's image is of etcd's release, not Kubernetes'.
            let release = if image.binary == crate::bundle::image::ETCD_BINARY {
                etcd_release(&from)?
            } else {
                release.clone()
            };
            let archive = image
                .build(
                    &from,
                    crate::config::model::DEFAULT_IMAGE_REPOSITORY,
                    "amd64",
                    &release,
                )
                .map_err(|e| LabError::io(&from, "building an image from", e))?;
            let at = tmp.join(image.archive);
            fs::write(&at, archive).map_err(|e| LabError::io(&at, "writing", e))?;
        }
    }
    let mut sums = String::new();
    for (name, from) in files {
        let to = tmp.join(&name);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(|e| LabError::io(parent, "creating", e))?;
        }
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(|e| LabError::io(&from, "copying", e))?;
        }
        let sha = crate::fsutil::sha256_file(&to).map_err(|e| LabError::io(&to, "reading", e))?;
        sums.push_str(&format!("{sha}  {name}\n"));
    }
    for name in runtime_images().filter(|_| runtime).map(|i| i.archive) {
        let at = tmp.join(name);
        let sha = crate::fsutil::sha256_file(&at).map_err(|e| LabError::io(&at, "reading", e))?;
        sums.push_str(&format!("{sha}  {name}\n"));
    }
    let sums_path = tmp.join("SHA256SUMS");
    fs::write(&sums_path, sums).map_err(|e| LabError::io(&sums_path, "writing", e))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir).map_err(|e| LabError::io(&dir, "creating", e))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_versions_are_read_from_the_apiserver() {
        assert_eq!(
            parse_kubernetes_version("Kubernetes v1.37.2\n").as_deref(),
            Some("v1.37.2")
        );
        for bad in [
            "Kubernetes v0.0.0-master+$Format:%H$",
            "v1.37.2",
            "Kubernetes 1.37.2",
            "",
        ] {
            assert_eq!(parse_kubernetes_version(bad), None, "{bad}");
        }
    }

    #[test]
    fn image_bundles_need_nothing_built() {
        assert_eq!(
            resolve(&LabBundleChoice::Image, false).unwrap(),
            LabBundleSource::Image
        );
        let empty = tempfile::tempdir().unwrap();
        let err = resolve(&LabBundleChoice::Dir(empty.path().into()), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("lacks etcd, etcdctl, kube-apiserver"), "{err}");
    }

    /// The VM e2e's bundle (vagrant/box-set.sh `VM_BUNDLE_FILES`) is a lab's: the same programs,
    /// so the VMs run the control plane the labs test.
    #[test]
    fn the_vm_bundle_holds_what_a_lab_bundle_holds() {
        let script = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("vagrant/box-set.sh"),
        )
        .unwrap();
        let line = script
            .lines()
            .find_map(|l| l.strip_prefix("VM_BUNDLE_FILES=("))
            .expect("VM_BUNDLE_FILES=(...) in vagrant/box-set.sh");
        let mut vm: Vec<&str> = line.trim_end_matches(')').split_whitespace().collect();
        let mut lab = KUBERNETES_BINARIES.to_vec();
        vm.sort_unstable();
        lab.sort_unstable();
        assert_eq!(vm, lab);
    }
}
