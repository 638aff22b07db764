#!/bin/sh
# Regenerates the goldens: for each line of rules.flows (pipeline.flows, fields.flows), what
# `ovs-ofctl -O VERSION parse-flow` makes of it (the flow-mod after "ADD ") into
# of10.txt/of13.txt (pipeline_of*.txt, fields_of*.txt), or "refused" when
# ovs-ofctl refuses it for that version.
# Usage: config/tests/as_loaded/capture.sh   (needs ovs-ofctl)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
capture() { # rules file, output prefix
    for v in 10 13; do
        out=$here/$2$v.txt
        : >"$out"
        while IFS= read -r rule; do
            if text=$(ovs-ofctl -O "OpenFlow$v" parse-flow "$rule" 2>/dev/null | grep ' ADD '); then
                echo "${text#* ADD }" >>"$out"
            else
                echo refused >>"$out"
            fi
        done <"$here/$1"
    done
}
capture rules.flows of
capture pipeline.flows pipeline_of
capture fields.flows fields_of
