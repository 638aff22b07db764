//! The rule journal: a bridge's rule changes appended beside its `flows_file`, so that a
//! change of one rule costs a write of one rule, not of all of them.
//!
//! # Why
//!
//! Writing a change back used to rewrite the whole flows file (and fsync it): 7.5 MB
//! and 23-177 ms at 100,000 rules for an `add-flow` of one rule, most of the command's
//! time. The journal holds what changed since the flows file was last written whole;
//! the next whole write folds it in and removes it.
//!
//! # Format
//!
//! `<flows file>.journal`, text, one line each:
//!
//! ```text
//! # Changes to the rules in br0.flows since ferrovsd wrote it; ...
//! generation 1796118172111589400 flows 5e2c7d41a9b03f18
//! + priority=10,ip,nw_dst=198.18.0.0/24 actions=output:2
//! ~ priority=5,ip actions=output:3
//! = priority=5,ip actions=output:4
//! - priority=7,tcp,tp_dst=80 actions=drop
//! commit 4 9c0b2d7e51a8f3c4
//! ```
//!
//! - `generation G flows H` names the flows file the changes apply to: the whole write
//!   puts `(generation G)` in the flows file's first line (`flows_header`), and `H` is the
//!   FNV-1a hash of the file as written ([`FlowsStamp`]). A journal of another generation
//!   is ignored: the flows file was written whole after it (a crash between that write
//!   and the journal's removal) or replaced by hand. A journal of the file's generation
//!   whose hash the file no longer has is an error: the file was edited after the daemon
//!   wrote it, and replaying the changes over it could not be right (the error says how
//!   to load the file without them).
//! - `+ RULE` appends a rule, `- RULE` deletes the rule printed exactly so, and `~ OLD`
//!   then `= NEW` replaces one in place, as the running rule list changed (a rule of a
//!   new identity is appended; one of an existing identity keeps its place). Rules are
//!   told apart by their text: the journal and the flows file were printed by the same
//!   daemon, so a rule's text is the same in both.
//! - A record is the lines of one change, then `commit N CHECKSUM`: the number of its
//!   lines and the FNV-1a hash of their bytes. A record counts only once its `commit`
//!   line is whole and agrees; a crash in the middle of an append leaves a tail that is
//!   ignored (that change was never answered as written). A damaged record followed by a
//!   whole one is an error, not a silent loss.
//!
//! Appends are synced (`fdatasync`) before the change is answered; the journal is
//! created (and its directory synced) once per whole write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One change to a bridge's printed rule list (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTextEdit {
    /// A rule appended to the list.
    Add(String),
    /// The rule printed so, deleted.
    Delete(String),
    /// The rule printed `old` replaced, where it is, by `new` (same identity, new actions
    /// or cookie or timeouts).
    Replace { old: String, new: String },
}

impl RuleTextEdit {
    /// The rule text this edit writes, if any.
    pub fn added(&self) -> Option<&str> {
        match self {
            RuleTextEdit::Add(t) | RuleTextEdit::Replace { new: t, .. } => Some(t),
            RuleTextEdit::Delete(_) => None,
        }
    }

    fn texts(&self) -> impl Iterator<Item = &str> {
        let (a, b) = match self {
            RuleTextEdit::Add(t) | RuleTextEdit::Delete(t) => (t.as_str(), None),
            RuleTextEdit::Replace { old, new } => (old.as_str(), Some(new.as_str())),
        };
        std::iter::once(a).chain(b)
    }
}

/// The journal of the flows file at `flows_file`.
pub fn journal_path(flows_file: &Path) -> PathBuf {
    let mut name = flows_file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".journal");
    flows_file.with_file_name(name)
}

/// The text of the journal at `path` (see [`journal_path`]); empty if there is none.
pub fn read(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        r => r,
    }
}

