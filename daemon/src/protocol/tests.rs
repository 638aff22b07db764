//! The wire format: every reply survives a round trip, and a reply whose fields differ
//! from its type in any way (renamed, unknown, missing) is refused.

use serde_json::Value;

use super::*;

fn parse(v: &Value) -> Result<Response, serde_json::Error> {
    serde_json::from_value(v.clone())
}

/// Which kind of reply `r` is; exhaustive, so a new kind must be added here (and then
/// to the samples, or `samples_cover_every_kind` fails).
fn kind(r: &Reply) -> usize {
    match r {
        Reply::Show(_) => 0,
        Reply::PmdStatsShow(_) => 1,
        Reply::PmdStatsClear => 2,
        Reply::Stop => 3,
        Reply::AddFlow(_) => 4,
        Reply::AddFlows(_) => 5,
        Reply::DelFlows(_) => 6,
        Reply::DumpFlows(_) => 7,
        Reply::DumpDpFlows(_) => 8,
        Reply::Trace(_) => 9,
        Reply::Reload(_) => 10,
        Reply::AddBr(_) => 11,
        Reply::DelBr(_) => 12,
        Reply::ListBr(_) => 13,
        Reply::AddPort(_) => 14,
        Reply::DelPort(_) => 15,
        Reply::SetPort(_) => 16,
        Reply::ListPorts(_) => 17,
        Reply::PmdRxqRebalance(_) => 18,
        Reply::SetController => 19,
        Reply::DelController => 20,
        Reply::GetController(_) => 21,
        Reply::Capture(_) => 22,
    }
}
const KINDS: usize = 23;

#[test]
fn samples_cover_every_kind() {
    let mut seen = [false; KINDS];
    for r in samples::all() {
        seen[kind(&r)] = true;
    }
    assert_eq!(seen, [true; KINDS]);
}

#[test]
fn every_reply_round_trips() {
    for r in samples::all() {
        let resp = Response::Ok(r);
        let line = resp.to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        let back: Response = serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}: {resp:?}"));
        assert_eq!(back, resp);
    }
    let e = Response::err("unknown bridge \"br9\"");
    assert_eq!(serde_json::from_slice::<Response>(&e.to_line()).unwrap(), e);
}

#[test]
fn wire_shape_is_ok_result_or_error() {
    let v = serde_json::to_value(Response::Ok(Reply::Stop)).unwrap();
    assert_eq!(v, serde_json::json!({"ok": true, "result": {"cmd": "stop"}}));
    let v = serde_json::to_value(Response::err("no")).unwrap();
    assert_eq!(v, serde_json::json!({"ok": false, "error": "no"}));
    // Port counters are flat fields of the port, as scripts read them.
    let v = serde_json::to_value(Response::Ok(Reply::Show(samples::show()))).unwrap();
    assert_eq!(v["result"]["cmd"], "show");
    assert_eq!(v["result"]["bridges"][0]["ports"][1]["tx_packets"], 203);
    assert_eq!(v["result"]["bridges"][0]["ports"][0]["nic"]["rx_missed"], 113);
    // Inconsistent envelopes are refused.
    for bad in [
        serde_json::json!({"ok": true}),
        serde_json::json!({"ok": false}),
        serde_json::json!({"ok": true, "result": {"cmd": "stop"}, "error": "x"}),
        serde_json::json!({"ok": false, "result": {"cmd": "stop"}, "error": "x"}),
        serde_json::json!({"ok": true, "result": {"cmd": "stop"}, "extra": 1}),
        serde_json::json!({"result": {"cmd": "stop"}}),
    ] {
        assert!(parse(&bad).is_err(), "accepted {bad}");
    }
}

/// Every object of `v` by its path of keys and indexes.
fn objects(v: &Value, path: Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        Value::Object(m) => {
            out.push(path.clone());
            for (k, x) in m {
                let mut p = path.clone();
                p.push(k.clone());
                objects(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = path.clone();
                p.push(i.to_string());
                objects(x, p, out);
            }
        }
        _ => {}
    }
}

fn at<'a>(v: &'a mut Value, path: &[String]) -> &'a mut serde_json::Map<String, Value> {
    let mut cur = v;
    for p in path {
        cur = match cur {
            Value::Array(a) => &mut a[p.parse::<usize>().unwrap()],
            Value::Object(m) => m.get_mut(p).unwrap(),
            _ => unreachable!(),
        };
    }
    cur.as_object_mut().unwrap()
}

