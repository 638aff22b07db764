#![forbid(unsafe_code)]
//! ferrovs configuration: the TOML switch config and OpenFlow-lite rules, parsed into
//! typed values. Every error names the line and column it was found at.

pub mod rules;
