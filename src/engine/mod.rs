//! The deploy engine: the playbook (phases over the component table) x inventory -> a plan per
//! host -> jobs that carry it out over SSH, bounded, idempotent by content and resumable by
//! phase.
//!
//!   runner        up's phases, hosts in parallel, the run's state and errors
//!   up_phase      an up run's phases on the loop: the renewal `certs renew --rollout` asks
//!                 for, then the playbook's
//!   phase_runner  the loop every host-changing command runs its phases with (events, dry run,
//!                 Ctrl-C between phases)
//!   select        which phases a run takes
//!   plan          a phase on one host as steps (pure)
//!   host_job      one host's steps: what differs, what to restart (tested in memory)
//!   host_ops      the HostOps trait and its SSH implementation
//!   rolling       restarts of what serves the cluster, one host at a time, behind health
//!                 checks and etcd's quorum guard
//!   etcd_join     the etcd phase on a running cluster: new members join as learners
//!   etcd_version_check  the bundle's etcd against the members' versions, before the run
//!   bundle_etcd_version the bundle's etcd release, asked of the binary itself
//!   etcd_members  etcd's live members, their health, and removals (judged by
//!                 `crate::planning`)
//!   stray_backends  haproxy backends cluster.yaml no longer names, said before they go
//!   run_context   what one run works with: options, the Engine, the state phases share
//!   pki_workspace where a run reads and writes the PKI (a scratch copy for a dry run)
//!   operator      the phases this machine runs (preflight, PKI)
//!   waits/verify  the checks after a phase
//!   cluster_lock/lock  one run per cluster at a time

pub mod bundle_etcd_version;
pub mod cluster_lock;
pub mod etcd_join;
pub mod etcd_members;
pub mod etcd_version_check;
pub mod event;
pub mod host_job;
pub mod host_ops;
pub mod kubernetes_version_check;
pub mod lifecycle_step;
pub mod lock;
pub mod operator;
pub mod outcome;
pub mod phase_runner;
pub mod pki_workspace;
pub mod plan;
pub mod playbook;
pub mod rolling;
pub mod run_context;
pub mod run_error;
pub mod runner;
pub mod select;
pub mod stray_backends;
pub mod up_phase;
pub mod verify;
pub mod waits;

pub use event::{Event, Observer};
pub use host_job::HostFailure;
pub use outcome::{RunSummary, StepOutcome};
pub use playbook::Playbook;
pub use runner::{Engine, OperatorError, RunError, RunOptions};
pub use select::PhaseSelection;
