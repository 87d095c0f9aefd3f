#!/bin/bash
# VM suite: the corrected-RTT tool mace-ping, end to end in a container
# namespace: raw and ping sockets, IPv4 and IPv6, JSON, annotation of other
# tools' traffic, capture switching, and its error exits.
source /mace/tests/vm/lib.sh
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
ON=/sys/class/mace/on

expect_exit() {
	local name=$1 want=$2 rc=0
	shift 2
	"$@" >/tmp/out 2>&1 || rc=$?
	if ((rc == want)); then pass "$name (exit $rc)"; else fail "$name" "exit $rc, want $want: $(tail -2 /tmp/out)"; fi
}

expect_exit "without the module: exit 3" 3 mace-ping -c 1 198.18.0.2
check "... saying mace is not loaded" grep -q 'mace is not loaded' /tmp/out

topo_up 1 || { fail "topology" "could not build it"; summary; exit 1; }
insmod "$KO" outer_dev=eth0

# check_run NAME FILE COUNT: a text run of COUNT pings, all matched.
check_run() {
	local name=$1 f=$2 n=$3
	local lines bad
	lines=$(grep -c 'icmp_seq=.* corrected=' "$f")
	bad=$(grep 'icmp_seq=' "$f" | grep -c '=?')
	if ((lines == n && bad == 0)); then pass "$name: $n replies, each with egress, ingress and corrected RTT"; else fail "$name: replies" "$lines lines, $bad unmatched: $(head -c 300 "$f")"; fi
	check "$name: summary says $n of $n matched" grep -q "^$n of $n replies matched with their egress and ingress latencies (100.0%)" "$f"
	# 0 < corrected < rtt, and egress + ingress < rtt, for every packet.
	if awk '/icmp_seq=/ {
			for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
			if (!(v["corrected"] > 0 && v["corrected"] < v["rtt"] && v["egress"] + v["ingress"] < v["rtt"])) bad++
		} END { exit bad > 0 }' "$f"; then
		pass "$name: 0 < corrected RTT < RTT for every packet"
	else
		fail "$name: corrected RTT" "$(grep icmp_seq= "$f" | head -3)"
	fi
}

ip netns exec c1 bash -c "echo 1 > $ON"
ip netns exec c1 sysctl -qw net.ipv4.ping_group_range="0 2147483647"
for v in 4 6; do
	for kind in raw dgram; do
		target=$REMOTE4
		[[ $v == 6 ]] && target=$REMOTE6
		ip netns exec c1 mace-ping -c 10 -i 0.05 --$kind "$target" >/tmp/mp 2>&1
		check "IPv$v $kind: exit 0" test $? = 0
		check "IPv$v $kind: uses a $kind socket" grep -q "data bytes, $([[ $kind == raw ]] && echo raw || echo ping) socket" /tmp/mp
		check_run "IPv$v $kind" /tmp/mp 10
		# Read by recvmsg(2), as iputils ping reads (the bench's ping of
		# the C original's own case): the same socket, the same latencies.
		ip netns exec c1 mace-ping -c 10 -i 0.05 --$kind --recvmsg "$target" >/tmp/mp 2>&1
		check "IPv$v $kind, --recvmsg: exit 0" test $? = 0
		check_run "IPv$v $kind, --recvmsg" /tmp/mp 10
	done
done

# The benchmark's cost parts pin the neighbours (scripts/topology.sh): every
# resolved entry permanent, in every namespace; mace measures the same.
# neigh_states: each namespace's entries with a link-layer address, as
# "NS ADDRESS STATE" lines (the root namespace as "-").
neigh_states() {
	local ns
	for ns in $(topo_namespaces); do
		topo_ip "$ns" neigh show | awk -v ns="$ns" '/lladdr/ { print ns, $1, $NF }'
	done
}
neigh_states >/tmp/neigh-before
topo_neigh_pin
neigh_states >/tmp/neigh-pinned
# Each entry resolved before is PERMANENT now (neighbour discovery may add
# others meanwhile).
check "neighbours pinned: the $(wc -l </tmp/neigh-before) entries resolved before, all PERMANENT" \
	test -s /tmp/neigh-before -a "$(awk '{ print $1, $2, "PERMANENT" }' /tmp/neigh-before | grep -cvxFf /tmp/neigh-pinned)" = 0
