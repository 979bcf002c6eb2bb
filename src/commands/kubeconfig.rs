//! `kinit kubeconfig FILE | --merge`: the cluster's admin kubeconfig for the operator (see
//! `crate::kubeconfig`).

use std::path::PathBuf;
use std::time::SystemTime;

use super::{CommandResult, Outcome, remote};
use crate::kubeconfig::{self, KubeconfigError};
use crate::ui::{GlobalOptions, OutputFormat, kubeconfig as view};

/// Where the admin kubeconfig goes.
#[derive(Debug, Clone)]
pub enum KubeconfigTarget {
    /// A file of its own; an existing one is replaced only with `force`.
    File { path: PathBuf, force: bool },
    /// Merged as kubectl would with `$KUBECONFIG` (into its first file that exists), or into
    /// `~/.kube/config`.
    Merge,
}

#[derive(Debug, Clone)]
pub struct KubeconfigOptions {
    pub target: KubeconfigTarget,
}

pub fn run(global: &GlobalOptions, opts: &KubeconfigOptions) -> CommandResult {
    let inventory = remote::load_inventory(global)?;
    let now = SystemTime::now();
    let admin = kubeconfig::load_admin(&inventory, now)?;
    match &opts.target {
        KubeconfigTarget::File { path, force } => {
            kubeconfig::write_file(path, &admin, *force)?;
            match global.output {
                OutputFormat::Json => println!("{}", view::written_json(path, &admin)),
                OutputFormat::Text if global.verbosity >= 0 => {
                    print!("{}", view::written_text(path, &admin))
                }
                OutputFormat::Text => {}
            }
        }
        KubeconfigTarget::Merge => {
            let env = std::env::var_os("KUBECONFIG");
            let home = std::env::var_os("HOME").map(PathBuf::from);
            let files = kubeconfig::merge_files(env.as_deref(), home.as_deref());
            if files.is_empty() {
                return Err(KubeconfigError::NoTarget.into());
            }
            let report = kubeconfig::merge_into_list(&files, &admin, now)?;
            match global.output {
                OutputFormat::Json => println!("{}", view::merged_json(&report, &admin)),
                OutputFormat::Text if global.verbosity >= 0 => {
                    print!("{}", view::merged_text(&report, &admin))
                }
                OutputFormat::Text => {}
            }
        }
    }
    Ok(Outcome::Success)
}
