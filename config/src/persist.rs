//! Writing runtime changes back to the config, so that a restart (or `kill -9` and a
//! start) comes back to exactly the running rules.
//!
//! # Design
//!
//! - **Where a bridge's rules go.** A bridge's rules come from its `[[bridge.rule]]`
//!   tables, its `flows` array and its `flows_file`, in that order. After a runtime change
//!   the whole running rule set of the bridge is written to one place: its `flows_file`
//!   if it has one (one rule per line), else its `flows` array; the other sources are
//!   removed from the bridge's table so no rule is loaded twice.
//! - **Large rule sets go to a side file.** A bridge without a `flows_file` whose rules
//!   outnumber [`SIDE_FILE_RULES`] gets one: `<config name>.<bridge>.flows` beside the
//!   config, referenced by a new `flows_file` key with a comment saying why (a TOML array
//!   of a million strings takes over a second to write and to read back; the plain file,
//!   a tenth of that). The side file is written (atomically) before the config that
//!   names it, so a crash in between leaves the old config, which still loads the old
//!   rules. Once a bridge has a `flows_file` it keeps it.
//! - **Layout kept.** The TOML is edited with `toml_edit`: every other key, table and
//!   comment of the file stays as the operator wrote it. The file is not rewritten when
//!   the edit changes nothing.
//! - **Atomic.** Each file is written to a temporary file in the same directory, synced,
//!   renamed over the old one, and the directory synced: a crash leaves the old or the
//!   new file, never a torn one.
//! - **Bridges and ports.** After `add-br`, `del-br`, `add-port`, `del-port` or `set-port`
//!   the `[[bridge]]` tables and their `[[bridge.port]]` tables are made to match the
//!   running switch ([`write_topology`]): a port table that stays keeps its comments and
//!   key order, only changed values are rewritten; new tables are appended; a removed
//!   bridge's table goes (its `flows_file`, if any, stays on disk).
//! - **The version the rules are read in.** A bridge's rules are read in its `protocols`
//!   version (as `ovs-ofctl -O`), and rules added at runtime may have been loaded in
//!   another: the bridge's `protocols` is set to the version that reads every written rule
//!   back as itself (`openflow::convert::version_reading_back`, the configured one when it
//!   does); a set no one version reads back is not written, with the reason.
//! - **Controllers** set or removed by `ferrovs-ctl set-controller` / `del-controller` go
//!   to the bridge's `controller` array ([`write_bridge_controllers`]).
//! - **Groups** go to the bridge's `groups` array (one `ovs-ofctl add-group` line each),
//!   in the same edit as its rules; when the rules are in a `flows_file`, that file is
//!   written first, so a crash between the two never leaves a rule naming a group the
//!   config lacks (a group goes only after the rules that named it).
//! - [`check_writable`] runs at start: a config that cannot be written back is refused
//!   before anything starts, with the reason.
//! - **Small changes to a flows file go to its journal.** [`RuleWriteBack`] writes a
//!   bridge's rules whole the first time in the daemon's life (unless the daemon found
//!   at start the flows file it wrote in an earlier run, with exactly the rules it runs:
//!   [`RuleWriteBack::adopt`]), and after that appends
//!   the changes of a bridge with a `flows_file` to the file's [`journal`] (one synced
//!   append per change) until the journal outgrows a quarter of the flows file (at least
//!   [`JOURNAL_MIN_BYTES`]), its groups change, or an added rule needs another
//!   `protocols`; then it writes them whole again (which folds the journal in). Loading
//!   a flows file replays its journal.

pub mod journal;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, Value};

use crate::config::{BridgeConfig, PortConfig};
use crate::openflow::Version;
use crate::openflow::convert::version_reading_back;
use crate::ports::DEFAULT_MTU;
use journal::RuleTextEdit;

/// Most rules written back into the config's own `flows` array; more go to a side file
/// (see the module documentation).
pub const SIDE_FILE_RULES: usize = 10_000;

/// Why a change could not be written back.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: not valid TOML any more ({message}); runtime changes cannot be written back")]
    Toml { path: String, message: String },
    #[error("{path}: no [[bridge]] named `{bridge}`")]
    NoBridge { path: String, bridge: String },
    #[error("{path}: bridge `{bridge}`: {message}")]
    Protocols { path: String, bridge: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PersistError + '_ {
    move |source| PersistError::Io { path: path.display().to_string(), source }
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the
/// directory).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// [`atomic_write`] of what `write` writes (buffered): a large file is written as it is
/// produced, not gathered in memory first.
fn atomic_write_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), PersistError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        if let Ok(meta) = std::fs::metadata(path) {
            // Keep the old file's permissions (a config may be 0640).
            let _ = f.set_permissions(meta.permissions());
        }
        let mut buffered = std::io::BufWriter::with_capacity(1 << 20, &mut f);
        write(&mut buffered).and_then(|()| buffered.flush()).map_err(io(&tmp))?;
        drop(buffered);
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Checks that the config at `path` (and the directory it is in, for the temporary
/// file) can be written, and that it parses as TOML for the editor.
pub fn check_writable(path: &Path) -> Result<(), PersistError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    text.parse::<DocumentMut>()
        .map_err(|e| PersistError::Toml { path: path.display().to_string(), message: e.to_string() })?;
    std::fs::OpenOptions::new().append(true).open(path).map_err(io(path))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let probe: PathBuf = dir.join(format!(".ferrovs-write-check.{}", std::process::id()));
    std::fs::File::create(&probe).map_err(io(dir))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Makes `flows` (rules in ovs-ofctl syntax, in table order) the whole rule set of
/// bridge `bridge` in the config at `path`, and `groups` (in `ovs-ofctl add-group`
/// syntax) its groups. See the module doc for where they go.
pub fn write_bridge_flows(path: &Path, bridge: &str, flows: &[String], groups: &[String]) -> Result<(), PersistError> {
    edit_bridge(path, bridge, |table| write_flows(table, path, bridge, flows, groups, new_generation(0))).map(|_| ())
}

/// Journals smaller than this are never folded in (see the module documentation).
pub const JOURNAL_MIN_BYTES: u64 = 1 << 20;

/// What the daemon wrote of one bridge's rules: its flows file whole (of which
/// generation, how large, in which version), and how much journal since.
#[derive(Debug)]
struct OnDisk {
    flows_file: PathBuf,
    stamp: journal::FlowsStamp,
    flows_bytes: u64,
    version: Version,
    groups: Vec<String>,
    /// The journal, open for appends once it exists, and its length.
    journal: Option<(std::fs::File, u64)>,
}

/// How [`RuleWriteBack::write`] wrote a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The bridge's rules whole (and its groups), folding any journal in.
    Whole,
    /// One journal record of this many bytes.
    Journal(usize),
}

