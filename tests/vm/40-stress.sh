#!/bin/bash
# VM suite: the stress and fault matrix, on the debug kernel (KASAN, lockdep,
# DEBUG_ATOMIC_SLEEP, kmemleak): load churn, code patching under traffic,
# namespace churn, scale, ring overflow, bad input, isolation and
# privilege, device faults, and concurrency on 2 CPUs. Each section
# asserts; any kernel report fails the run (scripts/vm-run), a kmemleak
# finding included.
#
# MACE_TEST_LONG=1 (tests/run --long, cargo make stress) runs the long
# matrix: 1000 load cycles, 3000 switches of the function tracer, 500
# namespaces, 10000 sysfs writes, 100 namespaces pinging while 10 flood
# (default: 12, 300, 100, 1000, 30). On the rt flavor (PREEMPT_RT), where
# a load/unload cycle takes about 30 s under TCG instead of 15 (each cycle
# switches capture on a few times, and each first switch-on registers the
# probes), the same matrix runs smaller: 5, 100, 30, 500, 10. The default
# sizes keep tests/run within CI's 90 minutes on a slow host.
# vm-run: --kmemleak --timeout 3600
source /mace/tests/vm/lib.sh
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
ON=/sys/class/mace/on
STATS=/sys/class/mace/stats
# Each container costs a few process executions, about a second each in the
# debug kernel under TCG: the default run scales to 30 namespaces (the
# benchmark measures 100 on the bench kernel).
if [[ ${MACE_TEST_LONG:-0} == 1 ]]; then
	CYCLES=1000 NETNS=500 FUZZ=10000 PACKET_ROUNDS=200 SCALE=100 PATCHES=3000
elif [[ ${MACE_FLAVOR:-debug} == rt ]]; then
	CYCLES=5 NETNS=30 FUZZ=500 PACKET_ROUNDS=10 SCALE=10 PATCHES=100
else
	CYCLES=12 NETNS=100 FUZZ=1000 PACKET_ROUNDS=20 SCALE=30 PATCHES=300
fi
FLOOD=10
NC=$((SCALE + FLOOD))
echo "stress: cycles=$CYCLES netns=$NETNS fuzz=$FUZZ scale=$SCALE+$FLOOD patches=$PATCHES"

loaded() { grep -q '^mace ' /proc/modules; }
t_section=$SECONDS
section() {
	echo "stress: section done in $((SECONDS - t_section)) s"
	t_section=$SECONDS
	echo "== $1"
}

# Three containers to start with; the scale section adds the others (a
# load's pernet setup visits every namespace: few make the churn faster).
topo_up 3 || { fail "topology" "could not build it"; summary; exit 1; }

# --- 1. Load churn, with traffic, readers and sysfs writers running. ----------
section "load churn"
bg=()
ip netns exec c1 ping -q -i 0.01 "$REMOTE4" >/dev/null 2>&1 & bg+=($!)
ip netns exec c2 ping -q -i 0.01 "$REMOTE6" >/dev/null 2>&1 & bg+=($!)
# A reader that keeps opening and reading /dev/mace in c1.
ip netns exec c1 bash -c 'while :; do cat /dev/mace; sleep 0.01; done' >/dev/null 2>&1 & bg+=($!)
# A reader of stats and a writer of "on" in c3, racing with the loads.
ip netns exec c3 bash -c "while :; do cat $STATS; echo 1 > $ON; echo 0 > $ON; done" >/dev/null 2>&1 & bg+=($!)
if mace-stress churn "$KO" "$CYCLES" c1 c2 c3 >/tmp/churn 2>&1; then
	pass "$(cat /tmp/churn)"
else
	fail "load churn" "$(tail -3 /tmp/churn)"
fi
kill "${bg[@]}" 2>/dev/null
wait 2>/dev/null
check "after churn: the module is unloaded" bash -c '! grep -q "^mace " /proc/modules'

