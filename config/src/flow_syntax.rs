//! Splitting one `ovs-ofctl` flow line into its pieces, remembering where each starts.
//!
//! # Syntax
//!
//! A flow line is a list of fields separated by commas and/or blanks:
//! `KEY=VALUE` (a match field or a rule property such as `priority`) or a bare `KEY` (a
//! shorthand such as `tcp`). The field `actions=` must come last: everything after it is
//! the action list, which is split again by [`split_actions`] into actions separated by
//! commas and/or blanks, where commas inside parentheses (`resubmit(,2)`) do not split.
//!
//! Pieces borrow from the input and carry their byte offset in it; the caller turns
//! offsets into line/column positions of its own input format.

/// One `KEY[=VALUE]` piece of a flow line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece<'a> {
    pub key: &'a str,
    pub key_offset: usize,
    /// `None` for a bare keyword.
    pub value: Option<&'a str>,
    pub value_offset: usize,
}

/// A flow line split into fields and, if present, the action text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitLine<'a> {
    pub fields: Vec<Piece<'a>>,
    /// The `actions=` piece: `key` is `actions` and `value` everything after the `=`.
    pub actions: Option<Piece<'a>>,
}

/// A syntax error at a byte offset of the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub offset: usize,
    pub reason: String,
}

fn is_separator(b: u8) -> bool {
    BYTE_CLASS[usize::from(b)] == SEPARATOR
}

/// What a byte is to [`token_end`], looked up per byte: most bytes of a line are
/// ordinary, and the test of one is then a load and a compare.
const ORDINARY: u8 = 0;
const SEPARATOR: u8 = 1;
const OPEN: u8 = 2;
const CLOSE: u8 = 3;
const EQUALS: u8 = 4;
static BYTE_CLASS: [u8; 256] = {
    let mut class = [ORDINARY; 256];
    class[b',' as usize] = SEPARATOR;
    class[b' ' as usize] = SEPARATOR;
    class[b'\t' as usize] = SEPARATOR;
    class[b'\r' as usize] = SEPARATOR;
    class[b'\n' as usize] = SEPARATOR;
    class[b'(' as usize] = OPEN;
    class[b')' as usize] = CLOSE;
    class[b'=' as usize] = EQUALS;
    class
};

/// Ends the token starting at `start`: the first separator outside parentheses. Also
/// returns the first `=` in the token, which splits a field's key from its value (found
/// in this pass rather than by a search of the token after it).
fn token_end(s: &str, start: usize) -> Result<(usize, Option<usize>), SyntaxError> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    let mut open_at = start;
    let mut equals = None;
    let mut i = start;
    while i < bytes.len() {
        let class = BYTE_CLASS[usize::from(bytes[i])];
        if class == ORDINARY {
            i += 1;
            continue;
        }
        match class {
            EQUALS if equals.is_none() => equals = Some(i),
            EQUALS => {}
            OPEN => {
                if depth == 0 {
                    open_at = i;
                }
                depth += 1;
            }
            CLOSE => {
                if depth == 0 {
                    return Err(SyntaxError { offset: i, reason: "`)` without a matching `(`".into() });
                }
                depth -= 1;
            }
            _ if depth == 0 => return Ok((i, equals)),
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        return Err(SyntaxError { offset: open_at, reason: "`(` without a matching `)`".into() });
    }
    Ok((i, equals))
}

fn skip_separators(s: &str, mut i: usize) -> usize {
    let bytes = s.as_bytes();
    while i < bytes.len() && is_separator(bytes[i]) {
        i += 1;
    }
    i
}

/// Splits a flow line into fields and the action text.
pub(crate) fn split_line(s: &str) -> Result<SplitLine<'_>, SyntaxError> {
    // Room for a usual rule's fields at once (growing from four reallocated for most
    // lines of a large file).
    let mut fields = Vec::with_capacity(8);
    let mut i = skip_separators(s, 0);
    while i < s.len() {
        let (end, equals) = token_end(s, i)?;
        let piece = match equals {
            None => Piece { key: &s[i..end], key_offset: i, value: None, value_offset: end },
            Some(eq) => Piece { key: &s[i..eq], key_offset: i, value: Some(&s[eq + 1..end]), value_offset: eq + 1 },
        };
        if piece.key.is_empty() {
            return Err(SyntaxError { offset: i, reason: "missing field name before `=`".into() });
        }
        if piece.key == "actions" && piece.value.is_some() {
            let value = s[piece.value_offset..].trim_end_matches(|c: char| c.is_ascii_whitespace());
            return Ok(SplitLine { fields, actions: Some(Piece { value: Some(value), ..piece }) });
        }
        fields.push(piece);
        i = skip_separators(s, end);
    }
    Ok(SplitLine { fields, actions: None })
}

