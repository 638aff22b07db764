//! The TOML file as written: serde structs that mirror the file's tables one to one,
//! with every value wrapped in [`Spanned`] so that later checks can say where it was.
//!
//! # Design
//!
//! Deserialization does only what serde can check locally: every table denies unknown
//! keys and every value has a type. Defaults, cross-checks (duplicate ports, the PMD core
//! list...) and rule parsing happen afterwards in [`crate::config`], which turns these
//! raw structs into the resolved [`crate::Config`]. Keeping the two apart means the
//! schema stays a readable description of the file format.
//!
//! A `[[bridge.rule]]` table is not a fixed struct: its keys are `ovs-ofctl` match field
//! names, so it is read as a list of `(key, value)` pairs with their spans and handed to
//! the same field parser as rule lines.

use crate::error::ConfigError;
use crate::source_map::SourceMap;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::path::Path;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub eal: RawEal,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub pmd: RawPmd,
    #[serde(default)]
    pub flow: RawFlow,
    #[serde(default)]
    pub metrics: RawMetrics,
    pub hugepages: Option<Spanned<RawHugepages>>,
    #[serde(default)]
    pub bridge: Vec<Spanned<RawBridge>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEal {
    pub memory_mb: Option<Spanned<u32>>,
    pub hugepages: Option<bool>,
    pub main_lcore: Option<Spanned<usize>>,
    pub log_level: Option<Spanned<String>>,
    #[serde(default)]
    pub extra_args: Vec<String>,
    pub no_pci: Option<bool>,
    pub file_prefix: Option<Spanned<String>>,
    pub huge_dir: Option<Spanned<String>>,
    pub capture: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawControl {
    pub socket: Option<Spanned<String>>,
    pub socket_group: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHugepages {
    pub size: Spanned<String>,
    pub pages: Option<Spanned<u32>>,
    pub pages_per_node: Option<Spanned<Vec<Spanned<u32>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPmd {
    pub cores: Option<Spanned<Vec<Spanned<usize>>>>,
    pub idle_backoff_us: Option<Spanned<u32>>,
    pub burst: Option<Spanned<u32>>,
    pub auto_rebalance_interval_s: Option<Spanned<u32>>,
    pub auto_rebalance_threshold: Option<Spanned<u32>>,
    pub share_main_lcore: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlow {
    pub limit_per_pmd: Option<Spanned<u32>>,
    pub idle_expiry_ms: Option<Spanned<u64>>,
    pub upcall_queue_len: Option<Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBridge {
    pub name: Spanned<String>,
    #[serde(default)]
    pub port: Vec<Spanned<RawPort>>,
    #[serde(default)]
    pub flows: Vec<Spanned<String>>,
    pub flows_file: Option<Spanned<String>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
    /// OpenFlow 1.3 groups in `ovs-ofctl add-group` syntax.
    #[serde(default)]
    pub groups: Vec<Spanned<String>>,
    #[serde(default)]
    pub controller: Vec<Spanned<String>>,
    pub fail_mode: Option<Spanned<String>>,
    pub datapath_id: Option<Spanned<String>>,
    /// Whether the bridge has an internal port (default true).
    pub internal_port: Option<Spanned<bool>>,
    /// The OpenFlow version the bridge's rules are read in, as `ovs-ofctl -O` (default
    /// OpenFlow10, as `ovs-ofctl`).
    pub protocols: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPort {
    pub name: Spanned<String>,
    pub number: Spanned<i64>,
    pub devargs: Spanned<String>,
    pub rx_queues: Option<Spanned<i64>>,
    pub mtu: Option<Spanned<i64>>,
    /// `"up"` or `"down"`.
    pub admin: Option<Spanned<String>>,
    /// `"QUEUE:CPU,..."`.
    pub rxq_affinity: Option<Spanned<String>>,
}

/// A value in a `[[bridge.rule]]` table.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RuleValue {
    Int(i64),
    Str(String),
    /// A list of strings (`actions = ["output:1", ...]`), each with its span.
    List(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for RuleValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RuleValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer, a string or an array of strings")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RuleValue, E> {
                Ok(RuleValue::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RuleValue, E> {
                i64::try_from(v).map(RuleValue::Int).map_err(|_| E::custom("integer out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RuleValue, E> {
                Ok(RuleValue::Str(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RuleValue, E> {
                Ok(RuleValue::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RuleValue, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(RuleValue::List(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// A `[[bridge.rule]]` table: its keys and values in file order.
#[derive(Debug)]
pub(crate) struct RawRule {
    pub fields: Vec<(Spanned<String>, Spanned<RuleValue>)>,
}

impl<'de> Deserialize<'de> for RawRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRule;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of rule fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRule, A::Error> {
                let mut fields = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Spanned<RuleValue>>()?;
                    fields.push((key, value));
                }
                fields.sort_by_key(|(k, _)| k.span().start);
                Ok(RawRule { fields })
            }
        }
        d.deserialize_map(V)
    }
}

/// Pass 1 of loading: the TOML text into [`RawConfig`], with the key path and position
/// of the first error.
pub(crate) fn deserialize(text: &str, file: &Path, map: &SourceMap<'_>) -> Result<RawConfig, ConfigError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // toml's `Spanned` shows up in the path as a private field: leave it out.
        let mut path = e.path().to_string().replace(".$__serde_spanned_private_value", "");
        let inner = e.into_inner();
        // The keys of a `[[bridge.rule]]` table are read with their spans, which hides
        // them from the path (`?`); recover the key from the `KEY = VALUE` line.
        let hidden_key =
            path.find('?').zip(inner.span()).and_then(|(q, span)| Some((q, key_before(map.text(), span.start)?)));
        if let Some((q, key)) = hidden_key {
            path.replace_range(q..q + 1, key);
        }
        ConfigError {
            file: file.to_path_buf(),
            position: inner.span().map(|s| map.position(s.start)),
            key: if path == "." { String::new() } else { path },
            message: inner.message().trim_end().replace('\n', ": "),
        }
    })
}

/// The bare key of a `KEY = ...` line whose value starts at byte `offset`.
fn key_before(text: &str, offset: usize) -> Option<&str> {
    let line_start = text.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let (key, rest) = text.get(line_start..offset)?.split_once('=')?;
    let key = key.trim();
    let simple = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (simple && !rest.contains('=')).then_some(key)
}