/// The daemon's write-back of its bridges' rules: whole, or as journal records when it
/// wrote the flows file whole itself before (see the module documentation). One per
/// config file.
#[derive(Debug, Default)]
pub struct RuleWriteBack {
    bridges: HashMap<String, OnDisk>,
}

impl RuleWriteBack {
    /// Forgets what was written (after the config was read again): the next change of
    /// each bridge is written whole.
    pub fn forget(&mut self) {
        self.bridges.clear();
    }

    /// Makes `flows` (the bridge's rules printed, in order) and `groups` the rules and
    /// groups of bridge `bridge` in the config at `path`. `edits`, when known, are the
    /// changes to the printed rules since this was last called for the bridge: they are
    /// appended to the flows file's journal if the flows file was written whole by this
    /// write-back (and nothing else asks for a whole write, see the module doc).
    pub fn write(
        &mut self,
        path: &Path,
        bridge: &str,
        flows: &[String],
        edits: Option<&[RuleTextEdit]>,
        groups: &[String],
    ) -> Result<Written, PersistError> {
        if let (Some(edits), Some(disk)) = (edits, self.bridges.get_mut(bridge))
            && let Some(record) = journal_record(disk, edits, groups)
        {
            let appended = append_record(disk, &record);
            if appended.is_err() {
                // Whatever the journal holds now, the next write is whole.
                self.bridges.remove(bridge);
            }
            return appended.map(|()| Written::Journal(record.len()));
        }
        let old = self.bridges.remove(bridge);
        let generation = new_generation(old.map_or(0, |d| d.stamp.generation));
        let file = edit_bridge(path, bridge, |table| write_flows(table, path, bridge, flows, groups, generation))?;
        if let Some(FlowsFileWritten { path: flows_file, bytes, version, stamp }) = file {
            // The journal belonged to the older generation: ignored from now on, and gone.
            let _ = std::fs::remove_file(journal::journal_path(&flows_file));
            self.bridges.insert(
                bridge.to_string(),
                OnDisk { flows_file, stamp, flows_bytes: bytes, version, groups: groups.to_vec(), journal: None },
            );
        }
        Ok(Written::Whole)
    }

    /// Takes `flows_file`, bridge `bridge`'s flows file written whole by the daemon (in
    /// an earlier run: see [`daemon_flows_file`]; its rules read in `version`), as written
    /// by this write-back, if its rule lines with its journal replayed are `flows` exactly
    /// (the running rules printed, as [`RuleWriteBack::write`] gets them) and `groups` are
    /// the bridge's groups: the bridge's next change may then go to the journal, where
    /// otherwise the first change after a start writes the rules whole (75 MB at a
    /// million rules). A torn or damaged record at the journal's end (a crash in the
    /// middle of an append, a change that was never answered) is cut off, so that the
    /// next record follows whole ones. Returns whether it took the file; nothing changes
    /// when it does not (rules printed otherwise than in the file, by another build of the
    /// daemon, say, or a file or journal changed since the rules were loaded).
    pub fn adopt(
        &mut self,
        bridge: &str,
        flows_file: &Path,
        version: Version,
        flows: &[String],
        groups: &[String],
    ) -> Result<bool, PersistError> {
        let text = match std::fs::read_to_string(flows_file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(flows_file)(e)),
        };
        let Some(stamp) = journal::FlowsStamp::of(&text) else { return Ok(false) };
        let mut lines = journal::rule_lines(&text);
        let jpath = journal::journal_path(flows_file);
        let journal_text = journal::read(&jpath).map_err(io(&jpath))?;
        // The whole part of a journal of this generation; a journal of another one (or an
        // empty file) is replaced by the first append.
        let whole_bytes = match journal::replay(&mut lines, Some(stamp), &journal_text) {
            Ok(journal::Replayed::Applied { whole_bytes, .. }) => Some(whole_bytes as u64),
            Ok(journal::Replayed::Stale) => None,
            // The rules were loaded through it at start: changed since, so not ours.
            Err(_) => return Ok(false),
        };
        if lines.len() != flows.len() || lines.iter().zip(flows).any(|((line, _), f)| line != f) {
            return Ok(false);
        }
        let journal = match whole_bytes {
            None => None,
            Some(whole) => {
                let f = std::fs::OpenOptions::new().append(true).open(&jpath).map_err(io(&jpath))?;
                if whole < journal_text.len() as u64 {
                    f.set_len(whole).and_then(|()| f.sync_all()).map_err(io(&jpath))?;
                }
                Some((f, whole))
            }
        };
        self.bridges.insert(
            bridge.to_string(),
            OnDisk {
                flows_file: flows_file.to_path_buf(),
                stamp,
                flows_bytes: text.len() as u64,
                version,
                groups: groups.to_vec(),
                journal,
            },
        );
        Ok(true)
    }
}

