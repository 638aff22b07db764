#![forbid(unsafe_code)]
//! ferrovs configuration: the TOML switch config and OpenFlow-lite rules, parsed into
//! typed values. Every error names the line and column it was found at.
//!
//! - [`Config`]: the TOML switch config (`Config::load`), resolved and checked, with
//!   [`ConfigError`]s that say `FILE:LINE:COL: key: message`; the schema is in
//!   `config/README.md`.
//! - [`rules`]: the typed rule model ([`Rule`], [`Match`], [`Action`]...).
//! - [`parse_flow`], [`parse_flows`], [`parse_match`], [`parse_packet`]: `ovs-ofctl`
//!   syntax into that model; `Display` on [`Rule`], [`Match`] and [`Action`] prints it
//!   back.

mod action_parse;
mod config;
mod display;
mod error;
mod flow_parse;
mod flow_syntax;
mod match_parse;
pub mod openflow;
mod rule_error;
pub mod rules;
mod schema;
mod source_map;
mod values;

pub use config::{
    BURST_SIZE, BridgeConfig, Config, ControlConfig, DEFAULT_CONTROL_SOCKET, EalConfig, FlowConfig, PmdConfig,
    PortConfig, PortDevice, SystemFacts, validate,
};
pub use display::format_actions;
pub use error::ConfigError;
pub use flow_parse::{MatchSpec, parse_flow, parse_flows, parse_match, parse_packet};
pub use rule_error::RuleError;
pub use rules::{Action, Masked, Match, Position, Resubmit, Rule, SetField};
pub use values::MAX_PORT_NUMBER;
