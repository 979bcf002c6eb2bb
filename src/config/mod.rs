//! cluster.yaml: the model, its defaults, and validation that reports every problem in place.

pub mod choice;
pub mod duration;
pub mod model;
pub mod problem;
mod read;
pub mod source_map;
pub mod template;
pub mod validate;

use std::path::{Path, PathBuf};

pub use model::*;
pub use problem::{ConfigProblem, ConfigReport, Severity};

use source_map::ByteSpan;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has {} error(s)", .0.file.display(), .0.errors().count())]
    Invalid(Box<ConfigReport>),
}

/// A config that passed validation, with the warnings it still carries.
#[derive(Debug)]
pub struct LoadedConfig {
    pub config: Config,
    pub report: ConfigReport,
}

/// Read and validate `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let (config, report) = check(path, source);
    match config {
        Some(config) if !report.has_errors() => Ok(LoadedConfig { config, report }),
        _ => Err(ConfigError::Invalid(Box::new(report))),
    }
}

/// Parse and validate `source` (named `file` in messages). The config is returned whenever the
/// YAML itself parsed, even with problems, so callers can show a summary next to them.
pub fn check(file: &Path, source: String) -> (Option<Config>, ConfigReport) {
    let doc: serde_yaml::Value = match serde_yaml::from_str(&source) {
        Ok(doc) => doc,
        Err(e) => {
            let mut problem = ConfigProblem::error(
                "config::syntax",
                "",
                format!("invalid YAML: {}", strip_location(&e.to_string())),
            )
            .help("fix the YAML syntax first; the other checks run once the file parses");
            if let Some(loc) = e.location() {
                let offset = loc.index().min(source.len());
                let len = source[offset..].chars().next().map_or(0, char::len_utf8);
                problem = problem.at_bytes(ByteSpan { offset, len });
            }
            return (None, ConfigReport::new(file, source, vec![problem]));
        }
    };
    if doc.is_null() {
        let problem = ConfigProblem::error("config::empty", "", "the file holds no configuration")
            .help("start from the example that `kinit init` writes");
        return (None, ConfigReport::new(file, source, vec![problem]));
    }
    let (config, mut problems) = read::read(&doc);
    problems.extend(validate::validate(&config));
    (Some(config), ConfigReport::new(file, source, problems))
}

/// yaml_serde appends " at line L column C"; the diagnostic shows the place itself.
fn strip_location(message: &str) -> &str {
    message.find(" at line ").map_or(message, |i| &message[..i])
}
