# shellcheck shell=bash
# Helpers for test scripts run inside the mace VM (scripts/vm-run); source it:
#
#	source "$(dirname "$0")/lib.sh"     # or /mace/tests/vm/lib.sh
#	check "lo is up" ip link show lo
#	expect_fail_errno "bad device" "Invalid argument" some-command --bad
#	summary
#
# pass NAME                 print "PASS: NAME" and count it
# fail NAME MESSAGE         print "FAIL: NAME: MESSAGE" and count it
# check NAME CMD...         pass if CMD exits 0, else fail (with its status)
# expect_fail_errno NAME TEXT CMD...
#                           pass if CMD exits non-zero and its stderr contains
#                           TEXT (e.g. "Invalid argument", "Operation not
#                           permitted"); its stderr is shown on failure
# summary                   print "N passed, N failed"; non-zero if any failed
# netns_run NS CMD...       run CMD in network namespace NS (ip netns exec)
# in_netns NS <<'END'       run a bash script (stdin) in network namespace NS
#   ...checks...            with this library loaded; its checks count here.
# END                       One exec for a whole block: each costs ~1 s in
#                           the debug kernel under TCG.

MACE_PASSED=0
MACE_FAILED=0

pass() {
	MACE_PASSED=$((MACE_PASSED + 1))
	printf 'PASS: %s\n' "$1"
}

fail() {
	MACE_FAILED=$((MACE_FAILED + 1))
	printf 'FAIL: %s: %s\n' "$1" "$2"
}

check() {
	local name=$1 rc=0
	shift
	"$@" || rc=$?
	if ((rc == 0)); then
		pass "$name"
	else
		fail "$name" "'$*' exited with status $rc"
	fi
}

expect_fail_errno() {
	local name=$1 text=$2 err rc=0
	shift 2
	err=$("$@" 2>&1 >/dev/null) || rc=$?
	if ((rc == 0)); then
		fail "$name" "'$*' succeeded, expected failure with '$text'"
	elif [[ $err != *"$text"* ]]; then
		fail "$name" "'$*' exited with status $rc but its stderr lacks '$text': $err"
	else
		pass "$name"
	fi
}

summary() {
	printf '%d passed, %d failed\n' "$MACE_PASSED" "$MACE_FAILED"
	((MACE_FAILED == 0))
}

netns_run() {
	local ns=$1
	shift
	ip netns exec "$ns" "$@"
}

in_netns() {
	local ns=$1 out line p f
	out=$(ip netns exec "$ns" bash -c 'source /mace/tests/vm/lib.sh && source /proc/self/fd/0 && echo "MACE-COUNTS $MACE_PASSED $MACE_FAILED"')
	while IFS= read -r line; do
		case $line in
		"MACE-COUNTS "*)
			read -r _ p f <<<"$line"
			MACE_PASSED=$((MACE_PASSED + p))
			MACE_FAILED=$((MACE_FAILED + f))
			;;
		*) printf '%s\n' "$line" ;;
		esac
	done <<<"$out"
	if [[ $out != *"MACE-COUNTS "* ]]; then
		fail "in_netns $ns" "the block did not finish"
	elif ((p + f == 0)); then
		fail "in_netns $ns" "the block ran no checks"
	fi
}
