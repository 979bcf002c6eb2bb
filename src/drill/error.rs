//! Why a drill did not start. Every variant but `Restore` means nothing was taken down.

use crate::engine::cluster_lock::LockFailure;
use crate::planning::quorum::Tally;

#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error(
        "the cluster is degraded already, so no drill was started (nothing was changed); fix \
         these first (`kinit status` shows them):\n  - {}",
        problems.join("\n  - ")
    )]
    Degraded { problems: Vec<String> },

    #[error(
        "the {drill} drill would cost etcd its quorum, so it was refused (nothing was changed): \
         {} of {} voting members would serve while {target} is down, {} are needed",
        tally.healthy_after, tally.voters_after, tally.needed
    )]
    WouldLoseQuorum {
        drill: String,
        target: String,
        tally: Box<Tally>,
    },

    #[error("the {drill} drill needs {needs} (nothing was changed)")]
    NotApplicable { drill: String, needs: String },

    #[error("{host} runs no {runs} of this cluster (the hosts that do: {known})")]
    UnknownHost {
        host: String,
        runs: &'static str,
        known: String,
    },

    #[error("the {drill} drill found no single {what} to take down: {found} (nothing was changed)")]
    NoTarget {
        drill: String,
        what: String,
        found: String,
    },

    #[error(
        "the {drill} drill would leave no other {what} to take over from {target}, so it was \
         refused (nothing was changed)"
    )]
    NoStandby {
        drill: String,
        what: String,
        target: String,
    },

    #[error(transparent)]
    Lock(#[from] LockFailure),

    #[error("{host}: could not stop {unit}: {message} (it was started again)")]
    Stop {
        host: String,
        unit: String,
        message: String,
    },

    #[error("cannot measure: {0}")]
    Setup(String),

    #[error("interrupted before anything was taken down")]
    Interrupted,
}
