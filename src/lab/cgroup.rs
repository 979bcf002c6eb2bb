//! A cgroup of its own for every node. `systemd-nspawn --keep-unit` puts the node's systemd in a
//! `payload` child of the cgroup nspawn was started in; nodes started from the same cgroup would
//! share it, and their systemds would then fight over each other's units (units fail at boot
//! with status 219/CGROUP). So each nspawn first moves into `<kinit's cgroup>/kinit-<machine>`,
//! in every hierarchy systemd tracks processes in (the unified one, plus name=systemd on hybrid
//! machines). The directories are recorded and removed when the node stops.
//!
//! A node that runs containers (`kinit lab up --runtime`) also gets a cgroup of its own in
//! every cgroup v1 controller hierarchy: nspawn mounts the node's view of them read-only, the
//! node's init remounts them writable, and the kubelet and runc then create the pods' cgroups
//! below the node's (this machine's hierarchies are root's to write). The kernel enforces the
//! pods' limits there like on any host.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::LabError;

const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup directories a node `machine` gets on this machine (`runtime`: in every v1
/// controller hierarchy too).
pub fn node_cgroups(machine: &str, runtime: bool) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let path_of = |hierarchy: &str| {
        own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            (controllers == hierarchy).then(|| path.trim_start_matches('/').to_string())
        })
    };
    let leaf = format!("kinit-{machine}");
    let root = Path::new(ROOT);
    let mut dirs = Vec::new();
    if root.join("cgroup.controllers").exists() {
        // Unified only.
        if let Some(p) = path_of("") {
            dirs.push(root.join(p).join(&leaf));
        }
    } else {
        if root.join("systemd").is_dir()
            && let Some(p) = path_of("name=systemd")
        {
            dirs.push(root.join("systemd").join(p).join(&leaf));
        }
        if root.join("unified/cgroup.procs").exists()
            && let Some(p) = path_of("")
        {
            dirs.push(root.join("unified").join(p).join(&leaf));
        }
        if runtime {
            for line in own.lines() {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
                let (Some(controllers), Some(path)) = (controllers, path) else {
                    continue;
                };
                if controllers.is_empty() || controllers.starts_with("name=") {
                    continue;
                }
                let mount = root.join(controllers);
                if mount.join("cgroup.procs").exists() {
                    dirs.push(mount.join(path.trim_start_matches('/')).join(&leaf));
                }
            }
        }
    }
    dirs
}

pub fn create(dirs: &[PathBuf]) -> Result<(), LabError> {
    for d in dirs {
        std::fs::create_dir_all(d).map_err(|e| LabError::io(d, "creating cgroup", e))?;
        // A new cpuset cgroup has no CPUs and no memory nodes: nothing could join it.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let here = d.join(f);
            let empty = std::fs::read_to_string(&here).is_ok_and(|v| v.trim().is_empty());
            if empty && let Some(parent) = d.parent() {
                let from = parent.join(f);
                let value = std::fs::read_to_string(&from)
                    .map_err(|e| LabError::io(&from, "reading", e))?;
                std::fs::write(&here, value.trim())
                    .map_err(|e| LabError::io(&here, "writing", e))?;
            }
        }
    }
    Ok(())
}

/// The `cgroup.procs` files a starting process writes itself into (prepared before fork, since
/// the child may only make async-signal-safe calls).
pub fn procs_files(dirs: &[PathBuf]) -> Vec<CString> {
    dirs.iter()
        .map(|d| CString::new(d.join("cgroup.procs").as_os_str().as_bytes()).expect("no NUL"))
        .collect()
}

/// In the child between fork and exec: move this process into each cgroup.
pub fn join_in_child(procs: &[CString]) -> std::io::Result<()> {
    for f in procs {
        // SAFETY: open/write/close are async-signal-safe; `f` is a valid C string.
        unsafe {
            let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if !ok {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Remove a node's cgroups (and what its systemd made below them) once its processes are gone.
pub fn remove(dirs: &[PathBuf]) -> Result<(), LabError> {
    for d in dirs {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match remove_tree(d) {
                Ok(()) => break,
                // Processes just killed can take a moment to leave their cgroup.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(LabError::io(d, "removing cgroup", e)),
            }
        }
    }
    Ok(())
}

fn remove_tree(d: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(d) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_cgroups_are_named_after_the_machine_below_our_own() {
        let dirs = node_cgroups("default-cp1", false);
        assert!(
            !dirs.is_empty(),
            "no systemd cgroup hierarchy found under {ROOT}"
        );
        for d in &dirs {
            assert!(d.starts_with(ROOT), "{}", d.display());
            assert!(d.ends_with("kinit-default-cp1"), "{}", d.display());
        }
    }
}
