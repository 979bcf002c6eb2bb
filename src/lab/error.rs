use std::path::PathBuf;

/// What went wrong in the lab, naming the node (when there is one) and the step.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "kinit lab must run as root: it creates a bridge, overlay mounts and containers (try `sudo kinit lab ...`)"
    )]
    NotRoot,
    #[error(
        "kinit lab needs {tools}, which this machine lacks; install with: apt-get install -y {packages}"
    )]
    MissingTools { tools: String, packages: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "subnet {subnet} is already in use on this machine ({used_by}); choose another with --subnet"
    )]
    SubnetInUse { subnet: String, used_by: String },
    /// A new lab needs more memory, disk or CPU than this machine has free.
    #[error("lab `{lab}`: {room}")]
    NoRoom {
        lab: String,
        room: Box<super::capacity::NoRoom>,
    },
    #[error("no lab named `{0}` (start one with `kinit lab up --name {0}`)")]
    NoSuchLab(String),
    #[error("lab `{lab}` has no node `{node}` (its nodes: {known})")]
    NoSuchNode {
        lab: String,
        node: String,
        known: String,
    },
    #[error(
        "lab `{lab}` already exists with {existing}; run `kinit lab down --name {lab}` first, or drop the differing flags"
    )]
    ShapeMismatch { lab: String, existing: String },
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{step}: {detail}", node.as_ref().map(|n| format!("node {n}: ")).unwrap_or_default())]
    Step {
        node: Option<String>,
        step: String,
        detail: String,
    },
}

impl LabError {
    pub fn io(path: impl Into<PathBuf>, what: &'static str, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.into(),
            what,
            source,
        }
    }

    pub fn step(step: impl Into<String>, detail: impl Into<String>) -> Self {
        LabError::Step {
            node: None,
            step: step.into(),
            detail: detail.into(),
        }
    }

    pub fn node_step(node: &str, step: impl Into<String>, detail: impl Into<String>) -> Self {
        LabError::Step {
            node: Some(node.to_string()),
            step: step.into(),
            detail: detail.into(),
        }
    }

    /// Attach a node name to an error that lacks one.
    pub fn for_node(self, node: &str) -> Self {
        match self {
            LabError::Step {
                node: None,
                step,
                detail,
            } => LabError::Step {
                node: Some(node.to_string()),
                step,
                detail,
            },
            other => other,
        }
    }
}
