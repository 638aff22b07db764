//! Runtime changes survive a crash: what `ferrovs-ctl` changed is written back to the
//! config, so `kill -9` and a start on the same file come back to the same rules.

use ferrovs_e2e::{Daemon, TempDir};
use libtest_mimic::Failed;

use crate::flows::{ctl_ok, ctl_rules};
use crate::{bridge, preamble};

pub fn rules_survive_kill_9() -> Result<(), Failed> {
    let ports = [("a", 1, "net_null0,no-rx=1"), ("b", 2, "net_null1,no-rx=1"), ("c", 3, "net_null2,no-rx=1")];
    let config = format!(
        "{}{}",
        preamble(),
        bridge("# rules of the operator\nflows = [\"priority=10,in_port=1,actions=output:2\"]", &ports)
    );
    let d = Daemon::start_in_with_env(TempDir::new(), &config, &[]);
    ctl_ok(
        &d,
        &["add-flow", "br0", "priority=200,tcp,nw_dst=198.18.0.0/15,tp_dst=443,actions=mod_vlan_vid:20,output:3"],
    )?;
    ctl_ok(&d, &["add-flow", "br0", "table=1,priority=5,udp,actions=drop"])?;
    ctl_ok(&d, &["add-flow", "br0", "priority=300,in_port=3,actions=output:1"])?;
    ctl_ok(&d, &["del-flows", "br0", "in_port=3"])?;
    let before = ctl_rules(&d)?;
    if before.len() != 3 {
        return Err(format!("expected 3 rules before the crash: {before:?}").into());
    }
    let dir = d.kill();
    let text = std::fs::read_to_string(dir.join("ferrovs.toml"))?;
    if !text.contains("# rules of the operator") || !text.contains("[eal]") {
        return Err(format!("the operator's layout was lost:\n{text}").into());
    }
    let d = Daemon::restart_in(dir, &[]);
    let after = ctl_rules(&d)?;
    if after != before {
        return Err(format!("rules after kill -9 differ:\nbefore {before:?}\nafter  {after:?}").into());
    }
    drop(d.stop());
    Ok(())
}