# --- 1b. Code patching under traffic. ------------------------------------------
# The function tracer switched on and off on the send calls while c1
# captures and two containers send every 2 ms: each switch patches the send
# calls' sites (text_poke_bp(): an int3, the new bytes, each step waited
# for on every CPU) from mace's direct call to ftrace's callback list and
# back, while both vCPUs run them. An emulator whose multi-threaded TCG
# races with code patching (QEMU 7.2: an int3 oops at a send call within
# 29 to 262 switches in three runs; scripts/lib.sh, qemu_mt) fails here.
section "code patching under traffic"
tracefs_mount
# switch_tracer N: the function tracer on and off N times; fails at the
# first switch the kernel refuses.
switch_tracer() {
	local i
	for i in $(seq 1 "$1"); do
		echo function >$TRACEFS/current_tracer || return 1
		echo nop >$TRACEFS/current_tracer || return 1
	done
}
insmod "$KO" outer_dev=eth0
ip netns exec c1 bash -c "echo 1 > $ON"
bg=()
ip netns exec c1 ping -q -i 0.002 "$REMOTE4" >/dev/null 2>&1 & bg+=($!)
ip netns exec c2 ping -q -i 0.002 "$REMOTE6" >/dev/null 2>&1 & bg+=($!)
sleep 0.5
egress0=$(counter c1 egress)
ingress0=$(counter c1 ingress)
echo '__x64_sys_sendto __x64_sys_sendmsg' >$TRACEFS/set_ftrace_filter
check "the function tracer switched on and off $PATCHES times on the send calls while two containers sent" \
	switch_tracer "$PATCHES"
echo nop >$TRACEFS/current_tracer
echo >$TRACEFS/set_ftrace_filter
sleep 0.5
kill "${bg[@]}" 2>/dev/null
wait 2>/dev/null
check "c1's pings were measured on the way out meanwhile" test "$(counter c1 egress)" -gt "$egress0"
check "c1's pings were measured on the way in meanwhile" test "$(counter c1 ingress)" -gt "$ingress0"
check "the send calls are mace's direct call again" sendto_direct
rmmod mace

# --- 2. Namespace churn; per-namespace memory is given back. ------------------
section "namespace churn"
insmod "$KO" outer_dev=eth0
ip netns exec c1 bash -c "echo 1 > $ON"
ip netns exec c1 ping -q -i 0.02 "$REMOTE4" >/dev/null 2>&1 &
pinger=$!
states0=$(counter - host_netns_states)
rings0=$(counter - host_rings)
if mace-stress netns "$NETNS" 4 >/tmp/netns 2>&1; then
	pass "$(cat /tmp/netns)"
else
	fail "namespace churn" "$(tail -3 /tmp/netns)"
fi
kill $pinger
wait 2>/dev/null
# Namespaces are destroyed by a workqueue: wait for it.
for i in $(seq 1 120); do
	[[ $(counter - host_netns_states) == "$states0" && $(counter - host_rings) == "$rings0" ]] && break
	sleep 0.5
done
check "after $NETNS namespaces: states back to $states0 (one per namespace)" test "$(counter - host_netns_states)" = "$states0"
check "after $NETNS namespaces: rings back to $rings0" test "$(counter - host_rings)" = "$rings0"
check "c1 still captures its own pings" test "$(counter c1 egress)" -gt 0
rmmod mace
check "unload after namespace churn" bash -c '! grep -q "^mace " /proc/modules'
# kmemleak scans at the end of the run (vm-run): leaked states fail it.

# --- 3. Scale: SCALE namespaces pinging while FLOOD flood. --------------------
section "scale"
for i in $(seq 4 "$NC"); do container_cmds "$i"; done | ip -batch -
for i in $(seq 4 "$NC"); do container_ns_cmds "$i" | ip -n "c$i" -batch -; done
insmod "$KO" outer_dev=eth0
# Container i pings 3 + i % 5 times: line counts differ between neighbours,
# so a line in the wrong namespace shows.
for i in $(seq 1 "$NC"); do
	ip netns exec "c$i" bash -c "echo 1 > $ON" &
done
wait
flooders=()
for i in $(seq $((SCALE + 1)) "$NC"); do
	ip netns exec "c$i" ping -f -q "$REMOTE4" >/dev/null 2>&1 &
	flooders+=($!)
done
pingers=()
for i in $(seq 1 "$SCALE"); do
	ip netns exec "c$i" ping -c $((3 + i % 5)) -i 0.2 -W 5 "$REMOTE4" >/tmp/ping.c$i 2>&1 &
	pingers+=($!)
