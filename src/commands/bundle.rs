//! `kinit bundle fetch|import|verify|list`: the artifacts bundle a user carries to air-gapped hosts.

use std::path::PathBuf;
use std::time::Instant;

use super::{CommandError, CommandResult, Outcome};
use crate::bundle::fetch::{self, FetchOptions};
use crate::bundle::{OpError, store, verify};
use crate::ui::bundle::{FetchProgress, fetch_summary, listing, verification};
use crate::ui::{GlobalOptions, OutputFormat};

#[derive(Debug, Clone)]
pub enum BundleOptions {
    Fetch(FetchOptions),
    Import { dir: PathBuf, files: Vec<PathBuf> },
    Verify { dir: PathBuf },
    List { dir: PathBuf },
}

impl From<OpError> for CommandError {
    fn from(e: OpError) -> Self {
        CommandError::Bundle(Box::new(e))
    }
}

pub fn run(global: &GlobalOptions, opts: &BundleOptions) -> CommandResult {
    match opts {
        BundleOptions::Fetch(opts) => fetch(global, opts),
        BundleOptions::Import { dir, files } => {
            let entries = store::import(dir, files)?;
            match global.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&entries).expect("serializable")
                ),
                OutputFormat::Text => {
                    for e in &entries {
                        println!(
                            "+ {} ({} {}, {}) -> {}",
                            e.name,
                            e.component,
                            e.version,
                            e.arch,
                            dir.join(&e.name).display()
                        );
                    }
                }
            }
            Ok(Outcome::Success)
        }
        BundleOptions::Verify { dir } => {
            let v = verify::verify(dir)?;
            match global.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&v).expect("serializable")
                ),
                OutputFormat::Text => print!("{}", verification(dir, &v)),
            }
            Ok(Outcome::failed_if(!v.problems.is_empty()))
        }
        BundleOptions::List { dir } => {
            let l = verify::list(dir)?;
            match global.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&l).expect("serializable")
                ),
                OutputFormat::Text => print!("{}", listing(&l)),
            }
            Ok(Outcome::Success)
        }
    }
}

fn fetch(global: &GlobalOptions, opts: &FetchOptions) -> CommandResult {
    let progress = FetchProgress::new(global.verbosity);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    let started = Instant::now();
    let result = runtime.block_on(fetch::fetch(opts, &progress));
    progress.finish();
    let summary = result?;
    match global.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({
                "dir": opts.dir,
                "landed": summary.landed,
                "alreadyPresent": summary.present,
                "downloadedBytes": summary.downloaded_bytes,
                "seconds": started.elapsed().as_secs_f64(),
            })
        ),
        OutputFormat::Text => print!("{}", fetch_summary(&opts.dir, &summary, started.elapsed())),
    }
    Ok(Outcome::Success)
}
