#![forbid(unsafe_code)]
//! ferrovs configuration: the TOML switch config and OpenFlow-lite rules, parsed into
//! typed values. Every error names the line and column it was found at.
//!
//! - [`Config`]: the TOML switch config (`Config::load`), resolved and checked, with
//!   [`ConfigError`]s that say `FILE:LINE:COL: key: message`; the schema is in
//!   `config/README.md`.
//! - [`rules`]: the typed rule model ([`Rule`], [`Match`], [`Action`]...).
//! - [`field`]: the table of match fields ([`FIELDS`]): names, storage ([`MatchSlot`]),
//!   syntax, masking and prerequisites, which drives parsing and printing.
//! - [`parse_flow`], [`parse_flows`], [`parse_match`], [`parse_packet`]: `ovs-ofctl`
//!   syntax into that model; `Display` on [`Rule`], [`Match`] and [`Action`] prints it
//!   back.

mod action_parse;
mod bridges;
mod config;
mod display;
mod error;
pub mod field;
mod field_value;
mod flow_parse;
mod flow_syntax;
mod group_parse;
mod hugepages;
mod match_builder;
mod name_index;
pub mod openflow;
pub mod persist;
mod ports;
mod resolve;
mod rule_error;
pub mod rules;
mod schema;
mod source_map;
mod values;

pub use action_parse::{ACTION_NAMES, SET_FIELD_NAMES};
pub use bridges::{check_topology, dangling_ports};
pub use config::{
    BURST_SIZE, BridgeConfig, Config, ControlConfig, ControllerTarget, DEFAULT_CONTROL_SOCKET, EalConfig, FailMode,
    FlowConfig, MetricsConfig, PmdConfig, PortConfig, SystemFacts, validate,
};
pub use display::{PortName, format_actions, rule_text};
pub use error::ConfigError;
pub use field::{FIELDS, FieldDef, Masking, MatchSlot, Prereq, SlotStorage, ValueKind, field_by_name};
pub use flow_parse::{MatchSpec, newlines, parse_flow, parse_flows, parse_match, parse_packet};
pub use group_parse::{group_text, parse_group};
pub use hugepages::{HugepageReservation, HugepageSize, HugepagesConfig};
pub use ports::{
    DEFAULT_MTU, INTERNAL_DEVICE_PREFIX, LOCAL_PORT, MAX_MTU, MAX_NAME_LEN, MAX_PORT_NUMBER, MAX_RX_QUEUES, MIN_MTU,
    PortDevice, PortRegistry, RxqAffinity, check_interface_name, check_mtu, check_name, check_port_number,
    check_rx_queues, check_rxq_affinity, format_rxq_affinity, is_no_port, parse_admin, parse_devargs,
    parse_rxq_affinity, port_from_16, port_to_16,
};
pub use rule_error::RuleError;
pub use rules::{
    Action, Group, GroupError, GroupKind, Groups, Masked, Match, OFPG_MAX, Position, Resubmit, Rule, SetField,
};