done
wait "${pingers[@]}"
kill "${flooders[@]}" 2>/dev/null
wait 2>/dev/null
sleep 1
# Each namespace gets only its own lines (ids within its count, never more
# lines than packets); a latency that is missing must be accounted for by a
# counter: the namespace's sent-but-unreported, expired, collided or
# unreported packets, or an eviction from a full table bucket (host-wide: NAT hides whose a received
# packet is until it is delivered).
bad_ns=0 sent_total=0 recv_total=0 eg_total=0 in_total=0 miss_eg=0 miss_in=0 counted_eg=0 counted_in=0 detail=
for i in $(seq 1 "$SCALE"); do
	n=$((3 + i % 5))
	ip netns exec "c$i" bash -c "cat /dev/mace > /tmp/mace.c$i; awk '{ print \$1, \$2 }' $STATS > /tmp/stats.c$i"
	tx=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1/p' /tmp/ping.c$i)
	rx=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\2/p' /tmp/ping.c$i)
	eg=$(grep -c ') egress: ' /tmp/mace.c$i)
	in=$(grep -c ') ingress: ' /tmp/mace.c$i)
	ids_ok=1
	sed -n 's/.*(\([0-9]*\)).*/\1/p' /tmp/mace.c$i | awk -v n="$n" '$1 < 1 || $1 > n { exit 1 }' || ids_ok=0
	sent_total=$((sent_total + ${tx:-0}))
	recv_total=$((recv_total + ${rx:-0}))
	eg_total=$((eg_total + eg))
	in_total=$((in_total + in))
	miss_eg=$((miss_eg + ${tx:-0} - eg))
	miss_in=$((miss_in + ${rx:-0} - in))
	# (No "read < <(...)": process substitution does not work in the VM.)
	# Sent packets never reported stay in egress_sent (expired, evicted or
	# still awaiting an outer device they never reached); collided ones
	# were not stored.
	ce=$(awk '{ v[$1] = $2 } END { print v["egress_sent"] - v["egress"] + v["egress_collisions"] }' /tmp/stats.c$i)
	ci=$(awk '{ v[$1] = $2 } END { print v["ingress_expired"] + v["ingress_collisions"] + v["ingress_unreported"] }' /tmp/stats.c$i)
	counted_eg=$((counted_eg + ce))
	counted_in=$((counted_in + ci))
	if [[ $tx != "$n" || $eg -gt $tx || $in -gt $rx || $ids_ok != 1 ]]; then
		bad_ns=$((bad_ns + 1))
		detail+=" c$i(tx=$tx rx=$rx egress=$eg ingress=$in ids_ok=$ids_ok)"
	elif [[ $eg != "$tx" || $in != "$rx" ]]; then
		echo "stress: c$i missed $((tx - eg)) egress, $((rx - in)) ingress: $(tr '\n' ' ' </tmp/stats.c$i)"
		[[ $rx == 0 ]] && netdiag "c$i"
	fi
done
if ((bad_ns == 0)); then
	pass "scale: $SCALE namespaces pinging while $FLOOD flood: each got only its own lines ($eg_total of $sent_total egress, $in_total of $recv_total ingress)"
else
	fail "scale: $bad_ns of $SCALE namespaces got foreign or surplus lines" "${detail:0:600}"
fi
ev_eg=$(counter - host_egress_evicted)
ev_in=$(counter - host_ingress_evicted)
# A reply whose arrival stamp another packet overwrote before its
# container's device took it is counted only host-wide, with the flood's
# (nobody takes those).
lost_in=$(counter - host_ingress_stamps_lost)
check "scale: the $miss_eg missing egress latencies are counted ($counted_eg sent but unreported or collided, $ev_eg evicted)" \
	test -n "$ev_eg" -a "$miss_eg" -le $((counted_eg + ev_eg))
check "scale: the $miss_in missing ingress latencies are counted ($counted_in expired, collided or unreported, $ev_in evicted, $lost_in stamps lost host-wide)" \
	test -n "$ev_in" -a -n "$lost_in" -a "$miss_in" -le $((counted_in + ev_in + lost_in))
