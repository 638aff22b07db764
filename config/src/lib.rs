#![forbid(unsafe_code)]
//! ferrovs configuration: the TOML switch config and OpenFlow-lite rules, parsed into
//! typed values. Every error names the line and column it was found at.
//!
//! - [`rules`]: the typed rule model ([`Rule`], [`Match`], [`Action`]...).
//! - [`parse_flow`], [`parse_flows`], [`parse_match`], [`parse_packet`]: `ovs-ofctl`
//!   syntax into that model; `Display` on [`Rule`], [`Match`] and [`Action`] prints it
//!   back.

mod action_parse;
mod display;
mod flow_parse;
mod flow_syntax;
mod match_parse;
mod rule_error;
pub mod rules;
mod values;

pub use display::format_actions;
pub use flow_parse::{parse_flow, parse_flows, parse_match, parse_packet, MatchSpec};
pub use rule_error::RuleError;
pub use rules::{Action, Masked, Match, Position, Resubmit, Rule, SetField};
pub use values::MAX_PORT_NUMBER;
