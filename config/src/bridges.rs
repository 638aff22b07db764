//! `[[bridge]]` tables: names, ports and rules, checked across the whole switch.
//!
//! Ports go through the one set of port checks in [`crate::ports`] (a [`PortRegistry`]
//! shared by all bridges, so names, numbers and devices are unique switch-wide). The
//! rules of a bridge are read from its `[[bridge.rule]]` tables, its `flows` strings and
//! its `flows_file`, in that order, with the same parser as `ovs-ofctl` lines; then
//! [`check_bridge_rules`] checks them against the bridge's ports and each other.

use crate::action_parse::{ParsedAction, parse_action_text};
use crate::config::{BridgeConfig, PortConfig};
use crate::error::ConfigError;
use crate::field::{SHORTHANDS, shorthand_by_name};
use crate::flow_parse::{finish_rule, line_locator, parse_flow_located};
use crate::group_parse::parse_group_located;
use crate::match_builder::{Mode, RuleBuilder};
use crate::openflow::Version;
use crate::openflow::convert::as_loaded;
use crate::persist::journal::{self, LineOrigin};
use crate::ports::{
    DEFAULT_MTU, PortRegistry, check_interface_name, check_mtu, check_name, check_port_number, check_rx_queues,
    check_rxq_affinity, parse_admin, parse_devargs, parse_rxq_affinity,
};
use crate::resolve::Ctx;
use crate::rule_error::RuleError;
use crate::rules::{Action, Groups, Match, Position, Rule};
use crate::schema::{RawBridge, RawPort, RawRule, RuleValue};
use std::collections::HashMap;
use std::path::PathBuf;
use toml::Spanned;

/// How a port is named in messages: its key path and its name.
struct PortRef {
    key: String,
    name: String,
}

pub(crate) fn resolve_bridges(
    raw: &[Spanned<RawBridge>],
    pmd_cores: &[usize],
    ctx: &Ctx<'_>,
) -> Result<Vec<BridgeConfig>, ConfigError> {
    // No bridge, or a bridge without ports, is a switch waiting for `add-br` / `add-port`
    // (and what the write-back leaves after the last `del-port`).
    let mut bridges: Vec<BridgeConfig> = Vec::new();
    let mut registry = PortRegistry::new();
    let mut flows_files: Vec<(PathBuf, String)> = Vec::new();
    for (bi, b) in raw.iter().enumerate() {
        let bkey = format!("bridge[{bi}]");
        let name = b.get_ref().name.get_ref();
        let name_at = b.get_ref().name.span().start;
        check_name(name).map_err(|m| ctx.err(name_at, format!("{bkey}.name"), m))?;
        if bridges.iter().any(|x| &x.name == name) {
            return Err(ctx.err(name_at, format!("{bkey}.name"), format!("duplicate bridge name `{name}`")));
        }
        if let Some(ff) = &b.get_ref().flows_file {
            // Each bridge's runtime changes are written back to its own file (and journal).
            let path = ctx.base_dir.join(ff.get_ref());
            if let Some((_, first)) = flows_files.iter().find(|(p, _)| *p == path) {
                return Err(ctx.err(
                    ff.span().start,
                    format!("{bkey}.flows_file"),
                    format!(
                        "`{}` is also {first}'s flows_file: each bridge needs its own (runtime changes are \
                         written back to it)",
                        ff.get_ref()
                    ),
                ));
            }
            flows_files.push((path, format!("{bkey}.flows_file")));
        }
        let internal_port = b.get_ref().internal_port.as_ref().is_none_or(|i| *i.get_ref());
        let mut ports = Vec::new();
        if internal_port {
            check_interface_name(name).map_err(|m| {
                ctx.err(
                    name_at,
                    format!("{bkey}.name"),
                    format!(
                        "{m}: the bridge's internal port needs it as its interface name (or set internal_port = false)"
                    ),
                )
            })?;
            let p = BridgeConfig::internal_port_config(name);
            // The internal port's name and device are taken like any port's.
            registry.claim_name(name, PortRef { key: format!("{bkey}.name"), name: name.clone() }).map_err(
                |first| {
                    ctx.err(
                        name_at,
                        format!("{bkey}.name"),
                        format!(
                            "port {} ({}) is named as this bridge, whose internal port has that name",
                            first.name, first.key
                        ),
                    )
                },
            )?;
            let _ = registry.claim_device(p.device.name(), PortRef { key: format!("{bkey}.name"), name: name.clone() });
            ports.push(p);
        }
        ports.extend(resolve_ports(b.get_ref(), &bkey, pmd_cores, ctx, &mut registry)?);
        let groups = resolve_groups(b.get_ref(), &bkey, ctx)?;
        let rules = resolve_rules(b.get_ref(), &bkey, &groups, ctx)?;
        let mut controllers = Vec::new();
        for (i, c) in b.get_ref().controller.iter().enumerate() {
            let t = crate::config::ControllerTarget::parse(c.get_ref())
                .map_err(|m| ctx.err(c.span().start, format!("{bkey}.controller[{i}]"), m))?;
            controllers.push(t);
        }
        let fail_mode = match &b.get_ref().fail_mode {
            Some(f) => crate::config::FailMode::parse(f.get_ref())
                .map_err(|m| ctx.err(f.span().start, format!("{bkey}.fail_mode"), m))?,
            None => crate::config::FailMode::default(),
        };
        let datapath_id = match &b.get_ref().datapath_id {
            Some(d) => {
                let text = d.get_ref();
                let hex = text.strip_prefix("0x").unwrap_or(text);
                let id =
                    u64::from_str_radix(hex, 16).ok().filter(|id| *id != 0 && !hex.is_empty()).ok_or_else(|| {
                        ctx.err(
                            d.span().start,
                            format!("{bkey}.datapath_id"),
                            format!("`{text}` is not a non-zero hexadecimal datapath id"),
                        )
                    })?;
                Some(id)
            }
            None => None,
        };
        bridges.push(BridgeConfig {
            name: name.clone(),
            ports,
            rules,
            groups,
            controllers,
            fail_mode,
            datapath_id,
            internal_port,
        });
    }
    Ok(bridges)
}

