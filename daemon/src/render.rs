//! Text rendering of control replies for people: nested objects as indented
//! `key: value` lines (YAML-like), arrays of strings as plain lines (flow dumps), so
//! every command's reply reads well without a renderer of its own.

use std::fmt::Write;

use serde_json::Value;

use crate::protocol::Request;

/// Renders `result` of `req` as text ending in a newline (or nothing).
pub fn render(req: &Request, result: &Value) -> String {
    let mut out = String::new();
    match (req, result) {
        (_, Value::Null) => {}
        (Request::Show, v) if v["bridges"].is_array() => show(&mut out, v),
        (Request::PmdStatsShow, v) if v["pmds"].is_array() => pmd_stats(&mut out, v),
        (Request::Trace { .. }, v) if v["steps"].is_array() => trace(&mut out, v),
        (_, Value::Array(items)) if items.iter().all(Value::is_string) => {
            for s in items {
                let _ = writeln!(out, "{}", s.as_str().unwrap_or_default());
            }
        }
        _ => value(&mut out, result, 0),
    }
    out
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(0.0)
}

/// `ferrovs-ctl show`: one block per bridge, a few lines per port.
fn show(out: &mut String, v: &Value) {
    for b in v["bridges"].as_array().into_iter().flatten() {
        let ports = b["ports"].as_array().map(Vec::len).unwrap_or(0);
        let _ = writeln!(out, "{}: {} ports", b["name"].as_str().unwrap_or("?"), ports);
        for p in b["ports"].as_array().into_iter().flatten() {
            let link = if p["link_up"].as_bool().unwrap_or(false) {
                format!("up {} Mbps", u(p, "speed_mbps"))
            } else {
                "down".to_string()
            };
            let _ = writeln!(
                out,
                "  port {} {} ({}): link {link}",
                u(p, "number"),
                p["name"].as_str().unwrap_or("?"),
                p["devargs"].as_str().unwrap_or("?")
            );
            let _ = writeln!(
                out,
                "    rx {} pkts {} bytes, tx {} pkts {} bytes",
                u(p, "rx_packets"),
                u(p, "rx_bytes"),
                u(p, "tx_packets"),
                u(p, "tx_bytes")
            );
            let _ = writeln!(
                out,
                "    drops: tx_full {}, no_rule {}, action {}, malformed {}, unsupported {}, no_mbuf {}",
                u(p, "drop_tx_full"),
                u(p, "drop_no_rule"),
                u(p, "drop_action"),
                u(p, "drop_malformed"),
                u(p, "drop_unsupported"),
                u(p, "drop_no_mbuf")
            );
            let nic = &p["nic"];
            if nic.is_object() {
                let _ = writeln!(
                    out,
                    "    nic: rx {} tx {}, rx_missed {}, rx_errors {}, tx_errors {}, rx_nombuf {}",
                    u(nic, "rx_packets"),
                    u(nic, "tx_packets"),
                    u(nic, "rx_missed"),
                    u(nic, "rx_errors"),
                    u(nic, "tx_errors"),
                    u(nic, "rx_nombuf")
                );
            }
        }
    }
    let _ = writeln!(out, "mbufs: {} in use of {}", u(v, "mbufs_in_use"), u(v, "mbufs_total"));
}

