//! One run that changes a cluster at a time (`kinit up`, `reset`, `remove`, `etcd snapshot
//! restore`): a lock directory on every host it changes, taken on all of them or on none. It lives under /run, so a rebooted host drops it. A lock left by a run of this operator
//! machine (same hostname and same /etc/machine-id) whose process is gone is stale and taken over;
//! any other lock is refused with the command that removes it.
//!
//! Every change to the lock (take, take-over, release) runs under `flock` on a guard file beside
//! it, so the check "the lock still belongs to the dead owner we saw" and its replacement are one
//! step: of two runs that both found the same stale lock, exactly one takes it over. (Renaming the
//! stale directory aside is not enough on its own: the slower run's rename would move away the
//! lock the faster one has just made.)

use std::sync::Arc;

use crate::host_paths::LOCK_DIR;
use crate::ssh::Session;

use super::host_ops::HostOpError;

/// Who holds a lock: written into it, read back when another run finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    /// The operator machine's hostname.
    pub operator: String,
    pub pid: u32,
    pub since: u64,
    /// The operator machine's /etc/machine-id: hostnames repeat (cloned VMs, `localhost`), so a
    /// pid is only checked on the machine that wrote it. Empty when unknown (a lock written by an
    /// older kinit, or a machine without one): such an owner is never taken for dead.
    pub machine_id: String,
    /// The kinit command holding it (`up`, `reset`, `remove`, `restore`); empty in a lock an
    /// older kinit wrote (only `up` and `reset` took one then).
    pub command: String,
}

impl LockOwner {
    /// This process, running `command` (one word: `up`, `reset`, `remove`, `restore`).
    pub fn current(command: &str) -> LockOwner {
        LockOwner {
            operator: operator_name(),
            pid: std::process::id(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            machine_id: machine_id(),
            command: command.to_string(),
        }
    }

    /// `hostname pid since machine-id command`: new words last, so the first ones read as
    /// older versions wrote them (an older kinit ignores the command). An unknown machine-id is
    /// `-` when a command follows it.
    pub fn line(&self) -> String {
        let machine = match (self.machine_id.is_empty(), self.command.is_empty()) {
            (true, false) => "-",
            _ => self.machine_id.as_str(),
        };
        format!(
            "{} {} {} {} {}",
            self.operator, self.pid, self.since, machine, self.command
        )
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
    }

    pub fn parse(text: &str) -> Option<LockOwner> {
        let mut w = text.split_whitespace();
        Some(LockOwner {
            operator: w.next()?.to_string(),
            pid: w.next()?.parse().ok()?,
            since: w.next()?.parse().ok()?,
            machine_id: w
                .next()
                .filter(|m| *m != "-")
                .unwrap_or_default()
                .to_string(),
            command: w.next().unwrap_or_default().to_string(),
        })
    }

    /// The command as the refusal names it: a lock without one was written by an older
    /// `kinit up`.
    pub fn command_text(&self) -> &str {
        if self.command.is_empty() {
            "up"
        } else {
            &self.command
        }
    }

    /// A run of this machine that no longer exists. Only this machine can tell: the pid is
    /// checked only when hostname and machine-id are both this machine's.
    pub fn is_stale_here(&self) -> bool {
        let here = machine_id();
        !here.is_empty()
            && self.machine_id == here
            && self.operator == operator_name()
            && !process_alive(self.pid)
    }
}

fn operator_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// /etc/machine-id (32 hex digits), or empty when there is none to read.
fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .map(|m| m.trim().to_string())
        .ok()
        .filter(|m| !m.is_empty() && m.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_default()
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "locked by kinit {cmd} on {} ({}pid {}) since {}; if no kinit {cmd} is running there, \
         remove the lock with --break-lock (of kinit up, remove or etcd snapshot restore)",
        .0.operator, machine_text(&.0.machine_id), .0.pid, since_text(.0.since),
        cmd = .0.command_text()
    )]
    Held(LockOwner),
    #[error(transparent)]
    Host(#[from] HostOpError),
}

fn machine_text(id: &str) -> String {
    if id.is_empty() {
        String::new()
    } else {
        format!("machine-id {id}, ")
    }
}

fn since_text(secs: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Opens the guard beside the lock and holds `flock` on it for the rest of the script (fd 9).
const GUARD: &str = r#"mkdir -p -- "$(dirname -- "$d")"
command -v flock >/dev/null 2>&1 || { echo "flock (util-linux) is missing on this host" >&2; exit 5; }
exec 9>>"$d.guard"
flock -w 20 9 || { echo "$d.guard: another kinit held it for 20 s" >&2; exit 4; }
"#;

/// exit 0 = taken, 3 = held (the owner line on stdout). `mode` is `new` (take a free lock),
/// `force` (replace any), or `stale` (replace the lock only while it is still the one `$4` wrote).
const TAKE: &str = r#"case $mode in
  force) rm -rf -- "$d" ;;
  stale) if [ "$(cat -- "$d/owner" 2>/dev/null)" = "$stale" ]; then rm -rf -- "$d"; fi ;;