/// One action of an action list: `NAME`, `NAME:ARG` or `NAME(ARG)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ActionPiece<'a> {
    /// The whole action text.
    pub text: &'a str,
    pub offset: usize,
    pub name: &'a str,
    pub arg: Option<&'a str>,
    pub arg_offset: usize,
    /// Whether the argument was given in parentheses.
    pub parenthesized: bool,
}

/// Splits action text (the value of `actions=`) into actions. Offsets are relative to
/// `base` plus the position inside `s`.
pub(crate) fn split_actions(s: &str, base: usize) -> Result<Vec<ActionPiece<'_>>, SyntaxError> {
    let mut out = Vec::new();
    let mut i = skip_separators(s, 0);
    while i < s.len() {
        let (end, _) = token_end(s, i).map_err(|e| SyntaxError { offset: e.offset + base, ..e })?;
        let text = &s[i..end];
        let colon = text.find(':');
        let paren = text.find('(');
        let piece = match (colon, paren) {
            (Some(c), p) if p.is_none_or(|p| c < p) => ActionPiece {
                text,
                offset: base + i,
                name: &text[..c],
                arg: Some(&text[c + 1..]),
                arg_offset: base + i + c + 1,
                parenthesized: false,
            },
            (_, Some(p)) => {
                if !text.ends_with(')') {
                    return Err(SyntaxError {
                        offset: base + i + text.rfind(')').map_or(p, |c| c + 1),
                        reason: format!("unexpected text after `)` in `{text}`"),
                    });
                }
                ActionPiece {
                    text,
                    offset: base + i,
                    name: &text[..p],
                    arg: Some(&text[p + 1..text.len() - 1]),
                    arg_offset: base + i + p + 1,
                    parenthesized: true,
                }
            }
            _ => ActionPiece {
                text,
                offset: base + i,
                name: text,
                arg: None,
                arg_offset: base + end,
                parenthesized: false,
            },
        };
        out.push(piece);
        i = skip_separators(s, end);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_actions() {
        let line = " priority=10, tcp,in_port=1\ttp_dst=80 actions=output:2, resubmit(,3) ";
        let split = split_line(line).unwrap();
        let keys: Vec<_> = split.fields.iter().map(|p| (p.key, p.value, p.key_offset)).collect();
        assert_eq!(
            keys,
            vec![
                ("priority", Some("10"), 1),
                ("tcp", None, 14),
                ("in_port", Some("1"), 18),
                ("tp_dst", Some("80"), 28),
            ]
        );
        let actions = split.actions.unwrap();
        assert_eq!(actions.value, Some("output:2, resubmit(,3)"));
        assert_eq!(actions.value_offset, 46);
        let pieces = split_actions(actions.value.unwrap(), actions.value_offset).unwrap();
        assert_eq!(pieces.len(), 2);
        assert_eq!((pieces[0].name, pieces[0].arg, pieces[0].arg_offset), ("output", Some("2"), 53));
        assert_eq!((pieces[1].name, pieces[1].arg, pieces[1].parenthesized), ("resubmit", Some(",3"), true));
        assert_eq!(pieces[1].offset, 56);
    }

    #[test]
    fn set_field_keeps_its_arrow_and_colons() {
        let p = split_actions("set_field:00:11:22:33:44:55->eth_dst,drop", 0).unwrap();
        assert_eq!(p[0].name, "set_field");
        assert_eq!(p[0].arg, Some("00:11:22:33:44:55->eth_dst"));
        assert_eq!(p[1].name, "drop");
        assert_eq!(p[1].arg, None);
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(split_line("in_port=1,=2").unwrap_err().offset, 10);
        assert_eq!(split_actions("resubmit(,2", 5).unwrap_err().offset, 13);
        assert_eq!(split_actions("output:1)", 0).unwrap_err().offset, 8);
        assert_eq!(split_actions("resubmit(,2)x", 0).unwrap_err().offset, 12);
    }

    #[test]
    fn empty_actions_and_no_actions() {
        let s = split_line("in_port=1,actions=").unwrap();
        assert_eq!(s.actions.unwrap().value, Some(""));
        assert!(split_line("in_port=1").unwrap().actions.is_none());
    }
}
