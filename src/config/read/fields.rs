//! The building blocks of reading cluster.yaml field by field: a [`Section`] is one mapping of
//! the document, remembering which keys the schema asked for; [`FieldReader`] reads typed values
//! out of sections and records every problem (wrong type, missing field, unknown key with the
//! closest known one) with its path, instead of stopping at the first.

use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::super::choice::Choice;
use super::super::problem::ConfigProblem;
use super::super::source_map::join_key;
use super::super::validate::shown;

/// One mapping of the document being read, remembering which keys the schema asked for.
pub(super) struct Section<'v> {
    pub path: String,
    /// None when the node is absent or not a mapping; its required fields are then not reported
    /// one by one (the section itself already was, or is optional).
    pub map: Option<&'v Mapping>,
    asked: Vec<&'static str>,
}

impl<'v> Section<'v> {
    /// The value under `key`, registering `key` as known. Null counts as absent.
    pub fn take(&mut self, key: &'static str) -> Option<&'v Value> {
        self.asked.push(key);
        self.map?.get(key).filter(|v| !v.is_null())
    }

    pub fn field(&self, key: &str) -> String {
        join_key(&self.path, key)
    }
}

struct UnknownKey {
    section: String,
    key: String,
    asked: Vec<&'static str>,
}

/// A list field's rules: what it holds, and whether it may be absent or empty.
pub(super) struct ListField<'a> {
    pub key: &'static str,
    /// What a value of another type should have been.
    pub expect: &'a str,
    /// Absent from a section that is there: `config::missing-field`, with what to add.
    pub required: Option<&'a str>,
    /// An empty list: this error (code, message, help).
    pub empty: Option<(&'static str, &'a str, &'a str)>,
}

#[derive(Default)]
pub(super) struct FieldReader {
    pub problems: Vec<ConfigProblem>,
    unknown: Vec<UnknownKey>,
    /// Every (section pattern, key) the schema knows, for "belongs under" hints.
    known: Vec<(String, &'static str)>,
}

impl FieldReader {
    pub fn mapping<'v>(&mut self, value: Option<&'v Value>, path: String) -> Section<'v> {
        let map = match value {
            None | Some(Value::Null) => None,
            Some(Value::Mapping(m)) => Some(m),
            Some(other) => {
                self.wrong_type(&path, other, "a mapping of field names to values");
                None
            }
        };
        Section {
            path,
            map,
            asked: Vec::new(),
        }
    }

