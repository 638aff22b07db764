//! The one error type of the config loader.

use crate::rules::Position;
use std::fmt;
use std::path::PathBuf;

/// A config that could not be loaded or validated.
///
/// Displays as `FILE:LINE:COL: KEY: message` (or `FILE: message` when there is no
/// position, e.g. an unreadable file). `key` is the path of the offending key, such as
/// `bridge[0].port[1].number`, empty when the error is about the whole file. For a rule
/// in a `flows_file`, `file` and `position` point into that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub position: Option<Position>,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if let Some(p) = self.position {
            write!(f, "{}:{}:", p.line, p.column)?;
        }
        if !self.key.is_empty() {
            write!(f, " {}:", self.key)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for ConfigError {}
