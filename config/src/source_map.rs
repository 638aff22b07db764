//! Byte offsets of a text file to 1-based line/column positions, and positions inside
//! TOML string values.
//!
//! Columns count characters, like the rule parser's. A position inside a TOML string
//! maps one to one onto the file only when the string is written without escapes (the
//! parsed value equals the text between the quotes); otherwise every position inside it
//! falls back to the string's opening quote, which is still the right line.

use crate::rules::Position;
use std::ops::Range;

pub(crate) struct SourceMap<'a> {
    text: &'a str,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap { text, line_starts }
    }

    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    pub(crate) fn position(&self, offset: usize) -> Position {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        Position { line: line as u32 + 1, column: column as u32 }
    }

    /// Maps byte offsets inside the parsed value of the TOML string at `span` to positions.
    pub(crate) fn string_locator(&self, span: Range<usize>, parsed: &str) -> impl Fn(usize) -> Position + '_ {
        let raw = self.text.get(span.clone()).unwrap_or("");
        let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") { 3 } else { 1 };
        let inner = raw.get(quote..raw.len().saturating_sub(quote)).unwrap_or("");
        let exact = inner == parsed;
        let start = span.start;
        move |offset| {
            if exact { self.position(start + quote + offset) } else { self.position(start) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        let text = "a = 1\n\nbé = \"x,y\"\nc = \"a\\tb\"\n";
        let map = SourceMap::new(text);
        assert_eq!(map.position(0), Position { line: 1, column: 1 });
        assert_eq!(map.position(4), Position { line: 1, column: 5 });
        assert_eq!(map.position(6), Position { line: 2, column: 1 });
        let s = text.find('"').unwrap();
        assert_eq!(map.position(s), Position { line: 3, column: 6 });
        let loc = map.string_locator(s..s + 5, "x,y");
        assert_eq!(loc(2), Position { line: 3, column: 9 });
        // Escapes: fall back to the opening quote.
        let s2 = text.rfind("\"a").unwrap();
        let loc = map.string_locator(s2..s2 + 6, "a\tb");
        assert_eq!(loc(2), Position { line: 4, column: 5 });
    }
}