/// Bridge `bridge`'s `flows_file` in the config at `path` (relative paths from the
/// config's directory) and the version its rules are read in, if the daemon wrote that
/// file whole (its first line names a generation, see [`journal`]): a file
/// [`RuleWriteBack::adopt`] may take. Reads the config and the file's first line.
pub fn daemon_flows_file(path: &Path, bridge: &str) -> Result<Option<(PathBuf, Version)>, PersistError> {
    let (file, version) = edit_bridge(path, bridge, |table| {
        Ok((table.get("flows_file").and_then(Item::as_str).map(str::to_string), configured_version(table)))
    })?;
    let Some(file) = file else { return Ok(None) };
    let base = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file_path = base.join(file);
    let mut first = String::new();
    match std::fs::File::open(&file_path) {
        Ok(f) => {
            // A first line that is not text is no header of ours.
            let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(f), &mut first);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&file_path)(e)),
    }
    Ok(journal::flows_generation(&first).map(|_| (file_path, version)))
}

/// The version a bridge's `protocols` reads its rules in (OpenFlow 1.0 without one).
fn configured_version(table: &Table) -> Version {
    match table.get("protocols").and_then(Item::as_str) {
        Some(name) => Version::from_ofctl_list(name).unwrap_or(Version::Of10),
        None => Version::Of10,
    }
}

/// The journal record of `edits`, if they may be appended to `disk`'s journal (see the
/// module documentation).
fn journal_record(disk: &OnDisk, edits: &[RuleTextEdit], groups: &[String]) -> Option<Vec<u8>> {
    if disk.groups != groups || !journal::can_record(edits) {
        return None;
    }
    let added: Vec<String> = edits.iter().filter_map(|e| e.added().map(str::to_string)).collect();
    if version_reading_back(&added, disk.version).ok() != Some(disk.version) {
        return None;
    }
    let record = journal::record(edits);
    let journal_bytes = disk.journal.as_ref().map_or(0, |(_, n)| *n);
    (journal_bytes + record.len() as u64 <= JOURNAL_MIN_BYTES.max(disk.flows_bytes / 4)).then_some(record)
}

/// Appends `record` to `disk`'s journal (created first if need be) and syncs it.
fn append_record(disk: &mut OnDisk, record: &[u8]) -> Result<(), PersistError> {
    let jpath = journal::journal_path(&disk.flows_file);
    if disk.journal.is_none() {
        let name = disk.flows_file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut f = std::fs::File::create(&jpath).map_err(io(&jpath))?;
        f.write_all(journal::journal_header(&name, disk.stamp).as_bytes()).map_err(io(&jpath))?;
        f.sync_all().map_err(io(&jpath))?;
        let dir = jpath.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
        let len = f.metadata().map_err(io(&jpath))?.len();
        disk.journal = Some((f, len));
    }
    let Some((f, len)) = disk.journal.as_mut() else { unreachable!("created above") };
    f.write_all(record).and_then(|()| f.sync_data()).map_err(io(&jpath))?;
    *len += record.len() as u64;
    Ok(())
}

/// A generation for a flows file written whole: the time in nanoseconds, and always
/// another than `old`'s.
fn new_generation(old: u64) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    if now == old { now + 1 } else { now }
}

/// A flows file [`write_flows`] wrote whole: where, its size and the version its rules
/// are read in.
struct FlowsFileWritten {
    path: PathBuf,
    bytes: u64,
    version: Version,
    stamp: journal::FlowsStamp,
}

/// Makes `targets` the `controller` list of bridge `bridge` in the config at `path` (the
/// key goes when there are none), after `set-controller` / `del-controller`.
pub fn write_bridge_controllers(path: &Path, bridge: &str, targets: &[String]) -> Result<(), PersistError> {
    edit_bridge(path, bridge, |table| {
        if targets.is_empty() {
            table.remove("controller");
        } else {
            let same = table
                .get("controller")
                .and_then(Item::as_array)
                .is_some_and(|a| a.iter().map(|v| v.as_str()).eq(targets.iter().map(|t| Some(t.as_str()))));
            if !same {
                let array: Array = targets.iter().map(String::as_str).collect();
                table.insert("controller", Item::Value(Value::Array(array)));
            }
        }
        Ok(())
    })
}

/// Applies `edit` to the `[[bridge]]` table named `bridge` of the config at `path` and
/// writes the file back (atomically) if that changed it.
fn edit_bridge<T>(
    path: &Path,
    bridge: &str,
    edit: impl FnOnce(&mut Table) -> Result<T, PersistError>,
) -> Result<T, PersistError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut doc = text
        .parse::<DocumentMut>()
        .map_err(|e| PersistError::Toml { path: path.display().to_string(), message: e.to_string() })?;
    let no_bridge = || PersistError::NoBridge { path: path.display().to_string(), bridge: bridge.to_string() };
    let bridges = doc.get_mut("bridge").and_then(Item::as_array_of_tables_mut).ok_or_else(no_bridge)?;
    let table =
        bridges.iter_mut().find(|t| t.get("name").and_then(Item::as_str) == Some(bridge)).ok_or_else(no_bridge)?;
    let edited = edit(table)?;
    let new_text = doc.to_string();
    if new_text != text {
        atomic_write(path, new_text.as_bytes())?;
    }
    Ok(edited)
}