    pub fn section<'v>(
        &mut self,
        parent: &mut Section<'v>,
        key: &'static str,
        required: bool,
    ) -> Section<'v> {
        let value = parent.take(key);
        if value.is_none() && required && parent.map.is_some() {
            self.missing(parent, key, "a mapping");
        }
        self.mapping(value, parent.field(key))
    }

    pub fn optional<T: DeserializeOwned>(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expect: &str,
    ) -> Option<T> {
        let value = s.take(key)?;
        match serde_yaml::from_value::<T>(value.clone()) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.to_string();
                let code = if message.starts_with("invalid type") {
                    "config::wrong-type"
                } else {
                    "config::invalid-value"
                };
                self.problems.push(
                    ConfigProblem::error(code, s.field(key), message)
                        .help(format!("expected {expect}")),
                );
                None
            }
        }
    }

    /// Whether `key` holds a value; a missing one is reported (when its section exists).
    fn present_or_reported(&mut self, s: &mut Section, key: &'static str, expect: &str) -> bool {
        let present = s
            .map
            .is_some_and(|m| m.get(key).is_some_and(|v| !v.is_null()));
        if !present {
            s.asked.push(key);
            if s.map.is_some() {
                self.missing(s, key, expect);
            }
        }
        present
    }

    pub fn required<T: DeserializeOwned>(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expect: &str,
    ) -> Option<T> {
        if !self.present_or_reported(s, key, expect) {
            return None;
        }
        self.optional(s, key, expect)
    }

    /// A string field parsed with `FromStr` (IPs, CIDRs), so the message quotes what was written.
    pub fn parsed<T: FromStr>(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expect: &str,
    ) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let text: String = self.optional(s, key, expect)?;
        self.parse_text(s, key, &text, expect)
    }

    /// A scalar written as a number or a string (`2`, `"25%"`), parsed with `FromStr`.
    pub fn parsed_scalar<T: FromStr>(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expect: &str,
    ) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        let text = match s.take(key)? {
            Value::Number(n) => n.to_string(),
            Value::String(text) => text.clone(),
            other => {
                let path = s.field(key);
                self.wrong_type(&path, other, expect);
                return None;
            }
        };
        self.parse_text(s, key, &text, expect)
    }

    /// `text`, written at `key`, parsed with `FromStr`; a refusal quotes it (control
    /// characters shown escaped, so a value never adds a line to the report).
    fn parse_text<T: FromStr>(
        &mut self,
        s: &Section,
        key: &'static str,
        text: &str,
        expect: &str,
    ) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        match text.trim().parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems.push(
                    ConfigProblem::error(
                        "config::invalid-value",
                        s.field(key),
                        format!("`{}`: {e}", shown(text)),
                    )
                    .help(format!("expected {expect}")),
                );
                None
            }
        }
    }

    pub fn parsed_required<T: FromStr>(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expect: &str,
    ) -> Option<T>
    where
        T::Err: std::fmt::Display,
    {
        if !self.present_or_reported(s, key, expect) {
            return None;
        }
        self.parsed(s, key, expect)
    }

    pub fn choice<T: Choice>(&mut self, s: &mut Section, key: &'static str) -> Option<T> {
        let value = s.take(key)?;
        self.choice_value(&s.field(key), value)
    }

    pub fn choice_value<T: Choice>(&mut self, path: &str, value: &Value) -> Option<T> {
        let Some(text) = value.as_str() else {
            self.wrong_type(path, value, &format!("a {}, {}", T::WHAT, T::listing()));
            return None;
        };
        if let Some(v) = T::parse(text) {
            return Some(v);
        }
        let names: Vec<&str> = T::ALL.iter().map(|(_, s)| *s).collect();
        let help = match closest(text, &names) {
            Some(best) => format!("did you mean `{best}`? ({})", T::listing()),
            None => format!("expected {}", T::listing()),
        };
        self.problems.push(
            ConfigProblem::error(
                "config::unknown-value",
                path,
                format!("unknown {} `{text}`", T::WHAT),
            )
            .help(help),
        );
        None
    }

    pub fn fixed_string(
        &mut self,
        s: &mut Section,
        key: &'static str,
        expected: &str,
        code: &'static str,
    ) {
        let Some(value) = s.take(key) else {
            if s.map.is_some() {
                self.missing(s, key, &format!("`{key}: {expected}`"));
            }
            return;
        };
        if value.as_str() != Some(expected) {
            let written = value
                .as_str()
                .map_or_else(|| describe(value).to_string(), |t| format!("`{t}`"));
            self.problems.push(
                ConfigProblem::error(
                    code,
                    s.field(key),
                    format!("{written} is not a {key} kinit reads"),
                )
                .help(format!("write `{key}: {expected}`")),
            );
        }
    }

    /// The items of list field `f` of `s`, and the field's path; `None` when it is absent,
    /// empty or not a list (any problem that is, recorded as `f` says).
    pub fn list<'v>(&mut self, s: &mut Section<'v>, f: ListField) -> Option<(String, &'v [Value])> {
        let path = s.field(f.key);
        match s.take(f.key) {
            None => {
                if let Some(expect) = f.required
                    && s.map.is_some()
                {
                    self.missing(s, f.key, expect);
                }
                None
            }
            Some(Value::Sequence(items)) if items.is_empty() && f.empty.is_some() => {
                let (code, message, help) = f.empty.expect("checked");
                self.problems
                    .push(ConfigProblem::error(code, path, message).help(help));
                None
            }
            Some(Value::Sequence(items)) => Some((path, items.as_slice())),
            Some(other) => {
                self.wrong_type(&path, other, f.expect);
                None
            }
        }
    }

    pub fn missing(&mut self, s: &Section, key: &str, expect: &str) {
        let what = if s.path.is_empty() {
            "the document".to_string()
        } else {
            format!("`{}`", s.path)
        };
        self.problems.push(
            ConfigProblem::error(
                "config::missing-field",
                s.field(key),
                format!("missing field `{key}` in {what}"),
            )
            .label(format!("`{key}` is required here"))
            .help(format!("add `{key}`: {expect}")),
        );
    }

    pub fn wrong_type(&mut self, path: &str, found: &Value, expect: &str) {
        self.problems.push(
            ConfigProblem::error(
                "config::wrong-type",
                path,
                format!("expected {expect}, found {}", describe(found)),
            )
            .help(format!("write {expect}")),
        );
    }

    /// Record the keys of `s` the schema did not ask for; they are reported once the whole
    /// schema is known (a key may belong to another section).
    pub fn finish(&mut self, s: Section) {
        let pattern = section_pattern(&s.path);
        self.known
            .extend(s.asked.iter().map(|k| (pattern.clone(), *k)));
        let Some(map) = s.map else { return };
        for key in map.keys() {
            let name = match key {
                Value::String(k) => k.clone(),
                other => serde_yaml::to_string(other)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            };
            if !s.asked.contains(&name.as_str()) {
                self.unknown.push(UnknownKey {
                    section: s.path.clone(),
                    key: name,
                    asked: s.asked.clone(),
                });
            }
        }
    }

    /// Every problem recorded, the unknown keys (reported only now that the whole schema was
    /// asked for, so "belongs under" hints know every section) included.
    pub fn take_problems(&mut self) -> Vec<ConfigProblem> {
        self.report_unknown_keys();
        std::mem::take(&mut self.problems)
    }

    fn report_unknown_keys(&mut self) {
        for u in std::mem::take(&mut self.unknown) {
            let here = if u.section.is_empty() {
                "the top level".to_string()
            } else {
                format!("`{}`", u.section)
            };
            let help = if let Some(best) = closest(&u.key, &u.asked) {
                format!("did you mean `{best}`?")
            } else if let Some((home, _)) = self
                .known
                .iter()
                .find(|(sec, k)| *k == u.key && *sec != section_pattern(&u.section))
            {
                format!("`{}` belongs under `{}`", u.key, home.replace("[]", "[*]"))
            } else {
                let mut valid = u.asked.clone();
                valid.sort_unstable();
                valid.dedup();
                format!("valid fields here: {}", valid.join(", "))
            };
            self.problems.push(
                ConfigProblem::error(
                    "config::unknown-field",
                    join_key(&u.section, &u.key),
                    format!("unknown field `{}` in {here}", shown(&u.key)),
                )
                .on_key()
                .label("not a field kinit knows")
                .help(help),
            );
        }
    }
}

/// `spec.hosts[3].ssh` → `spec.hosts[].ssh`, so the same field under any host compares equal.
fn section_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// The closest of `candidates` to `word`, if one is close enough to be a plausible typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let squash = |s: &str| s.to_ascii_lowercase().replace(['_', '-'], "");
    let w = squash(word);
    if let Some(exact) = candidates.iter().find(|c| squash(c) == w) {
        return Some(exact);
    }
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&w, &squash(c)), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_handles_typos_case_and_snake_case() {
        let fields = ["podSubnet", "serviceSubnet", "dnsDomain", "nodeSubnet"];
        assert_eq!(closest("podSubnt", &fields), Some("podSubnet"));
        assert_eq!(closest("pod_subnet", &fields), Some("podSubnet"));
        assert_eq!(closest("DNSdomain", &fields), Some("dnsDomain"));
        assert_eq!(closest("completelyElse", &fields), None);
    }

    #[test]
    fn section_patterns_drop_indices() {
        assert_eq!(section_pattern("spec.hosts[12].ssh"), "spec.hosts[].ssh");
    }
}
