//! The hash a static-pod manifest carries of the certificates, keys and kubeconfigs its pod
//! reads (the component table's [`FileRow::certificates`]). The kubelet re-creates a static pod
//! only when its manifest changes: with the hash in an annotation, a renewed certificate
//! changes the manifests of exactly the pods that read it, on exactly the hosts that hold it,
//! and an unchanged PKI leaves every manifest as it was (nothing restarts).
//!
//! The files hashed are the ones the certificates phase ships to the host: its tree of the PKI
//! dir (`<pki dir>/hosts/<host>/etc/kubernetes/`, see [`crate::pki::table::host_root`]). Private
//! keys are among them, and the annotation shows on the mirror pod in the API: a sha256 over
//! key material this long tells nothing about it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::RenderError;
use crate::components::FileRow;
use crate::host_paths;

/// The annotation's key in `metadata.annotations`.
pub const ANNOTATION: &str = "kinit.io/certificates-sha256";

/// Its value while the host has no tree in the PKI dir yet (`kinit render` before `kinit certs
/// generate`): `kinit up` renders after its pki phase, so a deployed manifest never says this.
pub const NO_PKI: &str = "none: no PKI for this host yet";

/// A host's tree of the PKI dir: what `/etc/kubernetes/` on that host receives.
#[derive(Debug, Clone)]
pub struct HostPki {
    /// None when the host has no tree yet.
    root: Option<PathBuf>,
}

impl HostPki {
    /// `host`'s tree under `pki_dir`.
    pub fn of(pki_dir: &Path, host: &str) -> HostPki {
        let root = pki_dir.join(crate::pki::table::host_root(host));
        HostPki {
            root: root.is_dir().then_some(root),
        }
    }

    /// The annotation's value for a file whose pod reads `reads` (host paths): sha256 over each
    /// file's path, length and content, in the table's order; a file the tree lacks counts as
    /// missing (so it appearing later changes the hash too).
    pub fn digest(&self, reads: &[&str]) -> Result<String, RenderError> {
        let Some(root) = &self.root else {
            return Ok(NO_PKI.to_string());
        };
        let mut hash = Sha256::new();
        for path in reads {
            let local = root.join(relative_to_kubernetes_dir(path));
            hash.update(path.as_bytes());
            hash.update(b"\0");
            match std::fs::read(&local) {
                Ok(bytes) => {
                    hash.update((bytes.len() as u64).to_be_bytes());
                    hash.update(&bytes);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => hash.update(b"missing"),
                Err(source) => {
                    return Err(RenderError::ReadPki {
                        path: local,
                        source,
                    });
                }
            }
            hash.update(b"\0");
        }
        Ok(super::manifest::hex(&hash.finalize()))
    }

    /// The value for `row` (None for a file that reads no certificate).
    pub fn for_file(&self, row: &FileRow) -> Result<Option<String>, RenderError> {
        if row.certificates.is_empty() {
            return Ok(None);
        }
        self.digest(row.certificates).map(Some)
    }
}

/// `/etc/kubernetes/pki/ca.crt` -> `pki/ca.crt`. The table lists only paths under
/// `/etc/kubernetes/` (checked by a test), the one directory a host's tree stands for.
fn relative_to_kubernetes_dir(path: &str) -> &str {
    path.strip_prefix(host_paths::KUBERNETES_DIR)
        .map(|p| p.trim_start_matches('/'))
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_a_pod_reads_is_in_a_hosts_tree() {
        for row in crate::components::TABLE.iter().flat_map(|c| c.files) {
            for path in row.certificates {
                assert!(
                    path.starts_with("/etc/kubernetes/") && !path.contains(".."),
                    "{}: {path}",
                    row.template
                );
                assert!(
                    host_paths::ALL.iter().any(|(_, p)| p == path),
                    "{}: {path} is not a host path",
                    row.template
                );
            }
        }
    }

    #[test]
    fn the_digest_follows_content_path_and_presence() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            HostPki::of(tmp.path(), "cp1")
                .digest(&[host_paths::CA_CRT])
                .unwrap(),
            NO_PKI
        );
        let root = tmp.path().join(crate::pki::table::host_root("cp1"));
        std::fs::create_dir_all(root.join("pki")).unwrap();
        let pki = HostPki::of(tmp.path(), "cp1");
        let reads = [host_paths::CA_CRT, host_paths::SCHEDULER_CONF];
        let missing = pki.digest(&reads).unwrap();
        std::fs::write(root.join("pki/ca.crt"), "a").unwrap();
        let one = pki.digest(&reads).unwrap();
        assert_eq!(one.len(), 64);
        assert_ne!(one, missing);
        assert_eq!(pki.digest(&reads).unwrap(), one, "stable");
        std::fs::write(root.join("pki/ca.crt"), "b").unwrap();
        let changed = pki.digest(&reads).unwrap();
        assert_ne!(changed, one);
        // The same bytes moved to the other file are another state.
        std::fs::write(root.join("pki/ca.crt"), "").unwrap();
        std::fs::write(root.join("scheduler.conf"), "b").unwrap();
        assert_ne!(pki.digest(&reads).unwrap(), changed);
    }
}
