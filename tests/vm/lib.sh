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
# summary                   print the suite's time and "N passed, N failed";
#                           non-zero if any failed
# netns_run NS CMD...       run CMD in network namespace NS (ip netns exec)
# in_netns NS <<'END'       run a bash script (stdin) in network namespace NS
#   ...checks...            with this library loaded; its checks count here.
# END                       One exec for a whole block: each costs ~1 s in
#                           the debug kernel under TCG.

MACE_PASSED=0
MACE_FAILED=0
MACE_T_CHECK=$SECONDS

# Prints how long it was since the check before, when that was 20 s or more
# (after pass or fail: a line "time: N s ...", not counted, so that a log
# shows where the time of a slow suite went).
mace_timed() {
	local dt=$((SECONDS - MACE_T_CHECK))
	MACE_T_CHECK=$SECONDS
	((dt < 20)) || printf 'time: %d s up to the check above\n' "$dt"
}

pass() {
	MACE_PASSED=$((MACE_PASSED + 1))
	printf 'PASS: %s\n' "$1"
	mace_timed
}

fail() {
	MACE_FAILED=$((MACE_FAILED + 1))
	printf 'FAIL: %s: %s\n' "$1" "$2"
	mace_timed
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
	printf 'time: %d s in all\n' "$SECONDS"
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

# The kernel's tracing file system; tracefs_mount mounts it if it is not.
TRACEFS=/sys/kernel/tracing
tracefs_mount() {
	[[ -e $TRACEFS/enabled_functions ]] || mount -t tracefs nodev "$TRACEFS"
}

# sendto_direct: whether enabled_functions gives __x64_sys_sendto (a line of
# its own) mace's trampoline as its direct call (on a line below it).
sendto_direct() {
	awk '/^[^\t]/ { f = ($1 == "__x64_sys_sendto") }
	     f && /direct-->mace_send_calls_tramp/ { ok = 1 }
	     END { exit !ok }' $TRACEFS/enabled_functions
}

# counter NS NAME: one counter of NS's /sys/class/mace/stats ("-" for the
# initial namespace).
counter() {
	if [[ $1 == - ]]; then
		awk -v k="$2" '$1 == k { print $2 }' /sys/class/mace/stats
	else
		ip netns exec "$1" awk -v k="$2" '$1 == k { print $2 }' /sys/class/mace/stats
	fi
}

# netdiag NS: what the network of container NS looks like, for a failure
# message: its neighbours and device counters, and the host's NAT entries
# for it.
netdiag() {
	echo "--- network of $1"
	ip -n "$1" neigh show
	ip -n "$1" -s link show eth0 | awk 'NR > 2'
	ip neigh show dev br0
	ip -s link show eth0 | awk 'NR > 2'
	grep -F "$(ip -n "$1" -4 -o addr show dev eth0 | awk '{ split($4, a, "/"); print "src=" a[1] " " }')" \
		/proc/net/nf_conntrack 2>/dev/null | head -5
	echo "---"
}

# write_once FILE: writes what stdin holds to FILE with one write(2) (a
# shell's printf may split its output at newlines into several writes, so
# that a sysfs file would see "1\n" and "\n" instead of "1\n\n").
write_once() { dd of="$1" bs=65536 count=1 iflag=fullblock status=none; }

# check_accounting NAME NS...: the accounting identities of mace's counters
# (Documentation/mace.rst, "Guarantees") hold in each capturing namespace
# NS ("-" is the initial one) and, host-wide, in the initial namespace:
# every packet ends in one line or one named counter, or waits in a gauge.
check_accounting() {
	local name=$1 ns out bad=0 detail=
	shift
	for ns in "$@" -; do
		if [[ $ns == - ]]; then
			out=$(awk '{ print $1, $2 }' /sys/class/mace/stats)
		else
			out=$(ip netns exec "$ns" awk '{ print $1, $2 }' /sys/class/mace/stats)
		fi
		# No counters (an unknown namespace, mace not loaded) is a failure,
		# not a set of zeros that adds up.
		if ! grep -q '^egress_sent ' <<<"$out"; then
			bad=1
			detail+="$ns: no counters; "
			continue
		fi
		if ! awk -v ns="$ns" '
			{ v[$1] = $2 }
			END {
				e = v["egress"] + v["egress_off"] + v["egress_expired"] + v["egress_collisions"] + v["egress_evicted"] + v["egress_in_table"]
				if (v["egress_sent"] != e) { printf "%s: egress_sent %d != %d; ", ns, v["egress_sent"], e; bad = 1 }
				i = v["ingress"] + v["ingress_off"] + v["ingress_unreported"] + v["ingress_task_lost"] + v["ingress_pending"]
				if (v["ingress_taken"] != i) { printf "%s: ingress_taken %d != %d; ", ns, v["ingress_taken"], i; bad = 1 }
				t = v["ingress_end_syscall"] + v["ingress_end_stamp"] + v["ingress_end_tap"] + v["ingress_end_tap_read"]
				if (v["ingress"] != t) { printf "%s: ingress %d != ends %d; ", ns, v["ingress"], t; bad = 1 }
				if (v["egress"] + v["ingress"] != v["ring_pushed"] + v["ring_full"] + v["ring_busy"]) { printf "%s: records != ring; ", ns; bad = 1 }
				if (v["ring_popped"] + v["ring_queued"] + v["ring_discarded"] != v["ring_pushed"]) { printf "%s: ring popped + queued + discarded != pushed; ", ns; bad = 1 }
				if ("host_ingress_received" in v) {
					h = v["host_ingress_taken"] + v["host_ingress_expired"] + v["host_ingress_collisions"] + v["host_ingress_evicted"] + v["host_ingress_in_table"]
					if (v["host_ingress_received"] != h) { printf "host: ingress_received %d != %d; ", v["host_ingress_received"], h; bad = 1 }
				}
				exit bad
			}' <<<"$out" >/tmp/accounting.out; then
			bad=1
			detail+=$(cat /tmp/accounting.out)
		fi
	done
	if ((bad == 0)); then
		pass "$name: every packet is in one line or one counter (accounting identities)"
	else
		fail "$name: accounting identities" "$detail"
	fi
}