esac
if mkdir -- "$d" 2>/dev/null; then printf '%s\n' "$owner" > "$d/owner"; exit 0; fi
cat -- "$d/owner" 2>/dev/null || echo unknown 0 0
exit 3"#;

const RELEASE: &str =
    r#"if [ "$(cat -- "$d/owner" 2>/dev/null)" = "$owner" ]; then rm -rf -- "$d"; fi"#;

fn with_guard(body: &str) -> String {
    format!("d=$1; owner=$2; mode=$3; stale=$4\n{GUARD}{body}")
}

async fn script(
    session: &Session,
    text: &str,
    args: &[&str],
) -> Result<(i32, String), HostOpError> {
    let out = super::host_ops::run_script(session, text, args, std::time::Duration::from_secs(30))
        .await?;
    let code = match out.status {
        crate::ssh::ExitStatus::Code(c) => c as i32,
        _ => -1,
    };
    Ok((code, out.stdout_text()))
}

/// Take the lock on one host. A stale lock of this machine is replaced; `force` replaces any.
/// Returns whether a stale lock was taken over.
pub async fn take(
    session: &Arc<Session>,
    owner: &LockOwner,
    force: bool,
) -> Result<bool, LockError> {
    take_at(session, LOCK_DIR, owner, force).await
}

/// [`take`] with the lock directory at `dir` (tests use their own).
pub async fn take_at(
    session: &Arc<Session>,
    dir: &str,
    owner: &LockOwner,
    force: bool,
) -> Result<bool, LockError> {
    let line = owner.line();
    let take = with_guard(TAKE);
    let mode = if force { "force" } else { "new" };
    let (code, out) = script(session, &take, &[dir, &line, mode, ""]).await?;
    match code {
        0 => Ok(false),
        3 => {
            let held = LockOwner::parse(&out).unwrap_or(LockOwner {
                operator: "unknown".into(),
                pid: 0,
                since: 0,
                machine_id: String::new(),
                command: String::new(),
            });
            if !held.is_stale_here() {
                return Err(LockError::Held(held));
            }
            // Replaced only if it is still the lock we judged stale: another run may have taken
            // it over since, and then it is that run's.
            let stale = out.lines().next().unwrap_or_default().trim();
            let (code, out) = script(session, &take, &[dir, &line, "stale", stale]).await?;
            match code {
                0 => Ok(true),
                3 => Err(LockError::Held(LockOwner::parse(&out).unwrap_or(held))),
                other => Err(script_failed(dir, other)),
            }
        }
        other => Err(script_failed(dir, other)),
    }
}

fn script_failed(dir: &str, code: i32) -> LockError {
    LockError::Host(HostOpError::Failed {
        summary: format!("taking the lock {dir}: exit {code}"),
        stderr: String::new(),
    })
}

/// Release a lock this run holds (a lock taken over by someone else is left alone).
pub async fn release(session: &Arc<Session>, owner: &LockOwner) -> Result<(), LockError> {
    release_at(session, LOCK_DIR, owner).await
}

/// [`release`] of the lock directory at `dir`.
pub async fn release_at(
    session: &Arc<Session>,
    dir: &str,
    owner: &LockOwner,
) -> Result<(), LockError> {
    script(session, &with_guard(RELEASE), &[dir, &owner.line(), "", ""]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_and_a_dead_local_run_is_stale() {
        let me = LockOwner::current("remove");
        assert_eq!(LockOwner::parse(&me.line()), Some(me.clone()));
        let no_machine_id = LockOwner {
            machine_id: String::new(),
            ..me.clone()
        };
        assert_eq!(LockOwner::parse(&no_machine_id.line()), Some(no_machine_id));
        assert!(!me.is_stale_here(), "this process is alive");
        let gone = LockOwner {
            // Above pid_max (4194304): no such process.
            pid: 9_999_999,
            ..me.clone()
        };
        assert!(gone.is_stale_here());
        let cloned_machine = LockOwner {
            machine_id: "0123456789abcdef0123456789abcdef".into(),
            ..gone.clone()
        };
        assert!(
            !cloned_machine.is_stale_here(),
            "same hostname, another machine-id: a live foreign owner"
        );
        let older_kinit = LockOwner::parse(&format!("{} {} 0", gone.operator, gone.pid)).unwrap();
        assert_eq!(older_kinit.machine_id, "");
        assert!(!older_kinit.is_stale_here(), "no machine-id: cannot tell");
        assert!(
            LockError::Held(older_kinit)
                .to_string()
                .starts_with(&format!("locked by kinit up on {} (pid", gone.operator)),
            "a lock without a command was an older kinit up's"
        );
        let elsewhere = LockOwner {
            operator: "other-machine".into(),
            ..gone
        };
        assert!(
            !elsewhere.is_stale_here(),
            "cannot tell for another machine"
        );
        let text = LockError::Held(cloned_machine).to_string();
        assert!(
            text.contains("machine-id 0123456789abcdef0123456789abcdef"),
            "{text}"
        );
        assert!(
            text.starts_with("locked by kinit remove on ")
                && text.contains("if no kinit remove is running there"),
            "{text}"
        );
    }
}