#[test]
fn a_renamed_or_unknown_field_anywhere_is_refused() {
    let mut checked = 0;
    for r in samples::all() {
        let good = serde_json::to_value(Response::Ok(r)).unwrap();
        assert!(parse(&good).is_ok());
        let mut paths = Vec::new();
        objects(&good, Vec::new(), &mut paths);
        for path in paths {
            let keys: Vec<String> = at(&mut good.clone(), &path).keys().cloned().collect();
            for k in keys {
                // The field renamed, as by a daemon of another version.
                let mut v = good.clone();
                let obj = at(&mut v, &path);
                let x = obj.remove(&k).unwrap();
                obj.insert(format!("{k}_v2"), x);
                let e = parse(&v).expect_err(&format!("renamed {path:?}.{k} accepted"));
                let msg = e.to_string();
                assert!(msg.contains(&format!("{k}_v2")) || msg.contains(&k), "{path:?}.{k}: {msg}");
                checked += 1;
            }
            // A field this side does not know.
            let mut v = good.clone();
            at(&mut v, &path).insert("new_counter".into(), Value::from(1));
            let e = parse(&v);
            // Unit replies (`stop`, `pmd-stats-clear`) are the tag alone; serde ignores
            // extra fields next to a bare tag, which loses nothing.
            let bare_tag = path == ["result"] && at(&mut good.clone(), &path).len() == 1;
            assert!(e.is_err() || bare_tag, "unknown field in {path:?} accepted");
        }
    }
    assert!(checked > 150, "only {checked} fields checked");
}

#[test]
fn a_missing_field_is_refused() {
    let good = serde_json::to_value(Response::Ok(Reply::PmdStatsShow(Box::new(samples::pmd_stats())))).unwrap();
    for k in ["tsc_hz", "pmds", "slow_path"] {
        let mut v = good.clone();
        at(&mut v, &["result".into()]).remove(k);
        let e = parse(&v).expect_err(k).to_string();
        assert!(e.contains(&format!("missing field `{k}`")), "{e}");
    }
    let mut v = good.clone();
    at(&mut v, &["result".into(), "pmds".into(), "0".into()]).remove("emc_hits");
    assert!(parse(&v).unwrap_err().to_string().contains("missing field `emc_hits`"));
    // A counter as a string, or negative, is not a counter.
    let mut v = good;
    at(&mut v, &["result".into(), "slow_path".into(), "state".into()]).insert("installs".into(), Value::from(-1));
    assert!(parse(&v).is_err());
}

#[test]
fn replies_answer_their_request_only() {
    let requests = [
        Request::Show,
        Request::PmdStatsShow,
        Request::PmdStatsClear,
        Request::PmdRxqRebalance,
        Request::Stop,
        Request::AddFlow { bridge: "b".into(), flow: "f".into(), protocol: None },
        Request::AddFlows { bridge: "b".into(), flows: vec![], protocol: None },
        Request::DelFlows { bridge: "b".into(), r#match: None },
        Request::DumpFlows { bridge: "b".into() },
        Request::DumpDpFlows,
        Request::Trace { bridge: "b".into(), packet: "p".into() },
        Request::Reload,
        Request::AddBr { bridge: "b".into() },
        Request::DelBr { bridge: "b".into(), force: false },
        Request::ListBr,
        Request::AddPort {
            bridge: "b".into(),
            port: "p".into(),
            devargs: "d".into(),
            number: None,
            rx_queues: None,
            mtu: None,
        },
        Request::DelPort { port: "p".into() },
        Request::SetPort { port: "p".into(), settings: vec![] },
        Request::ListPorts { bridge: "b".into() },
        Request::SetController { bridge: "b".into(), targets: vec![] },
        Request::DelController { bridge: "b".into() },
        Request::GetController { bridge: "b".into() },
        Request::Capture { port: "a".into(), count: None, duration_ms: None, filter: None },
    ];
    for r in samples::all() {
        let answered: Vec<&Request> = requests.iter().filter(|q| r.answers(q)).collect();
        assert_eq!(answered.len(), 1, "{r:?} answers {answered:?}");
        // The reply's tag is the request's command.
        let tag = serde_json::to_value(&r).unwrap()["cmd"].clone();
        assert_eq!(serde_json::to_value(answered[0]).unwrap()["cmd"], tag);
    }
}
