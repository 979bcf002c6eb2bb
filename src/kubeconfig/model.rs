//! A kubeconfig as kubectl reads it, typed only as far as merging needs: the three named lists
//! (`clusters`, `users`, `contexts`) and `current-context`. Everything else — `preferences`,
//! `extensions`, fields of later versions, and every field inside an entry — is kept as it was
//! read, so entries kinit does not own come back out with the same meaning.
//!
//! Pure: text in, text out. Comments and key order inside the file are not kept (kubectl keeps
//! neither when it writes the file either); the caller keeps a backup of the old file.

use serde::{Deserialize, Deserializer, Serialize};
use serde_yaml::{Mapping, Value};

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Document {
    #[serde(
        rename = "apiVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub api_version: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Value>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub clusters: Vec<Named>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub contexts: Vec<Named>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub users: Vec<Named>,
    #[serde(
        rename = "current-context",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_context: Option<String>,
    /// Every other top-level field (`preferences`, `extensions`, ...), as read.
    #[serde(flatten)]
    pub other: Mapping,
}

/// One entry of `clusters`, `users` or `contexts`: its name, and the rest as read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Named {
    pub name: String,
    #[serde(flatten)]
    pub rest: Mapping,
}

impl Named {
    /// `{name: NAME, KEY: VALUE}`, e.g. `key` = `cluster` and the cluster's fields.
    pub fn new(name: &str, key: &str, value: Value) -> Named {
        let mut rest = Mapping::new();
        rest.insert(Value::String(key.to_string()), value);
        Named {
            name: name.to_string(),
            rest,
        }
    }
}

/// kubectl writes `clusters: null` for an empty list.
fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Named>, D::Error> {
    Ok(Option::<Vec<Named>>::deserialize(d)?.unwrap_or_default())
}

/// Where a kubeconfig failed to parse. The parser's own message is left out on purpose: it may
/// quote the file, and a kubeconfig holds keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(
                f,
                "not a kubeconfig (the problem is at line {l}, column {c})"
            ),
            _ => f.write_str("not a kubeconfig"),
        }
    }
}

impl Document {
    /// An empty (or whitespace-only) file reads as an empty kubeconfig, as kubectl reads it.
    pub fn parse(text: &str) -> Result<Document, ParseError> {
        if text.trim().is_empty() {
            return Ok(Document::default());
        }
        serde_yaml::from_str(text).map_err(|e| ParseError {
            line: e.location().map(|l| l.line()),
            column: e.location().map(|l| l.column()),
        })
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("a kubeconfig always serializes")
    }
}

/// What a merge did to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    Added,
    Replaced,
    Unchanged,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Change::Added => "added",
            Change::Replaced => "replaced",
            Change::Unchanged => "unchanged",
        })
    }
}

/// Put `entry` in `list` in place of every entry of the same name (where the first of them
/// was), or at the end when there is none. Entries of other names are not touched.
pub fn upsert(list: &mut Vec<Named>, entry: Named) -> Change {
    let same: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, e)| e.name == entry.name)
        .map(|(i, _)| i)
        .collect();
    match same.as_slice() {
        [] => {
            list.push(entry);
            Change::Added
        }
        [only] if list[*only] == entry => Change::Unchanged,
        [first, ..] => {
            let first = *first;
            let mut i = 0;
            list.retain(|e| {
                let keep = i <= first || e.name != entry.name;
                i += 1;
                keep
            });
            list[first] = entry;
            Change::Replaced
        }
    }
}

/// The three entries kinit owns in a kubeconfig, and the context's name.
#[derive(Clone)]
pub struct Entries {
    pub cluster: Named,
    pub user: Named,
    pub context: Named,
}

/// What `merge` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeOutcome {
    pub cluster: Change,
    pub user: Change,
    pub context: Change,
    /// The file's current-context afterwards.
    pub current_context: String,
    /// Whether kinit set it (only when the file had none).
    pub current_context_set: bool,
    /// Whether the document differs from what was read.
    pub changed: bool,
}

/// Merge `entries` into `doc`: same-named entries replaced, all others left alone; the
/// current-context set only when there was none.
pub fn merge(doc: &mut Document, entries: &Entries) -> MergeOutcome {
    merge_beside(doc, entries, None)
}

/// [`merge`] into one file of a `KUBECONFIG` list, where `elsewhere` is the current-context
/// another file of the list sets (kubectl uses the first one set): then this file's is left
/// alone even when it has none, and the outcome names the one kubectl uses.
pub fn merge_beside(
    doc: &mut Document,
    entries: &Entries,
    elsewhere: Option<&str>,
) -> MergeOutcome {
    let before = doc.clone();
    if doc.api_version.is_none() {
        doc.api_version = Some(Value::String("v1".into()));
    }
    if doc.kind.is_none() {
        doc.kind = Some(Value::String("Config".into()));
    }
    let cluster = upsert(&mut doc.clusters, entries.cluster.clone());
    let user = upsert(&mut doc.users, entries.user.clone());
    let context = upsert(&mut doc.contexts, entries.context.clone());
    let own = doc.current_context.as_deref().filter(|c| !c.is_empty());
    let elsewhere = elsewhere.filter(|c| !c.is_empty());
    let current_context_set = own.is_none() && elsewhere.is_none();
    if current_context_set {
        doc.current_context = Some(entries.context.name.clone());
    }
    let current_context = match doc.current_context.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => elsewhere.unwrap_or_default().to_string(),
    };
    MergeOutcome {
        cluster,
        user,
        context,
        current_context,
        current_context_set,
        changed: *doc != before,
    }
}

