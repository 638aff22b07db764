//! The error of the OpenFlow-lite parsers: a position and a reason.

use crate::rules::Position;

/// A rule, match or packet that did not parse. `position` is 1-based; for a single line
/// (`parse_flow`) the line is 1, for a file (`parse_flows`) it is the file's line. The
/// column counts characters (not bytes) and points at the offending key or value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{}: {reason}", position.line, position.column)]
pub struct RuleError {
    pub position: Position,
    pub reason: String,
}

impl RuleError {
    pub(crate) fn new(position: Position, reason: impl Into<String>) -> Self {
        RuleError { position, reason: reason.into() }
    }
}
