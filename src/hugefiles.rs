//! The hugepage files a file-backed EAL leaves behind, and their removal at exit.
//!
//! # Why
//!
//! Unless the EAL runs `--in-memory` (or without hugepages), every hugepage it maps is a
//! file `PREFIXmap_N` in a hugetlbfs mount, so that secondary processes (the capture
//! tools, see [`crate::Pdump`]) can map the same memory. DPDK 22.11 leaves these files
//! in place at `rte_eal_cleanup`: the pages stay reserved, out of the free pool, until
//! the next primary with the same prefix starts and deletes them. ferrovsd removes them
//! itself when it exits.
//!
//! # Whose files
//!
//! Only ours: the files *this process* has mapped (read from `/proc/self/maps`), whose
//! name is exactly our prefix, `map_` and a number, in a hugetlbfs mount. Another DPDK
//! process's files (another prefix, or the same prefix in an `--in-memory` run of ours,
//! which maps none) are never touched. The list is taken before `rte_eal_cleanup`
//! unmaps the memory and the files are removed after it. Having had such files also
//! means the runtime directory (`.../dpdk/PREFIX`) was this process's alone; what DPDK
//! leaves there (the shared config and memory maps, about 2 MB of tmpfs) goes too.

use std::path::{Path, PathBuf};

/// The hugetlbfs files of `prefix` mapped by this process now.
pub(crate) fn mapped_by_us(prefix: &str) -> Vec<PathBuf> {
    let (Ok(maps), Ok(mounts)) =
        (std::fs::read_to_string("/proc/self/maps"), std::fs::read_to_string("/proc/self/mounts"))
    else {
        return Vec::new();
    };
    let hugetlbfs = hugetlbfs_mounts(&mounts);
    let mut files: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.find('/').map(|i| &l[i..]))
        .filter(|p| !p.ends_with(" (deleted)"))
        .map(Path::new)
        .filter(|p| is_our_page_file(p, prefix) && p.parent().is_some_and(|d| hugetlbfs.iter().any(|m| m == d)))
        .map(Path::to_path_buf)
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Removes `files`; the count removed (a file already gone is not an error).
pub(crate) fn remove(files: &[PathBuf]) -> usize {
    files.iter().filter(|f| std::fs::remove_file(f).is_ok()).count()
}

/// Removes what DPDK 22.11 leaves in a primary's runtime directory after
/// `rte_eal_cleanup` (`config`, `hugepage_info`, the `fbarray_*` memory maps, and the
/// telemetry socket, which DPDK would unlink only at process exit), then the directory.
/// Call only for a directory no other process uses.
pub(crate) fn remove_runtime_files(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name == "config"
            || name == "hugepage_info"
            || name.starts_with("fbarray_")
            || name.starts_with("dpdk_telemetry")
        {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The mount points of type hugetlbfs in a `/proc/mounts` text (octal escapes decoded).
fn hugetlbfs_mounts(mounts: &str) -> Vec<PathBuf> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "hugetlbfs").then(|| PathBuf::from(unescape_mount_path(dir)))
        })
        .collect()
}

/// `/proc/mounts` writes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Is the file name `PREFIXmap_N` (DPDK's name for page N of that prefix)?
fn is_our_page_file(path: &Path, prefix: &str) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix("map_"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_files_of_exactly_our_prefix() {
        let ours = |p: &str| is_our_page_file(Path::new(p), "fvs");
        assert!(ours("/dev/hugepages/fvsmap_0"));
        assert!(ours("/mnt/h/fvsmap_1234"));
        assert!(!ours("/dev/hugepages/fvsmap_"), "no number");
        assert!(!ours("/dev/hugepages/fvsmap_1a"));
        assert!(!ours("/dev/hugepages/fvs2map_1"), "another prefix that starts like ours");
        assert!(!ours("/dev/hugepages/xfvsmap_1"));
        assert!(!ours("/dev/hugepages/rtemap_1"));
        // A prefix that itself looks like a page file name of ours is still another prefix.
        assert!(!ours("/dev/hugepages/fvsmap_1map_2"));
    }

    #[test]
    fn hugetlbfs_mount_points() {
        let text = "proc /proc proc rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,pagesize=2M 0 0\n\
                    none /srv/a\\040b hugetlbfs rw,pagesize=2M 0 0\ntmpfs /run tmpfs rw 0 0\n";
        assert_eq!(hugetlbfs_mounts(text), [PathBuf::from("/dev/hugepages"), PathBuf::from("/srv/a b")]);
    }
}
