#!/usr/bin/env bash
# A real one-node SLURM cluster in a directory, for tests and for trying the scripts by hand.
#
#   bash slurm/local_cluster.sh start  DIR   # install packages if missing, write config, start daemons
#   export SLURM_CONF=DIR/slurm.conf          # every client (sbatch, squeue, scontrol) needs it
#   bash slurm/local_cluster.sh status DIR   # sinfo + squeue
#   bash slurm/local_cluster.sh stop   DIR   # cancel our jobs, stop the daemons we started (by PID)
#
# Everything (config, keys, state, spool, logs, PID files) lives in DIR; nothing under /etc is
# used, so it never touches a system-wide SLURM or munge. Needs root (the daemons run as root,
# as SlurmUser/SlurmdUser) and Debian packages slurmctld slurmd slurm-client munge.
#
# Two partitions, so preemption can be tried: `low` (default, PriorityTier=1) whose jobs are
# requeued when a `high` (PriorityTier=10) job needs their CPUs, after GRACE_TIME seconds of
# SIGTERM notice.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"   # the daemons live in sbin, often not on a user PATH

GRACE_TIME=${GRACE_TIME:-20}      # seconds a preempted job gets to checkpoint before SIGKILL
PACKAGES=(slurmctld slurmd slurm-client munge)

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
ACTION=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)
CONF=$DIR/slurm.conf
NODE=$(hostname -s)

