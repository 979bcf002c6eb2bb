#!/bin/bash
NP=$(cat /tmp/fastbed/nspawn.pid)
kill -TERM $NP 2>/dev/null
for i in $(seq 30); do kill -0 $NP 2>/dev/null || break; sleep 0.5; done
if kill -0 $NP 2>/dev/null; then L=$(pgrep -P $NP); [ -n "$L" ] && kill -KILL $L; kill -KILL $NP; sleep 1; fi
kill -0 $NP 2>/dev/null && echo "nspawn still alive" || echo "nspawn gone"
