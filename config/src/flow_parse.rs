//! The public OpenFlow-lite parsers: a rule line (`add-flow`), a rules file
//! (`add-flows`), a match (`del-flows`) and a packet description (`trace`).
//!
//! # Design
//!
//! A line is split into `KEY[=VALUE]` pieces ([`crate::flow_syntax`]); each piece goes
//! through the [`RuleBuilder`] (match fields and rule properties), then the match is
//! checked as a whole, then the action list is parsed and checked against the match
//! ([`crate::action_parse`]). Every error carries the 1-based line and column (in
//! characters) of the key or value it is about.
//!
//! The same building blocks serve the TOML config, which passes its own position mapping
//! so that errors point into the TOML file.

use crate::action_parse::{ParsedAction, check_actions, parse_action_text};
use crate::flow_syntax::split_line;
use crate::match_builder::{Locate, Mode, RuleBuilder};
use crate::rule_error::RuleError;
use crate::rules::{Masked, Match, Position, Rule};

/// What `del-flows` (and other commands that select rules) match on: an optional table,
/// an optional priority (used by strict matching), an optional masked cookie, and the
/// match fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct MatchSpec {
    pub table: Option<u8>,
    pub priority: Option<u16>,
    /// `cookie=V` (exact) or `cookie=V/M`; `cookie=V/-1` is an exact cookie.
    pub cookie: Option<Masked<u64>>,
    pub matches: Match,
}

/// Maps byte offsets of `line` to positions on line `line_no`, counting characters.
/// The parser asks for the position of every field (it is passed down for errors): in
/// an ASCII line, the usual one, a character is a byte, so nothing is counted.
pub(crate) fn line_locator(line: &str, line_no: u32) -> impl Fn(usize) -> Position + '_ {
    let ascii = line.is_ascii();
    move |offset: usize| {
        let offset = offset.min(line.len());
        let column = if ascii { offset } else { line.char_indices().take_while(|&(i, _)| i < offset).count() };
        Position { line: line_no, column: column as u32 + 1 }
    }
}

/// The text after `actions=` and its byte offset in the line.
struct ActionText<'a> {
    text: &'a str,
    offset: usize,
}

/// Parses fields of a line with a builder; returns the builder and the action piece.
fn parse_fields<'a>(
    line: &'a str,
    mode: Mode,
    locate: Locate<'_>,
) -> Result<(RuleBuilder, Option<ActionText<'a>>), RuleError> {
    let split = split_line(line).map_err(|e| RuleError::new(locate(e.offset), e.reason))?;
    let mut builder = RuleBuilder::new(mode);
    for piece in &split.fields {
        let value_offset = piece.value_offset;
        builder.apply(piece.key, locate(piece.key_offset), piece.value, &|off| locate(value_offset + off))?;
    }
    if let Some(a) = split.actions.as_ref().filter(|_| mode != Mode::Flow) {
        return Err(RuleError::new(locate(a.key_offset), "`actions` is not allowed here"));
    }
    let actions = split.actions.map(|a| ActionText { text: a.value.unwrap_or(""), offset: a.value_offset });
    Ok((builder, actions))
}

/// Turns a finished builder plus parsed actions into a rule.
pub(crate) fn finish_rule(
    builder: RuleBuilder,
    actions: Option<Vec<ParsedAction<'_>>>,
    end: Position,
) -> Result<Rule, RuleError> {
    let table = builder.table.unwrap_or(0);
    let priority = builder.priority.unwrap_or(Rule::DEFAULT_PRIORITY);
    let cookie = builder.cookie.map_or(0, |c| c.value);
    let idle_timeout = builder.idle_timeout.unwrap_or(0);
    let hard_timeout = builder.hard_timeout.unwrap_or(0);
    let send_flow_rem = builder.send_flow_rem;
    let matches = builder.finish(end)?;
    let Some(actions) = actions else {
        return Err(RuleError::new(end, "missing `actions=` (use `actions=drop` to drop)"));
    };
    let actions = check_actions(actions, &matches, table)?;
    Ok(Rule { table, priority, cookie, idle_timeout, hard_timeout, send_flow_rem, matches, actions })
}