fn resolve_ports(
    raw: &RawBridge,
    bkey: &str,
    pmd_cores: &[usize],
    ctx: &Ctx<'_>,
    registry: &mut PortRegistry<PortRef>,
) -> Result<Vec<PortConfig>, ConfigError> {
    let mut ports: Vec<PortConfig> = Vec::new();
    for (pi, p) in raw.port.iter().enumerate() {
        let port = resolve_port(p.get_ref(), &format!("{bkey}.port[{pi}]"), pmd_cores, ctx, registry)?;
        // OpenFlow numbers are the bridge's own: two bridges may each have a port 1.
        if let Some(first) = ports.iter().find(|x| x.number == port.number) {
            let number = &p.get_ref().number;
            let message = format!("duplicate port number {} (also port `{}`)", port.number, first.name);
            return Err(ctx.err(number.span().start, format!("{bkey}.port[{pi}].number"), message));
        }
        ports.push(port);
    }
    Ok(ports)
}

/// One port, checked in file order of its keys' concerns: name, number, device, queues.
fn resolve_port(
    raw: &RawPort,
    pkey: &str,
    pmd_cores: &[usize],
    ctx: &Ctx<'_>,
    registry: &mut PortRegistry<PortRef>,
) -> Result<PortConfig, ConfigError> {
    let RawPort { name, number, devargs, rx_queues, mtu, admin, rxq_affinity } = raw;
    let at = |start: usize, key: &str, message: String| ctx.err(start, format!("{pkey}.{key}"), message);
    let me = || PortRef { key: pkey.to_string(), name: name.get_ref().clone() };
    check_name(name.get_ref()).map_err(|m| at(name.span().start, "name", m))?;
    registry.claim_name(name.get_ref(), me()).map_err(|first| {
        at(name.span().start, "name", format!("duplicate port name `{}` (also {})", name.get_ref(), first.key))
    })?;
    let n = check_port_number(*number.get_ref()).map_err(|m| at(number.span().start, "number", m))?;
    let device = parse_devargs(devargs.get_ref()).map_err(|m| at(devargs.span().start, "devargs", m))?;
    registry.claim_device(device.name(), me()).map_err(|first| {
        let message = format!("device `{}` is already used by {} (`{}`)", device.name(), first.key, first.name);
        at(devargs.span().start, "devargs", message)
    })?;
    let rx_queues = match rx_queues {
        None => 1,
        Some(q) => check_rx_queues(*q.get_ref()).map_err(|m| at(q.span().start, "rx_queues", m))?,
    };
    let mtu = match mtu {
        None => DEFAULT_MTU,
        Some(m) => check_mtu(*m.get_ref()).map_err(|msg| at(m.span().start, "mtu", msg))?,
    };
    let admin_down = match admin {
        None => false,
        Some(a) => parse_admin(a.get_ref()).map_err(|m| at(a.span().start, "admin", m))?,
    };
    let rxq_affinity = match rxq_affinity {
        None => Vec::new(),
        Some(r) => parse_rxq_affinity(r.get_ref())
            .and_then(|pins| check_rxq_affinity(&pins, rx_queues, pmd_cores).map(|()| pins))
            .map_err(|m| at(r.span().start, "rxq_affinity", m))?,
    };
    Ok(PortConfig {
        name: name.get_ref().clone(),
        number: n,
        devargs: devargs.get_ref().clone(),
        device,
        rx_queues,
        mtu,
        admin_down,
        rxq_affinity,
    })
}

