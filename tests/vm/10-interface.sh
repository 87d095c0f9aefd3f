#!/bin/bash
# VM suite: mace's user interface without traffic: module parameters,
# /dev/mace, /sys/class/mace/{on,outer_devs,stats}, permissions, namespace
# isolation, unload with the device open, namespaces deleted while on.
# Run with kmemleak, so that state not freed at unload fails the suite.
# vm-run: --kmemleak --timeout 1800
source /mace/tests/vm/lib.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
SYS=/sys/class/mace
ON=$SYS/on
USER_ID=1000

# loaded: whether mace is loaded (bash builtins only: every exec costs
# about a second in the debug kernel under TCG).
loaded() {
	local name _
	while read -r name _; do [[ $name == mace ]] && return 0; done </proc/modules
	return 1
}
# val FILE: prints FILE's first line (builtin read, no exec).
val() { local v; read -r v <"$1" && printf '%s' "$v"; }
# put VALUE FILE: one write(2) of exactly VALUE (printf %b interprets \n etc.)
put() { printf '%b' "$1" | write_once "$2"; }
as_user() { setpriv --reuid $USER_ID --regid $USER_ID --clear-groups "$@"; }

# ---------------------------------------------------------------- parameters
# kmod's insmod reports EINVAL as "Invalid parameters".
bad_params=(outer_dev=a/b outer_dev=eth0,,x outer_dev=, outer_dev=0 outer_dev=2147483648
	outer_dev=abcdefghijklmnop outer_dev=1,2,3,4,5,6,7,8,9 outer_dev=lo,lo
	table_size=100 table_size=32 table_size=2097152 table_size=0
	ring_size=8 ring_size=1000 ring_size=131072 max_age_ms=0 max_age_ms=60001
	peer_window_ms=3600001)
dmesg -c >/dev/null
for p in "${bad_params[@]}"; do
	expect_fail_errno "insmod $p is refused" "Invalid parameters" insmod "$KO" "$p"
	if loaded; then fail "insmod $p leaves nothing loaded" "mace is loaded"; rmmod mace; else pass "insmod $p leaves nothing loaded"; fi
done
log=$(dmesg)
for p in "${bad_params[@]}"; do
	name=${p%%=*}
	n=$(grep -c "mace: invalid $name: .*; accepted: " <<<"$log")
	if ((n > 0)); then pass "insmod $p is explained in the log"; else fail "insmod $p is explained in the log" "no 'mace: invalid $name' line"; fi
done
# Values the kernel's own integer parser rejects before mace sees them.
for p in table_size=-1 table_size=abc ring_size=1e3 self_cost=2; do
	expect_fail_errno "insmod $p is refused" "Invalid parameters" insmod "$KO" "$p"
	if loaded; then fail "insmod $p leaves nothing loaded" "mace is loaded"; rmmod mace; fi
done

# ------------------------------------------------------------ load / unload
t0=$(date +%s)
n_ok=0
for i in $(seq 1 10); do
	insmod "$KO" && [[ -c /dev/mace && -f $ON ]] && rmmod mace && [[ ! -e /dev/mace && ! -e $SYS ]] &&
		n_ok=$((n_ok + 1))
done
if ((n_ok == 10)); then pass "10 load/unload cycles ($(($(date +%s) - t0)) s)"; else fail "10 load/unload cycles" "only $n_ok succeeded"; fi

check "insmod with every parameter" insmod "$KO" outer_dev=eth9,3 table_size=64 ring_size=16 max_age_ms=1 peer_window_ms=0
check "outer_devs shows the parameter" test "$(val $SYS/outer_devs)" = "eth9,3"
check "the load is logged" bash -c "dmesg | grep -q 'mace: loaded: outer_dev=eth9,3 table_size=64 ring_size=16 max_age_ms=1 .* peer_window_ms=0\$'"
rmmod mace
check "insmod with defaults" insmod "$KO"
check "the defaults are logged" bash -c "dmesg | grep 'mace: loaded: ' | tail -n 1 | grep -q 'max_age_ms=1000 self_cost=0 max_netns_per_user=32 peer_window_ms=60000\$'"

# ------------------------------------------------------------- file modes
check "/dev/mace is a char device, mode 0444" test "$(stat -c %F:%a /dev/mace)" = "character special file:444"
check "on is mode 0644" test "$(stat -c %a $ON)" = 644
check "outer_devs is mode 0644" test "$(stat -c %a $SYS/outer_devs)" = 644
check "stats is mode 0444" test "$(stat -c %a $SYS/stats)" = 444
check "tap_end is mode 0644" test "$(stat -c %a $SYS/tap_end)" = 644

