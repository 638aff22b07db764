//! Errors of the switch API.

use ferrovs_dpdk::DpdkError;

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("invalid switch configuration: {0}")]
    Invalid(String),
    #[error("duplicate {0}")]
    Duplicate(String),
    #[error("PMD core {core} does not exist (online CPUs: {online:?})")]
    NoSuchCore { core: usize, online: Vec<usize> },
    #[error("port {port:?}: {source}")]
    Port { port: String, source: DpdkError },
    #[error("{0}")]
    Dpdk(#[from] DpdkError),
    #[error("PMD thread {pmd} failed to start: {reason}")]
    ThreadStart { pmd: usize, reason: String },
    #[error("no port named {0:?}")]
    NoSuchPort(String),
    #[error("no PMD thread {0}")]
    NoSuchPmd(usize),
    #[error("PMD thread {0} has stopped")]
    PmdGone(usize),
    #[error("PMD thread {0}'s message queue is full")]
    QueueFull(usize),
}