/// Parses a rule line with a caller-supplied position mapping (used by the TOML config).
pub(crate) fn parse_flow_located(line: &str, locate: Locate<'_>) -> Result<Rule, RuleError> {
    let (builder, actions) = parse_fields(line, Mode::Flow, locate)?;
    let actions = match actions {
        Some(ActionText { text, offset }) => Some(parse_action_text(text, &|off| locate(offset + off))?),
        None => None,
    };
    finish_rule(builder, actions, locate(line.len()))
}

/// Parses one rule in `ovs-ofctl add-flow` syntax, e.g.
/// `priority=100,tcp,nw_dst=10.0.0.0/8,tp_dst=443,actions=output:2`.
/// Errors are on line 1.
pub fn parse_flow(line: &str) -> Result<Rule, RuleError> {
    parse_flow_located(line, &line_locator(line, 1))
}

/// Parses a rules file in `ovs-ofctl add-flows` syntax: one rule per line; blank lines
/// and lines whose first non-blank character is `#` are skipped. The first error (in
/// line order) is returned, with the file's line and column.
///
/// A large text is cut at line ends into one piece per available CPU (at most
/// `MAX_PARSE_THREADS`), parsed on scoped threads: lines are independent, and a
/// million-rule file takes about a second on one thread.
///
/// Rules are large (a few hundred bytes) and a million of them are hundreds of MB: each
/// piece's vector is sized by its line count before parsing (grown by doubling, it was
/// copied and faulted in again at every step), and the first piece's holds the whole
/// set, so the other pieces are copied once, into it.
pub fn parse_flows(text: &str) -> Result<Vec<Rule>, RuleError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_PARSE_THREADS);
    let pieces = split_at_lines(text, threads, MIN_PARSE_PIECE);
    // The lines of each piece, the rules it can hold: `split_at_lines` counted those
    // before each piece, so only the last piece's are counted here.
    let (last, last_first_line) = *pieces.last().expect("at least one piece");
    let total = last_first_line as usize + line_bound(last);
    if pieces.len() == 1 {
        return parse_lines(text, 0, total);
    }
    let (first, rest) = pieces.split_first().expect("at least one piece");
    let (first, rest) = std::thread::scope(|s| {
        let handles: Vec<_> = rest
            .iter()
            .zip(rest.iter().skip(1).map(|p| p.1 as usize).chain([total]))
            .map(|(&(piece, first_line), next_first_line)| {
                s.spawn(move || parse_lines(piece, first_line, next_first_line - first_line as usize))
            })
            .collect();
        let first = parse_lines(first.0, first.1, total);
        // A parser thread cannot panic on any input (the fuzz target holds it to that);
        // if one did, the panic is passed on rather than hidden.
        let rest: Vec<_> =
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect();
        (first, rest)
    });
    // The first error in line order: the pieces are in line order.
    let mut rules = first?;
    for p in rest {
        rules.append(&mut p?);
    }
    Ok(rules)
}

/// Most rules `text` can hold: one per line.
fn line_bound(text: &str) -> usize {
    newlines(text.as_bytes()) + 1
}

/// The number of `\n` in `bytes`. Counted in byte lanes over chunks too short to
/// overflow one, which the compiler turns into vector compares: a million-line request
/// is counted three times (the log line, the parse's pieces and their lengths), and a
/// count filtered byte by byte took 2.5 instructions a byte, about three times as long.
pub fn newlines(bytes: &[u8]) -> usize {
    bytes.chunks(255).map(|c| usize::from(c.iter().fold(0u8, |n, &b| n + u8::from(b == b'\n')))).sum()
}

/// Most threads [`parse_flows`] uses.
pub const MAX_PARSE_THREADS: usize = 4;

/// Smallest piece of text worth a thread of its own (about 10,000 rules).
const MIN_PARSE_PIECE: usize = 1 << 20;

