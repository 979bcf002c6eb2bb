//! Directories on the hosts that kinit moves, deletes or fills: etcd's data dir (reset moves it
//! aside or deletes it, restore replaces it) and the snapshot directory (the timer writes and
//! prunes snapshots there). Neither may be a directory of the system or one of kinit's own, and
//! the two may not hold one another.

use std::path::Path;

use super::super::model::*;
use super::super::problem::ConfigProblem;
use super::text::check_host_path;
use crate::host_paths::{SYSTEM_DIRS, kinit_dirs};

/// `spec.etcd.dataDir`, and how it stands to `spec.etcd.snapshots.dir`. Only a path that is
/// already well-formed (the token rule reports the others) is looked at here.
pub(super) fn host_dirs(spec: &ClusterSpec, out: &mut Vec<ConfigProblem>) {
    let data = spec.etcd.data_dir.as_str();
    let data_ok = check_host_path(data, "", "").is_ok();
    if data_ok && let Some(why) = data_dir_conflict(data) {
        out.push(
            ConfigProblem::error("config::etcd-data-dir", "spec.etcd.dataDir", format!("`{data}` {why}"))
                .help("give etcd a directory of its own, which `kinit reset` can move aside (or delete with --purge) and a restore can replace, e.g. /var/lib/etcd"),
        );
    }
    let Some(snap) = &spec.etcd.snapshots else {
        return;
    };
    let dir = snap.dir.as_str();
    if check_host_path(dir, "", "").is_err() {
        return;
    }
    if let Some(own) = inside_kinit_dir(dir) {
        out.push(
            ConfigProblem::error(
                "config::etcd-snapshot-dir",
                "spec.etcd.snapshots.dir",
                format!(
                    "`{dir}` is inside {own}, where kinit keeps its own files: `kinit reset` \
                     removes them, and a restore moves what it finds there"
                ),
            )
            .help("give the snapshots a directory of their own, e.g. /var/lib/etcd-snapshots"),
        );
    }
    if data_ok && data != dir && Path::new(data).starts_with(dir) {
        out.push(
            ConfigProblem::error(
                "config::etcd-data-dir",
                "spec.etcd.dataDir",
                format!("`{data}` is inside the snapshot directory {dir}"),
            )
            .also("spec.etcd.snapshots.dir", "the snapshot directory")
            .help("keep etcd's data dir and its snapshots apart: a reset moves the data dir, a restore replaces it (e.g. /var/lib/etcd and /var/lib/etcd-snapshots)"),
        );
    }
}

/// Why `dir` (absolute, normal) cannot be etcd's data dir: it is a system directory or above
/// one, or it is one of kinit's own directories, inside one or above one.
fn data_dir_conflict(dir: &str) -> Option<String> {
    let p = Path::new(dir);
    if SYSTEM_DIRS.contains(&dir) {
        return Some("is a system directory".into());
    }
    if let Some(sys) = SYSTEM_DIRS.iter().find(|s| Path::new(s).starts_with(p)) {
        return Some(format!("holds the system directory {sys}"));
    }
    if let Some(own) = inside_kinit_dir(dir) {
        return Some(if own == dir {
            "is a directory kinit keeps its own files in".to_string()
        } else {
            format!("is inside {own}, where kinit keeps its own files")
        });
    }
    if let Some(own) = kinit_dirs()
        .into_iter()
        .find(|k| Path::new(k).starts_with(p))
    {
        return Some(format!("holds {own}, where kinit keeps its own files"));
    }
    None
}

/// The outermost of kinit's own directories that `dir` is, or is inside.
fn inside_kinit_dir(dir: &str) -> Option<&'static str> {
    kinit_dirs()
        .into_iter()
        .filter(|k| Path::new(dir).starts_with(k))
        .min_by_key(|k| k.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dirs() {
        for good in [
            "/var/lib/etcd",
            "/data/etcd",
            "/srv/etcd",
            "/var/lib/etcd-data",
        ] {
            assert_eq!(data_dir_conflict(good), None, "{good}");
        }
        for (bad, why) in [
            ("/", "is a system directory"),
            ("/var/lib", "is a system directory"),
            ("/etc", "is a system directory"),
            ("/usr", "is a system directory"),
            ("/home", "is a system directory"),
            ("/boot", "is a system directory"),
            ("/var", "is a system directory"),
            ("/usr/local/bin", "is a system directory"),
            ("/etc/kubernetes", "is a directory kinit keeps"),
            ("/etc/kubernetes/etcd", "is inside /etc/kubernetes"),
            (
                "/etc/kubernetes/manifests.kinit-restore",
                "is inside /etc/kubernetes",
            ),
            ("/var/lib/kinit", "is a directory kinit keeps"),
            ("/var/lib/kinit/etcd", "is inside /var/lib/kinit"),
            ("/etc/etcd", "is a directory kinit keeps"),
            ("/usr/local/lib/kinit", "is a directory kinit keeps"),
        ] {
            let got = data_dir_conflict(bad).unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(got.starts_with(why), "{bad}: {got}");
        }
    }

    #[test]
    fn snapshot_dirs_inside_kinits_own() {
        assert_eq!(inside_kinit_dir("/var/lib/etcd-snapshots"), None);
        assert_eq!(inside_kinit_dir("/var/lib/kinit-snapshots"), None);
        assert_eq!(
            inside_kinit_dir("/var/lib/kinit/snapshots"),
            Some("/var/lib/kinit")
        );
        assert_eq!(
            inside_kinit_dir("/etc/kubernetes/manifests.kinit-restore"),
            Some("/etc/kubernetes")
        );
    }
}
