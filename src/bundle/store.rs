//! A bundle directory being written: files are staged in `DIR/.partial/`, synced, and renamed
//! into place only once checked; SHA256SUMS and bundle.yaml are rewritten atomically after them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::OpError;
use super::manifest::{FileEntry, MANIFEST, Manifest, SUMS, VersionFrom};
use super::sources::{Arch, Component, Download, Unpack};
use super::version::{self, Version};
use crate::fsutil::{Existing, write_atomic};

/// Where downloads and staged binaries wait, inside the bundle directory (same filesystem, so
/// the final rename is atomic).
pub const PARTIAL: &str = ".partial";

pub struct Store {
    dir: PathBuf,
    staging: PathBuf,
    pub manifest: Manifest,
    /// SHA256SUMS as found (files listed there without a manifest entry are kept).
    sums: BTreeMap<String, String>,
}

fn sync_dir(dir: &Path) -> Result<(), OpError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(OpError::io("syncing", dir))
}

impl Store {
    /// The bundle at `dir` (made when `create`).
    pub fn open(dir: &Path, create: bool) -> Result<Store, OpError> {
        if create {
            std::fs::create_dir_all(dir).map_err(OpError::io("creating", dir))?;
        } else if !dir.is_dir() {
            return Err(OpError::Inconsistent {
                dir: dir.to_path_buf(),
                reason: "no such bundle directory".into(),
            });
        }
        let manifest = Manifest::read(dir)?.unwrap_or_default();
        let sums = if dir.join(SUMS).exists() {
            super::Bundle::open(Some(dir))?.sums().clone()
        } else {
            BTreeMap::new()
        };
        let staging = dir.join(PARTIAL);
        std::fs::create_dir_all(&staging).map_err(OpError::io("creating", &staging))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            staging,
            manifest,
            sums,
        })
    }

    pub fn staging(&self) -> &Path {
        &self.staging
    }

    /// Whether `d` is already in the bundle, whole and unchanged.
    pub fn has_download(&self, d: &Download, arch: Arch) -> Result<bool, OpError> {
        let want = Version::parse(&d.version);
        let entries: Vec<&FileEntry> = self
            .manifest
            .files
            .iter()
            .filter(|f| f.source.as_deref() == Some(&d.url))
            .collect();
        let names: Vec<&str> = match &d.unpack {
            Unpack::Plain { file } => vec![file],
            Unpack::Members { members } => members.iter().map(|(_, n)| n.as_str()).collect(),
            Unpack::All { .. } => entries.iter().map(|e| e.name.as_str()).collect(),
        };
        if names.is_empty() {
            return Ok(false);
        }
        for name in names {
            let Some(e) = entries.iter().find(|e| e.name == name) else {
                return Ok(false);
            };
            if e.component != d.component
                || e.arch != arch
                || Version::parse(&e.version) != want
                || self.sums.get(name) != Some(&e.sha256)
            {
                return Ok(false);
            }
            let path = self.dir.join(name);
            if !path.is_file() || super::sha256_file(&path)? != e.sha256 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Move a staged, checked file to `DIR/<entry.name>` and record it.
    pub fn land(&mut self, staged: &Path, entry: FileEntry) -> Result<(), OpError> {
        let dest = self.dir.join(&entry.name);
        let parent = dest.parent().unwrap_or(&self.dir).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(OpError::io("creating", &parent))?;
        std::fs::rename(staged, &dest).map_err(OpError::io("moving into place", &dest))?;
        sync_dir(&parent)?;
        self.sums.insert(entry.name.clone(), entry.sha256.clone());
        self.manifest.put(entry);
        Ok(())
    }

    /// Write SHA256SUMS and bundle.yaml (each atomically).
    pub fn save(&self) -> Result<(), OpError> {
        let sums: String = self
            .sums
            .iter()
            .map(|(name, sha)| format!("{sha}  {name}\n"))
            .collect();
        for (name, text) in [(SUMS, sums), (MANIFEST, self.manifest.to_yaml())] {
            let path = self.dir.join(name);
            write_atomic(&path, text.as_bytes(), 0o644, Existing::Replace)
                .map_err(OpError::io("writing", &path))?;
        }
        sync_dir(&self.dir)
    }

    /// Remove the staging directory when nothing waits in it.
    pub fn finish(self) -> Result<(), OpError> {
        // Empty subdirectories (cni/) first; a directory with a file in it stays.
        if let Ok(entries) = std::fs::read_dir(&self.staging) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(&self.staging);
        Ok(())
    }
}

/// `kinit bundle import DIR FILE...`: binaries built elsewhere, each named by its file name
/// (`kubelet`, `etcd`, ...), its version read by running it and its CPU from its ELF header.
pub fn import(dir: &Path, files: &[PathBuf]) -> Result<Vec<FileEntry>, OpError> {
    let mut store = Store::open(dir, true)?;
    let mut out = Vec::new();
    for path in files {
        let name = bundle_name(
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default(),
        );
        let Some(component) = Component::of_file(&name) else {
            return Err(OpError::UnknownFile {
                file: path.display().to_string(),
                known: known_files(),
            });
        };
        let arch = super::elf_arch(path)?.ok_or_else(|| OpError::Version {
            file: path.display().to_string(),
            reason: "not a Linux amd64 or arm64 executable (no ELF header kinit knows)".into(),
        })?;
        if let Some(first) = store.manifest.files.first()
            && first.arch != arch
        {
            return Err(OpError::WrongArch {
                file: path.display().to_string(),
                expected: first.arch.to_string(),
                found: arch.to_string(),
            });
        }
        let version = version::read(path, &name).map_err(|reason| OpError::Version {
            file: path.display().to_string(),
            reason,
        })?;
        let staged = store
            .staging()
            .join(format!("{}.staged", name.replace('/', "-")));
        let mut from = std::fs::File::open(path).map_err(OpError::io("reading", path))?;
        let sha256 = super::archive::write_staged(&mut from, &staged).map_err(|e| match e {
            super::archive::StageError::Read(e) => OpError::io("reading", path)(e),
            super::archive::StageError::Write(e) => OpError::io("writing", &staged)(e),
        })?;
        let entry = FileEntry {
            name,
            component,
            version: version.to_string(),
            arch,
            sha256,
            version_from: VersionFrom::Binary,
            source: Some(format!("import:{}", path.display())),
        };
        store.land(&staged, entry.clone())?;
        out.push(entry.clone());
        if let Some(image) = image_of(&mut store, &entry)? {
            out.push(image);
        }
    }
    store.save()?;
    store.finish()?;
    Ok(out)
}

/// The image built from a binary just landed, if it is one an image is made of: the sandbox
/// every pod runs (pause) and the DNS add-on (CoreDNS), imported into containerd on each node,
/// so nodes need no registry.
pub(crate) fn image_of(
    store: &mut Store,
    binary: &FileEntry,
) -> Result<Option<FileEntry>, OpError> {
    let Some(image) = super::image::bundle_image(&binary.name) else {
        return Ok(None);
    };
    let repository = crate::config::model::DEFAULT_IMAGE_REPOSITORY;
    let reference = image.reference(repository, &binary.version);
    let path = store.dir.join(&binary.name);
    let archive = image
        .build(&path, repository, binary.arch.as_str(), &binary.version)
        .map_err(OpError::io("building an image from", &path))?;
    let staged = store
        .staging()
        .join(format!("{}.image.staged", binary.name));
    let sha256 = super::archive::write_staged(&mut &archive[..], &staged).map_err(|e| match e {
        super::archive::StageError::Read(e) => OpError::io("reading", &path)(e),
        super::archive::StageError::Write(e) => OpError::io("writing", &staged)(e),
    })?;
    let entry = FileEntry {
        name: image.archive.to_string(),
        component: binary.component,
        version: binary.version.clone(),
        arch: binary.arch,
        sha256,
        version_from: VersionFrom::Binary,
        source: Some(format!(
            "built by kinit: {} as an OCI image ({reference})",
            binary.name
        )),
    };
    store.land(&staged, entry.clone())?;
    Ok(Some(entry))
}

/// A file's name in the bundle: a CNI plugin the node layer installs keeps its upstream name
/// under `cni/` (`bridge` → `cni/bridge`, as the CNI release tarball unpacks); any other file
/// keeps its own.
fn bundle_name(file_name: &str) -> String {
    if super::sources::CNI_PLUGINS.contains(&file_name) {
        format!("{}{file_name}", super::sources::CNI_DIR)
    } else {
        file_name.to_string()
    }
}

fn known_files() -> String {
    use super::sources::*;
    let mut all: Vec<&str> = KUBERNETES_FILES
        .iter()
        .chain(ETCD_FILES)
        .chain(CONTAINERD_FILES)
        .copied()
        .collect();
    all.extend(CNI_PLUGINS);
    all.extend([
        "runc",
        "crictl",
        super::image::PAUSE_BINARY,
        super::image::COREDNS_BINARY,
    ]);
    all.join(", ")
}
