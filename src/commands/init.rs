use std::io::ErrorKind;
use std::process::ExitCode;

use super::{CommandError, CommandResult};
use crate::cli::{GlobalOptions, InitOptions};
use crate::config::{self, template};
use crate::fsutil::{Existing, write_atomic};
use crate::ui::OutputFormat;

pub fn run(global: &GlobalOptions, opts: &InitOptions) -> CommandResult {
    let text = template::render(opts.shape).map_err(|e| CommandError::Usage(e.to_string()))?;
    // The example must validate as written; if it does not, that is kinit's bug, not the user's.
    let (_, report) = config::check(&opts.file, text.clone());
    if report.has_errors() {
        return Err(CommandError::Failed(format!(
            "internal error: the generated config does not validate ({}); please report this",
            report
                .errors()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    let existing = if opts.force {
        Existing::Replace
    } else {
        Existing::Keep
    };
    write_atomic(&opts.file, text.as_bytes(), 0o644, existing).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => CommandError::Failed(format!(
            "{} already exists; pass --force to overwrite it",
            opts.file.display()
        )),
        _ => CommandError::Failed(format!("cannot write {}: {e}", opts.file.display())),
    })?;
    let s = opts.shape;
    match global.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::json!({
                "written": opts.file,
                "topology": s.topology,
                "controlPlanes": s.control_planes,
                "workers": s.workers,
                "etcdHosts": if s.topology == config::Topology::External { s.etcd_hosts } else { 0 },
            })
        ),
        OutputFormat::Text if global.verbosity >= 0 => {
            println!(
                "wrote {} ({} topology, {} control-plane host(s), {} worker(s))",
                opts.file.display(),
                s.topology,
                s.control_planes,
                s.workers
            );
            println!("next: set the hosts' names and addresses, then run `kinit config validate`");
        }
        OutputFormat::Text => {}
    }
    Ok(ExitCode::SUCCESS)
}
