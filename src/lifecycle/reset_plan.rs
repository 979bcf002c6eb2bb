//! What `kinit reset` takes off a host, read from the component table (units, files, binaries),
//! the host's tree of the operator's PKI (certificates and kubeconfigs), and the engine's own
//! state (pending notes, the lock). Pure: no host is contacted.

use std::path::Path;

use serde::Serialize;

use crate::components::{self, OnReset, StartPolicy};
use crate::config::Role;
use crate::engine::host_ops::PENDING_DIR;
use crate::host_paths;
use crate::inventory::{Host, Inventory};

/// Everything reset may remove from one host (the host reports which of it is there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostReset {
    pub host: String,
    /// Units to stop and disable, in the order they are stopped (the VIP's keepalived first).
    pub units: Vec<&'static str>,
    /// Static pod manifests: removed before the units stop, so the kubelet stops the pods.
    pub manifests: Vec<String>,
    /// Ports the static pods hold: after their manifests go, reset waits (while a kubelet
    /// runs) until these are free, so etcd no longer writes to the data dir it moves.
    pub pod_ports: Vec<u16>,
    /// What the stopped programs made (the table's `runtime_state`): the pods stopped first,
    /// then directories emptied and links deleted.
    pub runtime_state: Vec<String>,
    /// Every other file and binary, removed after the units stopped.
    pub files: Vec<String>,
    /// kinit's state on the host (pending restart notes, snapshot scratch, manifests held
    /// aside by a restore): removed whole when they hold nothing but what kinit puts there;
    /// otherwise only kinit's entries go and the rest is reported as kept.
    pub state_dirs: Vec<StateDir>,
    /// Directories kinit made, removed when they are empty afterwards (deepest first).
    pub dirs: Vec<String>,
    /// etcd's data dir (etcd hosts): moved aside, or deleted with `--purge`.
    pub data_dir: Option<String>,
    /// What stays, and why (packages, components the table keeps).
    pub kept: Vec<String>,
}

/// One of kinit's state directories on a host, with the names kinit gives what it puts there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateDir {
    pub path: &'static str,
    /// Shell patterns (`case` patterns, no `/`) of the entries kinit puts in it.
    pub kinit_names: Vec<String>,
}

/// What an interrupted upload leaves beside its destination (see `ssh::upload`).
const UPLOAD_LEFTOVER: &str = ".*.kinit-upload.*";

/// kinit's state directories on `host` and what kinit puts in each: the restart notes of the
/// host's units, the snapshot scratch files, the manifests a restore holds aside.
fn state_dirs(inv: &Inventory, host: &Host) -> Vec<StateDir> {
    use crate::engine::plan::PendingNote;
    let mut notes = vec![PendingNote::DaemonReload.file_name()];
    for c in components::on_host(inv, host) {
        for u in c.units {
            notes.push(PendingNote::Restart(u.name).file_name());
            notes.push(PendingNote::Reload(u.name).file_name());
        }
    }
    notes.sort();
    notes.dedup();
    let with_leftovers = |names: Vec<String>| {
        names
            .into_iter()
            .chain([UPLOAD_LEFTOVER.to_string()])
            .collect::<Vec<_>>()
    };
    vec![
        StateDir {
            path: PENDING_DIR,
            kinit_names: with_leftovers(notes),
        },
        StateDir {
            path: host_paths::UPLOAD_STAMP_DIR,
            kinit_names: with_leftovers(vec!["*.stamp".to_string()]),
        },
        StateDir {
            path: crate::lifecycle::snapshot::HOST_WORK_DIR,
            kinit_names: with_leftovers(
                crate::lifecycle::snapshot::HOST_WORK_NAMES
                    .iter()
                    .map(|n| n.to_string())
                    .collect(),
            ),
        },
        StateDir {
            path: host_paths::MANIFESTS_ASIDE_DIR,
            kinit_names: with_leftovers(
                crate::lifecycle::snapshot::restore::aside_manifests()
                    .into_iter()
                    .filter_map(|m| Path::new(m).file_name()?.to_str().map(str::to_string))
                    .collect(),
            ),
        },
    ]
}