/// `text` cut at line ends into at most `n` pieces of at least `min` bytes (the last
/// may be shorter), each with the number of lines before it.
fn split_at_lines(text: &str, n: usize, min: usize) -> Vec<(&str, u32)> {
    let n = n.min(text.len() / min.max(1)).max(1);
    let mut pieces = Vec::with_capacity(n);
    let (mut start, mut lines_before) = (0, 0u32);
    for k in 1..n {
        let target = (text.len() * k / n).max(start);
        let Some(nl) = text.as_bytes()[target..].iter().position(|&b| b == b'\n') else { break };
        let end = target + nl + 1;
        pieces.push((&text[start..end], lines_before));
        lines_before += newlines(&text.as_bytes()[start..end]) as u32;
        start = end;
    }
    pieces.push((&text[start..], lines_before));
    pieces
}

/// [`parse_flows`] of a piece whose first line is line `lines_before + 1` of the file,
/// into a vector with room for `capacity` rules.
fn parse_lines(text: &str, lines_before: u32, capacity: usize) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::with_capacity(capacity);
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        rules.push(parse_flow_located(line, &line_locator(line, lines_before + i as u32 + 1))?);
    }
    Ok(rules)
}

/// Parses a match as `ovs-ofctl del-flows` takes it: match fields plus optional `table`,
/// `priority` and (masked) `cookie`; no actions, no timeouts. An empty string matches
/// everything.
pub fn parse_match(s: &str) -> Result<MatchSpec, RuleError> {
    let locate = line_locator(s, 1);
    let (builder, _) = parse_fields(s, Mode::Match, &locate)?;
    let (table, priority, cookie) = (builder.table, builder.priority, builder.cookie);
    let matches = builder.finish(locate(s.len()))?;
    Ok(MatchSpec { table, priority, cookie, matches })
}