/// A kubeconfig holding only `entries`, with their context current.
pub fn standalone(entries: &Entries) -> Document {
    let mut other = Mapping::new();
    other.insert(
        Value::String("preferences".into()),
        Value::Mapping(Mapping::new()),
    );
    Document {
        api_version: Some(Value::String("v1".into())),
        kind: Some(Value::String("Config".into())),
        clusters: vec![entries.cluster.clone()],
        contexts: vec![entries.context.clone()],
        users: vec![entries.user.clone()],
        current_context: Some(entries.context.name.clone()),
        other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(server: &str) -> Entries {
        let v = |yaml: &str| serde_yaml::from_str::<Value>(yaml).unwrap();
        Entries {
            cluster: Named::new(
                "demo",
                "cluster",
                v(&format!(
                    "{{server: {server}, certificate-authority-data: Q0E=}}"
                )),
            ),
            user: Named::new(
                "kubernetes-admin@demo",
                "user",
                v("{client-certificate-data: Q0VSVA==, client-key-data: S0VZ}"),
            ),
            context: Named::new(
                "kubernetes-admin@demo",
                "context",
                v("{cluster: demo, user: kubernetes-admin@demo}"),
            ),
        }
    }

    const OTHER: &str = r#"
apiVersion: v1
kind: Config
preferences: {colors: true}
clusters:
- name: other
  cluster:
    server: https://10.0.0.1:6443
    insecure-skip-tls-verify: true
    proxy-url: "http://proxy:3128"
    extensions:
    - name: x
      extension: {a: "007", b: [1, 2]}
- name: demo
  cluster: {server: https://old:8443}
- name: demo
  cluster: {server: https://older:8443}
users:
- name: someone
  user:
    exec: {apiVersion: client.authentication.k8s.io/v1, command: aws, args: [eks, get-token]}
contexts:
- name: other
  context: {cluster: other, user: someone, namespace: "0123"}
current-context: other
extensions: [{name: y, extension: "on"}]
"#;

    #[test]
    fn merging_replaces_only_same_named_entries_and_keeps_everything_else() {
        let mut doc = Document::parse(OTHER).unwrap();
        let original = doc.clone();
        let outcome = merge(&mut doc, &entries("https://192.168.9.100:8443"));
        assert_eq!(outcome.cluster, Change::Replaced);
        assert_eq!(outcome.user, Change::Added);
        assert_eq!(outcome.context, Change::Added);
        assert_eq!(outcome.current_context, "other");
        assert!(!outcome.current_context_set && outcome.changed);
        // The duplicate `demo` is gone; `other` is first and as it was.
        let names: Vec<&str> = doc.clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["other", "demo"]);
        assert_eq!(doc.clusters[0], original.clusters[0]);
        assert_eq!(doc.users[0], original.users[0]);
        assert_eq!(doc.contexts[0], original.contexts[0]);
        assert_eq!(doc.other, original.other);
        // Through text and back: the same document, with the quoted strings still strings.
        let text = doc.to_yaml();
        let again = Document::parse(&text).unwrap();
        assert_eq!(again, doc);
        assert_eq!(
            again.contexts[0].rest["context"]["namespace"],
            Value::String("0123".into())
        );
        assert_eq!(
            again.other["extensions"][0]["extension"],
            Value::String("on".into())
        );
        // Twice is once.
        let mut twice = again.clone();
        let outcome = merge(&mut twice, &entries("https://192.168.9.100:8443"));
        assert_eq!(
            (
                outcome.cluster,
                outcome.user,
                outcome.context,
                outcome.changed
            ),
            (
                Change::Unchanged,
                Change::Unchanged,
                Change::Unchanged,
                false
            )
        );
        assert_eq!(twice, again);
        // A new server replaces the entry in place.
        let outcome = merge(&mut twice, &entries("https://192.168.9.200:8443"));
        assert_eq!(outcome.cluster, Change::Replaced);
        assert_eq!(twice.clusters.len(), 2);
        assert_eq!(
            twice.clusters[1].rest["cluster"]["server"],
            Value::String("https://192.168.9.200:8443".into())
        );
    }

    #[test]
    fn an_empty_file_gets_the_entries_and_their_context_as_current() {
        for text in [
            "",
            "\n  \n",
            "clusters: null\nusers: null\ncontexts: null\ncurrent-context: \"\"\n",
        ] {
            let mut doc = Document::parse(text).unwrap();
            let outcome = merge(&mut doc, &entries("https://vip:8443"));
            assert!(outcome.current_context_set && outcome.changed);
            assert_eq!(outcome.current_context, "kubernetes-admin@demo");
            assert_eq!(doc.api_version, Some(Value::String("v1".into())));
            assert_eq!(doc.kind, Some(Value::String("Config".into())));
            assert_eq!(
                (doc.clusters.len(), doc.users.len(), doc.contexts.len()),
                (1, 1, 1)
            );
        }
    }

    #[test]
    fn parse_errors_never_quote_the_file() {
        let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA==";
        for text in [
            format!("users:\n- user: {{client-key-data: {secret}}}\n"),
            format!("clusters: {secret}\n"),
            format!("users: [\n  {secret}"),
        ] {
            let e = Document::parse(&text).unwrap_err();
            assert!(!e.to_string().contains(secret), "{e}");
            assert!(!e.to_string().contains("c2Vj"), "{e}");
        }
    }

    #[test]
    fn standalone_has_the_three_entries_and_current_context() {
        let doc = standalone(&entries("https://vip:8443"));
        let text = doc.to_yaml();
        let back = Document::parse(&text).unwrap();
        assert_eq!(back, doc);
        assert_eq!(
            back.current_context.as_deref(),
            Some("kubernetes-admin@demo")
        );
    }
}
