//! `<lab dir>/state.json`: everything a lab has created, written before each effect, so the
//! commands that undo them act on what was recorded.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabError;
use super::plan::LabPlan;
use super::process::RecordedProcess;
use crate::fsutil::{Existing, write_atomic};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub plan: LabPlan,
    /// The image's root filesystem: every node's overlay lower layer.
    pub image: PathBuf,
    pub nodes: Vec<NodeRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub machine_id: String,
    /// The overlay's mount point (the node's root), its upper and work dirs.
    pub root: PathBuf,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub log: PathBuf,
    /// The systemd-nspawn process while the node runs.
    pub nspawn: Option<RecordedProcess>,
    /// The node's init (systemd, PID 1 in its namespace). Recorded separately because it
    /// outlives a systemd-nspawn that is killed, and must then be stopped on its own.
    #[serde(default)]
    pub leader: Option<RecordedProcess>,
    /// The cgroups made for this node (see `cgroup`), removed when it stops.
    #[serde(default)]
    pub cgroups: Vec<PathBuf>,
}

impl LabState {
    pub fn path(lab_dir: &Path) -> PathBuf {
        lab_dir.join("state.json")
    }

    pub fn load(lab_dir: &Path) -> Result<Option<LabState>, LabError> {
        let path = Self::path(lab_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                LabError::step(
                    "reading lab state",
                    format!(
                        "{}: {e} (remove the lab directory by hand if it is not in use)",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LabError::io(path, "reading", e)),
        }
    }

    pub fn save(&self, lab_dir: &Path) -> Result<(), LabError> {
        let path = Self::path(lab_dir);
        let json = serde_json::to_vec_pretty(self).expect("state serializes");
        write_atomic(&path, &json, 0o600, Existing::Replace)
            .map_err(|e| LabError::io(path, "writing", e))
    }

    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn node_mut(&mut self, name: &str) -> Option<&mut NodeRecord> {
        self.nodes.iter_mut().find(|n| n.name == name)
    }
}
