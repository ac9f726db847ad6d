#!/usr/bin/env bash
# Submit the whole chain with one command: init → clean → dedup → [near-dedup stages, if on] →
# split → tokenizer → pack → finalize → pretrain, each stage an array job that starts only when
# the previous one succeeded (--dependency=afterok). Prints one `NAME JOBID` line per job.
#
#   slurm/submit.sh --input 'corpus/**/*.csv*' --data out/zh --run runs/zh-gpt \
#       --train-config configs/train/X.yaml --deepspeed configs/deepspeed/Y.json \
#       --nodes 4 --gpus-per-node 8 --partition gpu --account myproject --time 24:00:00
#
# Every option also reads an environment variable (in brackets); flags win. Anything after `--`
# goes to the trainer as overrides (e.g. `-- train.max_tokens=3100000000`). SLURM's own SBATCH_*
# variables (SBATCH_QOS, SBATCH_RESERVATION, ...) apply to every job as usual.
#
# `init` runs here, on the submitting host: it only globs the inputs and writes OUT/plan.json,
# and the array sizes must be known before the stages are submitted. Re-running the same
# command after a failure is safe: finished tasks are skipped, and init accepts the same plan.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    cat >&2 <<EOF
usage: $0 --input GLOB [--input GLOB ...] --data OUT --run RUN --train-config CFG [options] [-- overrides]

