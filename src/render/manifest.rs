//! The per-host manifest written next to the rendered files: each file's path, mode, owner,
//! sha256 and the service to restart when it changes. Deploy compares these hashes with the
//! host's files to decide what to write and what to restart.

use crate::components::OnChange;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::RenderedFile;

/// File name of the manifest inside `<out>/<host>/`. Never a host path: those are absolute and
/// land under `etc/`, `var/`, `usr/`.
pub const FILE_NAME: &str = "MANIFEST.yaml";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Manifest {
    pub host: String,
    pub files: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ManifestEntry {
    pub path: String,
    /// Octal, e.g. `0644`.
    pub mode: String,
    pub owner: String,
    pub sha256: String,
    pub restart: Option<String>,
    pub reload: Option<String>,
    pub template: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    out
}

pub fn manifest(host: &str, files: &[RenderedFile]) -> Manifest {
    Manifest {
        host: host.to_string(),
        files: files
            .iter()
            .map(|f| ManifestEntry {
                path: f.path.to_string(),
                mode: format!("{:04o}", f.mode),
                owner: f.owner.to_string(),
                sha256: sha256_hex(f.content.as_bytes()),
                restart: match f.on_change {
                    OnChange::Restart(u) => Some(u.to_string()),
                    _ => None,
                },
                reload: match f.on_change {
                    OnChange::Reload(u) => Some(u.to_string()),
                    _ => None,
                },
                template: f.template.to_string(),
            })
            .collect(),
    }
}

impl Manifest {
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a manifest always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
