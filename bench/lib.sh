# shellcheck shell=bash
# Shared by the bench/ scripts (sourced): pgbench through a port, with a Meridian process's own
# CPU time over the run, and the medians of interleaved rounds.
pgbench_bin=/usr/lib/postgresql/15/bin/pgbench
tck=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of a pid

# run_pgbench PID PORT OPTIONS PGBENCH-ARGS...: prints "tps transactions failed latency_ms cpu_us_per_tx"
run_pgbench() {
  local pid=$1 port=$2 options=$3 before after out tps tx failed lat
  shift 3
  before=$(cpu_ticks "$pid")
  out=$(PGPASSWORD=app-secret PGOPTIONS="$options" "$pgbench_bin" -n -h 127.0.0.1 -p "$port" -U app "$@" app 2>&1) ||
    { echo "$out" >&2; return 1; }
  after=$(cpu_ticks "$pid")
  tps=$(awk '/^tps/ {print $3; exit}' <<<"$out")
  tx=$(awk -F': ' '/number of transactions actually processed/ {split($2, a, "/"); print a[1]}' <<<"$out")
  failed=$(awk -F': ' '/number of failed transactions/ {split($2, a, " "); print a[1]}' <<<"$out")
  lat=$(awk '/^latency average/ {print $4; exit}' <<<"$out")
  echo "$tps $tx $failed $lat $(awk -v d=$((after - before)) -v t="$tck" -v n="$tx" 'BEGIN {printf "%.2f", d / t * 1e6 / n}')"
}

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# pick COLUMN LABEL < rows: the column of the rows whose second field is LABEL
pick() { awk -v m="$2" -v c="$1" '$2 == m {print $c}'; }
