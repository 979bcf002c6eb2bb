//! The lab's artifacts bundle: etcd and etcdctl taken from the image's Debian packages
//! (etcd-server, etcd-client) with a SHA256SUMS file, so `kinit up` on lab nodes uploads real
//! binaries through the same checksum-verified path as on real hosts.

use std::fs;
use std::path::{Path, PathBuf};

use super::LabError;
use crate::ssh::sha256_hex;

/// (file in the bundle, where the Debian package installs it in the image).
pub const BINARIES: &[(&str, &str)] = &[("etcd", "usr/bin/etcd"), ("etcdctl", "usr/bin/etcdctl")];

/// `<lab>/bundle`, made once from the image. Built beside its final name and renamed, so a
/// bundle is either whole or absent.
pub fn ensure(lab_dir: &Path, image_rootfs: &Path) -> Result<PathBuf, LabError> {
    let dir = lab_dir.join("bundle");
    if dir.join("SHA256SUMS").is_file() {
        return Ok(dir);
    }
    let tmp = lab_dir.join(".bundle.tmp");
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(|e| LabError::io(&tmp, "creating", e))?;
    let mut sums = String::new();
    for (name, source) in BINARIES {
        let from = image_rootfs.join(source);
        let bytes = fs::read(&from).map_err(|e| LabError::io(&from, "reading", e))?;
        let to = tmp.join(name);
        fs::write(&to, &bytes).map_err(|e| LabError::io(&to, "writing", e))?;
        sums.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
    }
    let sums_path = tmp.join("SHA256SUMS");
    fs::write(&sums_path, sums).map_err(|e| LabError::io(&sums_path, "writing", e))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&tmp, &dir).map_err(|e| LabError::io(&dir, "creating", e))?;
    Ok(dir)
}