# ------------------------------------------------- on/off and isolation
ip netns add a
ip netns add b
check "capture is off in a new namespace" test "$(netns_run a cat $ON)" = 0
check "no ring before any capture" test "$(counter - host_rings)" = 0
check "enable in a" netns_run a bash -c "echo 1 > $ON"
check "a reads 1" test "$(netns_run a cat $ON)" = 1
check "a ring and a capturing namespace once a captures" \
	test "$(counter - host_rings) $(counter - host_capturing)" = "1 1"
check "b still reads 0" test "$(netns_run b cat $ON)" = 0
check "the initial namespace still reads 0" test "$(val $ON)" = 0
check "enable in b" netns_run b bash -c "echo 1 > $ON"
check "disable in a" netns_run a bash -c "printf 0 > $ON"
check "a reads 0 after disable" test "$(netns_run a cat $ON)" = 0
check "switching a off frees its ring (b's is left)" \
	test "$(counter - host_rings) $(counter - host_capturing)" = "1 1"
check "stats of a show no ring while off" bash -c "ip netns exec a cat $SYS/stats | grep -qx 'ring_size 0'"
check "b still reads 1" test "$(netns_run b cat $ON)" = 1
check "enable twice is fine" netns_run b bash -c "echo 1 > $ON && echo 1 > $ON"
check "stats of a say enabled 0" bash -c "ip netns exec a cat $SYS/stats | grep -qx 'enabled 0'"
check "stats of b say enabled 1" bash -c "ip netns exec b cat $SYS/stats | grep -qx 'enabled 1'"
check "stats name different namespaces" test "$(netns_run a grep netns $SYS/stats)" != "$(netns_run b grep netns $SYS/stats)"
check "stats show the ring size once on" bash -c "ip netns exec b cat $SYS/stats | grep -qx 'ring_size 4096'"
check "tap_end is read in a new namespace" test "$(netns_run a cat $SYS/tap_end)" = read
check "set tap_end stamp in a" netns_run a bash -c "echo stamp > $SYS/tap_end"
check "a reads stamp" test "$(netns_run a cat $SYS/tap_end)" = stamp
check "b still reads read" test "$(netns_run b cat $SYS/tap_end)" = read
check "set tap_end read in a (no newline)" netns_run a bash -c "printf read > $SYS/tap_end"
check "a reads read again" test "$(netns_run a cat $SYS/tap_end)" = read
check "tap_end changes are logged" bash -c "dmesg | grep -q 'mace: tap_end stamp in network namespace'"

# ---------------------------------------------------------- malformed input
# A new window of mace's log budget (10 lines per 5 s), for the refusals.
sleep 5.2
in_netns b <<'END'
	# One write(2) of exactly the bytes of $1 (printf %b: \n, \x00...).
	put_on() { printf '%b' "$1" | write_once /sys/class/mace/on; }
	long=$(printf '1%.0s' {1..5000})
	# First, while the log's budget (10 lines per 5 s) lasts for them.
	for v in "${long:0:257}" "$long"; do
		expect_fail_errno "on: ${#v} bytes is E2BIG" "Argument list too long" put_on "$v"
	done
	for v in 2 10 01 on off yes -1 ' 1' '1 ' '\n' '1\n\n' '1\r\n' '\x00' '1\x00' "${long:0:256}"; do
		expect_fail_errno "on: '${v:0:12}' (${#v} bytes) is EINVAL" "Invalid argument" put_on "$v"
	done
	read -r v </sys/class/mace/on
	check "on is unchanged after bad writes" test "$v" = 1
	echo stamp >/sys/class/mace/tap_end
	put_tap_end() { printf '%b' "$1" | write_once /sys/class/mace/tap_end; }
	for v in read2 Read STAMP ' read' 'read ' '\n' 'read\n\n' 'stamp\r\n' 1 tap 'read\x00'; do
		expect_fail_errno "tap_end: '${v:0:12}' is EINVAL" "Invalid argument" put_tap_end "$v"
	done
	expect_fail_errno "tap_end: 5000 bytes is E2BIG" "Argument list too long" put_tap_end "$long"
	read -r v </sys/class/mace/tap_end
	check "tap_end is unchanged after bad writes" test "$v" = stamp
	echo read >/sys/class/mace/tap_end
END
check "bad writes are logged" bash -c "dmesg | grep -q 'mace: write to /sys/class/mace/on rejected: not 0 or 1'"
check "long writes are logged" bash -c "dmesg | grep -q 'mace: write to /sys/class/mace/on rejected: 257 bytes or more, at most 256 accepted'"
expect_fail_errno "stats is read-only" "Permission denied" as_user bash -c "echo 1 > $SYS/stats"

