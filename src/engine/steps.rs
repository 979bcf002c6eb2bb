//! A phase's actions made concrete for one host: which files with which bytes, which units,
//! which packages. Pure, so `--dry-run` and tests see exactly what a run would do.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::bundle::{Bundle, BundleError};
use super::playbook::{Action, StartPolicy};
use crate::render::RenderedFile;

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
pub enum Content {
    Bytes(Arc<Vec<u8>>),
    /// A bundle binary, streamed from disk.
    Local(PathBuf),
}

#[derive(Debug, Clone)]
pub struct PutFile {
    pub path: String,
    pub content: Content,
    pub sha256: String,
    pub mode: u32,
    pub owner: String,
    /// Units to restart when this file changes.
    pub restarts: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Packages(Vec<String>),
    Put {
        label: String,
        files: Vec<PutFile>,
    },
    Unit {
        unit: String,
        enable: bool,
        start: StartPolicy,
        no_block: bool,
    },
    Command {
        run: String,
        unless: Option<String>,
    },
    /// Not done, and why (said plainly in the output).
    Skipped {
        label: String,
        reason: String,
    },
}

impl Step {
    pub fn label(&self) -> String {
        match self {
            Step::Packages(p) => format!("packages {}", p.join(" ")),
            Step::Put { label, .. } => label.clone(),
            Step::Unit { unit, .. } => format!("service {unit}"),
            Step::Command { run, .. } => format!("command `{run}`"),
            Step::Skipped { label, .. } => label.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
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

/// What steps are made from.
pub struct StepInputs<'a> {
    pub phase: &'a str,
    pub host: &'a str,
    pub rendered: &'a [RenderedFile],
    pub pki_dir: &'a Path,
    pub bundle: &'a mut Bundle,
}

fn is_unit_file(path: &str) -> bool {
    path.starts_with("/etc/systemd/system/") || path.starts_with("/lib/systemd/system/")
}

fn restarts_for(path: &str, unit: Option<&str>) -> Vec<String> {
    let mut r: Vec<String> = unit.map(str::to_string).into_iter().collect();
    if is_unit_file(path) {
        r.push(super::host_ops::DAEMON_RELOAD.to_string());
    }
    r
}

fn missing<'b>(bundle: &Bundle, needs: &'b [String]) -> Vec<&'b str> {
    needs
        .iter()
        .filter(|n| !bundle.has(n))
        .map(String::as_str)
        .collect()
}

fn not_in_bundle(bundle: &Bundle, names: &[&str]) -> String {
    let what = names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match bundle.dir() {
        Some(dir) => format!("the bundle {} has no {what}", dir.display()),
        None => format!("no artifacts bundle is configured (spec.artifacts.bundle), so no {what}"),
    }
}

/// The steps of `actions` for one host.
pub fn for_host(actions: &[Action], inp: &mut StepInputs<'_>) -> Result<Vec<Step>, StepError> {
    let mut steps = Vec::new();
    for action in actions {
        match action {
            Action::Packages(p) => steps.push(Step::Packages(p.clone())),
            Action::Files(f) => {
                let lacking = missing(inp.bundle, &f.needs);
                let label = format!("files {}", f.templates.join(" "));
                if !lacking.is_empty() {
                    steps.push(Step::Skipped {
                        label,
                        reason: not_in_bundle(inp.bundle, &lacking),
                    });
                    continue;
                }
                let files: Vec<PutFile> = inp
                    .rendered
                    .iter()
                    .filter(|r| f.templates.iter().any(|t| t == r.template))
                    .map(|r| PutFile {
                        path: r.path.to_string(),
                        sha256: crate::ssh::sha256_hex(r.content.as_bytes()),
                        content: Content::Bytes(Arc::new(r.content.clone().into_bytes())),
                        mode: r.mode,
                        owner: r.owner.to_string(),
                        restarts: restarts_for(r.path, r.restart),
                    })
                    .collect();
                if !files.is_empty() {
                    steps.push(Step::Put {
                        label: "files".into(),
                        files,
                    });
                }
            }
            Action::Pki(p) => {
                let root = inp.pki_dir.join(crate::pki::table::host_root(inp.host));
                if !root.is_dir() {
                    return Err(StepError::NoPki {
                        host: inp.host.into(),
                        dir: inp.pki_dir.into(),
                    });
                }
                let mut files = Vec::new();
                collect_tree(&root, &root, &mut |rel, bytes, mode| {
                    let restarts = p
                        .restart
                        .iter()
                        .filter(|r| rel.starts_with(&r.under))
                        .map(|r| r.unit.clone())
                        .collect();
                    files.push(PutFile {
                        path: format!("/etc/kubernetes/{rel}"),
                        sha256: crate::ssh::sha256_hex(&bytes),
                        content: Content::Bytes(Arc::new(bytes)),
                        mode,
                        owner: "root:root".into(),
                        restarts,
                    });
                })?;
                steps.push(Step::Put {
                    label: "certificates".into(),
                    files,
                });
            }
            Action::Artifact(a) => {
                let label = format!("artifact {}", a.file);
                if a.optional && !inp.bundle.has(&a.file) {
                    steps.push(Step::Skipped {
                        label,
                        reason: not_in_bundle(inp.bundle, &[a.file.as_str()]),
                    });
                    continue;
                }
                let art = inp.bundle.verify(inp.phase, &a.file)?;
                steps.push(Step::Put {
                    label,
                    files: vec![PutFile {
                        path: a.to.clone(),
                        content: Content::Local(art.path.clone()),
                        sha256: art.sha256.clone(),
                        mode: a.mode,
                        owner: "root:root".into(),
                        restarts: a.restart.iter().cloned().collect(),
                    }],
                });
            }
            Action::Service(s) => {
                let lacking = missing(inp.bundle, &s.needs);
                if !lacking.is_empty() {
                    steps.push(Step::Skipped {
                        label: format!("service {}", s.unit),
                        reason: format!("not started: {}", not_in_bundle(inp.bundle, &lacking)),
                    });
                    continue;
                }
                steps.push(Step::Unit {
                    unit: s.unit.clone(),
                    enable: s.enable,
                    start: s.start,
                    no_block: s.no_block,
                });
            }
            Action::Command(c) => steps.push(Step::Command {
                run: c.run.clone(),
                unless: c.unless.clone(),
            }),
        }
    }
    Ok(steps)
}

/// Every regular file under `dir`, with its path relative to `root` and its mode.
fn collect_tree(
    root: &Path,
    dir: &Path,
    put: &mut dyn FnMut(String, Vec<u8>, u32),
) -> Result<(), StepError> {
    use std::os::unix::fs::PermissionsExt;
    fn read(p: &Path) -> impl FnOnce(std::io::Error) -> StepError + '_ {
        move |source| StepError::Read {
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

/// Units any of these files restart.
pub fn units_restarted_by(files: &[&PutFile]) -> BTreeSet<String> {
    files
        .iter()
        .flat_map(|f| f.restarts.iter().cloned())
        .collect()
}
