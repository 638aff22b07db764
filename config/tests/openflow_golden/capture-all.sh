#!/bin/sh
# Regenerates the golden captures in this directory: runs each ovs-ofctl command
# against capture.py's minimal switch and stores what ovs-ofctl sent.
# Usage: config/tests/openflow_golden/capture-all.sh   (needs ovs-ofctl and python3)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ofcapture.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
sock=$tmp/switch.sock
# ovs-ofctl monitor creates a control socket there.
OVS_RUNDIR=$tmp
export OVS_RUNDIR

cap() { # NAME VERSION [--OPTION...] SUBCOMMAND ARGS... (the target goes after the subcommand)
    name=$1 version=$2
    shift 2
    opts=""
    if [ "$version" = 4 ]; then opts="-O OpenFlow13"; fi
    while [ "${1#--}" != "$1" ]; do
        opts="$opts $1"
        shift
    done
    sub=$1
    shift
    # shellcheck disable=SC2086 # $opts is a word list
    python3 "$here/capture.py" "$sock" "$version" "$here/$name.hex" ovs-ofctl $opts "$sub" "unix:$sock" "$@" >/dev/null
}
of13() { # NAME [--strict] SUBCOMMAND ARGS...
    name=$1
    shift
    cap "$name" 4 "$@"
}

flow_basic='priority=100,tcp,nw_dst=198.18.0.0/15,tp_dst=443,actions=mod_vlan_vid:20,output:3'
flow_l2='table=0,in_port=1,dl_src=02:00:00:00:00:01,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,dl_vlan=10,dl_vlan_pcp=3,idle_timeout=30,hard_timeout=60,cookie=0x1234,actions=strip_vlan,mod_dl_src:02:00:00:00:00:02,mod_dl_dst:02:00:00:00:00:03,enqueue:2:1'
flow_l3='priority=7,udp,nw_src=10.0.0.0/8,nw_tos=32,tp_src=53,actions=mod_nw_src:10.1.1.1,mod_nw_dst:10.2.2.2,mod_nw_tos:64,mod_tp_src:1000,mod_tp_dst:2000,mod_vlan_pcp:5,output:1,CONTROLLER:128'
flow_nx='priority=200,ip,reg0=5,nw_ttl=9,actions=dec_ttl,load:0x2a->NXM_NX_REG1[],move:NXM_OF_IP_SRC[]->NXM_NX_REG2[],note:aa.bb,resubmit(,2),resubmit:3,output:NXM_NX_REG1[0..15]'
flow_table='table=3,priority=1,arp,arp_op=1,arp_tpa=192.0.2.1,actions=drop'
flow_ipv6='priority=9,ipv6,ipv6_src=2001:db8::/32,ipv6_dst=2001:db8::1,ipv6_label=0x12345,icmp6,icmp_type=135,nd_target=2001:db8::2,actions=set_field:2001:db8::9->ipv6_dst,output:2'

cap of10_add_flow_basic 1 add-flow "$flow_basic"
cap of10_add_flow_l2 1 add-flow "$flow_l2"
cap of10_add_flow_l3 1 add-flow "$flow_l3"
cap of10_add_flow_nicira 1 add-flow "$flow_nx"
cap of10_add_flow_table 1 add-flow "$flow_table"
cap of10_add_flow_ipv6 1 add-flow "$flow_ipv6"
cap of10_mod_flows 1 mod-flows 'tcp,tp_dst=443,actions=output:2'
cap of10_mod_flows_strict 1 --strict mod-flows 'priority=100,tcp,tp_dst=443,actions=output:2'
cap of10_del_flows_all 1 del-flows
cap of10_del_flows_match 1 del-flows 'tcp,tp_dst=443'
cap of10_del_flows_strict 1 --strict del-flows 'priority=100,tcp,tp_dst=443'
cap of10_dump_flows 1 dump-flows
cap of10_dump_flows_match 1 dump-flows 'table=0,udp'
cap of10_dump_aggregate 1 dump-aggregate
cap of10_show 1 show
cap of10_dump_ports 1 dump-ports
cap of10_dump_ports_desc 1 dump-ports-desc
cap of10_dump_tables 1 dump-tables
cap of10_mod_port_down 1 mod-port p1 down
cap of10_dump_desc 1 dump-desc
# monitor runs until --timeout's alarm (exit status -14).
cap of10_monitor 1 --timeout=2 monitor 65534
cap of10_packet_out 1 packet-out 'in_port=1 packet=ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002 actions=output:2'

of13 of13_add_flow_basic add-flow "$flow_basic"
of13 of13_add_flow_l2 add-flow "$flow_l2"
of13 of13_add_flow_l3 add-flow "$flow_l3"
of13 of13_add_flow_nicira add-flow "$flow_nx"
of13 of13_add_flow_table add-flow "$flow_table"
of13 of13_add_flow_ipv6 add-flow "$flow_ipv6"
of13 of13_add_flow_instructions add-flow 'table=1,priority=5,metadata=0x10/0xff,vlan_tci=0x1000/0x1000,ip,actions=pop_vlan,write_actions(set_field:3->ip_dscp,group:7),write_metadata:0x20/0xff,goto_table:4'
of13 of13_add_flow_flags add-flow 'priority=6,send_flow_rem,check_overlap,reset_counts,cookie=0x99,tcp6,tp_src=80,actions=push_vlan:0x8100,set_field:4196->vlan_vid,set_queue:3,dec_ttl,set_field:11->nw_ttl,output:1'
of13 of13_mod_flows 'mod-flows' 'cookie=0x99/0xff,tcp,tp_dst=443,actions=output:2'
of13 of13_del_flows_all del-flows
of13 of13_del_flows_match del-flows 'table=2,out_port=3,tcp,tp_dst=443'
of13 of13_del_flows_strict --strict del-flows 'priority=100,tcp,tp_dst=443'
of13 of13_dump_flows dump-flows
of13 of13_dump_flows_match dump-flows 'table=0,udp'
of13 of13_dump_aggregate dump-aggregate
of13 of13_show show
of13 of13_dump_ports dump-ports
of13 of13_dump_ports_desc dump-ports-desc
of13 of13_dump_tables dump-tables
of13 of13_mod_port_down mod-port p1 down
of13 of13_dump_desc dump-desc
of13 of13_monitor --timeout=2 monitor 65534
of13 of13_packet_out packet-out 'in_port=1 packet=ffffffffffff020000000001080600010800060400010200000000010a0000010000000000000a000002 actions=output:2'
of13 of13_add_group_select add-group 'group_id=7,type=select,bucket=weight:10,output:1,bucket=weight:20,output:2'
of13 of13_add_group_all add-group 'group_id=8,type=all,bucket=output:1,bucket=mod_vlan_vid:5,output:2'
of13 of13_add_group_indirect add-group 'group_id=9,type=indirect,bucket=output:3'
of13 of13_del_groups del-groups
of13 of13_dump_groups dump-groups
of13 of13_dump_group_stats dump-group-stats