# ------------------------------------------------------------- permissions
expect_fail_errno "root of a new user namespace cannot switch the initial netns" \
	"Operation not permitted" unshare -r bash -c "echo 1 > $ON"
check "the initial namespace is still off" test "$(val $ON)" = 0
check "root of a new user+net namespace switches its own" \
	unshare -r -n bash -c "echo 1 > $ON && test \$(cat $ON) = 1 && echo 0 > $ON"
expect_fail_errno "an unprivileged user cannot write on (file mode)" "Permission denied" \
	as_user bash -c "echo 1 > $ON"
chmod 666 $SYS/tap_end
expect_fail_errno "unprivileged user: tap_end is EPERM even with a world-writable file" \
	"Operation not permitted" as_user bash -c "echo stamp > $SYS/tap_end"
chmod 644 $SYS/tap_end
check "tap_end of the initial namespace is still read" test "$(val $SYS/tap_end)" = read
chmod 666 $ON
expect_fail_errno "unprivileged user: EPERM even with a world-writable file" \
	"Operation not permitted" as_user bash -c "echo 1 > $ON"
check "unprivileged user switches its own user+net namespace" \
	as_user unshare -r -n bash -c "echo 1 > $ON && test \$(cat $ON) = 1"
# The rights of whoever opened the file count, not the writer's: a setuid
# program made to write to a descriptor an unprivileged user opened lends
# it nothing, and a descriptor root opened and handed down keeps root's.
cp /bin/bash /suid-bash && chmod 4755 /suid-bash
check "(a setuid-root shell runs as root for an unprivileged user)" \
	test "$(as_user /suid-bash -p -c 'echo $EUID')" = 0
expect_fail_errno "a setuid-root writer through a file an unprivileged user opened is EPERM" \
	"Operation not permitted" as_user bash -c "exec 3>$ON; /suid-bash -p -c 'echo 1 >&3'"
check "the initial namespace is still off" test "$(val $ON)" = 0
check "an unprivileged writer through a file root opened switches capture" \
	bash -c "exec 3>$ON; setpriv --reuid $USER_ID --regid $USER_ID --clear-groups bash -c 'echo 1 >&3'"
check "the initial namespace is on, then off again" bash -c "test \$(cat $ON) = 1 && echo 0 > $ON"
rm -f /suid-bash
chmod 644 $ON
check "the initial namespace is still off after all that" test "$(val $ON)" = 0
# The bad writes above used up mace's log budget (10 messages per 5 s): let
# a new window start, so that the refusal below is logged on any VM speed.
sleep 5.2
expect_fail_errno "an unprivileged user cannot open /dev/mace" "Operation not permitted" as_user cat /dev/mace
check "an unprivileged user reads /dev/mace of its own namespace" as_user unshare -r -n cat /dev/mace
check "open refusals are logged" bash -c "dmesg | grep -q 'mace: open of /dev/mace denied'"

# ------------------------------------------------------------- outer_devs
check "outer_devs is empty by default" test "$(val $SYS/outer_devs)" = ""
check "outer_devs accepts names and ifindexes" bash -c "echo lo,7 > $SYS/outer_devs"
check "outer_devs reads back" test "$(val $SYS/outer_devs)" = "lo,7"
for v in a/b 'lo,,x' 0 'lo,lo' 1,2,3,4,5,6,7,8,9 abcdefghijklmnop; do
	expect_fail_errno "outer_devs: '$v' is EINVAL" "Invalid argument" bash -c "echo '$v' > $SYS/outer_devs"
done
expect_fail_errno "outer_devs: 300 bytes is E2BIG" "Argument list too long" \
	bash -c "printf 'a%.0s' {1..300} > $SYS/outer_devs"
expect_fail_errno "outer_devs: not from another network namespace" "Operation not permitted" \
	netns_run a bash -c "echo lo > $SYS/outer_devs"
expect_fail_errno "outer_devs: not from a user namespace" "Operation not permitted" \
	unshare -r bash -c "echo lo > $SYS/outer_devs"