/// What reset removes from `host`. `pki_dir` is the operator's PKI: the host's tree in it names
/// the certificates and kubeconfigs kinit copied to the host.
pub fn for_host(inv: &Inventory, host: &Host, pki_dir: &Path) -> HostReset {
    let mut units = Vec::new();
    let mut manifests = Vec::new();
    let mut files = Vec::new();
    let mut kept = Vec::new();
    let mut packages = Vec::new();
    let mut pod_ports = Vec::new();
    let mut runtime_state = Vec::new();
    for c in components::on_host(inv, host) {
        if c.static_pod && c.on_reset == OnReset::Remove {
            pod_ports.extend(c.ports(inv).map(|p| p.port));
        }
        packages.extend(c.packages.iter().copied());
        if let OnReset::Keep(why) = c.on_reset {
            kept.push(format!("{}: {why}", c.name));
            continue;
        }
        for u in c.units.iter().filter(|u| u.start == StartPolicy::Always) {
            if !units.contains(&u.name) {
                units.push(u.name);
            }
        }
        for f in c.files {
            let path = f.path.to_string();
            if f.path.starts_with(host_paths::MANIFESTS_DIR) {
                manifests.push(path);
            } else {
                files.push(path);
            }
        }
        files.extend(c.binaries.iter().map(|b| b.path.to_string()));
        runtime_state.extend(c.runtime_state.iter().map(|s| s.to_string()));
    }
    // Stopped in the reverse of the order `up` starts them: keepalived gives up the VIP before
    // haproxy goes, and etcd stops last.
    units.reverse();
    files.extend(pki_files(host, pki_dir));
    let state_dirs = state_dirs(inv, host);
    if let Some(s) = &inv.etcd.snapshots
        && host.has(Role::Etcd)
    {
        kept.push(format!("etcd-snapshots: the snapshots in {} stay", s.dir));
    }
    packages.sort_unstable();
    packages.dedup();
    if !packages.is_empty() {
        kept.push(format!(
            "packages stay installed: {} (remove them with the package manager if wanted)",
            packages.join(" ")
        ));
    }
    let state: Vec<String> = state_dirs.iter().map(|d| d.path.to_string()).collect();
    let dirs = parent_dirs(manifests.iter().chain(&files).chain(&state));
    pod_ports.sort_unstable();
    pod_ports.dedup();
    HostReset {
        host: host.name.clone(),
        units,
        manifests,
        pod_ports,
        runtime_state,
        files,
        state_dirs,
        dirs,
        data_dir: host.has(Role::Etcd).then(|| inv.etcd.data_dir.clone()),
        kept,
    }
}

/// The host's certificates and kubeconfigs as they lie on the host (`/etc/kubernetes/...`); the
/// PKI's well-known directories when this machine has no tree for the host.
fn pki_files(host: &Host, pki_dir: &Path) -> Vec<String> {
    let root = pki_dir.join(crate::pki::table::host_root(&host.name));
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    if out.is_empty() {
        // No tree here (another operator machine made the PKI): the files kinit's layout puts
        // on hosts.
        out = host_paths::ALL
            .iter()
            .map(|(_, p)| *p)
            .filter(|p| p.starts_with(host_paths::KUBERNETES_DIR))
            .filter(|p| {
                [".crt", ".key", ".pub", ".conf"]
                    .iter()
                    .any(|x| p.ends_with(x))
            })
            .map(str::to_string)
            .collect();
    }
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, out),
            Ok(t) if t.is_file() => {
                if let Ok(rel) = path.strip_prefix(root) {
                    out.push(format!("{}/{}", host_paths::KUBERNETES_DIR, rel.display()));
                }
            }
            _ => {}
        }
    }
}

/// Every directory above the files that is not a system directory, deepest first.
fn parent_dirs<'a>(files: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut dirs: Vec<String> = Vec::new();
    for f in files {
        let mut p = Path::new(f.as_str()).parent();
        while let Some(dir) = p {
            let d = dir.display().to_string();
            if host_paths::SYSTEM_DIRS.contains(&d.as_str()) {
                break;
            }
            if !dirs.contains(&d) {
                dirs.push(d);
            }
            p = dir.parent();
        }
    }
    // Deepest first, so a parent is tried after its children are gone.
    dirs.sort_by(|a, b| {
        b.matches('/')
            .count()
            .cmp(&a.matches('/').count())
            .then(a.cmp(b))
    });
    dirs
}

#[cfg(test)]
mod tests;
