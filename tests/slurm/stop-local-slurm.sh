#!/usr/bin/env bash
# Stop the test cluster started by tests/slurm/start-local-slurm.sh.
#
#   tests/slurm/stop-local-slurm.sh [STATE_DIR]       (default /tmp/gym-llm-bench-slurm)
#
# Cancels the jobs still in that cluster, then ends exactly the daemons whose PIDs the start
# script recorded in STATE_DIR/pids: TERM, and KILL after a grace period (slurmd can ignore
# TERM while it registers). Other processes, including any other SLURM or munge on the
# machine, are left alone. Logs stay in STATE_DIR/log. Safe to run twice.
#
# Settings (environment): LOCAL_SLURM_STOP_GRACE seconds (10).
set -euo pipefail

STATE_DIR=$(realpath -m "${1:-/tmp/gym-llm-bench-slurm}")
GRACE=${LOCAL_SLURM_STOP_GRACE:-10}
CONF="$STATE_DIR/slurm.conf"
PIDS="$STATE_DIR/pids"

log() { echo "[stop-local-slurm] $*" >&2; }

daemon_alive() { # NAME PID
    [[ -r /proc/$2/comm ]] && [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1"* ]]
}

if [[ ! -s $PIDS ]]; then
    log "nothing recorded in $PIDS: not running"
    exit 0
fi

# Jobs first, while slurmctld and slurmd can still end their steps cleanly.
if [[ -f $CONF ]]; then
    job_ids=$(SLURM_CONF="$CONF" timeout 5 squeue --noheader --format=%i 2>/dev/null || true)
    if [[ -n $job_ids ]]; then
        log "cancelling jobs: $(echo "$job_ids" | tr '\n' ' ')"
        # shellcheck disable=SC2086  # one argument per job id
        SLURM_CONF="$CONF" timeout 10 scancel $job_ids 2>/dev/null || true
        for ((i = 0; i < GRACE; i++)); do
            running=$(SLURM_CONF="$CONF" timeout 5 squeue --noheader --states=RUNNING,COMPLETING \
                --format=%i 2>/dev/null || true)
            [[ -z $running ]] && break
            sleep 1
        done
    fi
fi

# Daemons in reverse start order: slurmd, slurmctld, then munged (they authenticate with it).
mapfile -t recorded < <(tac "$PIDS")
for entry in "${recorded[@]}"; do
    read -r name pid <<<"$entry"
    daemon_alive "$name" "$pid" && kill -TERM "$pid" 2>/dev/null || true
done
deadline=$((SECONDS + GRACE))
for entry in "${recorded[@]}"; do
    read -r name pid <<<"$entry"
    while daemon_alive "$name" "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if daemon_alive "$name" "$pid"; then
        log "$name (pid $pid) ignored TERM for ${GRACE}s: KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
done

if [[ -f $STATE_DIR/munge_dir ]]; then
    munge_dir=$(cat "$STATE_DIR/munge_dir")
    # Only the directory the start script made (mktemp under /tmp), never anything else.
    [[ $munge_dir == /tmp/local-slurm-munge.* ]] && rm -rf "$munge_dir"
    rm -f "$STATE_DIR/munge_dir"
fi
if [[ -f $STATE_DIR/system_conf_link ]]; then
    link=$(cat "$STATE_DIR/system_conf_link")
    # Remove the link only while it still points at this cluster's configuration.
    if [[ -L $link ]] && [[ $(readlink "$link") == "$CONF" ]]; then
        rm -f "$link"
    fi
    rm -f "$STATE_DIR/system_conf_link"
fi
rm -f "$PIDS"
log "stopped (logs in $STATE_DIR/log)"
