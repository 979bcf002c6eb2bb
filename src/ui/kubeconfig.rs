//! Output of `kinit kubeconfig`: where the admin kubeconfig went and under which names. Never
//! any of its contents beyond the server URL.

use std::fmt::Write as _;
use std::path::Path;

use crate::kubeconfig::model::Change;
use crate::kubeconfig::{AdminKubeconfig, MODE, MergeReport};

/// The server and the three names, each followed by what the merge did to it, if merged.
fn names(out: &mut String, admin: &AdminKubeconfig, changes: Option<[Change; 3]>) {
    let _ = writeln!(out, "  server   {}", admin.server);
    let rows = [
        ("cluster", &admin.cluster),
        ("user", &admin.user),
        ("context", &admin.context),
    ];
    let width = rows.iter().map(|(_, n)| n.len()).max().unwrap_or(0);
    for (i, (what, name)) in rows.iter().enumerate() {
        match changes {
            Some(c) => {
                let _ = writeln!(out, "  {what:<8} {name:<width$}  {}", c[i]);
            }
            None => {
                let _ = writeln!(out, "  {what:<8} {name}");
            }
        }
    }
}

pub fn written_text(path: &Path, admin: &AdminKubeconfig) -> String {
    let mut out = format!(
        "wrote the admin kubeconfig of cluster {} to {} (mode {MODE:04o})\n",
        admin.cluster,
        path.display()
    );
    names(&mut out, admin, None);
    let _ = writeln!(
        out,
        "try: kubectl --kubeconfig {} get nodes",
        path.display()
    );
    out
}

pub fn written_json(path: &Path, admin: &AdminKubeconfig) -> serde_json::Value {
    serde_json::json!({
        "file": path,
        "merged": false,
        "server": admin.server,
        "cluster": admin.cluster,
        "user": admin.user,
        "context": admin.context,
    })
}

pub fn merged_text(report: &MergeReport, admin: &AdminKubeconfig) -> String {
    let o = &report.outcome;
    let file = report.file.display();
    let mut out = if !o.changed {
        format!(
            "{file} already holds the admin kubeconfig of cluster {}; nothing was written\n",
            admin.cluster
        )
    } else if report.created {
        format!(
            "created {file} (mode {MODE:04o}) with the admin kubeconfig of cluster {}\n",
            admin.cluster
        )
    } else {
        format!(
            "merged the admin kubeconfig of cluster {} into {file} (mode {MODE:04o})\n",
            admin.cluster
        )
    };
    names(&mut out, admin, Some([o.cluster, o.user, o.context]));
    if o.current_context_set {
        let _ = writeln!(
            out,
            "current-context set to {} (the file had none)",
            o.current_context
        );
    } else if o.current_context == admin.context {
        let _ = writeln!(out, "current-context is {}", o.current_context);
    } else {
        let _ = writeln!(
            out,
            "current-context left at {} (switch: kubectl config use-context {})",
            o.current_context, admin.context
        );
    }
    if let Some(backup) = &report.backup {
        let _ = writeln!(out, "the previous file is kept as {}", backup.display());
    }
    out
}

pub fn merged_json(report: &MergeReport, admin: &AdminKubeconfig) -> serde_json::Value {
    let o = &report.outcome;
    let entry = |name: &str, change: Change| serde_json::json!({"name": name, "change": change});
    serde_json::json!({
        "file": report.file,
        "merged": true,
        "created": report.created,
        "changed": o.changed,
        "backup": report.backup,
        "server": admin.server,
        "cluster": entry(&admin.cluster, o.cluster),
        "user": entry(&admin.user, o.user),
        "context": entry(&admin.context, o.context),
        "currentContext": o.current_context,
        "currentContextSet": o.current_context_set,
    })
}
