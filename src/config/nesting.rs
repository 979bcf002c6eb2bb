//! How deep a document's flow collections (`{...}`, `[...]`) nest, found by one linear scan of
//! the text before any YAML parser sees it: the parsers take time that grows much faster than
//! the input on deeply nested flow collections (500 KB of `{a: ` took minutes), so such a
//! document is refused before they run.

/// The offset of the first `{` or `[` opening a flow collection deeper than `max`, if any.
/// Brackets inside quoted scalars and comments do not count; neither do those inside a plain
/// scalar of block context (`a{b`), which only open a collection where a value starts.
pub fn first_beyond(text: &str, max: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    // The last byte that was not a space or tab, to tell where a value starts.
    let mut previous = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' if starts_value(previous) || depth > 0 => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if starts_value(previous) || depth > 0 => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
            }
            b'#' if matches!(previous, b' ' | b'\t' | b'\n') || i == 0 => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                previous = b'\n';
                continue;
            }
            b'{' | b'[' if depth > 0 || starts_value(previous) => {
                depth += 1;
                if depth > max {
                    return Some(i);
                }
            }
            // Text of a plain scalar (`x[[`): a value does not start after it.
            b'{' | b'[' => {
                previous = b'x';
                i += 1;
                continue;
            }
            b'}' | b']' if depth > 0 => depth -= 1,
            _ => {}
        }
        // Spaces keep the byte before them, so `key:   {` still opens a collection; `#` after
        // a space starts a comment, so remember the space for that test.
        if b == b' ' || b == b'\t' {
            if previous != b':' && previous != b'-' && previous != b',' && previous != b'?' {
                previous = b' ';
            }
        } else {
            previous = b;
        }
        i += 1;
    }
    None
}

/// Whether a value may start after `previous` (the last non-blank byte).
fn starts_value(previous: u8) -> bool {
    matches!(
        previous,
        b'\n' | b':' | b'-' | b',' | b'[' | b'{' | b'?' | b' '
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_flow_collections_only() {
        assert_eq!(first_beyond("{a: {b: [1, [2]]}}", 4), None);
        assert_eq!(first_beyond("{a: {b: [1, [2]]}}", 3), Some(12));
        assert_eq!(first_beyond(&"{a: ".repeat(100), 64), Some(64 * 4));
        assert_eq!(first_beyond(&"[".repeat(100), 64), Some(64));
        // Brackets in quotes, comments and block plain scalars are text.
        let text = format!(
            "a: \"{}\"\nb: '{}'\n# {}\nc: x{}\n",
            "{".repeat(100),
            "[".repeat(100),
            "{".repeat(100),
            "[".repeat(100)
        );
        assert_eq!(first_beyond(&text, 64), None);
        // Closed collections do not add up.
        assert_eq!(first_beyond(&"{a: 1}\n".repeat(1000), 2), None);
    }
}
