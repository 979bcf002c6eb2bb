//! What `kinit render` shows: per host, the files written and which service each one restarts.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use crate::render::manifest::{self, Manifest};

/// One block per host: `cp1 (8 files) -> rendered/cp1/` then one line per file.
pub fn summary(out: &Path, manifests: &[Manifest], overridden: &[(&str, &Path)]) -> String {
    let mut text = String::new();
    for (name, path) in overridden {
        let _ = writeln!(text, "template {name} from {}", path.display());
    }
    for m in manifests {
        let _ = writeln!(
            text,
            "{} ({} file{}) -> {}/",
            m.host,
            m.files.len(),
            if m.files.len() == 1 { "" } else { "s" },
            out.join(&m.host).display()
        );
        for f in &m.files {
            let restart = match (&f.restart, &f.reload) {
                (Some(u), _) => format!("  restarts {u}"),
                (None, Some(u)) => format!("  reloads {u}"),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                text,
                "  {} {} {:<54} {}{restart}",
                f.mode,
                f.owner,
                f.path,
                &f.sha256[..12]
            );
        }
    }
    let _ = writeln!(
        text,
        "nothing was sent to any host; each host's {} lists mode, owner, sha256 and restarts",
        manifest::FILE_NAME
    );
    text
}

pub fn json(out: &Path, manifests: &[Manifest]) -> String {
    serde_json::to_string_pretty(&json!({ "out": out, "hosts": manifests })).expect("serializable")
}
