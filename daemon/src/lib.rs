#![forbid(unsafe_code)]
//! ferrovsd, the switch daemon, and the pieces ferrovs-ctl shares with it.
//!
//! - `protocol`: the JSON-lines control protocol: requests, typed replies, and
//!   `protocol::parse_request`, the daemon's whole request parser.
//! - `control`: the control socket server (and the client side used by ferrovs-ctl).
//! - `render`: text rendering of replies.
//! - `capture_client`: `ferrovs-ctl capture`'s side of a capture (the stream to pcapng);
//!   `capture` is the daemon's (arming, filtering, streaming).
//! - `daemon`, `datapath`, `slow_path_thread`, `flowfmt`: the daemon itself (feature `switch`, on
//!   by default; without it the crate needs no DPDK, for ferrovs-ctl-like clients and
//!   fuzz targets of `protocol::parse_request`).
//!
//! The default control socket path is the config's (`ferrovs_config::DEFAULT_CONTROL_SOCKET`),
//! so a daemon without `[control] socket` and a ferrovs-ctl without `--socket` meet.

pub mod auto_rebalance;
pub mod capture_client;
pub mod control;
pub mod protocol;
pub mod published;
pub mod render;
pub mod socket_server;
pub mod topology;
pub mod unixctl;

#[cfg(feature = "switch")]
pub mod logging;
#[cfg(feature = "switch")]
pub mod sd_notify;

#[cfg(feature = "switch")]
pub mod appctl;
#[cfg(feature = "switch")]
pub mod capture;
#[cfg(feature = "switch")]
pub mod daemon;
#[cfg(feature = "switch")]
pub mod datapath;
#[cfg(feature = "switch")]
pub mod device_watch;
#[cfg(feature = "switch")]
pub mod dpdk_telemetry;
#[cfg(feature = "switch")]
pub mod flowfmt;
#[cfg(feature = "switch")]
pub mod metrics;
#[cfg(feature = "switch")]
pub mod openflow;
#[cfg(feature = "switch")]
pub mod reconcile;
#[cfg(feature = "switch")]
pub mod slow_path_thread;