/// The first line of a flows file written whole, naming its generation.
pub(crate) fn flows_header(bridge: &str, generation: u64) -> String {
    format!("# Rules of bridge {bridge}, written back by ferrovsd after a runtime change (generation {generation}).")
}

/// The generation named by a flows file's first line, if it was written whole by the
/// daemon ([`flows_header`]).
pub(crate) fn flows_generation(flows_text: &str) -> Option<u64> {
    let first = flows_text.lines().next()?;
    let rest = &first[first.find("(generation ")? + "(generation ".len()..];
    rest[..rest.find(')')?].parse().ok()
}

/// What a journal is checked against: the generation of the flows file it changes and
/// the hash of that file's bytes as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowsStamp {
    pub generation: u64,
    pub hash: u64,
}

impl FlowsStamp {
    /// The stamp of a flows file's text, if the daemon wrote it (its first line names a
    /// generation).
    pub fn of(flows_text: &str) -> Option<FlowsStamp> {
        Some(FlowsStamp { generation: flows_generation(flows_text)?, hash: fnv1a(FNV_START, flows_text.as_bytes()) })
    }

    /// The stamp of the flows file `header` (its first line, naming `generation`) and
    /// then `lines` (one per line) make, without putting them together.
    pub(crate) fn of_lines(header: &str, generation: u64, lines: &[String]) -> FlowsStamp {
        let mut hash = fnv1a(fnv1a(FNV_START, header.as_bytes()), b"\n");
        for l in lines {
            hash = fnv1a(fnv1a(hash, l.as_bytes()), b"\n");
        }
        FlowsStamp { generation, hash }
    }
}

/// The start of a new journal of the flows file stamped `stamp`.
pub fn journal_header(flows_name: &str, stamp: FlowsStamp) -> String {
    format!(
        "# Changes to the rules in {flows_name} since ferrovsd wrote it: replayed over it at start, \
         folded into it by the next whole write.\ngeneration {} flows {:016x}\n",
        stamp.generation, stamp.hash
    )
}

/// Whether `edits` can be written as a record (no rule text spans lines).
pub fn can_record(edits: &[RuleTextEdit]) -> bool {
    edits.iter().flat_map(RuleTextEdit::texts).all(|t| !t.contains(['\n', '\r']))
}

/// One record of `edits` (see the module documentation); `can_record(edits)` holds.
pub fn record(edits: &[RuleTextEdit]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(edits.iter().flat_map(RuleTextEdit::texts).map(|t| t.len() + 3).sum::<usize>() + 40);
    let mut lines = 0usize;
    for e in edits {
        let mut line = |tag: &str, text: &str| {
            out.extend_from_slice(tag.as_bytes());
            out.extend_from_slice(text.as_bytes());
            out.push(b'\n');
            lines += 1;
        };
        match e {
            RuleTextEdit::Add(t) => line("+ ", t),
            RuleTextEdit::Delete(t) => line("- ", t),
            RuleTextEdit::Replace { old, new } => {
                line("~ ", old);
                line("= ", new);
            }
        }
    }
    let sum = fnv1a(FNV_START, &out);
    out.extend_from_slice(format!("commit {lines} {sum:016x}\n").as_bytes());
    out
}

/// FNV-1a, 64 bits, continued from `h` (start: [`FNV_START`]): enough to tell a whole
/// record from a torn or damaged one, and a flows file from an edited one.
fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Where a rule line of a replayed rule list was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineOrigin {
    /// Line (from 1) of the flows file.
    Flows(u32),
    /// Line (from 1) of the journal.
    Journal(u32),
}

/// The rule lines of a flows file's `text`, each with its line number: every line but
/// blank ones and comments (`#` first), as a flows file is loaded.
pub fn rule_lines(text: &str) -> Vec<(&str, LineOrigin)> {
    text.lines()
        .zip(1u32..)
        .filter(|(line, _)| {
            let trimmed = line.trim_start();
            !trimmed.is_empty() && !trimmed.starts_with('#')
        })
        .map(|(line, no)| (line, LineOrigin::Flows(no)))
        .collect()
}

