#!/bin/sh
# Regenerates of10.txt and of13.txt: for each line of rules.flows, what
# `ovs-ofctl -O VERSION parse-flow` makes of it (the flow-mod after "ADD "), or
# "refused" when ovs-ofctl refuses it for that version.
# Usage: config/tests/as_loaded/capture.sh   (needs ovs-ofctl)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for v in 10 13; do
    out=$here/of$v.txt
    : >"$out"
    while IFS= read -r rule; do
        if text=$(ovs-ofctl -O "OpenFlow$v" parse-flow "$rule" 2>/dev/null | grep ' ADD '); then
            echo "${text#* ADD }" >>"$out"
        else
            echo refused >>"$out"
        fi
    done <"$here/rules.flows"
done
