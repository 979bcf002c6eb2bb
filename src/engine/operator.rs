//! The phases this machine runs itself: preflight, and the PKI (built in a scratch copy for a
//! dry run, so the plan shows every certificate as it would land while the real PKI dir stays
//! untouched).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use super::runner::{OperatorError, RunError, RunOptions};
use crate::inventory::Inventory;
use crate::preflight;
use crate::ssh::{HostTarget, Pool};

/// Where this run reads and writes the PKI.
pub struct PkiWorkspace {
    dir: PathBuf,
    /// A dry run's copy, removed when the run ends.
    scratch: bool,
}

impl PkiWorkspace {
    pub fn real(dir: &Path) -> PkiWorkspace {
        PkiWorkspace {
            dir: dir.to_path_buf(),
            scratch: false,
        }
    }

    /// A private copy of `dir` (modes kept; private keys stay 0600).
    pub fn scratch_copy(dir: &Path) -> Result<PkiWorkspace, OperatorError> {
        let scratch =
            std::env::temp_dir().join(format!("kinit-dry-run-pki-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        let workspace = PkiWorkspace {
            dir: scratch.clone(),
            scratch: true,
        };
        copy_tree(dir, &scratch).map_err(|source| OperatorError::Scratch {
            from: dir.to_path_buf(),
            source,
        })?;
        Ok(workspace)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PkiWorkspace {
    fn drop(&mut self) {
        if self.scratch {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Copy a directory tree. A missing source is an empty tree.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(to)?;
    let entries = match std::fs::read_dir(from) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Every preflight check on every host; failures stop a real run. Returns the lines to show.
pub async fn preflight(
    inv: &Inventory,
    pool: &Arc<Pool>,
    targets: Vec<HostTarget>,
    opts: &RunOptions,
    cancel: &CancellationToken,
) -> Result<Vec<String>, RunError> {
    let (obs, op) =
        preflight::gather::gather(inv, pool.clone(), targets, opts.concurrency, cancel).await;
    if cancel.is_cancelled() {
        return Err(RunError::Interrupted);
    }
    let report = preflight::evaluate(inv, &obs, &op, &opts.ignore_preflight);
    let mut lines = vec![format!(
        "{} host(s): {} passed, {} warning(s), {} failure(s)",
        inv.hosts.len(),
        report.count(preflight::Status::Pass),
        report.count(preflight::Status::Warn),
        report.count(preflight::Status::Fail)
    )];
    if report.failed() && opts.dry_run {
        let failed: Vec<String> = report
            .findings
            .iter()
            .filter(|f| f.status == preflight::Status::Fail)
            .map(|f| format!("{} on {}", f.check, f.host))
            .collect();
        lines.push(format!("a real run would stop here: {}", failed.join(", ")));
    } else if report.failed() {
        return Err(RunError::Preflight {
            report: Box::new(report),
        });
    }
    Ok(lines)
}

/// `kinit certs generate` into the workspace, and the etcd cluster token made once and kept.
/// Returns the token and the line to show.
pub fn pki(
    inv: &Inventory,
    workspace: &PkiWorkspace,
    dry_run: bool,
) -> Result<(String, String), OperatorError> {
    let mut target = inv.clone();
    target.pki_dir = workspace.dir().to_path_buf();
    let report = crate::pki::generate(&target, &crate::pki::Mode::Generate, SystemTime::now())?;
    let token = crate::pki::cluster_token::load_or_create(workspace.dir(), &inv.name)?;
    let count =
        |f: fn(&crate::pki::Action) -> bool| report.events.iter().filter(|e| f(&e.action)).count();
    let verb = if dry_run { "would be " } else { "" };
    let message = format!(
        "{}: {} {verb}created, {} {verb}re-issued, {} kept; {} file(s) {verb}written",
        inv.pki_dir.display(),
        count(|a| matches!(a, crate::pki::Action::Created)),
        count(|a| matches!(a, crate::pki::Action::Reissued(_))),
        count(|a| matches!(a, crate::pki::Action::Kept)),
        report.files_written
    );
    Ok((token, message))
}
