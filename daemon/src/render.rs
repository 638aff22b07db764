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
        (_, Value::Array(items)) if items.iter().all(Value::is_string) => {
            for s in items {
                let _ = writeln!(out, "{}", s.as_str().unwrap_or_default());
            }
        }
        _ => value(&mut out, result, 0),
    }
    out
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
    fn renders_nested_objects_and_lists() {
        let v = serde_json::json!({"bridges":[{"name":"br0","ports":[{"name":"a","rx_packets":3}]}]});
        let s = render(&Request::Show, &v);
        assert_eq!(s, "bridges:\n  - name: br0\n    ports:\n      - name: a\n        rx_packets: 3\n");
        let s = render(&Request::DumpDpFlows, &serde_json::json!(["f1", "f2"]));
        assert_eq!(s, "f1\nf2\n");
    }
}
