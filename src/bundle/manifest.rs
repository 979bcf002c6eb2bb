//! `bundle.yaml` beside SHA256SUMS: per file its component, version (read from the binary),
//! arch and sha256, so a bundle says what it is without being run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::sources::{Arch, Component};

pub const MANIFEST: &str = "bundle.yaml";
pub const SUMS: &str = "SHA256SUMS";
const API_VERSION: &str = "kinit.io/v1alpha1";
const KIND: &str = "Bundle";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub api_version: String,
    pub kind: String,
    /// Sorted by name.
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileEntry {
    /// The name in the bundle and in SHA256SUMS (`kubelet`, `cni/bridge`).
    pub name: String,
    pub component: Component,
    /// `v1.37.2`
    pub version: String,
    pub arch: Arch,
    pub sha256: String,
    /// Where the version came from: the binary's own output (`binary`), or, for a binary this
    /// machine cannot run (another CPU), the release it was fetched from (`release`).
    pub version_from: VersionFrom,
    /// Where it came from: the download URL, or `import:<path>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VersionFrom {
    Binary,
    Release,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            files: Vec::new(),
        }
    }
}

impl Manifest {
    /// `DIR/bundle.yaml`, or `None` when the bundle has none (a plain binaries + SHA256SUMS
    /// bundle, as made by hand or by `kinit lab`).
    pub fn read(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ManifestError::Read { path, source }),
        };
        let m: Manifest = serde_yaml::from_str(&text).map_err(|e| ManifestError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if m.api_version != API_VERSION || m.kind != KIND {
            return Err(ManifestError::Invalid {
                path,
                reason: format!(
                    "apiVersion/kind are {}/{}, kinit reads {API_VERSION}/{KIND}",
                    m.api_version, m.kind
                ),
            });
        }
        Ok(Some(m))
    }

    pub fn get(&self, name: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Add or replace the entry of `entry.name`.
    pub fn put(&mut self, entry: FileEntry) {
        self.files.retain(|f| f.name != entry.name);
        self.files.push(entry);
        self.files.sort_by(|a, b| a.name.cmp(&b.name));
    }

    pub fn to_yaml(&self) -> String {
        let mut out = String::from(
            "# Written by `kinit bundle`: every file of this bundle with its component, the version\n\
             # the binary itself reports, its CPU and its sha256 (also in SHA256SUMS).\n",
        );
        out.push_str(&serde_yaml::to_string(self).expect("serializable"));
        out
    }

    /// SHA256SUMS text for these files.
    pub fn sums(&self) -> String {
        self.files
            .iter()
            .map(|f| format!("{}  {}\n", f.sha256, f.name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_fields() {
        let mut m = Manifest::default();
        for name in ["kubelet", "etcd"] {
            m.put(FileEntry {
                name: name.into(),
                component: if name == "etcd" {
                    Component::Etcd
                } else {
                    Component::Kubernetes
                },
                version: "v1.37.2".into(),
                arch: Arch::Amd64,
                sha256: "a".repeat(64),
                version_from: VersionFrom::Binary,
                source: None,
            });
        }
        assert_eq!(m.files[0].name, "etcd");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), m.to_yaml()).unwrap();
        assert_eq!(Manifest::read(dir.path()).unwrap(), Some(m));
        std::fs::write(
            dir.path().join(MANIFEST),
            "apiVersion: kinit.io/v1alpha1\nkind: Bundle\nfiles: []\nextra: 1\n",
        )
        .unwrap();
        let e = Manifest::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("bundle.yaml") && e.contains("extra"), "{e}");
        assert!(Manifest::read(&dir.path().join("none")).unwrap().is_none());
    }
}