/// A rule and where it came from (for the bridge-level checks).
struct Sourced {
    rule: Rule,
    file: PathBuf,
    position: Position,
    key: String,
}

/// The bridge's `groups`: each parsed, no id twice.
fn resolve_groups(b: &RawBridge, bkey: &str, ctx: &Ctx<'_>) -> Result<Groups, ConfigError> {
    let mut groups = Groups::new();
    for (gi, g) in b.groups.iter().enumerate() {
        let key = format!("{bkey}.groups[{gi}]");
        let locate = ctx.map.string_locator(g.span(), g.get_ref());
        let (id, group) = parse_group_located(g.get_ref(), &locate).map_err(|e| ctx.rule_err(key.clone(), e))?;
        if groups.insert(id, group).is_some() {
            return Err(ctx.err(g.span().start, key, format!("group {id} is defined twice")));
        }
    }
    Ok(groups)
}

fn resolve_rules(b: &RawBridge, bkey: &str, groups: &Groups, ctx: &Ctx<'_>) -> Result<Vec<Rule>, ConfigError> {
    let mut rules: Vec<Sourced> = Vec::new();
    for (ri, r) in b.rule.iter().enumerate() {
        let key = format!("{bkey}.rule[{ri}]");
        let rule = rule_from_table(r, &key, ctx)?;
        rules.push(Sourced { rule, file: ctx.file.to_path_buf(), position: ctx.map.position(r.span().start), key });
    }
    for (fi, f) in b.flows.iter().enumerate() {
        let key = format!("{bkey}.flows[{fi}]");
        let locate = ctx.map.string_locator(f.span(), f.get_ref());
        let rule = parse_flow_located(f.get_ref(), &locate).map_err(|e| ctx.rule_err(key.clone(), e))?;
        rules.push(Sourced { rule, file: ctx.file.to_path_buf(), position: locate(0), key });
    }
    if let Some(ff) = &b.flows_file {
        rules.extend(rules_from_file(ff, &format!("{bkey}.flows_file"), ctx)?);
    }
    // Every rule as `ovs-ofctl -O <protocols>` loads it (see `openflow::convert::as_loaded`).
    let version = match &b.protocols {
        None => Version::Of10,
        Some(p) => Version::from_ofctl_list(p.get_ref())
            .map_err(|m| ctx.err(p.span().start, format!("{bkey}.protocols"), m))?,
    };
    let rules = rules
        .into_iter()
        .map(|s| match as_loaded(s.rule, version) {
            Ok(rule) => Ok(Sourced { rule, ..s }),
            Err(message) => Err(ConfigError { file: s.file, position: Some(s.position), key: s.key, message }),
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_bridge_rules(&rules, groups)?;
    Ok(rules.into_iter().map(|s| s.rule).collect())
}

/// The rules of a `flows_file` (relative to the config's directory), with the changes
/// of its journal replayed (see `persist::journal`); errors point into the file they
/// were read in.
fn rules_from_file(ff: &Spanned<String>, key: &str, ctx: &Ctx<'_>) -> Result<Vec<Sourced>, ConfigError> {
    let path = ctx.base_dir.join(ff.get_ref());
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ctx.err(ff.span().start, key, format!("cannot read flows file `{}`: {e}", path.display())))?;
    let mut lines = journal::rule_lines(&text);
    let journal_path = journal::journal_path(&path);
    let journal_text = journal::read(&journal_path).map_err(|e| {
        ctx.err(
            ff.span().start,
            key,
            format!("cannot read the journal of the flows file `{}`: {e}", journal_path.display()),
        )
    })?;
    if !journal_text.is_empty() {
        journal::replay(&mut lines, journal::FlowsStamp::of(&text), &journal_text).map_err(|e| ConfigError {
            file: journal_path.clone(),
            position: Some(Position { line: e.line, column: 1 }),
            key: key.to_string(),
            message: e.message,
        })?;
    }
    let mut rules = Vec::with_capacity(lines.len());
    for (line, origin) in lines {
        let (file, no) = match origin {
            LineOrigin::Flows(no) => (&path, no),
            LineOrigin::Journal(no) => (&journal_path, no),
        };
        // A journal line's rule starts after its two-character tag.
        let shift = if matches!(origin, LineOrigin::Journal(_)) { 2 } else { 0 };
        let locate = |i: usize| {
            let p = line_locator(line, no)(i);
            Position { column: p.column + shift, ..p }
        };
        let rule = parse_flow_located(line, &locate).map_err(|e| ConfigError {
            file: file.clone(),
            position: Some(e.position),
            key: key.to_string(),
            message: e.reason,
        })?;
        rules.push(Sourced { rule, file: file.clone(), position: locate(0), key: key.to_string() });
    }
    Ok(rules)
}

/// Checks that rules name groups of their bridge (as OVS refuses a rule whose group does
/// not exist) and that no two rules have the same table, priority and match (OVS would
/// silently keep only the later one). Rules may name ports the bridge does not have
/// (yet): as in OVS, `in_port` of a missing port matches nothing and output to it drops
/// (see [`dangling_ports`]).
fn check_bridge_rules(rules: &[Sourced], groups: &Groups) -> Result<(), ConfigError> {
    let mut seen: HashMap<(u8, u16, &Match), usize> = HashMap::new();
    for (i, s) in rules.iter().enumerate() {
        let err = |message: String| ConfigError {
            file: s.file.clone(),
            position: Some(s.position),
            key: s.key.clone(),
            message,
        };
        if let Some(g) = s.rule.groups().find(|g| !groups.contains_key(g)) {
            return Err(err(format!("group {g} does not exist (the bridge's `groups` define it)")));
        }
        if let Some(&j) = seen.get(&(s.rule.table, s.rule.priority, &s.rule.matches)) {
            let first = &rules[j];
            return Err(err(format!(
                "this rule has the same table, priority and match as the rule at {}:{}:{} ({})",
                first.file.display(),
                first.position.line,
                first.position.column,
                first.key
            )));
        }
        seen.insert((s.rule.table, s.rule.priority, &s.rule.matches), i);
    }
    Ok(())
}

/// A `[[bridge.rule]]` table: each key is a rule field as in `ovs-ofctl` (`in_port = 1`,
/// `nw_dst = "10.0.0.0/8"`, `tp_dst = "0x1000/0xf000"`), `proto = "tcp"` stands for a
/// shorthand, and `actions` is a string or an array of strings.
fn rule_from_table(r: &Spanned<RawRule>, key: &str, ctx: &Ctx<'_>) -> Result<Rule, ConfigError> {
    let mut builder = RuleBuilder::new(Mode::Flow);
    let mut actions: Option<Vec<ParsedAction<'_>>> = None;
    for (k, v) in &r.get_ref().fields {
        let name = k.get_ref().as_str();
        let fkey = format!("{key}.{name}");
        match name {
            "actions" => actions = Some(table_actions(v, &fkey, ctx)?),
            "proto" => table_proto(v, &mut builder, &fkey, ctx)?,
            _ => table_field(name, ctx.map.position(k.span().start), v, &mut builder, &fkey, ctx)?,
        }
    }
    finish_rule(builder, actions, ctx.map.position(r.span().start)).map_err(|e| ctx.rule_err(key, e))
}

/// `actions = "A,B"` or `actions = ["A", "B"]`.
fn table_actions<'a>(
    v: &'a Spanned<RuleValue>,
    fkey: &str,
    ctx: &Ctx<'_>,
) -> Result<Vec<ParsedAction<'a>>, ConfigError> {
    let rerr = |e: RuleError| ctx.rule_err(fkey, e);
    match v.get_ref() {
        RuleValue::Str(s) => parse_action_text(s, &ctx.map.string_locator(v.span(), s)).map_err(rerr),
        RuleValue::List(items) => {
            let mut list = Vec::new();
            for item in items {
                let locate = ctx.map.string_locator(item.span(), item.get_ref());
                list.extend(parse_action_text(item.get_ref(), &locate).map_err(rerr)?);
            }
            Ok(list)
        }
        RuleValue::Int(_) => Err(ctx.err(v.span().start, fkey, "must be a string or an array of strings")),
    }
}

