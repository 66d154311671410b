#!/usr/bin/env bash
# Start a real single-node SLURM cluster on this machine, for tests.
#
#   tests/slurm/start-local-slurm.sh [STATE_DIR]      (default /tmp/gym-llm-bench-slurm)
#
# Installs SLURM and munge from Debian packages (apt-get) when they are missing, writes
# slurm.conf and gres.conf into STATE_DIR, starts munged, slurmctld and slurmd, waits until
# the node is idle, and records the PIDs it started in STATE_DIR/pids (the stop script,
# tests/slurm/stop-local-slurm.sh STATE_DIR, ends only those). Running it again while the
# cluster is up only checks the node and prints the same line. Needs root.
#
# The node poses as one 8xH200 machine: 8 GPUs of type h200 (eight symlinks to /dev/null,
# no real devices) and, by default, the CPUs and memory of a DGX H200 (2 x 56 cores, 2 TB),
# so the profile's whole-node request for train_dm/train_qwen is scheduled exactly as it
# would be there. SlurmdParameters=config_overrides lets slurmd advertise more than the
# hardware has; jobs still run on the real cores.
#
# Settings (environment): LOCAL_SLURM_NODE_CPUS (112), LOCAL_SLURM_NODE_MEMORY_MB (2000000),
# LOCAL_SLURM_GPUS (8), LOCAL_SLURM_PORT (17817; slurmd uses the next port),
# LOCAL_SLURM_START_TIMEOUT seconds (90).
#
# While it runs, /etc/slurm/slurm.conf is a symlink to STATE_DIR/slurm.conf (snakemake's job
# step hides SLURM_CONF from its inner srun); the script refuses to start where that file
# is a real configuration, and the stop script removes the link. The last line printed is
# `export SLURM_CONF=STATE_DIR/slurm.conf`, for clients that look there first.
set -euo pipefail

STATE_DIR=$(realpath -m "${1:-/tmp/gym-llm-bench-slurm}")
NODE_CPUS=${LOCAL_SLURM_NODE_CPUS:-112}
NODE_MEMORY_MB=${LOCAL_SLURM_NODE_MEMORY_MB:-2000000}
N_GPUS=${LOCAL_SLURM_GPUS:-8}
CTLD_PORT=${LOCAL_SLURM_PORT:-17817}
SLURMD_PORT=$((CTLD_PORT + 1))
START_TIMEOUT=${LOCAL_SLURM_START_TIMEOUT:-90}
NODE_NAME=$(hostname -s)
CONF="$STATE_DIR/slurm.conf"
PIDS="$STATE_DIR/pids"
SYSTEM_CONF=/etc/slurm/slurm.conf
CONF_HEADER="Written by tests/slurm/start-local-slurm.sh"

