//! Where each node of a YAML document sits in its source text.
//!
//! Values are read through `serde_yaml` (yaml_serde), which reports a location only for the first
//! error it meets. To point every diagnostic at its own line and column, this module walks the
//! document once more with saphyr-parser's event stream and records, for every node path
//! (`spec.hosts[1].address`), the byte span of its key and of its value.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span as YamlSpan};

/// A byte range in the source text (what miette labels point at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSpan {
    pub offset: usize,
    pub len: usize,
}

impl From<ByteSpan> for miette::SourceSpan {
    fn from(s: ByteSpan) -> Self {
        (s.offset, s.len).into()
    }
}

/// The spans recorded for one node.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpans {
    /// The key's span when the node is the value of a mapping entry.
    pub key: Option<ByteSpan>,
    /// The node itself (for collections: where it starts).
    pub value: ByteSpan,
}

/// How deep collections may nest. cluster.yaml nests six levels (`spec.hosts[0].ssh.port`); the
/// limit leaves room for any hand-written layout while refusing the pathological documents that
/// make parsers slow or overflow their stack.
pub const MAX_NESTING: usize = 64;

/// The total length of all node paths an index may hold. Paths repeat their parents' keys, so a
/// long key deep in a document with many nodes under it would otherwise cost memory and time with
/// the square of the file's size. A real config stays below a few kilobytes of paths.
pub const MAX_PATH_BYTES: usize = 16 * 1024 * 1024;

/// Which bound of the index a document went beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// More than [`MAX_NESTING`] nested collections.
    Nesting,
    /// More than [`MAX_PATH_BYTES`] of paths.
    PathBytes,
}

/// Path → spans for one document. Paths look like `spec.hosts[1].address`; the root is `""`.
#[derive(Debug, Default)]
pub struct SourceMap {
    nodes: HashMap<String, NodeSpans>,
    path_bytes: usize,
    /// Where indexing stopped because the document went beyond a bound, and which.
    limit: Option<(Limit, ByteSpan)>,
}

enum Frame {
    Map {
        path: String,
        /// The key just read, waiting for its value.
        pending_key: Option<(String, ByteSpan)>,
    },
    Seq {
        path: String,
        next_index: usize,
    },
}

impl SourceMap {
    /// Index `source`. A document saphyr cannot parse yields a partial map; the syntax error itself
    /// is reported by the serde pass, so it is not repeated here. A document beyond
    /// [`MAX_NESTING`] or [`MAX_PATH_BYTES`] is indexed up to that point ([`SourceMap::limit`]).
    pub fn build(source: &str) -> SourceMap {
        let offsets = CharOffsets::new(source);
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(source);
        let mut documents = 0;

        while let Some(Ok((event, span))) = parser.next_event() {
            let span = offsets.span(span);
            match event {
                Event::DocumentStart(_) => {
                    documents += 1;
                    if documents > 1 {
                        break;
                    }
                }
                Event::Scalar(text, ..) => {
                    if let Some(Frame::Map { pending_key, .. }) = stack.last_mut()
                        && pending_key.is_none()
                    {
                        *pending_key = Some((text.into_owned(), span));
                        continue;
                    }
                    map.enter_node(&mut stack, span);
                }
                Event::Alias(_) => {
                    map.enter_node(&mut stack, span);
                }
                Event::MappingStart(..) | Event::SequenceStart(..)
                    if stack.len() >= MAX_NESTING =>
                {
                    map.limit = Some((Limit::Nesting, span));
                    break;
                }
                Event::MappingStart(..) => {
                    let path = map.enter_node(&mut stack, span);
                    stack.push(Frame::Map {
                        path,
                        pending_key: None,
                    });
                }
                Event::SequenceStart(..) => {
                    let path = map.enter_node(&mut stack, span);
                    stack.push(Frame::Seq {
                        path,
                        next_index: 0,
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    // A flow collection (`[a, b]`, `{k: v}`) is underlined whole; a block one keeps
                    // only its start, or a label would cover every line below it.
                    if let Some(Frame::Map { path, .. } | Frame::Seq { path, .. }) = stack.pop()
                        && let Some(node) = map.nodes.get_mut(&path)
                        && source[node.value.offset..].starts_with(['[', '{'])
                    {
                        let end = span.offset + span.len;
                        node.value.len = end.saturating_sub(node.value.offset);
                    }
                }
                _ => {}
            }
            if map.path_bytes > MAX_PATH_BYTES {
                map.limit = Some((Limit::PathBytes, span));
                break;
            }
        }
        map
    }

    /// Where indexing stopped early, when the document went beyond one of the bounds.
    pub fn limit(&self) -> Option<(Limit, ByteSpan)> {
        self.limit
    }

    /// Record a node that starts at `span` under the innermost open collection; returns its path.
    fn enter_node(&mut self, stack: &mut [Frame], span: ByteSpan) -> String {
        let (path, key) = match stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Map { path, pending_key }) => match pending_key.take() {
                Some((key, key_span)) => (join_key(path, &key), Some(key_span)),
                // A complex (non-scalar) key: not something a config uses; keep it out of the map.
                None => return String::from("\u{0}complex-key"),
            },
            Some(Frame::Seq { path, next_index }) => {
                let p = format!("{path}[{next_index}]");
                *next_index += 1;
                (p, None)
            }
        };
        self.path_bytes += path.len();
        self.nodes
            .insert(path.clone(), NodeSpans { key, value: span });
        path
    }

