#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine (munged, slurmctld and slurmd on localhost).
# Usage: start_cluster.sh DIR   -> writes DIR/slurm.conf and logs; prints the SLURM_CONF path on success.
# Needs Debian's slurm-wlm and munge packages and root. tests/test_slurm.py calls it and skips when it cannot.
set -euo pipefail
D=$(realpath -m "$1"); mkdir -p "$D"/state "$D"/spool "$D"/munge
host=$(hostname -s)
cpus=$(nproc)

# munge: a key of our own and a private socket, so nothing of the host's is touched
dd if=/dev/urandom bs=1 count=1024 of="$D/munge/munge.key" status=none
chmod 600 "$D/munge/munge.key"
munged --force --key-file="$D/munge/munge.key" --socket="$D/munge/munge.socket" \
       --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munge.seed"

cat > "$D/slurm.conf" <<CONF
ClusterName=plsedu
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/slurmctld.log
SlurmdLogFile=$D/slurmd.log
SlurmctldPort=${SLURMCTLD_PORT:-16817}
SlurmdPort=${SLURMD_PORT:-16818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MaxArraySize=10000
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF

export SLURM_CONF="$D/slurm.conf"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for i in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then echo "$SLURM_CONF"; exit 0; fi
  sleep 1
done
echo "SLURM did not come up; see $D/slurmctld.log and $D/slurmd.log" >&2
exit 1