data preparation
  --input GLOB          input CSV glob, repeatable ['**' allowed; quote it]       [INPUTS, space-separated]
  --data OUT            prepared data directory                                    [DATA]
  --data-config FILE    data config YAML (default configs/data/default.yaml)        [DATA_CONFIG]
  --num-tasks N         tasks per file-sliced stage (default: the pipeline's choice) [NUM_TASKS]
  --num-buckets K       dedup tasks (hash buckets; default: the data config's)      [NUM_BUCKETS]
  --data-override K=V   data config override, repeatable (e.g. clean.min_chars=20)
  --prep-time T         time limit of one array task (default 4:00:00)              [PREP_TIME]
  --prep-cpus C         CPUs of one array task (default 1)                          [PREP_CPUS]
  --tokenizer-cpus C    CPUs of the tokenizer-training task (default 16)            [TOKENIZER_CPUS]
  --max-parallel M      at most M array tasks at once (default: no limit)           [MAX_PARALLEL]
  --no-prepare          data is prepared already: submit only the training job
training
  --run RUN             run directory (checkpoints, metrics, logs)                  [RUN]
  --train-config CFG    training config YAML                                        [TRAIN_CONFIG]
  --deepspeed FILE      DeepSpeed JSON (default: none, the trainer's built-in)      [DEEPSPEED]
  --nodes N             nodes (default 1)                                           [NODES]
  --gpus-per-node G     GPUs per node, one rank each (default 8; 0 = CPU ranks)     [GPUS_PER_NODE]
  --tasks-per-node T    ranks per node (default: G, or 1 when G=0)                  [TASKS_PER_NODE]
  --cpus-per-task C     CPUs per rank (default 8)                                   [CPUS_PER_TASK]
  --time T              time limit of one training run (default 24:00:00)           [TIME]
  --signal-seconds S    USR1 this long before the time limit, to checkpoint (default 300) [SIGNAL_SECONDS]
  --no-train            submit only the data preparation
both
  --partition P         partition (default: the cluster's default)                  [PARTITION]
  --account A           account to charge (default: yours)                          [ACCOUNT]
  --log-dir DIR         job logs (default logs/slurm)                               [LOG_DIR]
  --python PATH         interpreter on the nodes (default .venv/bin/python)         [PYTHON]
EOF
    exit 2
}

read -r -a INPUTS <<<"${INPUTS:-}"
DATA=${DATA:-}
DATA_CONFIG=${DATA_CONFIG:-configs/data/default.yaml}
NUM_TASKS=${NUM_TASKS:-}
NUM_BUCKETS=${NUM_BUCKETS:-}
DATA_OVERRIDES=()
PREP_TIME=${PREP_TIME:-4:00:00}
PREP_CPUS=${PREP_CPUS:-1}
TOKENIZER_CPUS=${TOKENIZER_CPUS:-16}
MAX_PARALLEL=${MAX_PARALLEL:-}
RUN=${RUN:-}
TRAIN_CONFIG=${TRAIN_CONFIG:-}
DEEPSPEED=${DEEPSPEED:-}
NODES=${NODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TASKS_PER_NODE=${TASKS_PER_NODE:-}
CPUS_PER_TASK=${CPUS_PER_TASK:-8}
TIME=${TIME:-24:00:00}
SIGNAL_SECONDS=${SIGNAL_SECONDS:-300}
PARTITION=${PARTITION:-}
ACCOUNT=${ACCOUNT:-}
LOG_DIR=${LOG_DIR:-logs/slurm}
PYTHON=${PYTHON:-.venv/bin/python}
PREPARE=1
TRAIN=1
TRAIN_OVERRIDES=()

while [ $# -gt 0 ]; do
    case $1 in
        --input) INPUTS+=("$2"); shift ;;
        --data) DATA=$2; shift ;;
        --data-config) DATA_CONFIG=$2; shift ;;
        --num-tasks) NUM_TASKS=$2; shift ;;
        --num-buckets) NUM_BUCKETS=$2; shift ;;
        --data-override) DATA_OVERRIDES+=("$2"); shift ;;
        --prep-time) PREP_TIME=$2; shift ;;
        --prep-cpus) PREP_CPUS=$2; shift ;;
        --tokenizer-cpus) TOKENIZER_CPUS=$2; shift ;;
        --max-parallel) MAX_PARALLEL=$2; shift ;;
        --no-prepare) PREPARE=0 ;;
        --run) RUN=$2; shift ;;
        --train-config) TRAIN_CONFIG=$2; shift ;;
        --deepspeed) DEEPSPEED=$2; shift ;;
        --nodes) NODES=$2; shift ;;
        --gpus-per-node) GPUS_PER_NODE=$2; shift ;;
        --tasks-per-node) TASKS_PER_NODE=$2; shift ;;
        --cpus-per-task) CPUS_PER_TASK=$2; shift ;;
        --time) TIME=$2; shift ;;
        --signal-seconds) SIGNAL_SECONDS=$2; shift ;;
        --no-train) TRAIN=0 ;;
        --partition) PARTITION=$2; shift ;;
        --account) ACCOUNT=$2; shift ;;
        --log-dir) LOG_DIR=$2; shift ;;
        --python) PYTHON=$2; shift ;;
        --) shift; TRAIN_OVERRIDES=("$@"); break ;;
        -h|--help) usage ;;
        *) echo "unknown option: $1" >&2; usage ;;
    esac
    shift
done