    pub fn get(&self, path: &str) -> Option<NodeSpans> {
        self.nodes.get(path).copied()
    }

    /// The span to blame for `path`: the value itself, or, when the node is absent, the nearest
    /// ancestor that exists (its key when it has one, so `spec:` is underlined rather than a
    /// whole block).
    pub fn value_or_ancestor(&self, path: &str) -> Option<ByteSpan> {
        if let Some(n) = self.get(path) {
            return Some(n.value);
        }
        let mut p = path;
        while let Some(parent) = parent_path(p) {
            if let Some(n) = self.get(parent) {
                return Some(n.key.unwrap_or(n.value));
            }
            p = parent;
        }
        None
    }

    /// The span of the key naming `path`, falling back to its value.
    pub fn key_or_value(&self, path: &str) -> Option<ByteSpan> {
        self.get(path).map(|n| n.key.unwrap_or(n.value))
    }
}

/// `spec` + `hosts` → `spec.hosts`; the root has no leading dot.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path one level up, or None at the root.
pub fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// saphyr reports positions in characters; miette wants bytes.
struct CharOffsets {
    /// Byte offset of each char index (plus one past the end). Empty when the text is ASCII.
    table: Vec<usize>,
    len: usize,
}

impl CharOffsets {
    fn new(source: &str) -> Self {
        let table = if source.is_ascii() {
            Vec::new()
        } else {
            source
                .char_indices()
                .map(|(b, _)| b)
                .chain(std::iter::once(source.len()))
                .collect()
        };
        CharOffsets {
            table,
            len: source.len(),
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        if self.table.is_empty() {
            char_index.min(self.len)
        } else {
            self.table.get(char_index).copied().unwrap_or(self.len)
        }
    }

    fn span(&self, s: YamlSpan) -> ByteSpan {
        let start = self.byte(s.start.index());
        let end = self.byte(s.end.index()).max(start);
        ByteSpan {
            offset: start,
            len: end - start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(src: &str, s: ByteSpan) -> &str {
        &src[s.offset..s.offset + s.len]
    }

    #[test]
    fn records_keys_and_values_by_path() {
        let src = "spec:\n  hosts:\n    - name: cp1\n      address: 10.0.0.1\n    - {name: cp2, roles: [etcd, worker]}\n";
        let m = SourceMap::build(src);
        let n = m.get("spec.hosts[0].address").unwrap();
        assert_eq!(text(src, n.key.unwrap()), "address");
        assert_eq!(text(src, n.value), "10.0.0.1");
        assert_eq!(text(src, m.get("spec.hosts[1].name").unwrap().value), "cp2");
        assert_eq!(
            text(src, m.get("spec.hosts[1].roles[1]").unwrap().value),
            "worker"
        );
        assert!(m.get("spec.hosts[2]").is_none());
        assert_eq!(
            text(src, m.get("spec.hosts[1].roles").unwrap().value),
            "[etcd, worker]"
        );
        assert!(!text(src, m.get("spec.hosts").unwrap().value).contains('\n'));
    }

    #[test]
    fn absent_node_falls_back_to_nearest_ancestor_key() {
        let src = "spec:\n  hosts:\n    - name: cp1\n";
        let m = SourceMap::build(src);
        let s = m.value_or_ancestor("spec.networking.podSubnet").unwrap();
        assert_eq!(text(src, s), "spec");
    }

    #[test]
    fn non_ascii_text_maps_to_byte_offsets() {
        let src = "# größe\nname: zürich\nport: 1\n";
        let m = SourceMap::build(src);
        assert_eq!(text(src, m.get("port").unwrap().value), "1");
        assert_eq!(text(src, m.get("name").unwrap().value), "zürich");
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("spec.hosts[1].name"), Some("spec.hosts[1]"));
        assert_eq!(parent_path("spec.hosts[1]"), Some("spec.hosts"));
        assert_eq!(parent_path("spec"), Some(""));
        assert_eq!(parent_path(""), None);
    }
}
