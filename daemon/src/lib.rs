#![forbid(unsafe_code)]
//! ferrovsd, the switch daemon, and the pieces ferrovs-ctl shares with it.
//!
//! - `protocol`: the JSON-lines control protocol.
//! - `control`: the control socket server (and the client side used by ferrovs-ctl).
//! - `render`: text rendering of replies.

pub mod control;
pub mod logging;
pub mod protocol;
pub mod render;
pub mod sd_notify;
pub mod unixctl;

/// Where the control socket lives unless the config says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/ferrovs/ferrovsd.sock";
pub mod daemon;
pub mod datapath;
pub mod flowfmt;
pub mod slow_path;
