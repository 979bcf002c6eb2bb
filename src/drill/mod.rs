//! `kinit drill`: take one piece of the HA control plane down for real (keepalived on the VIP
//! holder, etcd on the leader, one kube-apiserver), measure from this machine what clients
//! see meanwhile (requests through the VIP, etcd writes, every 100 ms), bring the piece back,
//! wait until `status` is healthy again, and judge the figures against thresholds.
//!
//! Library code: it returns a [`DrillReport`] (or a [`DrillError`] before anything changed);
//! `ui::drill` shows it. Pure parts: [`target`] (what to take down, and the guards),
//! [`series`] (figures from samples) and [`thresholds`] (the verdict).

pub mod error;
pub mod kind;
pub mod probes;
pub mod report;
pub mod run;
pub mod series;
pub mod target;
pub mod thresholds;
pub mod watch;

pub use error::DrillError;
pub use kind::DrillKind;
pub use report::DrillReport;
pub use run::{DrillSettings, Prepared, execute, prepare};
pub use target::Target;
pub use thresholds::{Thresholds, Verdict};