/// Parses a packet description for `trace`, in the same syntax with exact values only,
/// e.g. `in_port=1,tcp,nw_src=198.18.0.1,nw_dst=198.18.0.2,tp_dst=80`. `in_port` is
/// required; prerequisites are checked as for rules. Every field present in the result
/// has a full mask; absent fields are zero in the packet.
pub fn parse_packet(s: &str) -> Result<Match, RuleError> {
    let locate = line_locator(s, 1);
    let (builder, _) = parse_fields(s, Mode::Packet, &locate)?;
    builder.finish(locate(s.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Columns count characters: bytes in an ASCII line, characters past a wider one.
    #[test]
    fn columns_count_characters() {
        assert_eq!(line_locator("ab=c", 7)(3), Position { line: 7, column: 4 });
        assert_eq!(line_locator("a\u{e9}=c", 7)(3), Position { line: 7, column: 3 });
        assert_eq!(line_locator("ab", 1)(99).column, 3, "past the end: after the last character");
        let e = parse_flow("priority=5,nw_\u{e9}=1 actions=drop").unwrap_err();
        assert_eq!(e.position.column, 12, "{e}");
    }

    /// Pieces of rule text, so that random lines get past the first field now and then.
    const PIECES: &[&str] = &[
        "in_port=",
        "tcp",
        "udp6",
        "arp",
        "ip",
        ",",
        " ",
        "=",
        "/",
        ":",
        "(",
        ")",
        "->",
        "actions=",
        "output:",
        "resubmit(",
        "set_field:",
        "nw_dst=",
        "tp_dst=",
        "tcp_flags=",
        "+syn",
        "-ack",
        "0x",
        "1",
        "255",
        "65535",
        "10.0.0.1",
        "::1",
        "00:11:22:33:44:55",
        "dl_vlan=",
        "drop",
        "goto_table:",
        "é",
        "\t",
        "#",
        "mod_nw_tos:",
        "nw_frag=",
        "later",
        "icmp_type=",
        "vlan_tci=",
        "-1",
        "99999999999999999999999",
    ];

    proptest! {
        /// Bad input gets an error, never a panic, whatever it looks like.
        #[test]
        fn parsers_never_panic(pieces in prop::collection::vec(prop::sample::select(PIECES), 0..24), noise in ".{0,40}") {
            let line: String = pieces.concat();
            for text in [line.as_str(), noise.as_str(), &format!("{line}{noise}")] {
                let _ = parse_flow(text);
                let _ = parse_match(text);
                let _ = parse_packet(text);
                let _ = parse_flows(text);
            }
        }
    }

    #[test]
    fn error_positions_are_within_the_line() {
        for line in ["in_port=1,actions=output:", "tcp,tp_dst=", "actions=resubmit(", "é,actions=drop"] {
            let e = parse_flow(line).unwrap_err();
            assert!(e.position.column as usize <= line.chars().count() + 1, "{line}: {e}");
        }
    }

    /// Counted by chunks of 255 bytes: texts of every length around a chunk's end, with
    /// every byte a newline (a byte lane at its limit) or none, and random bytes.
    #[test]
    fn newlines_are_counted_as_byte_by_byte() {
        let mut r = 0x9e37_79b9_7f4a_7c15_u64;
        for len in (0..600).chain([255 * 7 - 1, 255 * 7, 255 * 7 + 1, 100_000]) {
            let random: Vec<u8> = (0..len)
                .map(|_| {
                    r ^= r << 13;
                    r ^= r >> 7;
                    r ^= r << 17;
                    if r.is_multiple_of(5) { b'\n' } else { r as u8 }
                })
                .collect();
            for bytes in [vec![b'\n'; len], vec![b'x'; len], random] {
                assert_eq!(newlines(&bytes), bytes.iter().filter(|&&b| b == b'\n').count(), "{len} bytes");
            }
        }
    }

    #[test]
    fn pieces_end_at_line_ends_and_count_the_lines_before_them() {
        let text = "a\nbb\n\nccc\r\ndddd\ne";
        for n in 1..8 {
            let pieces = split_at_lines(text, n, 1);
            assert!(!pieces.is_empty() && pieces.len() <= n);
            assert_eq!(pieces.iter().map(|p| p.0).collect::<String>(), text);
            for (piece, lines_before) in &pieces {
                let start = piece.as_ptr() as usize - text.as_ptr() as usize;
                assert_eq!(*lines_before as usize, text[..start].matches('\n').count());
                assert!(start == 0 || text.as_bytes()[start - 1] == b'\n');
            }
        }
        assert_eq!(split_at_lines(text, 4, 1 << 20).len(), 1, "small texts stay whole");
    }

    /// A text big enough to be parsed in pieces gives the rules, in order, and the first
    /// error by line with its line number in the whole text.
    #[test]
    fn a_large_text_parses_in_pieces_like_line_by_line() {
        let lines: Vec<String> = (0..80_000)
            .map(|i| match i % 3 {
                0 => format!(
                    "priority={},tcp,nw_dst=10.{}.{}.0/24,tp_dst={},actions=output:{}",
                    i % 500,
                    i >> 8 & 255,
                    i & 255,
                    i % 65_000,
                    i % 4 + 1
                ),
                1 => format!("# comment {i}"),
                _ => format!("  table={},udp,tp_src={},actions=drop", i % 3, i % 65_536),
            })
            .collect();
        let text = lines.join("\n");
        assert!(text.len() > 2 * MIN_PARSE_PIECE, "the test must cover several pieces");
        let whole = parse_lines(&text, 0, 0).unwrap();
        assert_eq!(parse_flows(&text).unwrap(), whole);
        assert_eq!(whole.len(), 53_333, "every line but the 26,667 comments");
        let mut bad = lines.clone();
        bad[79_001] = "tcp,tp_dst=99999,actions=drop".into();
        bad[70_002] = "priority=1,nw_dst=1.2.3.4,frobnicate,actions=drop".into();
        let e = parse_flows(&bad.join("\n")).unwrap_err();
        assert_eq!(e.position.line, 70_003, "{e}");
        assert_eq!(e, parse_lines(&bad.join("\n"), 0, 0).unwrap_err());
    }
}
