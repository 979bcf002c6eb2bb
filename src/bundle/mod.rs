//! The artifacts bundle on the operator machine: a directory of binaries and a SHA256SUMS file.
//! Every binary a run needs is checked against SHA256SUMS here before any host is touched, and
//! again on the host after the upload.
//!
//! `kinit bundle` makes and checks such directories: [`fetch`] from upstream's release layouts
//! (or a mirror), [`store::import`] of binaries built elsewhere, [`verify`] and a manifest
//! ([`manifest`], `bundle.yaml`) that says per file its component, version, arch and sha256.

pub mod archive;
pub mod error;
pub mod fetch;
pub mod image;
pub mod manifest;
pub mod release;
pub mod sources;
pub mod store;
pub mod verify;
pub mod version;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;

pub use error::OpError;

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, OpError> {
    let read = OpError::io("reading", path);
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Err(read(e)),
    };
    let mut ctx = digest::Context::new(&digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(n) => n,
            Err(e) => return Err(OpError::io("reading", path)(e)),
        };
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// The CPU of an ELF executable (`None`: not one kinit knows, such as a script).
pub fn elf_arch(path: &Path) -> Result<Option<sources::Arch>, OpError> {
    let mut head = [0u8; 20];
    let mut f = std::fs::File::open(path).map_err(OpError::io("reading", path))?;
    let n = f.read(&mut head).map_err(OpError::io("reading", path))?;
    Ok(sources::Arch::of_elf(&head[..n]))
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(
        "{phase}: `{file}` is needed from the artifacts bundle, but spec.artifacts.bundle is not set"
    )]
    NotConfigured { phase: String, file: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a SHA256SUMS line (`<64 hex digits>  <file name>`)")]
    BadLine { path: PathBuf, line: usize },
    #[error("{phase}: the bundle {dir} has no `{file}` in SHA256SUMS")]
    Missing {
        phase: String,
        dir: PathBuf,
        file: String,
    },
    #[error(
        "{path}: sha256 is {actual}, SHA256SUMS says {expected}; the bundle is damaged or was changed"
    )]
    Mismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// One verified binary.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub path: PathBuf,
    pub sha256: String,
}

#[derive(Debug, Default)]
pub struct Bundle {
    dir: Option<PathBuf>,
    /// From SHA256SUMS.
    sums: BTreeMap<String, String>,
    verified: BTreeMap<String, Artifact>,
}

impl Bundle {
    /// Read SHA256SUMS (nothing when no bundle is configured).
    pub fn open(dir: Option<&Path>) -> Result<Bundle, BundleError> {
        let Some(dir) = dir else {
            return Ok(Bundle::default());
        };
        let path = dir.join("SHA256SUMS");
        let text = std::fs::read_to_string(&path).map_err(|source| BundleError::Read {
            path: path.clone(),
            source,
        })?;
        let mut sums = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (sha, name) = line
                .split_once(char::is_whitespace)
                .map(|(s, n)| (s, n.trim_start().trim_start_matches('*')))
                .filter(|(s, n)| {
                    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) && !n.is_empty()
                })
                .ok_or(BundleError::BadLine {
                    path: path.clone(),
                    line: i + 1,
                })?;
            sums.insert(name.to_string(), sha.to_ascii_lowercase());
        }
        Ok(Bundle {
            dir: Some(dir.to_path_buf()),
            sums,
            verified: BTreeMap::new(),
        })
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// SHA256SUMS: file name -> sha256.
    pub fn sums(&self) -> &BTreeMap<String, String> {
        &self.sums
    }

    /// Whether the bundle lists `file`.
    pub fn has(&self, file: &str) -> bool {
        self.sums.contains_key(file)
    }

    /// `file`, hashed and compared with SHA256SUMS (once per run).
    pub fn verify(&mut self, phase: &str, file: &str) -> Result<Artifact, BundleError> {
        if let Some(a) = self.verified.get(file) {
            return Ok(a.clone());
        }
        let Some(dir) = &self.dir else {
            return Err(BundleError::NotConfigured {
                phase: phase.into(),
                file: file.into(),
            });
        };
        let expected = self.sums.get(file).ok_or_else(|| BundleError::Missing {
            phase: phase.into(),
            dir: dir.clone(),
            file: file.into(),
        })?;
        let path = dir.join(file);
        let read = |source| BundleError::Read {
            path: path.clone(),
            source,
        };
        // Streamed: binaries (a kubelet is ~100 MB) are never held in memory whole.
        let mut f = std::fs::File::open(&path).map_err(read)?;
        let mut ctx = digest::Context::new(&digest::SHA256);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = std::io::Read::read(&mut f, &mut buf).map_err(read)?;
            if n == 0 {
                break;
            }
            ctx.update(&buf[..n]);
        }
        let actual: String = ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if &actual != expected {
            return Err(BundleError::Mismatch {
                path,
                expected: expected.clone(),
                actual,
            });
        }
        let artifact = Artifact {
            path,
            sha256: actual,
        };
        self.verified.insert(file.to_string(), artifact.clone());
        Ok(artifact)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_checked_against_the_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("etcd"), b"binary").unwrap();
        let sha = crate::ssh::sha256_hex(b"binary");
        std::fs::write(
            dir.path().join("SHA256SUMS"),
            format!("{sha}  etcd\n{}  kubelet\n", "0".repeat(64)),
        )
        .unwrap();
        let mut b = Bundle::open(Some(dir.path())).unwrap();
        assert_eq!(b.verify("etcd", "etcd").unwrap().sha256, sha);
        assert!(b.has("kubelet"));
        let e = b
            .verify("control-plane", "kubelet")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read"), "{e}");
        std::fs::write(dir.path().join("kubelet"), b"x").unwrap();
        let e = b
            .verify("control-plane", "kubelet")
            .unwrap_err()
            .to_string();
        assert!(e.contains("damaged"), "{e}");
        let e = b.verify("etcd", "containerd").unwrap_err().to_string();
        assert!(e.contains("has no `containerd`"), "{e}");
    }

    #[test]
    fn a_bad_line_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("SHA256SUMS"), "# sums\nnot-a-sum etcd\n").unwrap();
        let e = Bundle::open(Some(dir.path())).unwrap_err().to_string();
        assert!(
            e.ends_with("SHA256SUMS:2: not a SHA256SUMS line (`<64 hex digits>  <file name>`)"),
            "{e}"
        );
    }
}
