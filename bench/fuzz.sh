#!/usr/bin/env bash
# The long fuzzing pass (issue 14): every harness of tests/fuzz under the
# "fuzz-long" hypothesis profile (20,000 examples per harness, fewer for the
# ones on a real server or store), then the atheris targets of
# bench/_fuzz_atheris.py for SECONDS each; a summary at the end.
#
#   bench/fuzz.sh [SECONDS]        default 120 s per atheris target
#   PICKEDGE_FUZZ_EXAMPLES=N bench/fuzz.sh   another number of hypothesis examples
#
# CI runs the short pass (tests/fuzz with the "fuzz-ci" profile) as part of
# pytest. Every crash found here becomes a case in tests/fuzz/test_regressions.py.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-120}"
py=.venv/bin/python
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
start=$(date +%s)

echo "== hypothesis, fuzz-long profile" >&2
PICKEDGE_FUZZ=long "$py" -m pytest tests/fuzz -q -p no:cacheprovider \
    --hypothesis-show-statistics >"$out/hypothesis.log" 2>&1
hyp_rc=$?
tail -3 "$out/hypothesis.log" >&2
examples=$(grep -oE '^ *- ([0-9]+) passing' "$out/hypothesis.log" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
hyp_end=$(date +%s)

declare -A runs crashes
if "$py" -c 'import atheris' 2>/dev/null; then
    for target in lines a0 m100 codes json-depth; do
        echo "== atheris $target, ${seconds} s" >&2
        mkdir -p "$out/$target"
        (cd "$out/$target" && "$OLDPWD/$py" "$OLDPWD/bench/_fuzz_atheris.py" "$target" "$seconds") \
            >"$out/$target.log" 2>&1
        runs[$target]=$(grep -oE 'number_of_executed_units: *[0-9]+' "$out/$target.log" | grep -oE '[0-9]+$' || echo 0)
        crashes[$target]=$(find "$out/$target" -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' | wc -l)
        for f in "$out/$target"/crash-* "$out/$target"/timeout-* "$out/$target"/oom-*; do
            [ -e "$f" ] && cp "$f" "bench/fuzz-$target-$(basename "$f")" && echo "   kept bench/fuzz-$target-$(basename "$f")" >&2
        done
    done
else
    echo "== atheris not installed (./dev.sh bench installs it): skipped" >&2
fi
end=$(date +%s)

echo
echo "fuzzing summary ($(date -u +%F), $(nproc) cores)"
printf '  hypothesis: %s examples in %d s, %s\n' "${examples:-0}" $((hyp_end - start)) \
    "$(grep -E '^[0-9]+ (passed|failed)|passed|failed' "$out/hypothesis.log" | tail -1)"
for target in "${!runs[@]}"; do
    printf '  atheris %-10s %10s inputs in %s s, %s crash(es)\n' "$target" "${runs[$target]}" "$seconds" "${crashes[$target]}"
done
printf '  total time: %d s\n' $((end - start))
total_crashes=0
for c in "${crashes[@]}"; do total_crashes=$((total_crashes + c)); done
[ "$hyp_rc" -eq 0 ] && [ "$total_crashes" -eq 0 ]