ip netns exec c1 mace-ping -c 10 -i 0.05 --dgram "$REMOTE4" >/tmp/mp 2>&1
check_run "neighbours pinned, IPv4 dgram" /tmp/mp 10
topo_neigh_unpin
neigh_states >/tmp/neigh-unpinned
check "neighbours unpinned: those entries all STALE, none PERMANENT" \
	test "$(awk '{ print $1, $2, "STALE" }' /tmp/neigh-before | grep -cvxFf /tmp/neigh-unpinned)" = 0 -a \
	"$(grep -c ' PERMANENT$' /tmp/neigh-unpinned)" = 0
ip netns exec c1 mace-ping -c 10 -i 0.05 --dgram "$REMOTE4" >/tmp/mp 2>&1
check_run "neighbours unpinned, IPv4 dgram" /tmp/mp 10

ip netns exec c1 mace-ping -c 5 -i 0.05 --json "$REMOTE4" >/tmp/mj
check "JSON: 5 packet objects, all matched" test "$(grep -c '"type":"packet".*"matched":true' /tmp/mj)" = 5
check "JSON: a summary object" grep -q '"type":"summary".*"sent":5,"received":5,"matched":5,"matched_share":1.0000' /tmp/mj

# Annotation of another tool's traffic.
ip netns exec c1 cat /dev/mace >/dev/null
ip netns exec c1 ping -c 5 -i 0.05 "$REMOTE4" >/dev/null
ip netns exec c1 mace-ping --annotate >/tmp/ma
check "annotate: 5 packets of ping, each with both latencies" \
	test "$(grep -cE '^pktid=[1-5] egress=[0-9.]+ us ingress=[0-9.]+ us added=[0-9.]+ us$' /tmp/ma)" = 5

# Capture switching: on for the run, off again afterwards (unless --keep-on).
ip netns exec c1 bash -c "echo 0 > $ON"
ip netns exec c1 mace-ping -c 2 -i 0.05 -q "$REMOTE4" >/tmp/mp
check "capture off: mace-ping switched it on and measured" grep -q '^2 of 2 replies matched' /tmp/mp
check "... and switched it off again" test "$(ip netns exec c1 cat $ON)" = 0
ip netns exec c1 mace-ping -c 1 -q --keep-on "$REMOTE4" >/dev/null
check "--keep-on leaves capture on" test "$(ip netns exec c1 cat $ON)" = 1
ip netns exec c1 bash -c "echo 0 > $ON"

# Errors.
expect_exit "capture off, no CAP_NET_ADMIN: exit 4" 4 \
	ip netns exec c1 setpriv --reuid 1000 --regid 1000 --clear-groups mace-ping -c 1 --dgram "$REMOTE4"
check "... saying why" grep -q 'needs CAP_NET_ADMIN' /tmp/out
ip netns add lonely
ip -n lonely link set lo up
ip netns exec lonely bash -c "echo 1 > $ON"
expect_exit "unreachable target: exit 2" 2 ip netns exec lonely mace-ping -c 1 "$REMOTE4"
check "... saying why" grep -q 'Network is unreachable' /tmp/out
ip netns exec c1 bash -c "echo 1 > $ON"
expect_exit "no reply: exit 1" 1 ip netns exec c1 mace-ping -c 1 -W 0.5 198.18.0.99
expect_exit "bad option: exit 2" 2 mace-ping --bogus 198.18.0.2
check_accounting "mace-ping" c1 lonely

rmmod mace
expect_exit "--plain pings without mace" 0 ip netns exec c1 mace-ping --plain -c 2 -i 0.05 "$REMOTE4"
check "... and reports RTTs in ns" grep -q '^rtt min/avg/max/mdev = ' /tmp/out
summary