/// What [`replay`] made of a journal.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed {
    /// Its whole records were applied (`records` of them; a torn or damaged tail is left
    /// out). The journal's first `whole_bytes` bytes are its header and those records:
    /// where the next record may be appended (after the tail is cut off).
    Applied { records: usize, whole_bytes: usize },
    /// It belongs to another generation of the flows file (or names none): ignored.
    Stale,
}

/// A journal that cannot be replayed: the line (from 1) and why.
#[derive(Debug, PartialEq, Eq)]
pub struct JournalError {
    pub line: u32,
    pub message: String,
}

/// Applies the whole records of `journal` to `lines`, the rule lines of the flows file
/// stamped `flows` (`None`: not written by the daemon; see the module documentation for
/// what counts).
pub fn replay<'a>(
    lines: &mut Vec<(&'a str, LineOrigin)>,
    flows: Option<FlowsStamp>,
    journal: &'a str,
) -> Result<Replayed, JournalError> {
    let mut whole = journal.split_inclusive('\n').filter(|l| l.ends_with('\n')).zip(1u32..).peekable();
    // Where a line of `journal` ends (an offset into it).
    let end_of = |line: &str| line.as_ptr() as usize - journal.as_ptr() as usize + line.len();
    // The stamp line comes first, after comments.
    let mut stamp = None;
    let mut whole_bytes = 0;
    for (line, no) in whole.by_ref() {
        let l = line.trim_end_matches(['\n', '\r']);
        if l.trim().is_empty() || l.starts_with('#') {
            continue;
        }
        stamp = l.strip_prefix("generation ").and_then(|g| g.split_once(" flows ")).and_then(|(g, h)| {
            Some((FlowsStamp { generation: g.parse().ok()?, hash: u64::from_str_radix(h, 16).ok()? }, no))
        });
        whole_bytes = end_of(line);
        break;
    }
    let Some((stamp, no)) = stamp else { return Ok(Replayed::Stale) };
    match flows {
        Some(f) if f.generation == stamp.generation => {
            if f.hash != stamp.hash {
                return Err(JournalError {
                    line: no,
                    message: "the flows file was edited after ferrovsd wrote it, and this journal holds changes \
                              to it as written: restore the file, or remove the journal to load the file as it is \
                              (without the changes the journal holds)"
                        .into(),
                });
            }
        }
        _ => return Ok(Replayed::Stale),
    }
    let mut records = Vec::new();
    let mut record: Vec<(&'a str, u32)> = Vec::new();
    let mut bytes: Vec<u8> = Vec::new();
    let mut damaged: Option<u32> = None;
    for (line, no) in whole {
        let l = line.strip_suffix('\n').unwrap_or(line);
        if let Some(commit) = l.strip_prefix("commit ") {
            let agrees = commit.split_once(' ').is_some_and(|(n, sum)| {
                n.parse::<usize>().ok() == Some(record.len())
                    && u64::from_str_radix(sum, 16).ok() == Some(fnv1a(FNV_START, &bytes))
            });
            match (agrees, damaged) {
                (true, None) => {
                    records.push(std::mem::take(&mut record));
                    whole_bytes = end_of(line);
                }
                (true, Some(at)) => {
                    return Err(JournalError {
                        line: at,
                        message: "damaged journal record followed by whole ones (changes would be lost)".into(),
                    });
                }
                (false, _) => {
                    damaged.get_or_insert(record.first().map_or(no, |&(_, first)| first));
                    record.clear();
                }
            }
            bytes.clear();
        } else {
            record.push((l, no));
            bytes.extend_from_slice(line.as_bytes());
        }
    }
    let n = records.len();
    if n == 0 {
        return Ok(Replayed::Applied { records: 0, whole_bytes });
    }
    let mut list: Vec<Option<(&'a str, LineOrigin)>> = lines.drain(..).map(Some).collect();
    let mut at: HashMap<&'a str, usize> = list.iter().enumerate().filter_map(|(i, l)| l.map(|(t, _)| (t, i))).collect();
    for record in records {
        let mut edits = record.into_iter();
        while let Some((l, no)) = edits.next() {
            let err = |message: String| JournalError { line: no, message };
            let (tag, text) = (l.get(..2).unwrap_or(""), l.get(2..).unwrap_or(""));
            let find = |at: &HashMap<&str, usize>| {
                at.get(text).copied().ok_or_else(|| {
                    err(format!(
                        "no rule `{text}` to change in the flows file: was the file edited after ferrovsd wrote it? \
                         (without this journal the file loads as it is, without the changes the journal holds)"
                    ))
                })
            };
            match tag {
                "+ " => {
                    if at.insert(text, list.len()).is_some() {
                        return Err(err(format!("rule `{text}` added twice")));
                    }
                    list.push(Some((text, LineOrigin::Journal(no))));
                }
                "- " => {
                    let i = find(&at)?;
                    at.remove(text);
                    list[i] = None;
                }
                "~ " => {
                    let i = find(&at)?;
                    let Some((new_line, new_no)) = edits.next() else {
                        return Err(err("a `~` line without its `=` line".into()));
                    };
                    let Some(new) = new_line.strip_prefix("= ") else {
                        return Err(JournalError { line: new_no, message: "expected `= RULE` after `~ RULE`".into() });
                    };
                    at.remove(text);
                    if at.insert(new, i).is_some() {
                        return Err(JournalError { line: new_no, message: format!("rule `{new}` twice") });
                    }
                    list[i] = Some((new, LineOrigin::Journal(new_no)));
                }
                _ => return Err(err("expected `+ RULE`, `- RULE`, `~ RULE`, `= RULE` or `commit`".into())),
            }
        }
    }
    lines.extend(list.into_iter().flatten());
    Ok(Replayed::Applied { records: n, whole_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits() -> Vec<RuleTextEdit> {
        vec![
            RuleTextEdit::Add("priority=9,ip actions=drop".into()),
            RuleTextEdit::Replace {
                old: "in_port=1 actions=output:2".into(),
                new: "in_port=1 actions=output:3".into(),
            },
            RuleTextEdit::Delete("priority=7,tcp actions=drop".into()),
        ]
    }

    fn base() -> Vec<(&'static str, LineOrigin)> {
        vec![
            ("in_port=1 actions=output:2", LineOrigin::Flows(2)),
            ("priority=7,tcp actions=drop", LineOrigin::Flows(3)),
            ("actions=drop", LineOrigin::Flows(4)),
        ]
    }

    fn stamp(generation: u64) -> Option<FlowsStamp> {
        Some(FlowsStamp { generation, hash: 0x5eed })
    }

    fn journal(generation: u64, records: &[&[RuleTextEdit]]) -> String {
        let mut j = journal_header("br0.flows", stamp(generation).unwrap());
        for r in records {
            j.push_str(std::str::from_utf8(&record(r)).unwrap());
        }
        j
    }

    fn texts(lines: &[(&str, LineOrigin)]) -> Vec<String> {
        lines.iter().map(|(t, _)| t.to_string()).collect()
    }

    #[test]
    fn records_replay_in_place_in_order() {
        let j = journal(7, &[&edits(), &[RuleTextEdit::Add("priority=1 actions=drop".into())]]);
        let mut lines = base();
        assert_eq!(replay(&mut lines, stamp(7), &j), Ok(Replayed::Applied { records: 2, whole_bytes: j.len() }));
        assert_eq!(
            texts(&lines),
            ["in_port=1 actions=output:3", "actions=drop", "priority=9,ip actions=drop", "priority=1 actions=drop"]
        );
        assert_eq!(lines[0].1, LineOrigin::Journal(5), "the replaced rule points into the journal");
        assert_eq!(lines[1].1, LineOrigin::Flows(4));
    }

    #[test]
    fn another_generation_is_ignored() {
        let j = journal(7, &[&edits()]);
        for flows in [stamp(8), None] {
            let mut lines = base();
            assert_eq!(replay(&mut lines, flows, &j), Ok(Replayed::Stale));
            assert_eq!(lines, base());
        }
        // The same generation, another file: an error, on the stamp's line.
        let e = replay(&mut base(), Some(FlowsStamp { generation: 7, hash: 1 }), &j).unwrap_err();
        assert_eq!(e.line, 2, "{e:?}");
        let mut lines = base();
        assert_eq!(replay(&mut lines, stamp(7), "# nothing else\n"), Ok(Replayed::Stale));
    }

    #[test]
    fn a_torn_tail_is_left_out_and_a_damaged_middle_refused() {
        let whole = journal(7, &[&edits()]);
        let second =
            std::str::from_utf8(&record(&[RuleTextEdit::Add("priority=1 actions=drop".into())])).unwrap().to_string();
        // Every cut of the second record leaves the first applied, the second not.
        for cut in 0..second.len() {
            let j = format!("{whole}{}", &second[..cut]);
            let mut lines = base();
            let applied = Replayed::Applied { records: 1, whole_bytes: whole.len() };
            assert_eq!(replay(&mut lines, stamp(7), &j), Ok(applied), "cut at {cut}");
            assert_eq!(lines.len(), 3);
        }
        // A flipped byte in the first record: refused, since a whole one follows.
        let damaged = format!("{}{second}", whole.replacen("output:3", "output:4", 1));
        let e = replay(&mut base(), stamp(7), &damaged).unwrap_err();
        assert_eq!(e.line, 3, "the damaged record's first line: {e:?}");
        // The same damage at the end: a torn tail, left out.
        let mut lines = base();
        let torn = whole.replacen("output:3", "output:4", 1);
        let header = journal_header("br0.flows", stamp(7).unwrap()).len();
        assert_eq!(replay(&mut lines, stamp(7), &torn), Ok(Replayed::Applied { records: 0, whole_bytes: header }));
        assert_eq!(lines, base());
        // Nothing after the header, or a first record cut short: the header is whole.
        let mut lines = base();
        let cut = format!("{}+ priority=1 act", journal_header("br0.flows", stamp(7).unwrap()));
        assert_eq!(replay(&mut lines, stamp(7), &cut), Ok(Replayed::Applied { records: 0, whole_bytes: header }));
    }

    #[test]
    fn changes_to_rules_that_are_not_there_are_errors() {
        for bad in [
            RuleTextEdit::Delete("nope".into()),
            RuleTextEdit::Replace { old: "nope".into(), new: "x".into() },
            RuleTextEdit::Add("actions=drop".into()),
        ] {
            let j = journal(1, &[std::slice::from_ref(&bad)]);
            let e = replay(&mut base(), stamp(1), &j).unwrap_err();
            assert_eq!(e.line, 3, "{bad:?}: {e:?}");
        }
    }

    #[test]
    fn the_flows_header_names_its_generation() {
        let text = format!("{}\nactions=drop\n", flows_header("br0", 42));
        assert_eq!(flows_generation(&text), Some(42));
        let lines = ["actions=drop".to_string()];
        assert_eq!(FlowsStamp::of(&text), Some(FlowsStamp::of_lines(&flows_header("br0", 42), 42, &lines)));
        assert_eq!(flows_generation("# Rules of bridge br0, written back\nactions=drop\n"), None);
        assert_eq!(flows_generation(""), None);
        assert_eq!(journal_path(Path::new("a/b.flows")), Path::new("a/b.flows.journal"));
        assert!(!can_record(&[RuleTextEdit::Add("a\nb".into())]));
    }
}
