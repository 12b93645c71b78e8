#!/usr/bin/env bash
# Every benchmark with its same-run reference, and the table BENCHMARKS.md shows.
#
# Runs, one after the other (each prints its own details to bench-<name>.out in OUT):
#   rdb      scripts/bench-rdb.sh        RDB decode vs redis-server's own load of the same file
#   backup   scripts/bench-backup.sh     `aofvault backup` of a 1 GiB AOF vs `zstd -3 -T1` of it
#   ship     scripts/bench-ship.sh       following redis-benchmark: shipping rate, peak RSS
#   restore  scripts/bench-restore.sh    live restore vs `redis-cli --pipe` (redis, kevy 4 shards)
#   thin     scripts/bench-thin.sh       live restore of a history writing every key 5 times
# then prints one Markdown table: what, figure, reference (same run), ratio, target.
# Each row also carries the load average when that benchmark started: on a shared machine a
# ratio is only as good as the quiet it was measured in.
#
# Usage: scripts/bench.sh [NAMES...]     (default: all five; e.g. scripts/bench.sh rdb backup)
# Sizes: RDB_MB (500), BACKUP_MB (1024), SHIP_MB (512), RESTORE_KEYS (500000), THIN_KEYS (500000), RUNS (3).
# Results go to OUT (default: a new directory under /tmp, printed first).
set -uo pipefail
root=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$(mktemp -d -t aofvault-bench.XXXXXX)}
mkdir -p "$out"
names=("$@")
[[ ${#names[@]} -eq 0 ]] && names=(rdb backup ship restore thin)
runs=${RUNS:-3}
rows=()
load() { cut -d' ' -f1 /proc/loadavg; }
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
echo "results in $out" >&2

for name in "${names[@]}"; do
    l=$(load)
    echo "== $name (load average $l)" >&2
    case $name in
    rdb)
        KEEP_DIR=${RDB_DIR:-} "$root/bench-rdb.sh" "${RDB_MB:-500}" "$runs" >"$out/bench-rdb.out" 2>&1
        line=$(grep 'decoder speed:' "$out/bench-rdb.out")
        ours=$(sed -n 's/.*decoder speed: \([0-9]*\) MiB.*/\1/p' <<<"$line")
        theirs=$(sed -n 's/.*redis-server: \([0-9]*\) MiB.*/\1/p' <<<"$line")
        ratio=$(sed -n 's/.*decoder is \([0-9.]*\)x.*/\1/p' <<<"$line")
        row "RDB decode ($(sed -n 's/^file: *//p' "$out/bench-rdb.out"))" "${ours:-?} MiB/s" \
            "redis-server load: ${theirs:-?} MiB/s" "${ratio:-?}×" "≥ 4×, ≥ 300 MiB/s" "$l"
        ;;
    backup)
        "$root/bench-backup.sh" "${BACKUP_MB:-1024}" "$runs" >"$out/bench-backup.out" 2>&1
        f=$out/bench-backup.out
        a=$(awk '/^A wall s/ {print $5}' "$f")
        b=$(awk '/^B wall s/ {print $5}' "$f")
        r=$(awk '/^A\/B wall/ {print $4}' "$f")
        peak=$(awk '/^A peak MiB/ {print $5}' "$f")
        ratio=$(awk -v r="$r" 'BEGIN { if (r > 0) printf "%.2f", 1 / r; else print "?" }')
        row "\`aofvault backup\` of a ${BACKUP_MB:-1024} MiB AOF (median wall; peak RSS ${peak:-?} MiB)" \
            "${a:-?} s" "\`zstd -3 -T1\` of the file: ${b:-?} s" "${ratio}×" "≥ 1.3×; RSS ≤ 64 MiB" "$l"
        ;;
    ship)
        IDLE_SECONDS=${IDLE_SECONDS:-20} "$root/bench-ship.sh" "${SHIP_MB:-512}" >"$out/bench-ship.out" 2>&1
        f=$out/bench-ship.out
        server=$(sed -n 's/^server AOF write rate.*: \([0-9.]*\) MB\/s.*/\1/p' "$f")
        ship=$(sed -n 's/^agent shipping rate.*: \([0-9.]*\) MB\/s.*ratio to server: \([0-9.]*\).*/\1 \2/p' "$f")
        rss=$(sed -n 's/^agent peak RSS under load *: \([0-9]*\) MiB.*/\1/p' "$f")
        cold=$(sed -n 's/^cold start.*: \([0-9.]*\) MB\/s (plain copy of the same file: \([0-9.]*\) MB\/s), peak RSS \([0-9]*\) MiB.*/\1 \2 \3/p' "$f")
        read -r srate sratio <<<"$ship"
        read -r crate ccopy crss <<<"$cold"
        row "shipping while redis-benchmark writes (first write → lag 0)" "${srate:-?} MB/s" \
            "server's AOF write rate: ${server:-?} MB/s" "${sratio:-?}" "—" "$l"
        row "peak RSS while following that load" "${rss:-?} MiB" "—" "—" "≤ 64 MiB" "$l"
        row "cold start on the AOF (peak RSS ${crss:-?} MiB)" "${crate:-?} MB/s" \
            "\`dd … conv=fsync\` copy: ${ccopy:-?} MB/s" \
            "$(awk -v a="${crate:-0}" -v b="${ccopy:-0}" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "?" }')" \
            "RSS ≤ 64 MiB" "$l"
        ;;
    restore)
        "$root/bench-restore.sh" "${RESTORE_KEYS:-500000}" "redis kevy" "$runs" >"$out/bench-restore.out" 2>&1
        f=$out/bench-restore.out
        for kind in redis kevy; do
            ratio=$(sed -n "s/^$kind: live restore vs redis-cli --pipe: \([0-9.]*\)x.*/\1/p" "$f")
            pipe=$(awk -v k="$kind" '$1 == k && /redis-cli --pipe/ {print $(NF-1)}' "$f" | head -1)
            live=$(awk -v k="$kind" '$1 == k && /restore --to / {print $(NF-1)}' "$f" | head -1)
            target="≥ 1.0×"
            [[ $kind == kevy ]] && target="≥ 1.2×"
            row "live restore into $kind (${RESTORE_KEYS:-500000} keys)" "${live:-?} s" \
                "\`redis-cli --pipe\`: ${pipe:-?} s" "${ratio:-?}×" "$target" "$l"
        done
        ;;
    thin)
        "$root/bench-thin.sh" "${THIN_KEYS:-500000}" "$runs" >"$out/bench-thin.out" 2>&1
        f=$out/bench-thin.out
        pipe=$(sed -n 's/^redis-cli --pipe of the AOF stream *\([0-9.]*\)$/\1/p' "$f")
        live=$(sed -n 's/^aofvault restore --to *\([0-9.]*\)$/\1/p' "$f")
        exact=$(sed -n 's/^aofvault restore --to --exact-replay *\([0-9.]*\)$/\1/p' "$f")
        ratio=$(sed -n 's/^restore --to vs redis-cli --pipe: \([0-9.]*\)x.*/\1/p' "$f")
        ratio_exact=$(sed -n 's/^restore --to --exact-replay vs redis-cli --pipe: \([0-9.]*\)x.*/\1/p' "$f")
        row "live restore into redis, ${THIN_KEYS:-500000} keys each written 5 times" "${live:-?} s" \
            "\`redis-cli --pipe\` of the log: ${pipe:-?} s" "${ratio:-?}×" "≥ 2×" "$l"
        row "the same with \`--exact-replay\`" "${exact:-?} s" \
            "\`redis-cli --pipe\` of the log: ${pipe:-?} s" "${ratio_exact:-?}×" "—" "$l"
        ;;
    *)
        echo "unknown benchmark $name (rdb, backup, ship, restore, thin)" >&2
        exit 2
        ;;
    esac
done

echo
echo "| what | figure | reference, same run | ratio | target | load avg |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
