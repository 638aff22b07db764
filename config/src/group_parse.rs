//! Groups as text, in `ovs-ofctl add-group` syntax (the OpenFlow 1.3 form `ovs-ofctl -O
//! OpenFlow13 dump-groups` prints): `group_id=1,type=all,bucket=actions=output:1,
//! bucket=actions=output:2`. The config's `groups` and the write-back use it.
//!
//! A bucket is everything after its `bucket=` up to the next `,bucket=`; its optional
//! `actions=` prefix is skipped. Bucket actions are not checked against a match (a bucket
//! has none; OVS checks them at run time), only that a bucket holds no `goto_table` and
//! that `drop` stands alone.

use crate::action_parse::parse_action_text;
use crate::display::format_actions;
use crate::flow_parse::line_locator;
use crate::match_builder::Locate;
use crate::rule_error::RuleError;
use crate::rules::{Action, Group, GroupKind};
use crate::values::parse_uint;

const BUCKET: &str = "bucket=";

/// Parses one group; errors are on line 1 of `text`.
pub fn parse_group(text: &str) -> Result<(u32, Group), RuleError> {
    parse_group_located(text, &line_locator(text, 1))
}

/// [`parse_group`] with a caller-supplied position mapping (the TOML config's).
pub(crate) fn parse_group_located(text: &str, locate: Locate<'_>) -> Result<(u32, Group), RuleError> {
    // Where each `bucket=` field starts (at the start or after a comma).
    let starts: Vec<usize> =
        text.match_indices(BUCKET).map(|(i, _)| i).filter(|&i| i == 0 || text.as_bytes()[i - 1] == b',').collect();
    let head_end = starts.first().copied().unwrap_or(text.len());
    let (mut id, mut kind) = (None, None);
    let mut offset = 0;
    for field in text[..head_end].split(',') {
        let at = offset;
        offset += field.len() + 1;
        let field_trimmed = field.trim();
        if field_trimmed.is_empty() {
            continue;
        }
        let (key, value) = field_trimmed.split_once('=').unwrap_or((field_trimmed, ""));
        match key.trim() {
            "group_id" => {
                let v = parse_uint(value.trim(), u64::from(crate::rules::OFPG_MAX))
                    .map_err(|e| RuleError::new(locate(at), format!("invalid `group_id`: {}", e.reason)))?;
                id = Some(v as u32);
            }
            "type" => {
                kind = Some(match value.trim() {
                    "all" => GroupKind::All,
                    "indirect" => GroupKind::Indirect,
                    other => {
                        return Err(RuleError::new(
                            locate(at),
                            format!("group type `{other}` is not supported (all or indirect)"),
                        ));
                    }
                })
            }
            other => return Err(RuleError::new(locate(at), format!("unknown group field `{other}`"))),
        }
    }
    let id = id.ok_or_else(|| RuleError::new(locate(0), "missing `group_id=`"))?;
    let kind = kind.ok_or_else(|| RuleError::new(locate(0), "missing `type=` (all or indirect)"))?;
    let mut buckets = Vec::with_capacity(starts.len());
    for (i, &start) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(text.len(), |&next| next - 1);
        let mut from = start + BUCKET.len();
        if text[from..end].starts_with("actions=") {
            from += "actions=".len();
        }
        let parsed = parse_action_text(&text[from..end], &|off| locate(from + off))?;
        if let Some(drop) = parsed.iter().find(|a| a.action.is_none())
            && parsed.len() > 1
        {
            return Err(RuleError::new(drop.position, "`drop` cannot be combined with other actions"));
        }
        if let Some(goto) = parsed.iter().find(|a| matches!(a.action, Some(Action::GotoTable(_)))) {
            return Err(RuleError::new(goto.position, "a bucket may not contain `goto_table`"));
        }
        buckets.push(parsed.into_iter().filter_map(|a| a.action).collect());
    }
    let group = Group { kind, buckets };
    group.check(id).map_err(|e| RuleError::new(locate(0), format!("group {id}: {e}")))?;
    Ok((id, group))
}

/// `group` with id `id` as [`parse_group`] reads it back.
pub fn group_text(id: u32, group: &Group) -> String {
    let kind = match group.kind {
        GroupKind::All => "all",
        GroupKind::Indirect => "indirect",
    };
    let mut s = format!("group_id={id},type={kind}");
    for b in &group.buckets {
        s.push_str(",bucket=actions=");
        s.push_str(&format_actions(b));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_read_back_as_themselves() {
        for text in [
            "group_id=1,type=all,bucket=actions=output:1,bucket=actions=strip_vlan,output:2",
            "group_id=4294967040,type=indirect,bucket=actions=mod_vlan_vid:10,output:3",
            "group_id=7,type=all",
            "group_id=8,type=all,bucket=actions=drop",
        ] {
            let (id, g) = parse_group(text).unwrap_or_else(|e| panic!("{text}: {e:?}"));
            assert_eq!(group_text(id, &g), text);
        }
        // ovs-ofctl's input form: buckets without `actions=`, fields in any order.
        let (id, g) = parse_group("type=all,group_id=0x10,bucket=output:1,bucket=output:2").unwrap();
        assert_eq!((id, g.buckets.len()), (16, 2));
    }

    #[test]
    fn bad_groups_say_why_and_where() {
        let err = |t: &str| parse_group(t).expect_err(t);
        assert!(err("type=all").reason.contains("group_id"));
        assert!(err("group_id=1").reason.contains("type"));
        assert!(err("group_id=1,type=select,bucket=output:1").reason.contains("not supported"));
        assert!(err("group_id=1,type=indirect,bucket=output:1,bucket=output:2").reason.contains("exactly one"));
        assert!(err("group_id=4294967292,type=all").reason.contains("invalid `group_id`"));
        let e = err("group_id=1,type=all,bucket=actions=output:1,goto_table:2");
        assert_eq!((e.position.column, e.reason.contains("goto_table")), (45, true));
        assert!(err("group_id=1,type=all,weight=3").reason.contains("unknown group field"));
        assert!(err("group_id=1,type=all,bucket=actions=output:x").position.column > 35);
    }
}
