//! cluster.yaml: the model, its defaults, and validation that reports every problem in place.

pub mod choice;
mod control_characters;
pub mod duration;
pub mod line_index;
pub mod model;
mod nesting;
pub mod problem;
mod read;
pub mod source_map;
pub mod template;
pub mod validate;

use std::io::Read as _;
use std::path::{Path, PathBuf};

pub use model::*;
pub use problem::{ConfigProblem, ConfigReport, Severity};

use source_map::{ByteSpan, Limit, MAX_NESTING, SourceMap};

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

/// The largest cluster definition kinit reads. A real one is a few kilobytes (a 1,000-host
/// inventory is about 100 KiB); the limit keeps a wrong `-c` (a log, a device, a FIFO) from being
/// read until memory runs out, and bounds the work of diagnosing it.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The text of the config at `path`, read through a bounded reader: a file over
/// [`MAX_CONFIG_BYTES`] (or a stream that goes on, such as /dev/urandom) is refused after reading
/// one byte more than the limit.
pub fn read_source(path: &Path) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is larger than {} KiB, the limit for a cluster definition (is -c pointing at the right file?)",
                MAX_CONFIG_BYTES / 1024
            ),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "it is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Read and validate `path`.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let source = read_source(path).map_err(|source| ConfigError::Read {
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
    if source.len() as u64 > MAX_CONFIG_BYTES {
        let problem = ConfigProblem::error(
            "config::too-large",
            "",
            format!(
                "the file is {} bytes, over the {} KiB limit for a cluster definition",
                source.len(),
                MAX_CONFIG_BYTES / 1024
            ),
        )
        .help("a cluster definition is a few kilobytes; check that this is the right file");
        // Not indexed: the limit exists so that such a text is never walked.
        return (None, ConfigReport::unindexed(file, source, vec![problem]));
    }
    // Flow collections are counted first, without a parser: deep ones make parsers slow.
    if let Some(offset) = nesting::first_beyond(&source, MAX_NESTING) {
        let problem = too_deep().at_bytes(ByteSpan { offset, len: 1 });
        return (
            None,
            ConfigReport::with_map(file, source, SourceMap::default(), vec![problem]),
        );
    }
    // One pass over the text indexes every node; it stops at the nesting limit, before the
    // parser below could spend its time (and stack) on a document no config needs.
    let map = SourceMap::build(&source);
    if let Some((limit, span)) = map.limit() {
        let problem = match limit {
            Limit::Nesting => too_deep(),
            Limit::PathBytes => ConfigProblem::error(
                "config::too-complex",
                "",
                "the document holds more and longer keys than any cluster definition",
            )
            .label("indexing stopped here")
            .help("a cluster definition holds a few kilobytes of short keys; check that this is the right file"),
        }
        .at_bytes(span);
        return (
            None,
            ConfigReport::with_map(file, source, map, vec![problem]),
        );
    }
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
            return (
                None,
                ConfigReport::with_map(file, source, map, vec![problem]),
            );
        }
    };
    if doc.is_null() {
        let problem = ConfigProblem::error("config::empty", "", "the file holds no configuration")
            .help("start from the example that `kinit init` writes");
        return (
            None,
            ConfigReport::with_map(file, source, map, vec![problem]),
        );
    }
    let (config, mut problems) = read::read(&doc);
    let rules = validate::validate(&config);
    // A field whose own rule (or the reader) already refused it is not reported again for its
    // control characters: the rule's message says more.
    let reported: std::collections::HashSet<&str> = problems
        .iter()
        .chain(&rules)
        .map(|p| p.path.as_str())
        .collect();
    let control: Vec<ConfigProblem> = control_characters::check(&doc)
        .into_iter()
        .filter(|p| !reported.contains(p.path.as_str()))
        .collect();
    problems.extend(rules);
    problems.extend(control);
    (
        Some(config),
        ConfigReport::with_map(file, source, map, problems),
    )
}

fn too_deep() -> ConfigProblem {
    ConfigProblem::error(
        "config::too-deep",
        "",
        format!(
            "the document nests deeper than {MAX_NESTING} levels, far beyond any cluster definition"
        ),
    )
    .label("too deep from here")
    .help("a cluster definition nests a few levels; check that this is the right file")
}

/// yaml_serde appends " at line L column C"; the diagnostic shows the place itself.
fn strip_location(message: &str) -> &str {
    message.find(" at line ").map_or(message, |i| &message[..i])
}