/// [`write_bridge_flows`]'s edit of the bridge's table (and its `flows_file`).
fn write_flows(
    table: &mut Table,
    path: &Path,
    bridge: &str,
    flows: &[String],
    groups: &[String],
    generation: u64,
) -> Result<Option<FlowsFileWritten>, PersistError> {
    let configured = configured_version(table);
    let version = version_reading_back(flows, configured).map_err(|message| PersistError::Protocols {
        path: path.display().to_string(),
        bridge: bridge.to_string(),
        message,
    })?;
    // A `protocols` list that reads the rules in the version they need stays as written.
    if version != configured {
        table.insert("protocols", toml_edit::value(version.ofctl_name()));
    }
    table.remove("rule");
    if !groups.is_empty() || table.contains_key("groups") {
        let mut array: Array = groups.iter().map(String::as_str).collect();
        for v in array.iter_mut() {
            v.decor_mut().set_prefix("\n    ");
        }
        array.set_trailing(if groups.is_empty() { "" } else { "\n" });
        array.set_trailing_comma(!groups.is_empty());
        match table.get_mut("groups").and_then(Item::as_array_mut) {
            Some(old) => {
                let decor = old.decor().clone();
                *old = array;
                *old.decor_mut() = decor;
            }
            None => {
                table.insert("groups", Item::Value(Value::Array(array)));
            }
        }
    }
    let flows_file = table.get("flows_file").and_then(Item::as_str).map(str::to_string);
    let flows_file = flows_file.or_else(|| (flows.len() > SIDE_FILE_RULES).then(|| side_file(table, path, bridge)));
    match flows_file {
        Some(file) => {
            table.remove("flows");
            let base = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let file_path = base.join(&file);
            // Written line by line: a million rules are 75 MB, not worth a copy in memory.
            let header = journal::flows_header(bridge, generation);
            atomic_write_with(&file_path, |w| {
                writeln!(w, "{header}")?;
                for f in flows {
                    w.write_all(f.as_bytes())?;
                    w.write_all(b"\n")?;
                }
                Ok(())
            })?;
            let bytes = header.len() as u64 + 1 + flows.iter().map(|f| f.len() as u64 + 1).sum::<u64>();
            let stamp = journal::FlowsStamp::of_lines(&header, generation, flows);
            return Ok(Some(FlowsFileWritten { path: file_path, bytes, version, stamp }));
        }
        None => {
            // The elements are written as the array's raw inner text (one basic string a
            // line, as the editor would lay them out): a million elements through the
            // editor cost an allocation per value and per decoration, most of a second.
            let mut inner = String::with_capacity(flows.iter().map(|f| f.len() + 8).sum::<usize>() + 1);
            for f in flows {
                inner.push_str("\n    ");
                push_basic_string(&mut inner, f);
                inner.push(',');
            }
            if !flows.is_empty() {
                inner.push('\n');
            }
            let mut array = Array::new();
            array.set_trailing(inner);
            match table.get_mut("flows") {
                Some(item) if item.is_array() => {
                    // Keep the key's own decoration (comments before it).
                    if let Some(old) = item.as_array_mut() {
                        let decor = old.decor().clone();
                        *old = array;
                        *old.decor_mut() = decor;
                    }
                }
                _ => {
                    table.insert("flows", Item::Value(Value::Array(array)));
                }
            }
        }
    }
    Ok(None)
}

/// Names a new side file for the rules of `bridge` (see the module documentation) in
/// its table, and returns the name.
fn side_file(table: &mut Table, path: &Path, bridge: &str) -> String {
    let config = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "ferrovs".into());
    let safe = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
    };
    let name = format!("{}.{}.flows", safe(&config), safe(bridge));
    table.insert("flows_file", toml_edit::value(name.as_str()));
    if let Some((mut key, _)) = table.get_key_value_mut("flows_file") {
        key.leaf_decor_mut().set_prefix(format!(
            "# More than {SIDE_FILE_RULES} rules: ferrovsd keeps them in this file (one ovs-ofctl line each) \
             and writes runtime changes back to it.\n"
        ));
    }
    name
}

/// Makes the `[[bridge]]` and `[[bridge.port]]` tables of the config at `path` describe
/// `bridges` (names, ports and their settings; rules are [`write_bridge_flows`]'s). See
/// the module doc for what is kept.
pub fn write_topology(path: &Path, bridges: &[BridgeConfig]) -> Result<(), PersistError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let mut doc = text
        .parse::<DocumentMut>()
        .map_err(|e| PersistError::Toml { path: path.display().to_string(), message: e.to_string() })?;
    if !doc.contains_key("bridge") {
        doc.insert("bridge", Item::ArrayOfTables(ArrayOfTables::new()));
    }
    let Some(tables) = doc.get_mut("bridge").and_then(Item::as_array_of_tables_mut) else {
        return Err(PersistError::Toml {
            path: path.display().to_string(),
            message: "`bridge` is not [[bridge]]".into(),
        });
    };
    let name_of = |t: &Table| t.get("name").and_then(Item::as_str).map(str::to_string);
    tables.retain(|t| name_of(t).is_some_and(|n| bridges.iter().any(|b| b.name == n)));
    for b in bridges {
        if !tables.iter().any(|t| name_of(t).as_deref() == Some(b.name.as_str())) {
            let mut t = Table::new();
            t.insert("name", toml_edit::value(b.name.as_str()));
            t.insert("flows", Item::Value(Value::Array(Array::new())));
            tables.push(t);
        }
        let Some(t) = tables.iter_mut().find(|t| name_of(t).as_deref() == Some(b.name.as_str())) else { continue };
        if !b.internal_port || t.contains_key("internal_port") {
            let same = t.get("internal_port").and_then(Item::as_bool) == Some(b.internal_port);
            if !same {
                t.insert("internal_port", toml_edit::value(b.internal_port));
            }
        }
        let ports: Vec<PortConfig> = b.user_ports().cloned().collect();
        write_ports(t, &ports);
    }
    let new_text = doc.to_string();
    if new_text != text {
        atomic_write(path, new_text.as_bytes())?;
    }
    Ok(())
}

