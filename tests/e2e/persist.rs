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