/// `proto = "tcp"`: a shorthand.
fn table_proto(
    v: &Spanned<RuleValue>,
    builder: &mut RuleBuilder,
    fkey: &str,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    let at = v.span().start;
    match v.get_ref() {
        RuleValue::Str(s) if shorthand_by_name(s).is_none() => {
            let names: Vec<&str> = SHORTHANDS.iter().map(|sh| sh.name).collect();
            Err(ctx.err(at, fkey, format!("`{s}` is not one of {}", names.join(", "))))
        }
        RuleValue::Str(s) => {
            builder.apply(s, ctx.map.position(at), None, &|_| ctx.map.position(at)).map_err(|e| ctx.rule_err(fkey, e))
        }
        _ => Err(ctx.err(at, fkey, "must be a string such as \"tcp\", \"udp6\" or \"arp\"")),
    }
}

/// `FIELD = VALUE`: a match field or rule property, an integer or a string.
fn table_field(
    name: &str,
    key_pos: Position,
    v: &Spanned<RuleValue>,
    builder: &mut RuleBuilder,
    fkey: &str,
    ctx: &Ctx<'_>,
) -> Result<(), ConfigError> {
    let at = v.span().start;
    let applied = match v.get_ref() {
        RuleValue::Int(i) => builder.apply(name, key_pos, Some(&i.to_string()), &|_| ctx.map.position(at)),
        RuleValue::Str(s) => builder.apply(name, key_pos, Some(s), &ctx.map.string_locator(v.span(), s)),
        RuleValue::List(_) => return Err(ctx.err(at, fkey, "takes a single value, not an array")),
    };
    applied.map_err(|e| ctx.rule_err(fkey, e))
}