fail() { echo "submit.sh: $*" >&2; exit 2; }
command -v sbatch >/dev/null || fail "sbatch not found: run this on a SLURM login node (or export SLURM_CONF for slurm/local_cluster.sh)"
[ -n "$DATA" ] || fail "--data OUT is required"
[ "$PREPARE" = 0 ] || [ ${#INPUTS[@]} -gt 0 ] || fail "--input GLOB is required (or --no-prepare)"
[ "$TRAIN" = 0 ] || { [ -n "$RUN" ] && [ -n "$TRAIN_CONFIG" ]; } || fail "--run and --train-config are required (or --no-train)"
[ -n "$TASKS_PER_NODE" ] || TASKS_PER_NODE=$(( GPUS_PER_NODE > 0 ? GPUS_PER_NODE : 1 ))

# Jobs run with --chdir=REPO; make user paths absolute so they mean what they meant here.
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
# Config files: relative to here if they exist here, else relative to the repository.
existing() { if [ -e "$1" ]; then absolute "$1"; else echo "$1"; fi; }
DATA=$(absolute "$DATA")
LOG_DIR=$(absolute "$LOG_DIR")
[ -z "$RUN" ] || RUN=$(absolute "$RUN")
[ -z "$DATA_CONFIG" ] || DATA_CONFIG=$(existing "$DATA_CONFIG")
[ -z "$TRAIN_CONFIG" ] || TRAIN_CONFIG=$(existing "$TRAIN_CONFIG")
[ -z "$DEEPSPEED" ] || DEEPSPEED=$(existing "$DEEPSPEED")
case $PYTHON in */*) PYTHON=$(cd "$REPO" && absolute "$PYTHON") ;; esac   # relative to the repo
export PYTHON   # sbatch exports the environment: the job scripts read PYTHON
mkdir -p "$LOG_DIR"   # SLURM does not create the log directory; a missing one loses the log

COMMON=(--parsable --chdir="$REPO" ${PARTITION:+--partition="$PARTITION"} ${ACCOUNT:+--account="$ACCOUNT"})
DEPENDENCY=()
submit() {   # submit NAME SBATCH_ARGS...; prints "NAME JOBID" and chains the next job on this one
    local name=$1; shift
    local id
    id=$(sbatch "${COMMON[@]}" "${DEPENDENCY[@]}" "$@" </dev/null)
    id=${id%%;*}
    echo "$name $id"
    # afterok on an array job waits for every task; if one fails, the rest of the chain is
    # cancelled (instead of waiting forever) and re-running this command picks up from there.
    DEPENDENCY=(--dependency="afterok:$id" --kill-on-invalid-dep=yes)
}

if [ "$PREPARE" = 1 ]; then
    [ -z "$NUM_BUCKETS" ] || DATA_OVERRIDES+=("dedup.num_buckets=$NUM_BUCKETS")
    input_args=()
    for glob in "${INPUTS[@]}"; do input_args+=(--input "$(absolute "$glob")"); done
    (cd "$REPO" && "$PYTHON" -m pipeline init "${input_args[@]}" --output "$DATA" \
        ${DATA_CONFIG:+--config "$DATA_CONFIG"} ${NUM_TASKS:+--num-tasks "$NUM_TASKS"} \
        "${DATA_OVERRIDES[@]}") >&2
    echo "init $DATA/plan.json"
    # The pipeline lists its stages in order with their task counts; a stage switched off by
    # the config (e.g. near-duplicate removal) has 0 tasks and gets no job.
    stage_counts=$(cd "$REPO" && "$PYTHON" -m pipeline tasks --output "$DATA")
    while read -r stage count; do
        [ "$count" -gt 0 ] || continue
        cpus=$PREP_CPUS
        [ "$stage" = tokenizer ] && cpus=$TOKENIZER_CPUS
        submit "$stage" --job-name="prep-$stage" --array="0-$((count - 1))${MAX_PARALLEL:+%$MAX_PARALLEL}" \
            --ntasks=1 --cpus-per-task="$cpus" --time="$PREP_TIME" \
            --output="$LOG_DIR/prep-$stage-%A_%a.out" \
            "$REPO/slurm/prepare_stage.sbatch" "$stage" "$DATA"
    done <<<"$stage_counts"
fi

if [ "$TRAIN" = 1 ]; then
    train_args=(--config "$TRAIN_CONFIG" --data "$DATA" --output "$RUN")
    [ -z "$DEEPSPEED" ] || train_args+=(--deepspeed "$DEEPSPEED")
    gpus=()
    [ "$GPUS_PER_NODE" -gt 0 ] && gpus=(--gpus-per-node="$GPUS_PER_NODE")
    # Command-line flags override the #SBATCH defaults inside pretrain.sbatch.
    submit pretrain --job-name="pretrain-$(basename "$RUN")" --nodes="$NODES" \
        --ntasks-per-node="$TASKS_PER_NODE" --cpus-per-task="$CPUS_PER_TASK" "${gpus[@]}" \
        --time="$TIME" --signal="B:USR1@$SIGNAL_SECONDS" --output="$LOG_DIR/pretrain-%j.out" \
        "$REPO/slurm/pretrain.sbatch" "${train_args[@]}" "${TRAIN_OVERRIDES[@]}"
fi
