#!/usr/bin/env bash
# Stop the cluster started by start_cluster.sh DIR.
D=$(realpath -m "$1")
for p in slurmd slurmctld munge/munged; do
  [ -f "$D/$p.pid" ] && kill "$(cat "$D/$p.pid")" 2>/dev/null
done
exit 0
