#!/usr/bin/env bash
# README command 2: set up if needed, then run the whole test suite (unit, integration, browser) on every
# ComfyUI host of the matrix, one pytest session per host in that host's own venv.
#
#   scripts/test.sh [pytest arguments]        e.g. `scripts/test.sh tests/unit -k audio -q`
#
# Hosts: ComfyUI 0.3.75 from PyPI (or HV_COMFYUI=<checkout>), then every ComfyUI snapshot
# (*.tar.gz unpacking to ComfyUI/) in HV_EXTRA_HOSTS=<folder>, by default ../shared/hosts next to the
# clone (HV_REQUIRE_EXTRA_HOSTS=1, as in .ci/run: fail when there is none). HV_TEST_HOSTS=0.33.0 (a
# comma-separated list of versions) runs only those. The exit status is non-zero when the suite fails on
# any host.
set -uo pipefail
PACK_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$PACK_DIR"

say() { printf '[test] %s\n' "$*"; }

hosts=("${HV_COMFYUI:-pypi}")
extra_dir="${HV_EXTRA_HOSTS:-$PACK_DIR/../shared/hosts}"
shopt -s nullglob
snapshots=("$extra_dir"/*.tar.gz)
shopt -u nullglob
if [ "${#snapshots[@]}" -gt 0 ]; then
  hosts+=("${snapshots[@]}")
elif [ "${HV_REQUIRE_EXTRA_HOSTS:-0}" = "1" ]; then
  say "no ComfyUI snapshot (*.tar.gz) in $extra_dir (HV_EXTRA_HOSTS), and this run needs one"; exit 1
else
  say "no further ComfyUI snapshot in $extra_dir (HV_EXTRA_HOSTS): testing on ComfyUI 0.3.75 only"
fi

# Set every host up first: a host that cannot be set up fails the run before any test starts.
labels=() venvs=() paths=()
for host in "${hosts[@]}"; do
  env_lines="$(bash "$PACK_DIR/scripts/setup.sh" --host "$host" --print-env)" || {
    say "setting up $host failed"; exit 1
  }
  eval "$env_lines"
  if [ -n "${HV_TEST_HOSTS:-}" ] && [[ ",$HV_TEST_HOSTS," != *",${HV_HOST_LABEL#ComfyUI },"* ]]; then
    continue
  fi
  if [[ " ${labels[*]} " == *" $HV_HOST_LABEL "* ]]; then
    say "$HV_HOST_LABEL from $host: already tested from another tree, skipped"; continue
  fi
  labels+=("$HV_HOST_LABEL") venvs+=("$HV_VENV") paths+=("$COMFYUI_PATH")
done
[ "${#labels[@]}" -gt 0 ] || { say "HV_TEST_HOSTS=$HV_TEST_HOSTS matches none of the hosts"; exit 2; }

# With several hosts the sessions run side by side (HV_TEST_SERIAL=1: one after the other), each with one
# torch thread per process unless OMP_NUM_THREADS says otherwise: on a small CI machine one session alone
# leaves much of the CPU idle while its servers start and its browser loads pages, and two sessions with two
# threads each would make their threads wait for each other. Each session's output goes to its log and is
# printed whole when it ends, one host after the other.
parallel=0
if [ "${#labels[@]}" -gt 1 ] && [ "${HV_TEST_SERIAL:-0}" != "1" ]; then parallel=1; fi

log_of() {  # index: that host's pytest log
  printf '%s/.artifacts/comfyui-%s/pytest.log' "$PACK_DIR" "${labels[$1]#ComfyUI }"
}

session() {  # index: one pytest session for that host, in its venv, output on stdout (its folder exists)
  COMFYUI_PATH="${paths[$1]}" HV_HOST_LABEL="${labels[$1]}" HV_ARTIFACTS_DIR="$(dirname "$(log_of "$1")")" \
    "${venvs[$1]}/bin/python" -m pytest "${pytest_args[@]}" 2>&1
}

banner() {
  printf '\n%s\n[test] host %d/%d: %s (%s)\n%s\n' "$(printf '=%.0s' {1..100})" $(($1 + 1)) "${#labels[@]}" \
    "${labels[$1]}" "${paths[$1]}" "$(printf '=%.0s' {1..100})"
}

pytest_args=("$@")
results=() status=0 rcs=() walls=()
if [ "$parallel" = "1" ]; then
  export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
  say "${#labels[@]} hosts side by side (HV_TEST_SERIAL=1 runs them one after the other), OMP_NUM_THREADS=$OMP_NUM_THREADS"
  pids=() start=$SECONDS
  for i in "${!labels[@]}"; do
    mkdir -p "$(dirname "$(log_of "$i")")"
    session "$i" >"$(log_of "$i")" &
    pids+=("$!")
  done
  while :; do
    progress=""
    for i in "${!pids[@]}"; do
      [ -n "${rcs[$i]:-}" ] && continue
      if kill -0 "${pids[$i]}" 2>/dev/null; then
        progress+=" ${labels[$i]} $(grep -o '\[ *[0-9]*%\]' "$(log_of "$i")" 2>/dev/null | tail -n 1 | tr -d '[ ]')"
      else
        wait "${pids[$i]}"; rcs[$i]=$?; walls[$i]=$((SECONDS - start))
      fi
    done
    [ -z "$progress" ] && break
    # a line a minute or so, so that a CI log shows the run is alive
    if [ $((SECONDS - start)) -ge 60 ] && [ $(((SECONDS - start) % 60)) -lt 20 ]; then
      say "$((SECONDS - start)) s: still running:$progress"
    fi
    sleep 20
  done
  for i in "${!labels[@]}"; do
    banner "$i"
    cat "$(log_of "$i")"
  done
else
  for i in "${!labels[@]}"; do
    banner "$i"
    start=$SECONDS
    mkdir -p "$(dirname "$(log_of "$i")")"
    session "$i" | tee "$(log_of "$i")"
    rcs[$i]="${PIPESTATUS[0]}" walls[$i]=$((SECONDS - start))
  done
fi

for i in "${!labels[@]}"; do
  label="${labels[$i]}" rc="${rcs[$i]}"
  # pytest's last line is the tally ("== 3 failed, 300 passed in 512.1s ==").
  tally="$(tail -n 1 "$(log_of "$i")" | sed -e 's/^=* *//' -e 's/ *=*$//')"
  if [ "$rc" = "0" ]; then verdict="passed"; else verdict="FAILED (exit $rc)"; status=1; fi
  results+=("$(printf '%-16s %-18s %s; %d s wall' "$label" "$verdict" "$tally" "${walls[$i]}")")
done

printf '\n%s\n' "$(printf '=%.0s' {1..100})"
for line in "${results[@]}"; do say "$line"; done
say "total $SECONDS s wall; $([ "$status" = 0 ] && echo "every host passed" || echo "FAILED on at least one host")"
exit "$status"