check "outer_devs unchanged after refused writes" test "$(val $SYS/outer_devs)" = "lo,7"
check "outer_devs can be emptied" bash -c "echo > $SYS/outer_devs && test -z \"\$(cat $SYS/outer_devs)\""
# A device given by ifindex that goes away leaves the list: a later device
# with the same ifindex is not an outer device.
ip link add name gone0 index 77 type veth peer name gone1
check "outer_devs takes an ifindex" bash -c "echo lo,77 > $SYS/outer_devs"
check "it is resolved" bash -c "grep -q '^host_outer_ifindexes \[1, 77,' $SYS/stats"
ip link del gone0
check "an outer device given by ifindex leaves outer_devs when it goes" test "$(val $SYS/outer_devs)" = lo
ip link add name back0 index 77 type veth peer name back1
check "a new device with its ifindex is not an outer device" \
	bash -c "test \"\$(cat $SYS/outer_devs)\" = lo && grep -q '^host_outer_ifindexes \[1, 0,' $SYS/stats"
ip link del back0
check "the removal is logged" bash -c "dmesg | grep -q 'mace: outer device 77: unregistered, removed from outer_devs'"
echo >$SYS/outer_devs

# --------------------------------------------------------------- /dev/mace
check "cat /dev/mace ends at once when nothing is queued" ip netns exec b timeout 5 cat /dev/mace
check "a 1-byte read of an empty ring returns end of file" \
	bash -c "test \$(ip netns exec b dd if=/dev/mace bs=1 count=1 2>/dev/null | wc -c) = 0"
expect_fail_errno "/dev/mace cannot be written" "Invalid argument" bash -c "echo x > /dev/mace"

# Several readers and writers at once.
# (Each reader and the switcher is one process inside namespace b, looping
# on builtins, so that the loops are not dominated by exec.)
# readers_and_switcher N: 4 readers open and read /dev/mace, 200 times each
# and until the switcher is done, while it switches b off and on N times;
# prints how many of the 5 succeeded.
readers_and_switcher() {
	local pids=() p r n_ok=0
	rm -f /tmp/switched
	for r in 1 2 3 4; do
		ip netns exec b bash -c 'i=0; while ((i++ < 200)) || [[ ! -e /tmp/switched ]]; do exec 3</dev/mace || exit 1; while read -r -u 3 l; do :; done; exec 3<&-; done' &
		pids+=($!)
	done
	ip netns exec b bash -c "r=0; for i in \$(seq 1 $1); do echo 0 > $ON && echo 1 > $ON || { r=1; break; }; done; : >/tmp/switched; exit \$r" &
	pids+=($!)
	for p in "${pids[@]}"; do wait "$p" && n_ok=$((n_ok + 1)); done
	echo $n_ok
}
# While a captures too, each switch frees and makes b's ring only; while b
# is the only namespace that captures, each switch also unregisters and
# registers the probes (about 3 s a switch in the debug kernel under TCG,
# 16 s with the readers running).
netns_run a bash -c "echo 1 > $ON"
check "4 readers and a switcher of b's ring (200 switches) in parallel all succeed" \
	test "$(readers_and_switcher 200)" = 5
netns_run a bash -c "echo 0 > $ON"
check "4 readers and a switcher of the probes (4 switches) in parallel all succeed" \
	test "$(readers_and_switcher 4)" = 5

# ------------------------------------------------------ unload while in use
exec 3</dev/mace
expect_fail_errno "rmmod with /dev/mace open is refused" "in use" rmmod mace
check "reading the held file still works" bash -c 'cat <&3 >/dev/null'
exec 3<&-
check "rmmod once the file is closed" rmmod mace
check "insmod again" insmod "$KO"

# ------------------------------------------------- namespaces that go away
ip netns add c
check "enable in c" netns_run c bash -c "echo 1 > $ON"
check "delete c while on" ip netns del c
# A reader inside a namespace keeps it alive after ip netns del.
ip netns add d
ip netns exec d bash -c "echo 1 > $ON; exec 3</dev/mace; sleep 2; cat <&3 >/dev/null" &
holder=$!
sleep 0.5
check "delete d while a reader holds /dev/mace there" ip netns del d
check "the reader in the deleted namespace finishes cleanly" wait $holder
# (About 4 s a namespace, its three execs, in the debug kernel under TCG;
# the stress suite churns 100 with traffic.)
for i in $(seq 1 10); do
	ip netns add "t$i" && ip netns exec "t$i" bash -c "echo 1 > $ON" && ip netns del "t$i" || break
done
check "10 namespaces created, enabled and deleted" test "$i" = 10
sleep 1
check_accounting "interface" a b
check "rmmod with namespaces a and b on" rmmod mace
check "insmod after all that" insmod "$KO"
check "a fresh load starts with a off" test "$(netns_run a cat $ON)" = 0
check "final rmmod" rmmod mace
ip netns del a
ip netns del b

summary