/// Makes a bridge table's `[[bridge.port]]` tables describe `ports`, in that order.
fn write_ports(bridge: &mut Table, ports: &[PortConfig]) {
    let mut old: Vec<Table> = match bridge.remove("port") {
        Some(Item::ArrayOfTables(a)) => a.into_iter().collect(),
        _ => Vec::new(),
    };
    if ports.is_empty() {
        return;
    }
    let mut new = ArrayOfTables::new();
    for p in ports {
        let at = old.iter().position(|t| t.get("name").and_then(Item::as_str) == Some(p.name.as_str()));
        let mut t = match at {
            Some(i) => old.remove(i),
            None => {
                let mut t = Table::new();
                t.insert("name", toml_edit::value(p.name.as_str()));
                t
            }
        };
        set_if_changed(&mut t, "number", Value::from(i64::from(p.number)));
        set_if_changed(&mut t, "devargs", Value::from(p.devargs.as_str()));
        if p.rx_queues != 1 || t.contains_key("rx_queues") {
            set_if_changed(&mut t, "rx_queues", Value::from(i64::from(p.rx_queues)));
        }
        if p.mtu != DEFAULT_MTU || t.contains_key("mtu") {
            set_if_changed(&mut t, "mtu", Value::from(i64::from(p.mtu)));
        }
        if p.admin_down || t.contains_key("admin") {
            set_if_changed(&mut t, "admin", Value::from(if p.admin_down { "down" } else { "up" }));
        }
        if p.rxq_affinity.is_empty() {
            t.remove("rxq_affinity");
        } else {
            set_if_changed(&mut t, "rxq_affinity", Value::from(crate::ports::format_rxq_affinity(&p.rxq_affinity)));
        }
        new.push(t);
    }
    bridge.insert("port", Item::ArrayOfTables(new));
}

/// Sets `key` to `v` unless it already holds that value (so its decoration stays).
fn set_if_changed(t: &mut Table, key: &str, v: Value) {
    let same = match (t.get(key).and_then(Item::as_value), &v) {
        (Some(Value::Integer(a)), Value::Integer(b)) => a.value() == b.value(),
        (Some(Value::String(a)), Value::String(b)) => a.value() == b.value(),
        _ => false,
    };
    if !same {
        t.insert(key, Item::Value(v));
    }
}