/// Changes of a few rules to a large rule set, which the slow path makes in place (at
/// least 2,048 rules, see `SlowPathConfig::add_in_place_from`) and writes back from the
/// rule texts it keeps, survive a crash too: an added rule, one replaced with other
/// actions, one deleted, on top of 3,000 loaded with `add-flows`. The bridge's rules are
/// in a `flows_file`, written whole once (the `add-flows`), and the changes after it go
/// to the file's journal (`ferrovs_config::persist::journal`); a torn record at the
/// journal's end (a crash in the middle of an append) is left out at start and cut off,
/// and the next change goes to the journal too: the daemon takes at start the flows file
/// it wrote in the earlier run, since it holds exactly the running rules.
pub fn rules_changed_in_place_survive_kill_9() -> Result<(), Failed> {
    let ports = [("a", 1, "net_null0,no-rx=1"), ("b", 2, "net_null1,no-rx=1")];
    let config = format!("{}{}", preamble(), bridge("flows_file = \"br0.flows\"", &ports));
    let dir = TempDir::new();
    std::fs::write(dir.path.join("br0.flows"), "priority=0,actions=drop\n")?;
    let flows_file = dir.path.join("br0.flows");
    let journal = dir.path.join("br0.flows.journal");
    let d = Daemon::start_in_with_env(dir, &config, &[]);
    let file = d.dir.path.join("many.flows");
    let many: String = (0..3000u32)
        .map(|i| format!("priority=10,ip,nw_dst=198.18.{}.{},actions=output:2\n", i / 256, i % 256))
        .collect();
    std::fs::write(&file, many)?;
    ctl_ok(&d, &["add-flows", "br0", file.to_str().ok_or("a path")?])?;
    ctl_ok(&d, &["add-flow", "br0", "priority=20,ip,nw_dst=198.19.0.1,actions=output:1"])?;
    ctl_ok(&d, &["add-flow", "br0", "priority=10,ip,nw_dst=198.18.0.7,actions=output:1"])?;
    ctl_ok(&d, &["del-flows", "br0", "ip,nw_dst=198.18.1.1"])?;
    let before = ctl_rules(&d)?;
    let has = |rules: &[String], r: &str| rules.iter().any(|x| x == r);
    if before.len() != 3001
        || !has(&before, "priority=20,ip,nw_dst=198.19.0.1 actions=output:1")
        || !has(&before, "priority=10,ip,nw_dst=198.18.0.7 actions=output:1")
        || has(&before, "priority=10,ip,nw_dst=198.18.1.1 actions=output:2")
    {
        return Err(format!("not the rules expected before the crash ({} rules)", before.len()).into());
    }
    let whole = std::fs::read_to_string(&flows_file)?;
    let journal_text = std::fs::read_to_string(&journal).map_err(|e| format!("no journal after changes: {e}"))?;
    if whole.contains("198.19.0.1") || journal_text.matches("\ncommit ").count() != 3 {
        return Err(format!("expected the 3 changes in the journal only:\n{journal_text}").into());
    }
    let dir = d.kill();
    // A crash in the middle of a fourth append.
    std::fs::write(&journal, format!("{journal_text}+ priority=30,ip,nw_dst=198.19.0.2 actions=drop\ncomm"))?;
    let d = Daemon::restart_in(dir, &[]);
    let after = ctl_rules(&d)?;
    if after != before {
        let gone: Vec<&String> = before.iter().filter(|r| !after.contains(r)).collect();
        let new: Vec<&String> = after.iter().filter(|r| !before.contains(r)).collect();
        return Err(format!("rules after kill -9 differ: lost {gone:?}, gained {new:?}").into());
    }
    // The first change after a start goes to the journal, after its whole records.
    if !d.log_text().contains("changes go to the journal of") {
        return Err(format!("the flows file was not taken at start:\n{}", d.log_text()).into());
    }
    ctl_ok(&d, &["add-flow", "br0", "priority=20,ip,nw_dst=198.19.0.3,actions=output:1"])?;
    let journal_now = std::fs::read_to_string(&journal)?;
    if std::fs::read_to_string(&flows_file)? != whole
        || !journal_now.starts_with(&journal_text)
        || journal_now.matches("\ncommit ").count() != 4
        || !journal_now.contains("198.19.0.3")
    {
        return Err(format!("the first change after a start was not appended to the journal:\n{journal_now}").into());
    }
    let before = ctl_rules(&d)?;
    let dir = d.kill();
    let d = Daemon::restart_in(dir, &[]);
    let after = ctl_rules(&d)?;
    if after != before {
        return Err(format!("rules after the second kill -9 differ ({} against {})", after.len(), before.len()).into());
    }
    drop(d.stop());
    Ok(())
}

/// `set-controller` is written back like a rule change: `kill -9` and a start come back
/// connected to the same targets; `del-controller` removes them from the file.
pub fn controllers_survive_kill_9() -> Result<(), Failed> {
    let ports = [("a", 1, "net_null0,no-rx=1")];
    let d = Daemon::start_in_with_env(TempDir::new(), &format!("{}{}", preamble(), bridge("flows = []", &ports)), &[]);
    let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
    let (listen, nobody) = (free()?, free()?);
    let targets = [format!("ptcp:{listen}:127.0.0.1"), format!("tcp:127.0.0.1:{nobody}")];
    ctl_ok(&d, &["set-controller", "br0", &targets[0], &targets[1]])?;
    let dir = d.kill();
    let text = std::fs::read_to_string(dir.join("ferrovs.toml"))?;
    if !text.contains(&format!("controller = [\"{}\", \"{}\"]", targets[0], targets[1])) {
        return Err(format!("set-controller not written back:\n{text}").into());
    }
    let d = Daemon::restart_in(dir, &[]);
    let shown = ctl_ok(&d, &["get-controller", "br0"])?;
    if !targets.iter().all(|t| shown.contains(t.as_str())) {
        return Err(format!("after kill -9 and a start, get-controller: {shown}").into());
    }
    // The listener is back: a connection is accepted.
    std::net::TcpStream::connect(("127.0.0.1", listen)).map_err(|e| format!("ptcp:{listen} after restart: {e}"))?;
    ctl_ok(&d, &["del-controller", "br0"])?;
    let stopped = d.stop();
    let text = std::fs::read_to_string(stopped.dir.path.join("ferrovs.toml"))?;
    if text.contains("controller") {
        return Err(format!("del-controller not written back:\n{text}").into());
    }
    Ok(())
}
