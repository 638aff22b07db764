//! Commands of DPDK's telemetry socket, answered by Rust closures.
//!
//! # Design
//!
//! DPDK serves `/var/run/dpdk/<prefix>/dpdk_telemetry.v2` from a thread of its own; an
//! application adds commands with `rte_telemetry_register_cmd(cmd, callback, help)`,
//! where the callback fills a `struct rte_tel_data` (a dictionary of numbers, strings and
//! flat arrays, or one flat array: DPDK 22.11 nests no deeper). [`register`] stores the
//! closure in a process-wide table keyed by the command and registers one C trampoline
//! for every command; the trampoline looks the closure up, calls it with the command's
//! parameter string (`/ferrovs/pmd_stats,0` gives `"0"`), and copies the returned
//! [`TelData`] into DPDK's structure. The closure runs on DPDK's telemetry thread, so it
//! must only read state that is safe to read from any thread (a published snapshot, or
//! atomics). A panic in a closure is caught and answered as an error (-1), never
//! unwinding into C.
//!
//! Strings longer than DPDK's limit (127 bytes in dictionaries and arrays) are cut at a
//! character boundary; dictionaries and arrays beyond DPDK's entry limits are cut too.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int};
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::DpdkError;
use crate::sys;

/// One value of a telemetry dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelItem {
    U64(u64),
    Str(String),
    U64List(Vec<u64>),
    StrList(Vec<String>),
}

/// What a command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TelData {
    Dict(Vec<(String, TelItem)>),
    U64List(Vec<u64>),
    StrList(Vec<String>),
}

type Handler = Arc<dyn Fn(&str) -> TelData + Send + Sync + 'static>;

fn handlers() -> &'static Mutex<HashMap<String, Handler>> {
    static HANDLERS: OnceLock<Mutex<HashMap<String, Handler>>> = OnceLock::new();
    HANDLERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Registers `cmd` (e.g. `/ferrovs/pmd_stats`) with `help`, answered by `f(params)`.
/// Registering a command again replaces its closure. Call after `Eal::init`.
pub fn register(cmd: &str, help: &str, f: impl Fn(&str) -> TelData + Send + Sync + 'static) -> Result<(), DpdkError> {
    let c_cmd = CString::new(cmd).map_err(|_| DpdkError::InvalidArgument(format!("telemetry command {cmd:?}")))?;
    let c_help = CString::new(help).map_err(|_| DpdkError::InvalidArgument(format!("telemetry help {help:?}")))?;
    let fresh = {
        let mut h = handlers().lock().map_err(|_| DpdkError::InvalidArgument("telemetry table poisoned".into()))?;
        h.insert(cmd.to_string(), Arc::new(f)).is_none()
    };
    if !fresh {
        return Ok(());
    }
    // SAFETY: both strings are NUL-terminated; DPDK copies the command name and keeps the
    // help pointer, so the help string is leaked on purpose (once per command, for the
    // life of the process). `trampoline` has exactly the `telemetry_cb` signature.
    let rc = unsafe { sys::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(trampoline), c_help.into_raw()) };
    if rc < 0 {
        return Err(DpdkError::Call {
            what: format!("rte_telemetry_register_cmd({cmd})"),
            code: rc,
            message: crate::error::strerror(rc),
        });
    }
    Ok(())
}

/// Cuts `s` to fit DPDK's string limit (bytes, NUL excluded) and drops interior NULs.
fn c_string(s: &str) -> CString {
    let max = sys::RTE_TEL_MAX_STRING_LEN as usize - 1;
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    CString::new(s[..end].replace('\0', "")).unwrap_or_default()
}

extern "C" fn trampoline(cmd: *const c_char, params: *const c_char, d: *mut sys::rte_tel_data) -> c_int {
    if cmd.is_null() || d.is_null() {
        return -1;
    }
    // SAFETY: DPDK passes a NUL-terminated command name, valid for the call.
    let cmd = unsafe { CStr::from_ptr(cmd) }.to_string_lossy().into_owned();
    let params = if params.is_null() {
        String::new()
    } else {
        // SAFETY: non-null, so a NUL-terminated parameter string valid for the call.
        unsafe { CStr::from_ptr(params) }.to_string_lossy().into_owned()
    };
    let handler = match handlers().lock() {
        Ok(h) => h.get(&cmd).cloned(),
        Err(_) => None,
    };
    let Some(handler) = handler else { return -1 };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&params))) {
        Ok(data) => {
            // SAFETY: `d` is the non-null, DPDK-owned rte_tel_data of this callback.
            unsafe { fill(d, &data) };
            0
        }
        Err(_) => -1,
    }
}

/// Copies `data` into `d`.
///
/// # Safety
/// `d` must point to a valid, freshly provided `rte_tel_data`.
unsafe fn fill(d: *mut sys::rte_tel_data, data: &TelData) {
    // SAFETY (whole function): `d` is valid per the contract; every string passed is a
    // NUL-terminated CString that lives across the call (DPDK copies it); containers come
    // from rte_tel_data_alloc and are handed over with keep = 0, so DPDK frees them.
    unsafe {
        match data {
            TelData::U64List(v) => {
                sys::rte_tel_data_start_array(d, sys::rte_tel_value_type_RTE_TEL_U64_VAL);
                for x in v.iter().take(sys::RTE_TEL_MAX_ARRAY_ENTRIES as usize) {
                    sys::rte_tel_data_add_array_u64(d, *x);
                }
            }
            TelData::StrList(v) => {
                sys::rte_tel_data_start_array(d, sys::rte_tel_value_type_RTE_TEL_STRING_VAL);
                for s in v.iter().take(sys::RTE_TEL_MAX_ARRAY_ENTRIES as usize) {
                    sys::rte_tel_data_add_array_string(d, c_string(s).as_ptr());
                }
            }
            TelData::Dict(entries) => {
                sys::rte_tel_data_start_dict(d);
                for (name, item) in entries.iter().take(sys::RTE_TEL_MAX_DICT_ENTRIES as usize) {
                    let name = c_string(name);
                    match item {
                        TelItem::U64(v) => {
                            sys::rte_tel_data_add_dict_u64(d, name.as_ptr(), *v);
                        }
                        TelItem::Str(s) => {
                            sys::rte_tel_data_add_dict_string(d, name.as_ptr(), c_string(s).as_ptr());
                        }
                        TelItem::U64List(_) | TelItem::StrList(_) => {
                            let c = sys::rte_tel_data_alloc();
                            if c.is_null() {
                                continue;
                            }
                            let inner = match item {
                                TelItem::U64List(v) => TelData::U64List(v.clone()),
                                TelItem::StrList(v) => TelData::StrList(v.clone()),
                                _ => unreachable!("scalars handled above"),
                            };
                            fill(c, &inner);
                            sys::rte_tel_data_add_dict_container(d, name.as_ptr(), c, 0);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_cut_to_dpdk_limits_at_char_boundaries() {
        let long = "é".repeat(100); // 200 bytes
        let c = c_string(&long);
        assert!(c.as_bytes().len() <= 127);
        assert!(std::str::from_utf8(c.as_bytes()).is_ok());
        assert_eq!(c_string("a\0b").as_bytes(), b"ab");
    }
}