/// Appends `s` as a TOML basic string (in double quotes, with `"`, backslash and control
/// characters escaped).
fn push_basic_string(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory of one test, removed when the test ends, failed or not.
    struct TempDir(PathBuf);

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for TempDir {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn temp_dir(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "ferrovs-persist-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    const CONFIG: &str = r#"# the operator's comment
[eal]
hugepages = false   # trailing comment

[[bridge]]
name = "br0"
# the rules
flows = ["in_port=1,actions=output:2"]

[[bridge.rule]]
priority = 5
match = "in_port=2"
actions = "output:1"

[[bridge.port]]
name = "a"
number = 1
devargs = "net_null0"

[[bridge]]
name = "br1"
flows_file = "br1.flows"
"#;

    #[test]
    fn the_written_rules_are_read_back_in_a_version_that_keeps_them() {
        let d = temp_dir("protocols");
        let p = d.join("f.toml");
        std::fs::write(&p, CONFIG).unwrap();
        std::fs::write(d.join("br1.flows"), "").unwrap();
        let load = || crate::Config::load(&p).unwrap().bridge("br0").unwrap().rules.clone();
        // OpenFlow 1.3's push + set-field: only 1.3 reads it back, so the bridge says so.
        let of13 = vec!["actions=push_vlan:0x8100,set_field:4101->vlan_vid,output:2".to_string()];
        write_bridge_flows(&p, "br0", &of13, &[]).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("protocols = \"OpenFlow13\""));
        assert_eq!(load()[0], crate::parse_flow(&of13[0]).unwrap());
        // OpenFlow 1.0's mod_vlan_vid (push only if needed) needs 1.0 back.
        let of10 = vec!["actions=mod_vlan_vid:5,output:2".to_string()];
        write_bridge_flows(&p, "br0", &of10, &[]).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("protocols = \"OpenFlow10\""));
        assert_eq!(load()[0], crate::parse_flow(&of10[0]).unwrap());
        // Both kinds: nothing is written, and the error says why.
        let before = std::fs::read_to_string(&p).unwrap();
        let both = [of10, of13].concat();
        let e = write_bridge_flows(&p, "br0", &both, &[]).unwrap_err();
        assert!(matches!(e, PersistError::Protocols { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), before);
    }

    #[test]
    fn flows_replace_every_rule_source_and_keep_the_rest_of_the_file() {
        let d = temp_dir("flows");
        let p = d.join("f.toml");
        std::fs::write(&p, CONFIG).unwrap();
        check_writable(&p).unwrap();
        let rules = vec!["priority=7,in_port=1,actions=output:2".to_string(), "actions=drop".to_string()];
        write_bridge_flows(&p, "br0", &rules, &[]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with("# the operator's comment\n[eal]\nhugepages = false   # trailing comment\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# the rules\nflows = [\n    \"priority=7,in_port=1,actions=output:2\",\n    \"actions=drop\",\n]"
            ),
            "{text}"
        );
        assert!(!text.contains("[[bridge.rule]]"), "{text}");
        assert!(text.contains("[[bridge.port]]\nname = \"a\""), "{text}");
        // Unchanged content: the file is not rewritten (same modification).
        let before = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_bridge_flows(&p, "br0", &rules, &[]).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), before);
        // No rules: an empty array.
        write_bridge_flows(&p, "br0", &[], &[]).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("flows = []"));
        assert!(matches!(write_bridge_flows(&p, "nope", &[], &[]), Err(PersistError::NoBridge { .. })));
    }

    #[test]
    fn groups_are_written_beside_the_rules_and_load_back() {
        let d = temp_dir("groups");
        let p = d.join("f.toml");
        std::fs::write(&p, CONFIG).unwrap();
        std::fs::write(d.join("br1.flows"), "").unwrap();
        let groups = vec![
            "group_id=1,type=all,bucket=actions=output:1,bucket=actions=output:2".to_string(),
            "group_id=2,type=indirect,bucket=actions=output:1".to_string(),
        ];
        let rules = vec!["priority=7,in_port=1,actions=group:1".to_string()];
        write_bridge_flows(&p, "br0", &rules, &groups).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(&format!("groups = [\n    \"{}\",\n    \"{}\",\n]", groups[0], groups[1])), "{text}");
        let loaded = crate::Config::load(&p).unwrap();
        let br0 = loaded.bridge("br0").unwrap();
        let back: Vec<String> = br0.groups.iter().map(|(id, g)| crate::group_text(*id, g)).collect();
        assert_eq!(back, groups);
        assert_eq!(br0.rules[0], crate::parse_flow(&rules[0]).unwrap());
        // The last group gone: an empty array, and the config still loads.
        write_bridge_flows(&p, "br0", &[], &[]).unwrap();
        assert!(std::fs::read_to_string(&p).unwrap().contains("groups = []"));
        assert!(crate::Config::load(&p).unwrap().bridge("br0").unwrap().groups.is_empty());
    }

    #[test]
    fn written_rules_read_back_the_same_whatever_their_characters() {
        let d = temp_dir("escape");
        let p = d.join("f.toml");
        std::fs::write(&p, CONFIG).unwrap();
        let rules =
            vec!["a\"b".to_string(), "c\\d\te\u{7f}".to_string(), "ünï".to_string(), "actions=drop".to_string()];
        write_bridge_flows(&p, "br0", &rules, &[]).unwrap();
        let doc: toml::Table = toml::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        let br0 = &doc["bridge"].as_array().unwrap()[0];
        let back: Vec<&str> = br0["flows"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(back, rules);
    }

    #[test]
    fn a_flows_file_gets_the_rules_and_leaves_no_temporary_behind() {
        let d = temp_dir("file");
        let p = d.join("f.toml");
        std::fs::write(&p, CONFIG).unwrap();
        std::fs::write(d.join("br1.flows"), "in_port=9,actions=drop\n").unwrap();
        write_bridge_flows(&p, "br1", &["in_port=3,actions=output:4".to_string()], &[]).unwrap();
        let flows = std::fs::read_to_string(d.join("br1.flows")).unwrap();
        assert!(flows.ends_with("\nin_port=3,actions=output:4\n") && flows.starts_with('#'), "{flows}");
        // The TOML did not need to change.
        assert_eq!(std::fs::read_to_string(&p).unwrap(), CONFIG);
        let left: Vec<_> = std::fs::read_dir(&*d).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn changes_after_a_whole_write_go_to_the_journal_and_load_back() {
        use journal::RuleTextEdit::{Add, Delete, Replace};
        let d = temp_dir("journal");
        let p = d.join("f.toml");
        std::fs::write(&p, CONFIG).unwrap();
        // br0's `[[bridge.rule]]` here is for the editor only: written out so the file loads.
        write_bridge_flows(&p, "br0", &[], &[]).unwrap();
        std::fs::write(d.join("br1.flows"), "in_port=9,actions=drop\n").unwrap();
        let flows_path = d.join("br1.flows");
        let journal_path = journal::journal_path(&flows_path);
        let load = || {
            let rules = crate::Config::load(&p).unwrap().bridge("br1").unwrap().rules.clone();
            rules.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let print = |texts: &[&str]| -> Vec<String> {
            texts.iter().map(|t| crate::parse_flow(t).unwrap().to_string()).collect()
        };
        let mut wb = RuleWriteBack::default();
        let mut flows = print(&["in_port=1,actions=output:2", "priority=7,tcp,actions=drop", "actions=drop"]);
        // Edits given the first time: still whole (nothing known of the file yet).
        assert_eq!(wb.write(&p, "br1", &flows, Some(&[]), &[]).unwrap(), Written::Whole);
        assert!(!journal_path.exists());
        assert_eq!(load(), flows);
        let whole = std::fs::read_to_string(&flows_path).unwrap();
        // Then each change is one record, and the flows file stays as it was.
        let added = print(&["priority=9,ip,actions=drop"])[0].clone();
        let modified = print(&["in_port=1,actions=output:3"])[0].clone();
        let edits = vec![
            Add(added.clone()),
            Replace { old: flows[0].clone(), new: modified.clone() },
            Delete(flows[1].clone()),
        ];
        flows = vec![modified, flows[2].clone(), added];
        assert!(matches!(wb.write(&p, "br1", &flows, Some(&edits), &[]).unwrap(), Written::Journal(n) if n > 0));
        assert_eq!(std::fs::read_to_string(&flows_path).unwrap(), whole);
        assert_eq!(load(), flows, "the flows file with its journal replayed");
        let more = print(&["priority=3,udp,actions=output:1"])[0].clone();
        flows.push(more.clone());
        assert!(matches!(wb.write(&p, "br1", &flows, Some(&[Add(more)]), &[]).unwrap(), Written::Journal(_)));
        assert_eq!(load(), flows);
        // A change of groups, unknown edits or a forgotten state: whole again, journal gone.
        let groups = vec!["group_id=1,type=all,bucket=actions=output:1".to_string()];
        assert_eq!(wb.write(&p, "br1", &flows, Some(&[]), &groups).unwrap(), Written::Whole);
        assert!(!journal_path.exists());
        assert_eq!(load(), flows);
        let last = flows.pop().unwrap();
        assert!(matches!(wb.write(&p, "br1", &flows, Some(&[Delete(last)]), &groups).unwrap(), Written::Journal(_)));
        assert!(journal_path.exists());
        assert_eq!(wb.write(&p, "br1", &flows, None, &groups).unwrap(), Written::Whole);
        assert!(!journal_path.exists());
        // A journal that outgrows its bound (a quarter of the flows file, at least
        // JOURNAL_MIN_BYTES) is folded in by a whole write.
        let many: Vec<String> = (0..30_000u32)
            .map(|i| {
                print(&[&format!("priority={},tcp,tp_dst={},actions=drop", i % 30_000 + 10, i % 60_000)])[0].clone()
            })
            .collect();
        let edits: Vec<_> = many.iter().cloned().map(Add).collect();
        flows.extend(many);
        assert_eq!(wb.write(&p, "br1", &flows, Some(&edits), &groups).unwrap(), Written::Whole);
        assert_eq!(load(), flows);
    }

    /// `CONFIG` in a directory of its own, with bridge br1's flows file holding `flows`:
    /// the directory, the config's path, the flows file's and its journal's.
    fn br1_with_flows_file(tag: &str, flows: &str) -> (TempDir, PathBuf, PathBuf, PathBuf) {
        let d = temp_dir(tag);
        let p = d.join("f.toml");
        std::fs::write(&p, CONFIG).unwrap();
        // br0's `[[bridge.rule]]` here is for the editor only: written out so the file loads.
        write_bridge_flows(&p, "br0", &[], &[]).unwrap();
        let flows_path = d.join("br1.flows");
        std::fs::write(&flows_path, flows).unwrap();
        let journal_path = journal::journal_path(&flows_path);
        (d, p, flows_path, journal_path)
    }

    #[test]
    fn a_flows_file_of_an_earlier_run_is_adopted_with_its_torn_tail_cut_off() {
        use journal::RuleTextEdit::{Add, Delete};
        let (_d, p, flows_path, journal_path) = br1_with_flows_file("adopt", "actions=drop\n");
        let load = || {
            let rules = crate::Config::load(&p).unwrap().bridge("br1").unwrap().rules.clone();
            rules.iter().map(ToString::to_string).collect::<Vec<_>>()
        };
        let print = |t: &str| crate::parse_flow(t).unwrap().to_string();
        // A file the operator wrote is not the daemon's.
        assert_eq!(daemon_flows_file(&p, "br1").unwrap(), None);
        let mut flows = vec![print("actions=drop"), print("priority=5,tcp,actions=output:1")];
        let mut earlier = RuleWriteBack::default();
        assert_eq!(earlier.write(&p, "br1", &flows, None, &[]).unwrap(), Written::Whole);
        let added = print("priority=6,udp,actions=drop");
        flows.push(added.clone());
        assert!(matches!(earlier.write(&p, "br1", &flows, Some(&[Add(added)]), &[]).unwrap(), Written::Journal(_)));
        drop(earlier);
        // A crash in the middle of a second append.
        let journal_text = std::fs::read_to_string(&journal_path).unwrap();
        std::fs::write(&journal_path, format!("{journal_text}+ priority=7,actions=drop\ncommit 1 00")).unwrap();
        assert_eq!(load(), flows, "the torn record is left out at start");

        // The next run: rules printed otherwise are not adopted, and nothing changes.
        let (file, version) = daemon_flows_file(&p, "br1").unwrap().expect("written by the daemon");
        assert_eq!((file.as_path(), version), (flows_path.as_path(), Version::Of10));
        let mut wb = RuleWriteBack::default();
        let other: Vec<String> = flows.iter().map(|f| f.replace("actions=drop", "actions=drop ")).collect();
        assert!(!wb.adopt("br1", &file, version, &other, &[]).unwrap());
        assert!(!wb.adopt("br1", &file, version, &flows[..2], &[]).unwrap());
        let whole = std::fs::read_to_string(&flows_path).unwrap();
        assert!(std::fs::read_to_string(&journal_path).unwrap().ends_with("commit 1 00"));
        // The rules as loaded: adopted, the tail cut off, the next change one record.
        assert!(wb.adopt("br1", &file, version, &flows, &[]).unwrap());
        assert_eq!(std::fs::read_to_string(&journal_path).unwrap(), journal_text);
        let gone = flows.remove(1);
        assert!(matches!(wb.write(&p, "br1", &flows, Some(&[Delete(gone)]), &[]).unwrap(), Written::Journal(_)));
        assert_eq!(std::fs::read_to_string(&flows_path).unwrap(), whole, "the flows file stays");
        assert_eq!(load(), flows, "the records before and after the cut replay");
        // Groups other than the adopted ones: whole, as any change of groups.
        let groups = vec!["group_id=1,type=all,bucket=actions=output:1".to_string()];
        assert_eq!(wb.write(&p, "br1", &flows, Some(&[]), &groups).unwrap(), Written::Whole);
        assert!(!journal_path.exists());
        assert_eq!(load(), flows);
        // A journal of an older generation beside the file: replaced by the first append.
        std::fs::write(&journal_path, journal_text).unwrap();
        let mut wb = RuleWriteBack::default();
        let (file, version) = daemon_flows_file(&p, "br1").unwrap().expect("written by the daemon");
        assert!(wb.adopt("br1", &file, version, &flows, &groups).unwrap());
        let added = print("priority=8,actions=drop");
        flows.push(added.clone());
        assert!(matches!(wb.write(&p, "br1", &flows, Some(&[Add(added)]), &groups).unwrap(), Written::Journal(_)));
        assert_eq!(load(), flows);
    }

    #[test]
    fn a_journal_of_another_generation_is_ignored_and_a_damaged_one_refused() {
        use journal::RuleTextEdit::Add;
        let (_d, p, flows_path, journal_path) = br1_with_flows_file("stale", "");
        let load = || crate::Config::load(&p).map(|c| c.bridge("br1").unwrap().rules.len());
        let mut wb = RuleWriteBack::default();
        let flows = vec![crate::parse_flow("actions=drop").unwrap().to_string()];
        wb.write(&p, "br1", &flows, None, &[]).unwrap();
        let added = crate::parse_flow("priority=5,actions=drop").unwrap().to_string();
        wb.write(&p, "br1", &[flows.clone(), vec![added.clone()]].concat(), Some(&[Add(added)]), &[]).unwrap();
        assert_eq!(load().unwrap(), 2);
        let journal = std::fs::read_to_string(&journal_path).unwrap();
        // A crash after a whole write, before the old journal went: the file is newer.
        let whole = std::fs::read_to_string(&flows_path).unwrap();
        let newer = whole.replacen("(generation ", "(generation 1", 1);
        std::fs::write(&flows_path, &newer).unwrap();
        assert_eq!(load().unwrap(), 1, "a journal of another generation is not replayed");
        // The same generation edited by hand: an error that says what to do.
        std::fs::write(&flows_path, whole.replace("actions=drop", "actions=output:1")).unwrap();
        let e = load().unwrap_err();
        assert!(e.message.contains("edited after ferrovsd wrote it") && e.file == journal_path, "{e}");
        std::fs::write(&flows_path, &whole).unwrap();
        assert_eq!(load().unwrap(), 2);
        // A record damaged before a whole one: the error names the journal's line.
        let second = String::from_utf8(journal::record(&[Add("priority=6,actions=drop".into())])).unwrap();
        std::fs::write(&journal_path, format!("{}{second}", journal.replacen("priority=5", "priority=4", 1))).unwrap();
        let e = load().unwrap_err();
        assert_eq!(e.file, journal_path);
        assert_eq!(e.position.map(|p| p.line), Some(3), "{e}");
        // A rule that does not parse: the error points at it in the journal.
        let bad = String::from_utf8(journal::record(&[Add("priority=6,nw_ttl=900,actions=drop".into())])).unwrap();
        std::fs::write(&journal_path, format!("{journal}{bad}")).unwrap();
        let e = load().unwrap_err();
        assert_eq!((e.file.clone(), e.position.map(|p| p.line)), (journal_path.clone(), Some(5)), "{e}");
        assert!(e.position.unwrap().column > 2, "{e}");
    }

    #[test]
    fn a_large_rule_set_moves_to_a_side_file_named_in_the_config() {
        let d = temp_dir("side");
        let p = d.join("sw.toml");
        std::fs::write(&p, CONFIG).unwrap();
        std::fs::write(d.join("br1.flows"), "").unwrap();
        let many: Vec<String> =
            (0..=SIDE_FILE_RULES as u32).map(|i| format!("priority={},in_port=1,actions=drop", i % 60_000)).collect();
        write_bridge_flows(&p, "br0", &many, &[]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("flows_file = \"sw.br0.flows\"") && !text.contains("flows = ["), "{text}");
        assert!(text.contains("# More than 10000 rules"), "the config says why: {text}");
        assert!(text.starts_with("# the operator's comment"), "the rest of the file stays");
        let side = std::fs::read_to_string(d.join("sw.br0.flows")).unwrap();
        assert_eq!(side.lines().filter(|l| !l.starts_with('#')).count(), many.len());
        let c = crate::Config::load(&p).unwrap();
        let want: Vec<_> = many.iter().map(|t| crate::parse_flow(t).unwrap()).collect();
        assert_eq!(c.bridge("br0").unwrap().rules, want, "read back from the side file");
        // Later changes, even small ones, keep the side file.
        write_bridge_flows(&p, "br0", &many[..1], &[]).unwrap();
        assert_eq!(crate::Config::load(&p).unwrap().bridge("br0").unwrap().rules, want[..1]);
        assert_eq!(std::fs::read_to_string(d.join("sw.br0.flows")).unwrap().lines().count(), 2);
    }

    #[test]
    fn unwritable_or_broken_configs_are_refused() {
        let d = temp_dir("bad");
        let p = d.join("f.toml");
        assert!(matches!(check_writable(&p), Err(PersistError::Io { .. })));
        std::fs::write(&p, "[[bridge]\n").unwrap();
        assert!(matches!(check_writable(&p), Err(PersistError::Toml { .. })));
    }

    #[test]
    fn topology_follows_the_running_bridges_and_keeps_comments() {
        let d = temp_dir("topology");
        let p = d.join("f.toml");
        let config = "[[bridge]]\nname = \"br0\"\nflows = [\"actions=drop\"]\n\n[[bridge.port]]\nname = \"a\"\n\
                      number = 1  # the uplink\ndevargs = \"net_null0\"\n\n[[bridge]]\nname = \"br1\"\n";
        std::fs::write(&p, config).unwrap();
        let mut c = crate::Config::load(&p).unwrap();
        // br1 goes, br2 comes with two ports, br0 gets a second port and port a's MTU.
        c.bridges.retain(|b| b.name != "br1");
        assert!(c.bridges[0].ports[0].is_internal());
        c.bridges[0].ports[1].mtu = 9000;
        let port = |name: &str, number, devargs: &str| PortConfig {
            name: name.into(),
            number,
            devargs: devargs.into(),
            device: crate::parse_devargs(devargs).unwrap(),
            rx_queues: 1,
            mtu: DEFAULT_MTU,
            admin_down: false,
            rxq_affinity: Vec::new(),
        };
        c.bridges[0].ports.push(PortConfig { admin_down: true, ..port("b", 2, "net_null1") });
        let mut br2 = BridgeConfig::new("br2", true);
        br2.ports.extend([
            port("c", 3, "net_tap0,iface=x0"),
            PortConfig { rx_queues: 4, rxq_affinity: vec![(0, 1), (3, 1)], ..port("d", 4, "net_null2") },
        ]);
        c.bridges.push(br2);
        // A bridge without an internal port says so in the file.
        c.bridges.push(BridgeConfig::new("br3", false));
        write_topology(&p, &c.bridges).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("number = 1  # the uplink"), "{text}");
        assert!(!text.contains("br1"), "{text}");
        assert!(!text.contains("LOCAL") && !text.contains("4294967294"), "{text}");
        assert_eq!(text.matches("internal_port = false").count(), 1, "{text}");
        assert!(text.contains("admin = \"down\"") && text.contains("rxq_affinity = \"0:1,3:1\""), "{text}");
        let back = crate::Config::load(&p).unwrap();
        assert_eq!(back.bridges, c.bridges, "{text}");
        // The last port of a bridge goes: the bridge stays, without port tables.
        c.bridges[1].ports.truncate(1);
        // Port b comes up and d's pins go (with d): `admin` says up, no `rxq_affinity` left.
        c.bridges[0].ports[2].admin_down = false;
        write_topology(&p, &c.bridges).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("admin = \"up\"") && !text.contains("rxq_affinity"), "{text}");
        assert_eq!(crate::Config::load(&p).unwrap().bridges, c.bridges);
    }
}
