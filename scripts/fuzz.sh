#!/usr/bin/env bash
# Fuzzes every parser that reads outside input for longer than the test
# suite does: runs each target of integration-tests/tests/fuzz.rs again and again
# (proptest picks new random inputs on every run) for SECONDS, then prints,
# per target, the inputs tried and the findings.
#
#   ./scripts/fuzz.sh [SECONDS per target, default 60] [TARGET ...]
#
# FUZZ_CASES_PER_RUN (default 2000) sets the inputs one run tries. A finding
# is a failure of the target: its smallest input, as proptest shrank it, is
# printed, saved under target/fuzz/<target>.txt, and kept in
# integration-tests/tests/fuzz.proptest-regressions, so the normal test suite tries
# it first from then on (commit that file with the fix). A target
# stops at its first finding.
#
# Debug build (overflow checks on), no nightly toolchain needed. Exits 1 if
# anything was found.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
cases=${FUZZ_CASES_PER_RUN:-2000}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: $0 [seconds per target] [target ...]" >&2; exit 2; }

echo "Building the fuzz targets..." >&2
binary=$(cargo test -p integration-tests --test fuzz --no-run --message-format=json \
    | jq -r 'select(.reason == "compiler-artifact" and .target.name == "fuzz" and .executable != null) | .executable' \
    | tail -n 1)
[[ -x "$binary" ]] || { echo "could not find the fuzz test binary" >&2; exit 1; }

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    mapfile -t targets < <("$binary" --list --format terse | sed -n 's/: test$//p')
fi

out=target/fuzz
mkdir -p "$out"
found_any=0
printf '%-32s %12s %6s %9s  %s\n' target executions runs findings "minimal input" | tee "$out/summary.txt"
for target in "${targets[@]}"; do
    executions=0
    runs=0
    findings=0
    minimal=""
    deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        log="$out/$target.run.txt"
        if PROPTEST_CASES=$cases "$binary" --exact "$target" --test-threads 1 >"$log" 2>&1; then
            executions=$((executions + cases))
            runs=$((runs + 1))
        else
            runs=$((runs + 1))
            findings=1
            found_any=1
            # proptest reports how many inputs passed before the failing one.
            passed=$(sed -n 's/.*successes: \([0-9]*\).*/\1/p' "$log" | head -n 1)
            executions=$((executions + ${passed:-0} + 1))
            # The input proptest shrank it to, on one line.
            minimal=$(awk '/minimal failing input:/ {on = 1} /successes:/ {on = 0} on' "$log" \
                | sed 's/^minimal failing input: //' | tr -s ' \n\t' ' ')
            cp "$log" "$out/$target.txt"
            break
        fi
    done
    rm -f "$out/$target.run.txt"
    printf '%-32s %12d %6d %9d  %s\n' "$target" "$executions" "$runs" "$findings" "${minimal:--}" \
        | tee -a "$out/summary.txt"
done
echo "Summary in $out/summary.txt" >&2
exit "$found_any"
