//! A phase made concrete for one host: which files with which bytes, which binaries, packages
//! and units, and what a change to each file asks of which unit. Pure (it reads the operator's
//! PKI dir and bundle, never a host), so `--dry-run` and tests see exactly what a run would do.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::playbook::Phase;
use crate::bundle::{Bundle, BundleError};
use crate::components::{self, OnChange, UnitRow};
use crate::inventory::{Host, Inventory};
use crate::render::RenderedFile;

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Arc<Vec<u8>>),
    /// A bundle binary, streamed from disk.
    Local(PathBuf),
    /// A file streamed from disk for one later step that deletes it (a snapshot to restore):
    /// unlike a bundle binary, not stamped for the next run.
    Once(PathBuf),
}

/// A note left on the host before a file is written, so that a run cut short after the write
/// still restarts (or reloads) the unit next time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PendingNote {
    Restart(&'static str),
    Reload(&'static str),
    /// A unit file changed: `systemctl daemon-reload` before the next unit action.
    DaemonReload,
}

impl PendingNote {
    /// The note's file name under the pending directory.
    pub fn file_name(self) -> String {
        match self {
            PendingNote::Restart(u) => u.to_string(),
            PendingNote::Reload(u) => format!("{u}.reload"),
            PendingNote::DaemonReload => "daemon-reload".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PutFile {
    pub path: String,
    pub content: Content,
    pub sha256: String,
    pub mode: u32,
    pub owner: String,
    /// What a change to this file asks.
    pub notes: Vec<PendingNote>,
}

/// What a put step carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "name")]
pub enum PutKind {
    Files,
    Certificates,
    Binary(&'static str),
}

/// The first line of every file kinit renders (the templates' header): an entry of a
/// [`PruneDir`] is kinit's only when its marker file starts with it.
pub const RENDERED_MARK: &str = "# Rendered by kinit";

/// A directory kinit fills with one entry per item of cluster.yaml (containerd's `certs.d`:
/// one directory per registry). Entries kinit rendered there whose item left cluster.yaml are
/// removed; entries kinit did not render (their marker file lacks [`RENDERED_MARK`]) stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneDir {
    pub dir: String,
    /// The entries that stay: one per item cluster.yaml still names.
    pub keep: Vec<String>,
    /// The file inside an entry that tells whether kinit rendered it (`hosts.toml`).
    pub marker_file: String,
}

#[derive(Debug, Clone)]
pub enum Step {
    Packages(Vec<&'static str>),
    Put {
        kind: PutKind,
        files: Vec<PutFile>,
    },
    Unit(UnitRow),
    /// A component the bundle cannot start (its gated binaries, files and units left out).
    NotStarted {
        component: &'static str,
        reason: String,
    },
    /// Entries of a per-item directory whose item is gone, removed.
    Prune(PruneDir),
    /// A step of a reset or a restore (`engine::lifecycle_step`).
    Lifecycle(super::lifecycle_step::LifecycleStep),
}

impl Step {
    /// The step as the operator reads it in the progress output.
    pub fn label(&self) -> String {
        match self {
            Step::Packages(p) => format!("packages {}", p.join(" ")),
            Step::Put {
                kind: PutKind::Files,
                ..
            } => "files".into(),
            Step::Put {
                kind: PutKind::Certificates,
                ..
            } => "certificates".into(),
            Step::Put {
                kind: PutKind::Binary(name),
                ..
            } => format!("artifact {name}"),
            Step::Unit(u) => format!("service {}", u.name),
            Step::NotStarted { component, .. } => component.to_string(),
            Step::Prune(p) => format!("prune {}", p.dir),
            Step::Lifecycle(t) => t.label(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("no PKI for {host} in {dir}: run the pki phase (or `kinit certs generate`) first")]
    NoPki { host: String, dir: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What a host's plan is made from.
pub struct PlanInputs<'a> {
    pub inventory: &'a Inventory,
    /// The PKI dir the certificates come from (a dry run's scratch copy, or the real one).
    pub pki_dir: &'a Path,
    pub bundle: &'a mut Bundle,
}

fn is_unit_file(path: &str) -> bool {
    path.starts_with("/etc/systemd/system/") || path.starts_with("/lib/systemd/system/")
}

fn notes_for(path: &str, on_change: &[OnChange]) -> Vec<PendingNote> {
    let mut notes: Vec<PendingNote> = on_change
        .iter()
        .filter_map(|c| match c {
            OnChange::Nothing => None,
            OnChange::Restart(u) => Some(PendingNote::Restart(u)),
            OnChange::Reload(u) => Some(PendingNote::Reload(u)),
        })
        .collect();
    if is_unit_file(path) {
        notes.push(PendingNote::DaemonReload);
    }
    notes.sort();
    notes.dedup();
    notes
}

fn not_in_bundle(bundle: &Bundle, names: &[&str]) -> String {
    let what = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match bundle.dir() {
        Some(dir) => format!("not started: the bundle {} has no {what}", dir.display()),
        None => format!(
            "not started: no artifacts bundle is configured (spec.artifacts.bundle), so no {what}"
        ),
    }
}

/// The steps of `phase` on `host`: packages, then binaries, files and units of each component
/// the table places there, in the phase's order.
pub fn for_host(
    phase: &Phase,
    host: &Host,
    rendered: &[RenderedFile],
    inp: &mut PlanInputs<'_>,
) -> Result<Vec<Step>, PlanError> {
    let inv = inp.inventory;
    let mut steps = Vec::new();
    if phase.certificates {
        steps.push(Step::Put {
            kind: PutKind::Certificates,
            files: certificates(inv, host, inp.pki_dir)?,
        });
    }
    let here: Vec<&components::Component> = phase
        .converge
        .iter()
        .map(|id| components::component(*id))
        .filter(|c| c.runs_on(inv, host))
        .collect();
    let mut packages: Vec<&'static str> = Vec::new();
    for p in here.iter().flat_map(|c| c.packages.iter().copied()) {
        if !packages.contains(&p) {
            packages.push(p);
        }
    }
    if !packages.is_empty() {
        steps.push(Step::Packages(packages));
    }
    let mut files = Vec::new();
    let mut prunes = Vec::new();
    let mut units = Vec::new();
    for c in &here {
        let lacking = c.lacking(inp.bundle);
        let started = lacking.is_empty();
        if !started {
            steps.push(Step::NotStarted {
                component: c.name,
                reason: not_in_bundle(inp.bundle, &lacking),
            });
        } else {
            let present: Vec<_> = c
                .binaries
                .iter()
                .filter(|b| !b.optional || inp.bundle.has(b.file))
                .collect();
            for b in present {
                let art = inp.bundle.verify(&phase.name, b.file)?;
                steps.push(Step::Put {
                    kind: PutKind::Binary(b.file),
                    files: vec![PutFile {
                        path: b.path.to_string(),
                        content: Content::Local(art.path.clone()),
                        sha256: art.sha256.clone(),
                        mode: b.mode,
                        owner: "root:root".into(),
                        notes: notes_for(b.path, &[b.on_change]),
                    }],
                });
            }
            units.extend(c.units.iter().copied().map(Step::Unit));
        }
        for row in c.files.iter().filter(|f| started || !f.gated) {
            // A per-registry row gives one file for each registry, all from its template.
            let of_row = |r: &&RenderedFile| match row.per {
                components::FilesPer::Host => r.path == row.path,
                _ => r.template == row.template,
            };
            if let Some(prune) = prune_dir(row, rendered.iter().filter(of_row)) {
                prunes.push(Step::Prune(prune));
            }
            for r in rendered.iter().filter(of_row) {
                files.push(PutFile {
                    path: r.path.to_string(),
                    sha256: crate::ssh::sha256_hex(r.content.as_bytes()),
                    content: Content::Bytes(Arc::new(r.content.clone().into_bytes())),
                    mode: r.mode,
                    owner: r.owner.to_string(),
                    notes: notes_for(&r.path, &[r.on_change]),
                });
            }
        }
    }
    if !files.is_empty() {
        steps.push(Step::Put {
            kind: PutKind::Files,
            files,
        });
    }
    steps.extend(prunes);
    steps.extend(units);
    Ok(steps)
}

/// A per-registry row (`/etc/containerd/certs.d/{registry}/hosts.toml`) gives its directory
/// to prune: what stays is the registries rendered now, the marker the row's own file.
fn prune_dir<'a>(
    row: &components::FileRow,
    rendered: impl Iterator<Item = &'a RenderedFile>,
) -> Option<PruneDir> {
    if row.per != components::FilesPer::Registry {
        return None;
    }
    let (dir, marker_file) = row.path.split_once("/{registry}/")?;
    let keep = rendered
        .filter_map(|r| {
            r.path
                .strip_prefix(dir)?
                .strip_prefix('/')?
                .split('/')
                .next()
        })
        .map(str::to_string)
        .collect();
    Some(PruneDir {
        dir: dir.to_string(),
        keep,
        marker_file: marker_file.to_string(),
    })
}

/// The host's tree of the PKI dir, each file with what the components running on the host ask
/// when it changes.
fn certificates(inv: &Inventory, host: &Host, pki_dir: &Path) -> Result<Vec<PutFile>, PlanError> {
    let root = pki_dir.join(crate::pki::table::host_root(&host.name));
    if !root.is_dir() {
        return Err(PlanError::NoPki {
            host: host.name.clone(),
            dir: pki_dir.into(),
        });
    }
    let inputs: Vec<&components::CertificateInput> = components::on_host(inv, host)
        .flat_map(|c| c.certificates.iter())
        .collect();
    let mut files = Vec::new();
    collect_tree(&root, &root, &mut |rel, bytes, mode| {
        let on_change: Vec<OnChange> = inputs
            .iter()
            .filter(|i| rel.starts_with(i.under))
            .map(|i| i.on_change)
            .collect();
        let path = format!("/etc/kubernetes/{rel}");
        files.push(PutFile {
            notes: notes_for(&path, &on_change),
            path,
            sha256: crate::ssh::sha256_hex(&bytes),
            content: Content::Bytes(Arc::new(bytes)),
            mode,
            owner: "root:root".into(),
        });
    })?;
    Ok(files)
}

/// Every regular file under `dir`, with its path relative to `root` and its mode.
fn collect_tree(
    root: &Path,
    dir: &Path,
    put: &mut dyn FnMut(String, Vec<u8>, u32),
) -> Result<(), PlanError> {
    use std::os::unix::fs::PermissionsExt;
    fn read(p: &Path) -> impl FnOnce(std::io::Error) -> PlanError + '_ {
        move |source| PlanError::Read {
            path: p.to_path_buf(),
            source,
        }
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read(dir))?
        .collect::<Result<_, _>>()
        .map_err(read(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let meta = entry.metadata().map_err(read(&path))?;
        if meta.is_dir() {
            collect_tree(root, &path, put)?;
        } else if meta.is_file() {
            let bytes = std::fs::read(&path).map_err(read(&path))?;
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            put(rel, bytes, meta.permissions().mode() & 0o7777);
        }
    }
    Ok(())
}
