//! No string in cluster.yaml may hold a control character (a newline, a NUL, an escape, a tab):
//! no field needs one, and each is a way for a value to add a line to a rendered file or a word
//! to a remote command. Checked over the whole document, keys included, so that a field added
//! later is covered without a rule of its own.

use serde_yaml::Value;

use super::problem::ConfigProblem;
use super::source_map::join_key;
use super::validate::{describe_char, shown};

/// A problem for every key and string value holding a control character.
pub(super) fn check(doc: &Value) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    walk(doc, String::new(), &mut out);
    out
}

fn walk(value: &Value, path: String, out: &mut Vec<ConfigProblem>) {
    match value {
        Value::String(text) => {
            if let Some(c) = text.chars().find(|c| c.is_control()) {
                out.push(problem(&path, text, c, "value"));
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(map) => {
            for (key, item) in map {
                let name = match key {
                    Value::String(k) => k.as_str(),
                    // Non-string keys are reported as unknown fields by the reader.
                    _ => continue,
                };
                let child = join_key(&path, name);
                if let Some(c) = name.chars().find(|c| c.is_control()) {
                    out.push(problem(&child, name, c, "key").on_key());
                    // The key's path cannot be located; do not report the value under it too.
                    continue;
                }
                walk(item, child, out);
            }
        }
        Value::Tagged(tagged) => walk(&tagged.value, path, out),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn problem(path: &str, text: &str, c: char, what: &str) -> ConfigProblem {
    ConfigProblem::error(
        "config::control-character",
        path,
        format!("the {what} `{}` contains {}", shown(text), describe_char(c)),
    )
    .label(format!("{} here", describe_char(c)))
    .help("no field of a cluster definition takes control characters (newlines, tabs, NUL, escapes); write the value on one line, without them")
}