/// The port numbers `rules` name (in_port, output, resubmit's port) that are not among
/// `ports`, each once, in order: what a daemon warns about (the rules load, as in OVS).
pub fn dangling_ports(rules: &[Rule], ports: &[PortConfig]) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    for r in rules {
        let named = r.matches.in_port.into_iter().chain(r.actions.iter().filter_map(|a| match a {
            Action::Output(p) => Some(*p),
            Action::Resubmit(x) => x.in_port,
            _ => None,
        }));
        for p in named {
            if !ports.iter().any(|x| x.number == p) && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Checks bridges and ports built at run time as the loader checks a file: bridge names
/// valid and unique; port names valid and unique across the switch, numbers in range and
/// unique in their bridge, devices parseable and unique across the switch, queue counts
/// and MTUs in range.
pub fn check_topology(bridges: &[BridgeConfig]) -> Result<(), String> {
    let mut registry: PortRegistry<String> = PortRegistry::new();
    for (i, b) in bridges.iter().enumerate() {
        check_name(&b.name).map_err(|m| format!("bridge name: {m}"))?;
        if bridges[..i].iter().any(|x| x.name == b.name) {
            return Err(format!("bridge {} exists", b.name));
        }
        if b.internal_port {
            check_interface_name(&b.name)
                .map_err(|m| format!("bridge name: {m}: the bridge's internal port needs it as its interface name"))?;
        }
        // The internal port, when there is one, is the first port and only that.
        let internal: Vec<bool> = b.ports.iter().map(PortConfig::is_internal).collect();
        if internal.iter().skip(1).any(|&x| x) || internal.first().copied().unwrap_or(false) != b.internal_port {
            return Err(format!("bridge {}: LOCAL is the number of the bridge's internal port only", b.name));
        }
        for p in &b.ports {
            check_name(&p.name).map_err(|m| format!("port name: {m}"))?;
            registry.claim_name(&p.name, p.name.clone()).map_err(|_| {
                if bridges.iter().any(|x| x.name == p.name && x.internal_port) {
                    format!("port {} exists (bridge {}'s internal port is named as its bridge)", p.name, p.name)
                } else {
                    format!("port {} exists", p.name)
                }
            })?;
            if !p.is_internal() {
                check_port_number(i64::from(p.number)).map_err(|m| format!("port {}: number {m}", p.name))?;
            }
            if let Some(first) = b.ports.iter().take_while(|x| x.name != p.name).find(|x| x.number == p.number) {
                return Err(format!("port number {} is in use by port {} on bridge {}", p.number, first.name, b.name));
            }
            let device = parse_devargs(&p.devargs).map_err(|m| format!("port {}: {m}", p.name))?;
            registry
                .claim_device(device.name(), p.name.clone())
                .map_err(|first| format!("device {} is in use by port {first}", device.name()))?;
            check_rx_queues(i64::from(p.rx_queues)).map_err(|m| format!("port {}: rx queues {m}", p.name))?;
            check_mtu(i64::from(p.mtu)).map_err(|m| format!("port {}: MTU {m}", p.name))?;
            if let Some(&(q, _)) = p.rxq_affinity.iter().find(|&&(q, _)| q >= p.rx_queues) {
                return Err(format!(
                    "port {}: rxq_affinity pins queue {q}, but the port has {} rx queue(s)",
                    p.name, p.rx_queues
                ));
            }
        }
    }
    Ok(())
}
