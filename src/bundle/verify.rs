//! `kinit bundle verify|list`, and the check `up` and `preflight` run before any host is touched.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Bundle;
use super::error::OpError;
use super::manifest::{FileEntry, Manifest};
use super::release;
use super::store::PARTIAL;
use super::version::Version;

#[derive(Debug, Default, Serialize)]
pub struct Verification {
    /// Files whose sha256 matched SHA256SUMS.
    pub checked: usize,
    pub has_manifest: bool,
    /// Each one makes the bundle unusable.
    pub problems: Vec<String>,
    /// Worth knowing, not wrong.
    pub notes: Vec<String>,
}

/// Where bundle.yaml and SHA256SUMS disagree.
fn disagreements(manifest: &Manifest, bundle: &Bundle) -> Vec<String> {
    let mut out = Vec::new();
    for f in &manifest.files {
        match bundle.sums().get(&f.name) {
            None => out.push(format!("{}: in bundle.yaml but not in SHA256SUMS", f.name)),
            Some(s) if *s != f.sha256 => out.push(format!(
                "{}: bundle.yaml says sha256 {}, SHA256SUMS says {s}",
                f.name, f.sha256
            )),
            Some(_) => {}
        }
    }
    out
}

/// Every file hashed against SHA256SUMS, bundle.yaml against SHA256SUMS, and the release rules
/// that need no cluster.
pub fn verify(dir: &Path) -> Result<Verification, OpError> {
    let mut bundle = Bundle::open(Some(dir))?;
    let manifest = Manifest::read(dir)?;
    let mut v = Verification {
        has_manifest: manifest.is_some(),
        ..Default::default()
    };
    let names: Vec<String> = bundle.sums().keys().cloned().collect();
    for name in &names {
        match bundle.verify("verify", name) {
            Ok(_) => v.checked += 1,
            Err(e) => v.problems.push(e.to_string()),
        }
    }
    match &manifest {
        Some(m) => {
            v.problems.extend(disagreements(m, &bundle));
            v.problems
                .extend(release::check(m, None).iter().map(ToString::to_string));
            for name in names.iter().filter(|n| m.get(n).is_none()) {
                v.notes.push(format!(
                    "{name} is in SHA256SUMS but not in bundle.yaml: its component and version \
                     are unknown (`kinit bundle import` records them)"
                ));
            }
        }
        None => v.notes.push(
            "no bundle.yaml: the files' versions are unknown (`kinit bundle import` or `fetch` \
             write one)"
                .into(),
        ),
    }
    if dir.join(PARTIAL).is_dir() {
        v.notes.push(format!(
            "{PARTIAL}/ holds an unfinished download: `kinit bundle fetch` resumes it"
        ));
    }
    Ok(v)
}

#[derive(Debug, Serialize)]
pub struct Listing {
    pub dir: PathBuf,
    pub files: Vec<Listed>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub name: String,
    pub sha256: String,
    /// From bundle.yaml (absent for a file only SHA256SUMS lists).
    #[serde(flatten)]
    pub entry: Option<ListedEntry>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedEntry {
    pub component: String,
    pub version: String,
    pub arch: String,
    pub version_from: super::manifest::VersionFrom,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl From<&FileEntry> for ListedEntry {
    fn from(f: &FileEntry) -> Self {
        ListedEntry {
            component: f.component.to_string(),
            version: f.version.clone(),
            arch: f.arch.to_string(),
            version_from: f.version_from,
            source: f.source.clone(),
        }
    }
}

/// What the bundle says it holds (nothing is hashed: `verify` does that).
pub fn list(dir: &Path) -> Result<Listing, OpError> {
    let bundle = Bundle::open(Some(dir))?;
    let manifest = Manifest::read(dir)?.unwrap_or_default();
    let files = bundle
        .sums()
        .iter()
        .map(|(name, sha)| Listed {
            name: name.clone(),
            sha256: sha.clone(),
            entry: manifest.get(name).map(ListedEntry::from),
        })
        .collect();
    Ok(Listing {
        dir: dir.to_path_buf(),
        files,
    })
}

/// A bundle that cannot install the cluster as configured.
#[derive(Debug, thiserror::Error)]
#[error(
    "the artifacts bundle {} cannot install this cluster (nothing was done on any host):\n  - {}",
    dir.display(),
    problems.join("\n  - ")
)]
pub struct NotInstallable {
    pub dir: PathBuf,
    pub problems: Vec<String>,
}

/// The check `up` and `preflight` run first: a bundle with a bundle.yaml must hold the cluster's
/// Kubernetes release, one release per component, within upstream's skew rules, with an etcd
/// that release supports. A bundle without one (binaries + SHA256SUMS only) is not judged here.
pub fn check_for_cluster(dir: &Path, kubernetes_version: &str) -> Result<(), NotInstallable> {
    let fail = |problems: Vec<String>| NotInstallable {
        dir: dir.to_path_buf(),
        problems,
    };
    let manifest = match Manifest::read(dir) {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(()),
        Err(e) => return Err(fail(vec![e.to_string()])),
    };
    let mut problems = match Bundle::open(Some(dir)) {
        Ok(b) => disagreements(&manifest, &b),
        Err(e) => vec![e.to_string()],
    };
    let want = Version::parse(kubernetes_version);
    problems.extend(
        release::check(&manifest, want.as_ref())
            .iter()
            .map(ToString::to_string),
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(fail(problems))
    }
}