/// `ferrovs-ctl pmd-stats-show`, in the spirit of `ovs-appctl dpif-netdev/pmd-stats-show`.
fn pmd_stats(out: &mut String, v: &Value) {
    for p in v["pmds"].as_array().into_iter().flatten() {
        let queues: Vec<&str> = p["rx_queues"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let _ = writeln!(out, "pmd {} core {}: rx queues {}", u(p, "pmd"), u(p, "core"), queues.join(" "));
        let _ = writeln!(out, "  packets received: {}", u(p, "packets"));
        let _ = writeln!(out, "  emc hits: {} ({:.1} %)", u(p, "emc_hits"), f(p, "emc_hit_percent"));
        let _ = writeln!(
            out,
            "  signature cache hits: {} ({:.1} %)",
            u(p, "signature_hits"),
            f(p, "signature_hit_percent")
        );
        let _ = writeln!(out, "  megaflow hits: {} ({:.1} %)", u(p, "megaflow_hits"), f(p, "megaflow_hit_percent"));
        let _ = writeln!(
            out,
            "  misses: {} ({:.1} %), upcalls sent {}; dropped: upcall queue full {}, park full {}, park timeout {}",
            u(p, "misses"),
            f(p, "miss_percent"),
            u(p, "upcalls_sent"),
            u(p, "drop_upcall_queue_full"),
            u(p, "drop_park_full"),
            u(p, "drop_park_timeout")
        );
        let _ = writeln!(out, "  megaflows: {} in {} masks", u(p, "megaflows"), u(p, "masks"));
        let _ = writeln!(
            out,
            "  busy cycles: {} ({:.1} %), idle cycles: {}, cycles per packet: {:.1}",
            u(p, "busy_cycles"),
            f(p, "busy_percent"),
            u(p, "idle_cycles"),
            f(p, "cycles_per_packet")
        );
    }
    let s = &v["slow_path"];
    if s.is_object() {
        let st = &s["state"];
        let _ = writeln!(
            out,
            "slow path: upcalls {} ({:.1} us avg, {:.1} us max), installs {}, executes {} (raced {}, flow limit {}), \
             removes {}, revalidated {}, rule changes {}, MACs learned {}, undelivered commands {}",
            u(s, "upcalls_handled"),
            f(s, "upcall_us_avg"),
            f(s, "upcall_us_max"),
            u(st, "installs"),
            u(st, "executes"),
            u(st, "executes_raced"),
            u(st, "executes_flow_limit"),
            u(st, "removes"),
            u(st, "revalidated"),
            u(st, "rule_changes"),
            u(st, "mac_learned"),
            u(s, "commands_undelivered")
        );
    }
}

/// `ferrovs-ctl trace`, in the spirit of `ovs-appctl ofproto/trace`.
fn trace(out: &mut String, v: &Value) {
    let _ = writeln!(out, "Flow: {}", v["flow"].as_str().unwrap_or("?"));
    for s in v["steps"].as_array().into_iter().flatten() {
        let indent = "    ".repeat(u(s, "depth") as usize);
        let _ = writeln!(
            out,
            "{indent}table {} (in_port {}): {}",
            u(s, "table"),
            u(s, "in_port"),
            s["rule"].as_str().unwrap_or("?")
        );
    }
    if let Some(e) = v["error"].as_str() {
        let _ = writeln!(out, "Translation abandoned: {e}");
    }
    let _ = writeln!(out, "Datapath actions: {}", v["datapath_actions"].as_str().unwrap_or("?"));
    let _ = writeln!(out, "Megaflow: {}", v["megaflow"].as_str().unwrap_or("?"));
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("-".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

fn value(out: &mut String, v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                match scalar(x) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}{k}: {s}");
                    }
                    None => {
                        let _ = writeln!(out, "{pad}{k}:");
                        value(out, x, indent + 2);
                    }
                }
            }
        }
        Value::Array(items) => {
            for x in items {
                match scalar(x) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}- {s}");
                    }
                    None => {
                        let mut inner = String::new();
                        value(&mut inner, x, indent + 2);
                        // First line carries the list marker.
                        let inner = inner.replacen(&format!("{pad}  "), &format!("{pad}- "), 1);
                        out.push_str(&inner);
                    }
                }
            }
        }
        other => {
            let _ = writeln!(out, "{pad}{}", scalar(other).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_show_as_blocks() {
        let v = serde_json::json!({"bridges":[{"name":"br0","ports":[
            {"name":"a","number":1,"devargs":"net_null0","link_up":true,"speed_mbps":10000,"rx_packets":3}]}],
            "mbufs_in_use":0,"mbufs_total":4095});
        let s = render(&Request::Show, &v);
        assert!(
            s.starts_with("br0: 1 ports\n  port 1 a (net_null0): link up 10000 Mbps\n    rx 3 pkts 0 bytes"),
            "{s}"
        );
        assert!(s.ends_with("mbufs: 0 in use of 4095\n"));
    }

    #[test]
    fn renders_nested_objects_and_lists() {
        let v = serde_json::json!({"bridges":[{"name":"br0","ports":[{"name":"a","rx_packets":3}]}]});
        let s = render(&Request::DumpFlows { bridge: "x".into() }, &v);
        assert_eq!(s, "bridges:\n  - name: br0\n    ports:\n      - name: a\n        rx_packets: 3\n");
        let s = render(&Request::DumpDpFlows, &serde_json::json!(["f1", "f2"]));
        assert_eq!(s, "f1\nf2\n");
    }
}