# Counters add up, and no record is lost silently: what was recorded was
# either queued or counted as a ring overflow.
bad=0
for i in $(seq 1 "$NC"); do
	[[ -f /tmp/stats.c$i ]] || ip netns exec "c$i" awk '{ print $1, $2 }' $STATS >/tmp/stats.c$i
	awk '{ v[$1] = $2 } END {
		if (v["egress"] + v["ingress"] != v["ring_pushed"] + v["ring_full"] + v["ring_busy"]) exit 1
		if (v["ring_popped"] + v["ring_queued"] + v["ring_discarded"] != v["ring_pushed"]) exit 1
	}' /tmp/stats.c$i || { bad=$((bad + 1)); echo "counters of c$i: $(tr '\n' ' ' </tmp/stats.c$i)"; }
done
check "scale: in all $NC namespaces, recorded = queued + popped + ring overflows" test "$bad" = 0
# (BusyBox seq has no -f.)
check_accounting "scale: $NC namespaces" $(printf 'c%d ' $(seq 1 "$NC"))
flood_full=$(cat /tmp/stats.c$NC 2>/dev/null | awk '$1 == "ring_full" { print $2 }')
flood_eg=$(awk '$1 == "egress" { print $2 }' /tmp/stats.c$NC)
echo "stress: flooder c$NC recorded $flood_eg egress latencies, ring_full=$flood_full"
rmmod mace

# --- 4. Overflow: a reader that never reads. ----------------------------------
section "overflow"
# The ring is what is tested here: first make sure c1 reaches the remote host.
if topo_reaches c1 20; then
	pass "overflow: c1 reaches $REMOTE4"
else
	fail "overflow: c1 reaches $REMOTE4" "20 pings unanswered; $(netdiag c1 | tr '\n' ' ')"
fi
insmod "$KO" outer_dev=eth0 ring_size=16
ip netns exec c1 bash -c "echo 1 > $ON"
ip netns exec c1 ping -c 40 -i 0.02 "$REMOTE4" >/tmp/ping.txt
rx=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' /tmp/ping.txt)
echo "stress: overflow: $(grep transmitted /tmp/ping.txt)"
check "overflow: the ring holds 16 records" test "$(counter c1 ring_queued)" = 16
check "overflow: ring_full counts the $((40 + rx - 16)) dropped" test "$(counter c1 ring_full)" = $((40 + rx - 16))
ip netns exec c1 cat /dev/mace >/tmp/mace.txt
check "overflow: a read returns the 16 queued lines" test "$(wc -l </tmp/mace.txt)" = 16
ip netns exec c1 ping -c 3 -i 0.05 "$REMOTE4" >/dev/null
ip netns exec c1 cat /dev/mace >/tmp/mace.txt
check "overflow: reading resumes: 3 egress and 3 ingress lines for 3 more pings" \
	test "$(grep -c egress /tmp/mace.txt) $(grep -c ingress /tmp/mace.txt)" = "3 3"
check_accounting "overflow" c1
rmmod mace

