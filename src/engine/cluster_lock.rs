//! The run's lock on every host at once: taken on all hosts or on none.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::event::{Event, Observer};
use super::host_job::HostFailure;
use super::lock::{self, LockOwner};
use crate::fanout::{self, FanoutError};
use crate::ssh::{HostTarget, Pool, Session};

/// Why the lock could not be taken everywhere (whatever was taken is released again).
pub enum LockFailure {
    Hosts(Vec<HostFailure>),
    Interrupted,
}

/// What taking the lock on one host needs.
type LockJob = (Arc<Pool>, HostTarget, LockOwner);

/// Take the lock on every target; the sessions holding it, for the release.
pub async fn take_all(
    pool: &Arc<Pool>,
    targets: &BTreeMap<String, HostTarget>,
    owner: &LockOwner,
    break_lock: bool,
    concurrency: usize,
    cancel: &CancellationToken,
    observer: &dyn Observer,
) -> Result<Vec<Arc<Session>>, LockFailure> {
    let items: Vec<(String, LockJob)> = targets
        .iter()
        .map(|(name, t)| (name.clone(), (pool.clone(), t.clone(), owner.clone())))
        .collect();
    let results = fanout::run(
        items,
        concurrency,
        cancel,
        move |(pool, target, owner)| async move {
            let session = pool.get(&target).await.map_err(|e| e.to_string())?;
            let took_over = lock::take(&session, &owner, break_lock)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((session, took_over))
        },
    )
    .await;
    let mut taken = Vec::new();
    let mut failures = Vec::new();
    for (host, r) in results {
        match r {
            Ok((session, took_over)) => {
                if took_over {
                    observer.event(&Event::Note {
                        phase: "lock".into(),
                        message: format!(
                            "{host}: took over a stale lock left by an earlier run on this machine"
                        ),
                    });
                }
                taken.push(session)
            }
            Err(e) => failures.push(HostFailure {
                host,
                step: "lock".into(),
                error: match e {
                    FanoutError::Failed(s) => s,
                    other => other.to_string(),
                },
                stderr_tail: None,
            }),
        }
    }
    if cancel.is_cancelled() || !failures.is_empty() {
        release_all(&taken, owner).await;
        return Err(if cancel.is_cancelled() {
            LockFailure::Interrupted
        } else {
            LockFailure::Hosts(failures)
        });
    }
    Ok(taken)
}

/// Release what this run holds; a host gone by now keeps its lock until it reboots (/run).
pub async fn release_all(sessions: &[Arc<Session>], owner: &LockOwner) {
    for s in sessions {
        let _ = lock::release(s, owner).await;
    }
}
