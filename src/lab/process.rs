//! Processes the lab starts, identified by PID *and* kernel start time, so a recycled PID is
//! never mistaken for ours and never signalled.

use std::ffi::CString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedProcess {
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat (clock ticks after boot).
    pub start_time: u64,
}

/// (state letter, start time, parent pid) from /proc/<pid>/stat.
fn stat(pid: i32) -> Option<(char, u64, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces; fields follow the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start, ppid))
}

impl RecordedProcess {
    pub fn capture(pid: i32) -> Option<RecordedProcess> {
        stat(pid).map(|(_, start_time, _)| RecordedProcess { pid, start_time })
    }

    /// Running (a zombie awaiting its reaper counts as gone).
    pub fn is_alive(&self) -> bool {
        matches!(stat(self.pid), Some((state, start, _)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// Signal it, only if it is still the same process.
    pub fn signal(&self, sig: i32) -> bool {
        if !self.is_alive() {
            return false;
        }
        // SAFETY: kill has no memory-safety preconditions; the pid was just checked to be ours.
        unsafe { libc::kill(self.pid, sig) == 0 }
    }

    pub fn wait_gone(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_alive() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// Its direct children (for nspawn: the container's init).
    pub fn children(&self) -> Vec<RecordedProcess> {
        if !self.is_alive() {
            return Vec::new();
        }
        let path = format!("/proc/{0}/task/{0}/children", self.pid);
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .filter_map(RecordedProcess::capture)
            .collect()
    }
}

/// Start `cmd` in a session of its own, stdio to `log`, so it outlives this kinit run; first
/// move it into the cgroups whose `cgroup.procs` files are given.
pub fn spawn_detached(
    cmd: &mut Command,
    log: &Path,
    cgroup_procs: Vec<CString>,
) -> std::io::Result<Child> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    // SAFETY: setsid, open, write and close are async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            super::cgroup::join_in_child(&cgroup_procs)
        });
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_follows_pid_and_start_time() {
        let me = RecordedProcess::capture(std::process::id() as i32).unwrap();
        assert!(me.is_alive());
        let impostor = RecordedProcess {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!impostor.is_alive());
        assert!(!impostor.signal(0));
    }

    #[test]
    fn a_detached_child_is_seen_alive_then_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn_detached(
            Command::new("sleep").arg("30"),
            &dir.path().join("log"),
            Vec::new(),
        )
        .unwrap();
        let p = RecordedProcess::capture(child.id() as i32).unwrap();
        assert!(p.is_alive());
        assert!(p.signal(libc::SIGTERM));
        child.wait().unwrap();
        assert!(p.wait_gone(Duration::from_secs(5)));
    }
}
