//! One connection per host for a whole run, opened on first use and shared by every step (each
//! step opens its own channels on it). With a bastion, one connection to the bastion carries the
//! tunnels to every host.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::error::SshError;
use super::options::{HostTarget, SshOptions};
use super::session::Session;

type Slot = Arc<OnceCell<Arc<Session>>>;

#[derive(Debug)]
pub struct Pool {
    opts: SshOptions,
    /// Like a host's slot: a bastion connection found dead is opened again by the next caller.
    bastion: Mutex<Slot>,
    sessions: Mutex<HashMap<HostTarget, Slot>>,
}

impl Pool {
    pub fn new(opts: SshOptions) -> Self {
        Pool {
            opts,
            bastion: Mutex::default(),
            sessions: Mutex::default(),
        }
    }

    pub fn options(&self) -> &SshOptions {
        &self.opts
    }

    /// The open session to `target`, connecting on first use. Concurrent callers for the same
    /// host wait for the one connection attempt; a failed attempt is retried by the next caller.
    pub async fn get(&self, target: &HostTarget) -> Result<Arc<Session>, SshError> {
        let slot: Slot = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            let slot = sessions.entry(target.clone()).or_default();
            if slot.get().is_some_and(|s| s.is_closed()) {
                *slot = Slot::default();
            }
            slot.clone()
        };
        slot.get_or_try_init(|| self.connect(target)).await.cloned()
    }

    async fn connect(&self, target: &HostTarget) -> Result<Arc<Session>, SshError> {
        let Some(bastion_target) = &self.opts.bastion else {
            return Session::connect_direct(target, &self.opts)
                .await
                .map(Arc::new);
        };
        let slot: Slot = {
            let mut slot = self.bastion.lock().unwrap_or_else(|p| p.into_inner());
            if slot.get().is_some_and(|s| s.is_closed()) {
                *slot = Slot::default();
            }
            slot.clone()
        };
        let bastion = slot
            .get_or_try_init(|| async {
                Session::connect_direct(bastion_target, &self.opts)
                    .await
                    .map(Arc::new)
            })
            .await
            .map_err(|e| SshError::Bastion {
                host: target.name.clone(),
                bastion: bastion_target.socket_label(),
                source: Box::new(e),
            })?;
        Session::connect_via(bastion, target, &self.opts)
            .await
            .map(Arc::new)
    }

    /// Disconnect every session (and the bastion last).
    pub async fn close_all(&self) {
        let sessions: Vec<Arc<Session>> = {
            let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.values().filter_map(|s| s.get().cloned()).collect()
        };
        let mut closing = tokio::task::JoinSet::new();
        for s in sessions {
            closing.spawn(async move { s.close().await });
        }
        while closing.join_next().await.is_some() {}
        let bastion = {
            let slot = self.bastion.lock().unwrap_or_else(|p| p.into_inner());
            slot.get().cloned()
        };
        if let Some(b) = bastion {
            b.close().await;
        }
    }
}