log() { echo "[start-local-slurm] $*" >&2; }
# The daemons' logs and their captured stdout/stderr (a fatal error before a daemon opens its
# log file lands in its .out).
show_logs() { tail -n 30 "$STATE_DIR"/log/*.log "$STATE_DIR"/log/*.out >&2 2>/dev/null || true; }
die() {
    log "ERROR: $*"
    exit 1
}
# After a daemon was started: stop what was started, then fail.
abort_started() {
    log "ERROR: $*"
    "$(dirname "$0")/stop-local-slurm.sh" "$STATE_DIR" || true
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root (installs packages, runs slurmd); run it as root"

# A recorded daemon still alive under its own name (guards against PID reuse).
daemon_alive() { # NAME PID
    [[ -r /proc/$2/comm ]] && [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1"* ]]
}

# Block until a daemon just launched as `(exec setsid NAME ...) &` runs as NAME. Until both
# execs are done its PID still shows as bash or setsid (seen on a loaded 2-core CI machine),
# and the name checks here and in the stop script would take it for a daemon that exited.
wait_for_exec() { # NAME PID
    local i
    for ((i = 0; i < 200; i++)); do
        daemon_alive "$1" "$2" && return 0
        [[ -e /proc/$2 ]] || break
        sleep 0.05
    done
    show_logs
    abort_started "$1 (pid $2) did not start: $([[ -e /proc/$2 ]] && echo "still not running as $1 after 10s" || echo "exited")"
}

# --- 1. Packages ------------------------------------------------------------------------
install_packages() {
    local missing=()
    local tool
    for tool in munged slurmctld slurmd sbatch squeue sinfo; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || die "apt-get update failed (no network or Debian mirror?); install slurmctld slurmd slurm-client munge yourself"
    # The packages' postinst scripts try to start the system services; on a machine
    # without an init system that is refused, which is fine: we start our own daemons.
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >&2 ||
        die "apt-get install slurmctld slurmd slurm-client munge failed (output above)"
}

# --- 2. Already running? ----------------------------------------------------------------
wait_for_idle_node() {
    local deadline=$((SECONDS + START_TIMEOUT))
    local state=""
    while ((SECONDS < deadline)); do
        local name pid
        while read -r name pid; do
            daemon_alive "$name" "$pid" || {
                show_logs
                log "ERROR: $name (pid $pid) exited during start-up; logs above, all in $STATE_DIR/log"
                return 1
            }
        done <"$PIDS"
        # A dead or starting slurmctld can make sinfo block for minutes: bound each call.
        state=$(SLURM_CONF="$CONF" timeout 5 sinfo --noheader --Node --nodes="$NODE_NAME" \
            --format=%T 2>/dev/null || true)
        if [[ $state == "idle" ]]; then
            return 0
        fi
        sleep 1
    done
    show_logs
    log "ERROR: node $NODE_NAME not idle after ${START_TIMEOUT}s (state: '${state:-no answer}'); logs above"
    return 1
}

if [[ -s $PIDS ]]; then
    all_alive=1
    while read -r name pid; do
        daemon_alive "$name" "$pid" || all_alive=0
    done <"$PIDS"
    if ((all_alive)); then
        log "already running (PIDs in $PIDS)"
        wait_for_idle_node || exit 1
        echo "export SLURM_CONF=$CONF"
        exit 0
    fi
    die "$PIDS lists daemons that are no longer all running; run tests/slurm/stop-local-slurm.sh $STATE_DIR first"
fi

for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "port $port is in use (another local cluster?); stop it or set LOCAL_SLURM_PORT"
    fi
done

install_packages
for tool in munged slurmctld slurmd sinfo setpriv; do
    command -v "$tool" >/dev/null || die "$tool not found after installation"
done
id munge >/dev/null 2>&1 || die "no 'munge' user (the munge package creates it)"

# SLURM clients find their configuration through SLURM_CONF, but snakemake's job step strips
# every SLURM_* variable before its inner `srun`, which then looks in the default place.
# So while this cluster runs, /etc/slurm/slurm.conf links to its configuration; a real
# configuration there is never replaced.
# A link left by a test cluster that was not stopped (its ports are free: checked above)
# may be replaced; a real file, or a link to anything else, never.
if [[ -e $SYSTEM_CONF || -L $SYSTEM_CONF ]] &&
    ! { [[ -L $SYSTEM_CONF ]] && { [[ ! -e $SYSTEM_CONF ]] || grep -q "$CONF_HEADER" "$SYSTEM_CONF"; }; }; then
    die "$SYSTEM_CONF exists and is not a test cluster's; refusing to replace it"
fi
mkdir -p "$STATE_DIR"/{log,slurmctld,slurmd,dev} "$(dirname "$SYSTEM_CONF")"
ln -sfn "$CONF" "$SYSTEM_CONF"
echo "$SYSTEM_CONF" >"$STATE_DIR/system_conf_link"

# --- 3. Configuration -------------------------------------------------------------------
# munged demands that every directory above its socket be world-executable, which a
# pytest tmp_path is not; and a unix socket path must stay short. Hence its own dir in /tmp.
MUNGE_DIR=$(mktemp -d /tmp/local-slurm-munge.XXXXXX)
chmod 755 "$MUNGE_DIR"
echo "$MUNGE_DIR" >"$STATE_DIR/munge_dir"
dd if=/dev/urandom of="$MUNGE_DIR/munge.key" bs=1024 count=1 status=none
chown -R munge:munge "$MUNGE_DIR"
chmod 400 "$MUNGE_DIR/munge.key"

# Fake GPUs: slurmd accepts only device files, so each "GPU" is a symlink to /dev/null.
for ((i = 0; i < N_GPUS; i++)); do
    ln -sfn /dev/null "$STATE_DIR/dev/nvidia$i"
done

cat >"$STATE_DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=$NODE_NAME Name=gpu Type=h200 File=$STATE_DIR/dev/nvidia[0-$((N_GPUS - 1))]
EOF

cat >"$CONF" <<EOF
# $CONF_HEADER: a one-node test cluster, no accounting.
ClusterName=localtest
SlurmctldHost=$NODE_NAME(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_DIR/munge.socket
StateSaveLocation=$STATE_DIR/slurmctld
SlurmdSpoolDir=$STATE_DIR/slurmd
SlurmctldPidFile=$STATE_DIR/slurmctld.pid
SlurmdPidFile=$STATE_DIR/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
# No slurmdbd: no accounting, so no AccountingStorageTRES (slurmctld refuses it), and
# sacct has nothing to report: job status must come from squeue (the profile says so).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# No cgroups in a container: track processes by parent PID, no CPU binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that names no memory takes the whole node and jobs run one by one.
DefMemPerCPU=4096
GresTypes=gpu
# squeue forgets a finished job after MinJobAge seconds; snakemake's squeue status check
# needs it >= 3 x slurm-init-seconds-before-status-checks.
MinJobAge=600
# Advertise the configured CPUs/memory (an H200 node), not what this machine has.
SlurmdParameters=config_overrides
ReturnToService=2
SlurmdTimeout=300
InactiveLimit=0
KillWait=5
NodeName=$NODE_NAME NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$NODE_MEMORY_MB Gres=gpu:h200:$N_GPUS State=UNKNOWN
PartitionName=local Nodes=$NODE_NAME Default=YES MaxTime=INFINITE State=UP
EOF

# --- 4. Daemons -------------------------------------------------------------------------
# Each runs in the foreground of its own session (so a Ctrl-C in the caller's terminal does
# not reach it); `exec` makes $! the daemon's own PID, which is what we record.
: >"$PIDS"
(exec setsid setpriv --reuid=munge --regid=munge --init-groups munged --foreground \
    --key-file="$MUNGE_DIR/munge.key" --socket="$MUNGE_DIR/munge.socket" \
    --pid-file="$MUNGE_DIR/munged.pid" --seed-file="$MUNGE_DIR/munged.seed" \
    --log-file="$MUNGE_DIR/munged.log" </dev/null >>"$STATE_DIR/log/munged.out" 2>&1) &
echo "munged $!" >>"$PIDS"
for ((i = 0; i < 50; i++)); do
    [[ -S $MUNGE_DIR/munge.socket ]] && break
    sleep 0.1
done
[[ -S $MUNGE_DIR/munge.socket ]] || {
    cat "$MUNGE_DIR/munged.log" "$STATE_DIR/log/munged.out" >&2 || true
    abort_started "munged did not create its socket"
}

(exec setsid slurmctld -D -c -f "$CONF" </dev/null >>"$STATE_DIR/log/slurmctld.out" 2>&1) &
echo "slurmctld $!" >>"$PIDS"
wait_for_exec slurmctld $!
(exec setsid slurmd -D -f "$CONF" -N "$NODE_NAME" </dev/null >>"$STATE_DIR/log/slurmd.out" 2>&1) &
echo "slurmd $!" >>"$PIDS"
wait_for_exec slurmd $!

# A cluster that did not come up is taken down again, so nothing is left running.
wait_for_idle_node || abort_started "the cluster did not come up"
log "node $NODE_NAME idle: $NODE_CPUS CPUs, $NODE_MEMORY_MB MB, gpu:h200:$N_GPUS (PIDs in $PIDS)"
echo "export SLURM_CONF=$CONF"
