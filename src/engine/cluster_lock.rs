//! The run's lock on every host at once: taken on all hosts or on none. Every command that
//! changes hosts takes it through [`take_all`] (`up` and `certs renew --rollout` in the engine's
//! runner, `remove`, `etcd snapshot restore`, `reset` on the hosts it resets) and gives it
//! back with [`release_all`] however it ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::event::{Event, Observer};
use super::host_job::HostFailure;
use super::lock::{self, LockOwner};
use crate::fanout::{self, FanoutError};
use crate::ssh::{HostTarget, Pool, Session};

/// Why the lock could not be taken everywhere (whatever was taken is released again).
#[derive(Debug, thiserror::Error)]
pub enum LockFailure {
    /// Another run holds it (each failure names the holder), or a host did not answer.
    #[error(
        "the cluster lock was not taken, so nothing was changed: {}",
        .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Hosts(Vec<HostFailure>),
    #[error("interrupted before any host was changed")]
    Interrupted,
}

/// How a command takes the lock: who takes it, and whether another run's lock is removed.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub owner: LockOwner,
    /// Remove any lock, not only stale ones of this machine (`--break-lock`).
    pub break_lock: bool,
    pub concurrency: usize,
}

impl LockRequest {
    /// Take the lock on every target (see [`take_all`]).
    pub async fn take(
        &self,
        pool: &Arc<Pool>,
        targets: &BTreeMap<String, HostTarget>,
        cancel: &CancellationToken,
        observer: &dyn Observer,
    ) -> Result<Vec<Arc<Session>>, LockFailure> {
        take_all(
            pool,
            targets,
            &self.owner,
            self.break_lock,
            self.concurrency,
            cancel,
            observer,
        )
        .await
    }

    /// Give back what [`LockRequest::take`] took.
    pub async fn release(&self, sessions: &[Arc<Session>]) {
        release_all(sessions, &self.owner).await
    }
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
