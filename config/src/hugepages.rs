//! `[hugepages]`: how many hugepages of which size to reserve on each NUMA node before
//! ferrovsd starts.
//!
//! # Why the plan lives here
//!
//! The reservation is made by `deploy/hugepages.sh` (run by `ferrovs-hugepages.service`
//! with no capabilities), not by ferrovsd, because the kernel must find the pages before
//! DPDK starts and a reservation made early after boot is the one that succeeds (memory
//! is not yet fragmented). The script must not parse TOML itself: one parser (this crate)
//! reads the config, and `ferrovsd --print-hugepages` prints the [`HugepagesConfig::plan`]
//! as plain lines the script reads.
//!
//! `pages = N` reserves all N pages on node 0 (the node of a single-socket machine and,
//! on most boards, of the first NIC); a multi-socket machine lists a count per node with
//! `pages_per_node = [N0, N1, ...]`, so that each PMD's memory is local to its NIC.

use crate::error::ConfigError;
use crate::resolve::Ctx;
use crate::schema::RawHugepages;
use std::fmt;
use toml::Spanned;

/// A hugepage size the kernel offers on x86-64 and arm64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugepageSize {
    /// `"2M"`.
    Size2M,
    /// `"1G"`: needs a hugetlbfs mounted with `pagesize=1G` (`dev-hugepages1G.mount`).
    Size1G,
}

impl HugepageSize {
    /// The size in KiB, as in the kernel's `hugepages-<KiB>kB` directories.
    pub fn kib(self) -> u64 {
        match self {
            HugepageSize::Size2M => 2048,
            HugepageSize::Size1G => 1024 * 1024,
        }
    }
}

impl fmt::Display for HugepageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HugepageSize::Size2M => "2M",
            HugepageSize::Size1G => "1G",
        })
    }
}

/// `[hugepages]`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugepagesConfig {
    /// `size`: `"2M"` or `"1G"` (required).
    pub size: HugepageSize,
    /// Pages per NUMA node, node 0 first: `pages_per_node` as written, or `[pages]`.
    pub pages_per_node: Vec<u32>,
}

/// One line of the plan: reserve `pages` pages of `size` on NUMA node `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HugepageReservation {
    pub node: usize,
    pub size: HugepageSize,
    pub pages: u32,
}

impl fmt::Display for HugepageReservation {
    /// `NODE SIZE_KIB PAGES`, the line format `deploy/hugepages.sh` reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.node, self.size.kib(), self.pages)
    }
}

impl HugepagesConfig {
    /// One reservation per node, node 0 first (nodes with 0 pages included: writing 0
    /// releases pages an earlier plan reserved there).
    pub fn plan(&self) -> Vec<HugepageReservation> {
        self.pages_per_node
            .iter()
            .enumerate()
            .map(|(node, &pages)| HugepageReservation { node, size: self.size, pages })
            .collect()
    }
}

/// `[hugepages]`: a size, and exactly one of `pages` and `pages_per_node`.
pub(crate) fn resolve_hugepages(raw: &Spanned<RawHugepages>, ctx: &Ctx<'_>) -> Result<HugepagesConfig, ConfigError> {
    let h = raw.get_ref();
    let size = match h.size.get_ref().as_str() {
        "2M" => HugepageSize::Size2M,
        "1G" => HugepageSize::Size1G,
        other => {
            return Err(ctx.err(h.size.span().start, "hugepages.size", format!("`{other}` is not \"2M\" or \"1G\"")));
        }
    };
    let pages_per_node = match (&h.pages, &h.pages_per_node) {
        (Some(n), None) => vec![*n.get_ref()],
        (None, Some(list)) if list.get_ref().is_empty() => {
            return Err(ctx.err(list.span().start, "hugepages.pages_per_node", "needs a count for node 0 at least"));
        }
        (None, Some(list)) => list.get_ref().iter().map(|n| *n.get_ref()).collect(),
        (Some(_), Some(list)) => {
            return Err(ctx.err(
                list.span().start,
                "hugepages.pages_per_node",
                "give either `pages` (all on node 0) or `pages_per_node`, not both",
            ));
        }
        (None, None) => {
            return Err(ctx.err(raw.span().start, "hugepages", "needs `pages` or `pages_per_node`"));
        }
    };
    Ok(HugepagesConfig { size, pages_per_node })
}

#[cfg(test)]
mod tests {
    use crate::{Config, ConfigError, HugepageSize};

    fn load(section: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "{section}\n[[bridge]]\nname = \"br0\"\n[[bridge.port]]\nname = \"p1\"\nnumber = 1\ndevargs = \"net_null0\"\n"
        );
        Config::from_str(&text, std::env::temp_dir())
    }

    fn plan_lines(section: &str) -> Vec<String> {
        let c = load(section).unwrap_or_else(|e| panic!("{e}"));
        c.hugepages.expect("a [hugepages] section").plan().iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn no_section_means_no_plan() {
        assert_eq!(load("").unwrap().hugepages, None);
    }

    #[test]
    fn pages_go_to_node_zero() {
        assert_eq!(plan_lines("[hugepages]\nsize = \"2M\"\npages = 1024"), ["0 2048 1024"]);
    }

    #[test]
    fn pages_per_node_in_node_order() {
        let lines = plan_lines("[hugepages]\nsize = \"1G\"\npages_per_node = [4, 0, 2]");
        assert_eq!(lines, ["0 1048576 4", "1 1048576 0", "2 1048576 2"]);
        let c = load("[hugepages]\nsize = \"1G\"\npages_per_node = [1]").unwrap();
        assert_eq!(c.hugepages.unwrap().size, HugepageSize::Size1G);
    }

    fn err(section: &str) -> (u32, u32, String, String) {
        let e = load(section).expect_err(section);
        let p = e.position.expect("a position");
        (p.line, p.column, e.key, e.message)
    }

    #[test]
    fn bad_sections_are_refused_where_they_are() {
        let (line, col, key, msg) = err("[hugepages]\nsize = \"4K\"\npages = 1");
        assert_eq!((line, col, key.as_str()), (2, 8, "hugepages.size"));
        assert!(msg.contains("4K"), "{msg}");
        let (line, col, key, msg) = err("[hugepages]\nsize = \"2M\"\npages = 1\npages_per_node = [1, 2]");
        assert_eq!((line, col, key.as_str()), (4, 18, "hugepages.pages_per_node"));
        assert!(msg.contains("not both"), "{msg}");
        let (line, _, key, _) = err("[hugepages]\nsize = \"2M\"\npages_per_node = []");
        assert_eq!((line, key.as_str()), (3, "hugepages.pages_per_node"));
        let (_, _, key, msg) = err("[hugepages]\nsize = \"2M\"\n");
        assert_eq!(key, "hugepages");
        assert!(msg.contains("pages_per_node"), "{msg}");
        let (line, _, key, _) = err("[hugepages]\nsize = \"2M\"\npages = -1");
        assert_eq!((line, key.as_str()), (3, "hugepages.pages"));
        let (_, _, key, _) = err("[hugepages]\nsize = \"2M\"\nnodes = 2");
        assert!(key.starts_with("hugepages"), "{key}");
    }
}