install_packages() {
    local missing=()
    for tool in slurmctld slurmd sbatch munged mungekey; do
        command -v "$tool" >/dev/null || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "[local_cluster] installing ${PACKAGES[*]} (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    # Retry after `apt-get update` only when the cached package lists are stale or absent.
    apt-get install -y --no-install-recommends "${PACKAGES[@]}" >"$DIR/apt.log" 2>&1 \
        || { apt-get update >>"$DIR/apt.log" 2>&1 \
             && apt-get install -y --no-install-recommends "${PACKAGES[@]}" >>"$DIR/apt.log" 2>&1; } \
        || { echo "[local_cluster] apt-get failed, see $DIR/apt.log" >&2; tail -20 "$DIR/apt.log" >&2; exit 1; }
}

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Two free TCP ports, so several clusters (e.g. a test run beside a hand-started one) can coexist.
pick_ports() {
    local port=${SLURM_LOCAL_BASE_PORT:-16817} found=()
    while [ ${#found[@]} -lt 2 ] && [ "$port" -lt 65000 ]; do
        port_is_free "$port" && found+=("$port")
        port=$((port + 1))
    done
    CTLD_PORT=${found[0]}
    SLURMD_PORT=${found[1]}
}

write_config() {
    # RealMemory must not exceed what slurmd detects, or the node is drained as "Low RealMemory".
    local memory
    memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    memory=$((memory * 9 / 10))
    local cpus
    cpus=$(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*/\1/p')
    pick_ports
    # Only the controller's name may be used in SlurmctldHost ("not a valid controller" otherwise);
    # the address pins everything to loopback. Linux-proc tracking and no task plugin avoid cgroups,
    # which containers rarely let us use. Accounting is off, so use `scontrol show job`, not sacct.
    cat >"$CONF" <<EOF
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again only cred_expire + 1 s later; 5 is the minimum.
AuthInfo=socket=$SOCKET_DIR/munge.socket.2,cred_expire=5
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
JobRequeue=1
# Schedule every second: otherwise a requeued or newly eligible job can wait up to 30 s.
SchedulerParameters=sched_interval=1
MinJobAge=600
# Job ids differ between clusters running side by side on one machine (say, two test runs), so
# the rendezvous ports that pretrain.sbatch derives from them (20000 + id % 20000) differ too.
FirstJobId=$(( (CTLD_PORT % 100) * 1000 + 1 ))
KillWait=30
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=low Nodes=$NODE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=$GRACE_TIME
PartitionName=high Nodes=$NODE MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
}

# Start a daemon in the foreground in its own session (so a Ctrl-C or a test runner's process
# group signal does not reach it) and remember its PID; `stop` kills exactly these PIDs.
start_daemon() {
    local name=$1; shift
    setsid "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
    echo $! >"$DIR/pids/$name"
}

pid_alive() { [ -f "$DIR/pids/$1" ] && kill -0 "$(cat "$DIR/pids/$1")" 2>/dev/null; }

start() {
    install_packages
    if pid_alive slurmctld || pid_alive slurmd || pid_alive munged; then
        echo "[local_cluster] already running in $DIR (stop it first)" >&2; exit 1
    fi
    rm -rf "$DIR/state" "$DIR/spool" "$DIR/pids"
    mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/pids"
    # munged wants its socket directory, and every directory above it, searchable by all (755)
    # and its key readable by the owner only (600). Test folders are often 700, so the socket
    # gets its own folder under /tmp; its path is kept in DIR so `stop` can remove it.
    SOCKET_DIR=$(mktemp -d /tmp/local-slurm-munge.XXXXXX)
    chmod 755 "$SOCKET_DIR"
    echo "$SOCKET_DIR" >"$DIR/munge/socket_dir"
    [ -f "$DIR/munge/munge.key" ] || mungekey -c -k "$DIR/munge/munge.key"
    chmod 600 "$DIR/munge/munge.key"
    write_config

    start_daemon munged munged -F --socket="$SOCKET_DIR/munge.socket.2" --key-file="$DIR/munge/munge.key" \
        --pid-file="$SOCKET_DIR/munged.pid" --seed-file="$DIR/munge/munged.seed" --log-file="$DIR/log/munged.log"
    wait_for "munge socket" 10 test -S "$SOCKET_DIR/munge.socket.2"
    start_daemon slurmctld slurmctld -D -f "$CONF"
    start_daemon slurmd slurmd -D -f "$CONF" -N "$NODE"
    export SLURM_CONF=$CONF
    wait_for "node $NODE idle" 30 node_is_idle
    echo "[local_cluster] up: SLURM_CONF=$CONF (ports $CTLD_PORT/$SLURMD_PORT)"
}

node_is_idle() { [ "$(sinfo -h -n "$NODE" -p low -o %T 2>/dev/null)" = idle ]; }

# Bounded polling: run a check every 0.2 s until it succeeds or SECONDS elapse.
wait_for() {
    local what=$1 limit=$2; shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "[local_cluster] timed out after ${limit}s waiting for $what; logs in $DIR/log:" >&2
            tail -n 5 "$DIR"/log/* >&2 || true
            return 1
        fi
        for name in munged slurmctld slurmd; do
            if [ -f "$DIR/pids/$name" ] && ! pid_alive "$name"; then
                echo "[local_cluster] $name exited; log:" >&2; tail -n 20 "$DIR/log/$name"* >&2 || true
                return 1
            fi
        done
        sleep 0.2
    done
}

# TERM the named daemons together, give them 10 s to exit, then KILL what is left.
stop_daemons() {
    local name pids=()
    for name in "$@"; do
        pid_alive "$name" && pids+=("$(cat "$DIR/pids/$name")")
    done
    if [ ${#pids[@]} -gt 0 ]; then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        local deadline=$((SECONDS + 10))
        while [ $SECONDS -lt $deadline ] && kill -0 "${pids[@]}" 2>/dev/null; do sleep 0.1; done
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
    fi
    for name in "$@"; do rm -f "$DIR/pids/$name"; done
}

stop() {
    export SLURM_CONF=$CONF
    # Jobs run under slurmstepd processes that outlive slurmd; cancel them while the cluster still
    # answers, so no job of ours keeps running after the daemons are gone.
    if pid_alive slurmctld && pid_alive slurmd; then
        scancel --quiet --partition=low,high 2>/dev/null || true
        local deadline=$((SECONDS + 40))
        while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        # A batch script that ignores SIGTERM (it traps it) would outlive the daemons: SIGKILL
        # every step of what is left, the batch shell included.
        if [ -n "$(squeue -h -o %i 2>/dev/null)" ]; then
            scancel --quiet --full --signal=KILL --partition=low,high 2>/dev/null || true
            deadline=$((SECONDS + 20))
            while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        fi
    fi
    stop_daemons slurmd slurmctld
    stop_daemons munged   # last: the SLURM daemons authenticate through it until they are gone
    if [ -f "$DIR/munge/socket_dir" ]; then
        rm -rf "$(cat "$DIR/munge/socket_dir")"
        rm -f "$DIR/munge/socket_dir"
    fi
    echo "[local_cluster] stopped ($DIR)"
}

status() {
    export SLURM_CONF=$CONF
    for name in munged slurmctld slurmd; do
        if pid_alive "$name"; then echo "$name: running (pid $(cat "$DIR/pids/$name"))"; else echo "$name: stopped"; fi
    done
    sinfo && squeue
}

case $ACTION in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) usage ;;
esac
