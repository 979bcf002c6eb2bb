//! Everything kinit shows the operator goes through here: text for people, JSON for programs.
//! Library modules return data; commands hand it to these functions.

pub mod bundle;
pub mod certs;
pub mod config_report;
pub mod confirm;
pub mod drill;
pub mod exec;
pub mod kubeconfig;
pub mod lab_progress;
pub mod lab_report;
pub mod lifecycle;
pub mod preflight;
pub mod remove;
pub mod render;
pub mod run_progress;
pub mod secret_prompt;
pub mod status;

use std::io::IsTerminal;
use std::path::PathBuf;

/// Options every command receives. They live here, below `commands`, because the ui takes them
/// too (`up`'s progress), and the ui must not depend on the commands that call it.
#[derive(Debug, Clone)]
pub struct GlobalOptions {
    pub config_path: PathBuf,
    /// -1 quiet, 0 default, 1.. verbose
    pub verbosity: i8,
    pub output: OutputFormat,
    pub color: ColorChoice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Never,
}

impl ColorChoice {
    /// Color only on a terminal, and never when NO_COLOR is set (https://no-color.org).
    pub fn enabled_for_stderr(self) -> bool {
        self == ColorChoice::Auto
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::io::stderr().is_terminal()
    }
}
