use super::{CommandError, CommandResult, Outcome};
use crate::config;
use crate::inventory::Inventory;
use crate::ui::{GlobalOptions, OutputFormat, config_report};

pub fn run(global: &GlobalOptions) -> CommandResult {
    let path = &global.config_path;
    let source = config::read_source(path).map_err(|e| CommandError::ConfigUnreadable {
        path: path.clone(),
        hint: e.kind() == std::io::ErrorKind::NotFound,
        source: e,
    })?;
    let (cfg, report) = config::check(path, source);
    let inventory = match (&cfg, report.has_errors()) {
        (Some(cfg), false) => {
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
            Some(Inventory::from_config(cfg, dir, home.as_deref())?)
        }
        _ => None,
    };
    match global.output {
        OutputFormat::Json => {
            let summary = inventory.as_ref().map(|inv| {
                serde_json::json!({
                    "name": inv.name,
                    "kubernetesVersion": inv.kubernetes_version.to_string(),
                    "imageRepository": inv.image_repository,
                    "topology": inv.topology,
                    "endpoint": inv.endpoint,
                    "hosts": inv.hosts,
                    "etcdMembers": inv.etcd_members(),
                    "podSubnet": inv.networking.pod_subnet,
                    "serviceSubnet": inv.networking.service_subnet,
                    "etcdSnapshots": inv.etcd.snapshots.as_ref().map(|s| serde_json::json!({
                        "schedule": s.schedule,
                        "keep": s.keep,
                        "dir": s.dir,
                    })),
                })
            });
            let doc = serde_json::json!({
                "file": path,
                "valid": inventory.is_some(),
                "problems": config_report::json_problems(&report),
                "summary": summary,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).expect("serializable")
            );
        }
        OutputFormat::Text => {
            let problems =
                config_report::render_problems(&report, global.color.enabled_for_stderr());
            if !problems.is_empty() && (report.has_errors() || global.verbosity >= 0) {
                eprint!("{problems}");
            }
            match &inventory {
                Some(inv) if global.verbosity >= 0 => {
                    let warnings = report.warnings().count();
                    let tail = match warnings {
                        0 => String::new(),
                        1 => " (1 warning)".into(),
                        n => format!(" ({n} warnings)"),
                    };
                    println!("{} is valid{tail}", path.display());
                    print!("{}", config_report::summary(inv));
                }
                Some(_) => {}
                None => eprintln!("{}", config_report::problem_counts(&report)),
            }
        }
    }
    Ok(Outcome::failed_if(inventory.is_none()))
}