# --- 5. Bad input: sysfs fuzzing, /dev/mace read torture, bad parameters. ------
section "bad input"
insmod "$KO" outer_dev=eth0
for ns in c1 ""; do
	where=${ns:-the initial namespace}
	if ${ns:+ip netns exec $ns} mace-stress sysfs "$FUZZ" $((42 + ${#ns})) >/tmp/fuzz 2>&1; then
		pass "$where: $(cat /tmp/fuzz)"
	else
		fail "sysfs fuzzing in $where" "$(tail -3 /tmp/fuzz)"
	fi
done
ip netns exec c1 bash -c "echo 1 > $ON; cat /dev/mace > /dev/null"
ip netns exec c1 ping -c 25 -i 0.02 "$REMOTE4" >/tmp/ping.txt
rx=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' /tmp/ping.txt)
if ip netns exec c1 mace-stress reads $((25 + rx)) 7 >/tmp/reads 2>&1; then
	pass "$(cat /tmp/reads)"
else
	fail "/dev/mace read torture" "$(tail -3 /tmp/reads)"
fi
rmmod mace
bad_params=(
	"table_size=0" "table_size=63" "table_size=100" "table_size=2097152" "table_size=-1"
	"table_size=4294967296" "table_size=abc" "ring_size=8" "ring_size=1000" "ring_size=131072"
	"max_age_ms=0" "max_age_ms=60001" "max_age_ms=1x" "self_cost=2"
	"outer_dev=a,a" "outer_dev=1,2,3,4,5,6,7,8,9" "outer_dev=abcdefghijklmnopq"
	"outer_dev=eth0,,eth1" "outer_dev=eth0/x"
)
# kmod says "Invalid parameters" for EINVAL; a number past 32 bits is
# refused by the kernel's own parser with ERANGE. Either way dmesg names
# the parameter.
# A marker in the log, not a line count, says where each attempt's lines
# start: after a long run the log buffer is full and its count stays put.
bad=
for p in "${bad_params[@]}"; do
	marker="mace-stress: bad parameter $RANDOM$RANDOM"
	echo "$marker" >/dev/kmsg
	if insmod "$KO" "$p" 2>/tmp/insmod.err; then
		bad+=" $p(loaded)"
		rmmod mace
	elif ! grep -q 'Invalid parameters\|Numerical result out of range' /tmp/insmod.err; then
		bad+=" $p($(cat /tmp/insmod.err))"
	elif ! dmesg | sed -n "/$marker\$/,\$p" | tail -n +2 | grep -q "${p%%=*}"; then
		bad+=" $p(no dmesg line naming ${p%%=*})"
	fi
done
check "every one of ${#bad_params[@]} bad parameters is refused, with a dmesg line${bad:+:$bad}" test -z "$bad"
check "after the bad parameters: a good load works" insmod "$KO" outer_dev=eth0
ip netns exec c1 bash -c "echo 1 > $ON"
ip netns exec c1 ping -c 2 -i 0.05 "$REMOTE4" >/dev/null
check "... and captures" test "$(ip netns exec c1 cat /dev/mace | wc -l)" = 4

# --- 6. Isolation and privilege. ----------------------------------------------
section "isolation and privilege"
check "/dev/mace is mode 0444" test "$(stat -c %a /dev/mace)" = 444
check "on and outer_devs are mode 0644" test "$(stat -c %a /sys/class/mace/on /sys/class/mace/outer_devs | tr '\n' ' ')" = "644 644 "
check "stats is mode 0444" test "$(stat -c %a $STATS)" = 444
ip netns exec c2 bash -c "echo 0 > $ON"
ip netns exec c1 ping -c 3 -i 0.05 "$REMOTE4" >/dev/null
check "c2 (off) reads nothing while c1 captures" test -z "$(ip netns exec c2 cat /dev/mace)"
expect_fail_errno "c1 cannot set outer_devs" "Operation not permitted" \
	ip netns exec c1 bash -c 'echo eth0 > /sys/class/mace/outer_devs'
expect_fail_errno "an unprivileged user cannot switch c2 on" "Permission denied" \
	ip netns exec c2 setpriv --reuid 1000 --regid 1000 --clear-groups bash -c "echo 1 > $ON"
expect_fail_errno "a user namespace's root cannot switch on c2, owned by the initial user namespace" \
	"Operation not permitted" ip netns exec c2 unshare -r bash -c "echo 1 > $ON"
check "c2 is still off" test "$(ip netns exec c2 cat $ON)" = 0
expect_fail_errno "a user namespace's root cannot open c1's /dev/mace" "Operation not permitted" \
	ip netns exec c1 unshare -r cat /dev/mace
ip netns exec c1 cat /dev/mace >/dev/null

# --- 7. Device faults and odd packets. ----------------------------------------
section "device faults"
ip netns exec c1 bash -c "echo 1 > $ON"
# MTU-sized and fragmented pings, and GSO-sized TCP.
ip netns exec c1 ping -c 5 -i 0.05 -s 1472 -M do "$REMOTE4" >/tmp/ping.txt
ip netns exec c1 cat /dev/mace >/tmp/mace.txt
check "MTU-sized pings: 5 egress and 5 ingress lines" \
	test "$(grep -c egress /tmp/mace.txt) $(grep -c ingress /tmp/mace.txt)" = "5 5"
ip netns exec c1 ping -c 5 -i 0.05 -s 4000 "$REMOTE4" >/tmp/ping.txt
check "fragmented pings get their replies" grep -q '5 received' /tmp/ping.txt
ip netns exec c1 cat /dev/mace >/tmp/mace.txt
check "fragmented pings: at most one line per direction and packet ($(wc -l </tmp/mace.txt) lines)" \
	test "$(grep -c egress /tmp/mace.txt)" -le 5 -a "$(grep -c ingress /tmp/mace.txt)" -le 5
ip netns exec remote iperf3 -s -D -1 >/dev/null 2>&1
sleep 0.5
ip netns exec c1 iperf3 -c "$REMOTE4" -t 2 -l 64K >/tmp/iperf.txt 2>&1
check "GSO: a TCP bulk transfer with capture on ($(grep -m1 -o '[0-9.]* [MG]bits/sec' /tmp/iperf.txt | tail -1))" \
	grep -q 'receiver' /tmp/iperf.txt
ip netns exec c1 cat /dev/mace >/dev/null
before=$(counter c1 egress)
if ip netns exec c1 mace-stress packets "$REMOTE4" "$REMOTE6" "$PACKET_ROUNDS" >/tmp/packets 2>&1; then
	pass "$(cat /tmp/packets)"
else
	fail "malformed packets" "$(tail -3 /tmp/packets)"
fi
ip netns exec c1 cat /dev/mace >/tmp/mace.txt
check "malformed packets: every line is well-formed" \
	bash -c "! grep -vE '^\[[0-9]+\.[0-9]{6}\] \([0-9]+\) (egress|ingress): [0-9]+$' /tmp/mace.txt"
echo "stress: malformed packets gave $(wc -l </tmp/mace.txt) lines, egress counter $before -> $(counter c1 egress)"
# The container's veth deleted in the middle of a flow, then the bridge,
# then the outer device, each while c1 and c2 capture and ping.
ip netns exec c2 bash -c "echo 1 > $ON"
bg=()
for c in c1 c2; do
	ip netns exec $c ping -q -i 0.01 "$REMOTE4" >/dev/null 2>&1 &
	bg+=($!)
done
sleep 1
ip link del vc2
sleep 0.5
ip link del br0
sleep 0.5
ip link del eth0
sleep 0.5
kill "${bg[@]}" 2>/dev/null
wait 2>/dev/null
check "after deleting veth, bridge and outer device mid-flow: stats still readable" \
	test -n "$(ip netns exec c1 cat $STATS)"
check "... no outer ifindex is left resolved" \
	awk '/^host_outer_ifindexes / { sub(/^[^[]*/, ""); gsub(/[^1-9]/, ""); bad = length($0) > 0 } END { exit bad }' $STATS
check "... and the module unloads" rmmod mace
topo_down

# --- 8. Concurrency on 2 CPUs: readers and writers racing traffic and unload.
section "concurrency"
topo_up 3 || fail "topology" "rebuilding it failed"
insmod "$KO" outer_dev=eth0
for c in c1 c2 c3; do ip netns exec $c bash -c "echo 1 > $ON"; done
bg=()
for c in c1 c2; do
	ip netns exec $c ping -q -i 0.005 "$REMOTE4" >/dev/null 2>&1 & bg+=($!)
	ip netns exec $c bash -c 'while :; do mace-ping --annotate; sleep 0.01; done' >/dev/null 2>&1 & bg+=($!)
	ip netns exec $c bash -c 'while :; do head -c 7 /dev/mace; done' >/dev/null 2>&1 & bg+=($!)
done
ip netns exec c3 bash -c "while :; do echo 0 > $ON; echo 1 > $ON; cat $STATS; done" >/dev/null 2>&1 & bg+=($!)
bash -c 'while :; do echo eth0 > /sys/class/mace/outer_devs; echo eth0,br0 > /sys/class/mace/outer_devs; cat /sys/class/mace/stats; done' >/dev/null 2>&1 & bg+=($!)
sleep 10
check "concurrency: 10 s of racing readers, writers and traffic, then unload" \
	bash -c 'for i in $(seq 1 400); do rmmod mace 2>/dev/null && exit 0; sleep 0.05; done; exit 1'
kill "${bg[@]}" 2>/dev/null
wait 2>/dev/null
section "end"
summary
