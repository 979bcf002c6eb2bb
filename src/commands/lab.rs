use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use super::{CommandError, CommandResult};
use crate::cli::{GlobalOptions, LabAction};
use crate::lab::{self, LabError};
use crate::ui::OutputFormat;
use crate::ui::lab_progress::LabProgress;
use crate::ui::lab_report;

pub fn run(global: &GlobalOptions, action: LabAction) -> CommandResult {
    let json = global.output == OutputFormat::Json;
    let quiet = global.verbosity < 0;
    match action {
        LabAction::Up(req) => {
            let progress = LabProgress::new(if json { -1 } else { global.verbosity });
            let up = lab::up(&req, &progress).map_err(error)?;
            progress.finish();
            if json {
                print_json(&up);
            } else if !quiet {
                print!("{}", lab_report::up_summary(&up));
            }
        }
        LabAction::Down { name } => {
            let progress = LabProgress::new(if json { -1 } else { global.verbosity });
            let removed = lab::down(&name, &progress).map_err(error)?;
            progress.finish();
            if json {
                print_json(&serde_json::json!({"name": name, "removed": removed}));
            } else if !quiet {
                if removed {
                    println!("lab {name} removed");
                } else {
                    println!("no lab named {name}; nothing to do");
                }
            }
        }
        LabAction::Status { name } => {
            let labs = lab::status(name.as_deref()).map_err(error)?;
            if json {
                print_json(&labs);
            } else if !quiet {
                print!("{}", lab_report::status(&labs));
            }
        }
        LabAction::Stop { name, node } => {
            lab::stop_node(&name, &node).map_err(error)?;
            if json {
                print_json(&serde_json::json!({"name": name, "node": node, "stopped": true}));
            } else if !quiet {
                println!("{node} stopped (lab {name})");
            }
        }
        LabAction::Start { name, node } => {
            let progress = LabProgress::new(if json { -1 } else { global.verbosity });
            let started = lab::start_node(&name, &node, &progress).map_err(error)?;
            progress.finish();
            if json {
                print_json(&serde_json::json!({"name": name, "node": node, "started": started}));
            } else if !quiet {
                if started {
                    println!("{node} started (lab {name})");
                } else {
                    println!("{node} is already running (lab {name})");
                }
            }
        }
        LabAction::Ssh {
            name,
            node,
            command,
        } => {
            let mut cmd = lab::ssh_command(&name, &node, &command).map_err(error)?;
            // Replace kinit with ssh, so the terminal, signals and exit status are ssh's.
            let err = cmd.exec();
            return Err(CommandError::Failed(format!("cannot run ssh: {err}")));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}

/// Problems with the invocation or this machine are usage errors (exit 2); failed steps exit 1.
fn error(e: LabError) -> CommandError {
    match e {
        LabError::NotRoot
        | LabError::MissingTools { .. }
        | LabError::Invalid(_)
        | LabError::SubnetInUse { .. }
        | LabError::NoSuchLab(_)
        | LabError::NoSuchNode { .. }
        | LabError::ShapeMismatch { .. } => CommandError::Usage(e.to_string()),
        LabError::Io { .. } | LabError::Step { .. } => CommandError::Failed(e.to_string()),
    }
}
