//! Line and column of a byte offset, from an index of the text built once: a report with
//! thousands of problems locates each in logarithmic time instead of rescanning the file.

/// Where each line starts, and (for non-ASCII text) where each character starts.
#[derive(Debug, Default)]
pub struct LineIndex {
    /// Byte offset of the start of each line; the first is 0.
    line_starts: Vec<usize>,
    /// Byte offset of each character, when the text is not ASCII (columns count characters).
    char_starts: Option<Vec<usize>>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let char_starts = (!text.is_ascii()).then(|| text.char_indices().map(|(b, _)| b).collect());
        LineIndex {
            line_starts,
            char_starts,
            len: text.len(),
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub fn locate(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.len);
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self
            .line_starts
            .get(line.wrapping_sub(1))
            .copied()
            .unwrap_or(0);
        let column = match &self.char_starts {
            None => offset - start,
            Some(chars) => {
                chars.partition_point(|&b| b < offset) - chars.partition_point(|&b| b < start)
            }
        };
        (line.max(1), column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let text = "ab\ncd\n\nzürich: x\n";
        let index = LineIndex::new(text);
        assert_eq!(index.locate(0), (1, 1));
        assert_eq!(index.locate(1), (1, 2));
        assert_eq!(index.locate(3), (2, 1));
        assert_eq!(index.locate(6), (3, 1));
        let x = text.find('x').unwrap();
        assert_eq!(index.locate(x), (4, 9));
        assert_eq!(index.locate(text.len()), (5, 1));
        assert_eq!(LineIndex::new("").locate(0), (1, 1));
        assert_eq!(LineIndex::default().locate(7), (1, 1));
    }
}
