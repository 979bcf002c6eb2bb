//! The lab: local test nodes that look like real servers to kinit (systemd as PID 1, OpenSSH,
//! their own hostname, address and machine-id, dpkg/apt), booted with systemd-nspawn on one
//! bridge, each on an overlayfs over one cached Debian image.
//!
//! Everything the lab creates is recorded in `<lab dir>/state.json` before it is created, so
//! `down`, `stop` and the cleanup after a crash act on recorded ids (PID + start time, mount
//! path, link name) and never guess. This module never prints: progress goes to a [`Reporter`].

mod admission;
mod boot;
pub mod bridge;
pub mod bundle;
pub mod capacity;
pub mod cgroup;
pub mod cluster_file;
pub mod error;
pub mod host_tools;
pub mod image;
pub mod keys;
pub mod lifecycle;
pub mod lock;
pub mod mounts;
pub mod node;
pub mod plan;
pub mod process;
pub mod recipe;
pub mod reporter;
pub mod ssh_probe;
pub mod state;

use std::path::PathBuf;

pub use error::LabError;
pub use lifecycle::{
    LabStatus, NodeStatus, UpOutcome, down, ssh_command, start_node, status, stop_node, up,
};
pub use plan::{LabPlan, LabRequest, SubnetPick};
pub use reporter::{NullReporter, Reporter};

/// Where kinit keeps images and labs. `KINIT_STATE_DIR` moves it (one variable, so a test or an
/// operator can keep everything under one disposable directory).
pub fn state_root() -> PathBuf {
    std::env::var_os("KINIT_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/kinit"))
}

/// The cached images, one directory per recipe hash.
pub fn images_dir() -> PathBuf {
    state_root().join("images")
}

/// One directory per lab: state.json, keys, known_hosts, cluster.yaml, node overlays and logs.
pub fn labs_dir() -> PathBuf {
    state_root().join("labs")
}

pub fn lab_dir(name: &str) -> PathBuf {
    labs_dir().join(name)
}
