//! One `kinit up` per cluster at a time: a lock directory on every host, taken on all hosts or on
//! none. It lives under /run, so a rebooted host drops it. A lock left by a run of this operator
//! machine whose process is gone is stale and taken over; any other lock is refused with the
//! command that removes it.

use std::sync::Arc;

use crate::ssh::Session;

use super::host_ops::HostOpError;

pub const LOCK_DIR: &str = "/run/kinit/up.lock";

/// Who holds a lock: written into it, read back when another run finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOwner {
    pub operator: String,
    pub pid: u32,
    pub since: u64,
}

impl LockOwner {
    pub fn current() -> LockOwner {
        LockOwner {
            operator: operator_name(),
            pid: std::process::id(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
        }
    }

    fn line(&self) -> String {
        format!("{} {} {}", self.operator, self.pid, self.since)
    }

    fn parse(text: &str) -> Option<LockOwner> {
        let mut w = text.split_whitespace();
        Some(LockOwner {
            operator: w.next()?.to_string(),
            pid: w.next()?.parse().ok()?,
            since: w.next()?.parse().ok()?,
        })
    }

    /// A run of this machine that no longer exists.
    fn is_stale_here(&self) -> bool {
        self.operator == operator_name() && !process_alive(self.pid)
    }
}

fn operator_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "locked by kinit up on {} (pid {}) since {}; if no kinit up is running there, remove the lock with `kinit up --break-lock`",
        .0.operator, .0.pid, since_text(.0.since)
    )]
    Held(LockOwner),
    #[error(transparent)]
    Host(#[from] HostOpError),
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

/// mkdir is atomic: exit 0 = taken, 3 = held (the owner line on stdout).
const TAKE: &str = r#"d=$1; owner=$2; force=$3
mkdir -p -- "$(dirname -- "$d")"
if [ "$force" = yes ]; then rm -rf -- "$d"; fi
if mkdir -- "$d" 2>/dev/null; then printf '%s\n' "$owner" > "$d/owner"; exit 0; fi
cat -- "$d/owner" 2>/dev/null || echo unknown 0 0
exit 3"#;

const RELEASE: &str = r#"d=$1; owner=$2
if [ "$(cat -- "$d/owner" 2>/dev/null)" = "$owner" ]; then rm -rf -- "$d"; fi"#;

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
    let line = owner.line();
    let (code, out) = script(
        session,
        TAKE,
        &[LOCK_DIR, &line, if force { "yes" } else { "no" }],
    )
    .await?;
    match code {
        0 => Ok(false),
        3 => {
            let held = LockOwner::parse(&out).unwrap_or(LockOwner {
                operator: "unknown".into(),
                pid: 0,
                since: 0,
            });
            if held.is_stale_here() {
                let (code, _) = script(session, TAKE, &[LOCK_DIR, &line, "yes"]).await?;
                if code == 0 {
                    return Ok(true);
                }
            }
            Err(LockError::Held(held))
        }
        other => Err(LockError::Host(HostOpError::Failed {
            summary: format!("taking the lock {LOCK_DIR}: exit {other}"),
            stderr: String::new(),
        })),
    }
}

/// Release a lock this run holds (a lock taken over by someone else is left alone).
pub async fn release(session: &Arc<Session>, owner: &LockOwner) -> Result<(), LockError> {
    script(session, RELEASE, &[LOCK_DIR, &owner.line()]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_and_a_dead_local_run_is_stale() {
        let me = LockOwner::current();
        assert_eq!(LockOwner::parse(&me.line()), Some(me.clone()));
        assert!(!me.is_stale_here(), "this process is alive");
        let gone = LockOwner {
            pid: u32::MAX - 1,
            ..me.clone()
        };
        assert!(gone.is_stale_here());
        let elsewhere = LockOwner {
            operator: "other-machine".into(),
            ..gone
        };
        assert!(
            !elsewhere.is_stale_here(),
            "cannot tell for another machine"
        );
    }
}
