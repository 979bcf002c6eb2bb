use std::os::unix::process::CommandExt;

use super::{CommandError, CommandResult, Outcome};
use crate::lab;
use crate::ui::lab_progress::LabProgress;
use crate::ui::lab_report;
use crate::ui::{GlobalOptions, OutputFormat};

/// What a `kinit lab` invocation asks for.
#[derive(Debug, Clone)]
pub enum LabAction {
    Up(lab::LabRequest),
    Down {
        name: String,
    },
    Status {
        name: Option<String>,
    },
    Stop {
        name: String,
        node: String,
    },
    Start {
        name: String,
        node: String,
    },
    Ssh {
        name: String,
        node: String,
        command: Vec<String>,
    },
}

pub fn run(global: &GlobalOptions, action: LabAction) -> CommandResult {
    let json = global.output == OutputFormat::Json;
    let quiet = global.verbosity < 0;
    match action {
        LabAction::Up(req) => {
            let progress = LabProgress::new(if json { -1 } else { global.verbosity });
            let up = lab::up(&req, &progress)?;
            progress.finish();
            if json {
                print_json(&up);
            } else if !quiet {
                print!("{}", lab_report::up_summary(&up));
            }
        }
        LabAction::Down { name } => {
            let progress = LabProgress::new(if json { -1 } else { global.verbosity });
            let removed = lab::down(&name, &progress)?;
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
            let labs = lab::status(name.as_deref())?;
            if json {
                print_json(&labs);
            } else if !quiet {
                print!("{}", lab_report::status(&labs));
            }
        }
        LabAction::Stop { name, node } => {
            lab::stop_node(&name, &node)?;
            if json {
                print_json(&serde_json::json!({"name": name, "node": node, "stopped": true}));
            } else if !quiet {
                println!("{node} stopped (lab {name})");
            }
        }
        LabAction::Start { name, node } => {
            let progress = LabProgress::new(if json { -1 } else { global.verbosity });
            let started = lab::start_node(&name, &node, &progress)?;
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
            let mut cmd = lab::ssh_command(&name, &node, &command)?;
            // Replace kinit with ssh, so the terminal, signals and exit status are ssh's.
            let err = cmd.exec();
            return Err(CommandError::io("cannot run ssh")(err));
        }
    }
    Ok(Outcome::Success)
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serializable")
    );
}
