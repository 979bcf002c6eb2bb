//! The deploy engine: playbooks (phases as data) x inventory -> steps per host -> an executor
//! that runs them over SSH, bounded, idempotent by content and resumable by phase.

pub mod bundle;
pub mod event;
pub mod executor;
pub mod host_ops;
pub mod lock;
pub mod playbook;
pub mod steps;
pub mod verify;

pub use event::{Event, Observer};
pub use executor::{Engine, HostFailure, PhaseSelection, RunError, RunOptions, RunSummary};
pub use playbook::Playbook;
