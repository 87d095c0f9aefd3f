#!/bin/bash
# VM suite: mace on a shared host with a hostile unprivileged user.
#
# With the documented rootless setup (on is world-writable), an unprivileged
# user creates user+net namespaces with capture on in a loop, holding them by
# descriptor after their processes exit, until mace refuses. Checked: the
# refusal comes at max_netns_per_user, nested user namespaces included, with
# EDQUOT and a log line; the memory it pins is charged to the user's memory
# cgroup and bounded (the figures are printed); root's containers and other
# users still capture and measure; unload with the namespaces still held is
# clean; reading stats in a loop does not hold up the probes.
# vm-run: --kmemleak --timeout 1500
source /mace/tests/vm/lib.sh
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
SYS=/sys/class/mace
ON=$SYS/on
CG=/sys/fs/cgroup
HOSTILE=1000
OTHER=1001
LIMIT=8
TRIES=$((LIMIT + 2))
RING=16384
# A ring slot is 32 bytes (a sequence word and a 3-word record).
RING_BYTES=$((RING * 32))

# wait_for FILE TEXT SECONDS: waits until FILE has a line TEXT.
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qx "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# The hostile user's program: TRIES times, a new user+net namespace (every
# other one nested in a second user namespace) whose process switches
# capture on (with MODE=on) and says how it went; the namespace is then held
# by a descriptor of this shell, and its process exits. Then it sleeps,
# holding them all.
cat >/tmp/hold.sh <<'EOF'
mode=$1 tries=$2
for ((i = 1; i <= tries; i++)); do
	nest=()
	((i % 2 == 0)) && nest=(unshare -Ur)
	exec {out}< <(exec "${nest[@]}" unshare -Urn bash -c '
		if [[ $0 == on ]]; then
			err=$({ echo 1 >/sys/class/mace/on; } 2>&1) && echo on || echo "refused: ${err##*: }"
		else
			echo created
		fi
		exec sleep 1000' "$mode")
	pid=$!
	read -r -u "$out" res
	exec {ns}</proc/$pid/ns/net
	kill "$pid"
	exec {out}<&-
	echo "$i $res"
done
echo held
exec sleep 100000
EOF
chmod 644 /tmp/hold.sh

# hold NAME UID MODE: runs the program as UID in cgroup NAME, in the
# background; its output goes to /tmp/NAME.out.
hold() {
	mkdir -p "$CG/$1"
	: >"/tmp/$1.out"
	bash -c "echo \$\$ > $CG/$1/cgroup.procs && exec setpriv --reuid $2 --regid $2 --clear-groups bash /tmp/hold.sh $3 $TRIES" \
		>"/tmp/$1.out" 2>&1 &
	echo $!
}

# mem NAME: bytes charged to cgroup NAME.
mem() { cat "$CG/$1/memory.current"; }
# kmem NAME: kernel memory charged to cgroup NAME (memory.stat "kernel":
# exact, where memory.current also holds up to 64 pages per CPU charged
# ahead in batches, noise of +-512 KiB on 2 CPUs).
kmem() { awk '$1 == "kernel" { print $2 }' "$CG/$1/memory.stat"; }

# Process substitution needs /dev/fd, which the VM's devtmpfs lacks.
[[ -e /dev/fd ]] || ln -s /proc/self/fd /dev/fd
topo_up 1 || { fail "topology" "could not build it"; summary; exit 1; }
mount -t cgroup2 none $CG || { fail "cgroup2" "cannot mount"; summary; exit 1; }
echo +memory >$CG/cgroup.subtree_control
check "insmod with max_netns_per_user=$LIMIT ring_size=$RING" \
	insmod "$KO" outer_dev=eth0 ring_size=$RING max_netns_per_user=$LIMIT
chmod 666 $ON

# ------------------------------------------------ the baseline and the user
# The same namespaces without capture, to tell what mace adds.
base_pid=$(hold baseline $HOSTILE create)
if wait_for /tmp/baseline.out held 300; then
	pass "baseline: $TRIES user+net namespaces held by descriptor"
else
	fail "baseline" "$(tail -n 3 /tmp/baseline.out)"
fi
hostile_pid=$(hold hostile $HOSTILE on)
if wait_for /tmp/hostile.out held 300; then
	pass "hostile user: $TRIES attempts made, namespaces held by descriptor"
else
	fail "hostile user" "$(tail -n 3 /tmp/hostile.out)"
fi
n_on=$(grep -c ' on$' /tmp/hostile.out)
n_refused=$(grep -c ' refused: Disk quota exceeded$' /tmp/hostile.out)
check "capture on in exactly $LIMIT namespaces, nested user namespaces counted" test "$n_on" = $LIMIT
check "the rest refused with EDQUOT" test "$n_refused" = $((TRIES - LIMIT))
check "the first $LIMIT succeed, then only refusals" \
	bash -c "head -n $LIMIT /tmp/hostile.out | grep -vc ' on$' | grep -qx 0"
check "the refusal is logged" \
	bash -c "dmesg | grep -q 'mace: cannot capture in network namespace [0-9]*: user $HOSTILE already captures in $LIMIT network namespaces (max_netns_per_user=$LIMIT)'"
check "host: $LIMIT namespaces capture, for one user, with $LIMIT rings" \
	test "$(counter - host_capturing) $(counter - host_capturing_users) $(counter - host_rings)" = "$LIMIT 1 $LIMIT"

# ----------------------------------------------------- what it costs the host
sleep 1
m_base=$(mem baseline)
m_hostile=$(mem hostile)
k_base=$(kmem baseline)
k_hostile=$(kmem hostile)
added=$((k_hostile - k_base))
per_ns=$((added / LIMIT))
printf 'memory charged (bytes): all: baseline %d, hostile %d; kernel: baseline %d, hostile %d, added by mace %d = %d per capturing namespace (ring %d)\n' \
	"$m_base" "$m_hostile" "$k_base" "$k_hostile" "$added" "$per_ns" "$RING_BYTES"
# The ring and a few small objects: at least the ring, at most the ring and
# 64 KiB (the ring's bookkeeping, page rounding), give or take the noise of
# two cgroups running the same shells: a few pages (measured: the hostile
# user's other kernel memory 8 KiB below the baseline's, all 8 namespaces
# together).
check "the rings are charged to the user's cgroup (>= $RING_BYTES - 16 KiB per namespace)" \
	test "$per_ns" -ge $((RING_BYTES - 16384))
check "and nothing much more (<= $RING_BYTES + 64 KiB per namespace)" test "$per_ns" -le $((RING_BYTES + 65536))

# ----------------------------------------------------- everyone else still can
check "root's container switches capture on" ip netns exec c1 bash -c "echo 1 > $ON"
check "another user switches capture on in its own namespace" \
	setpriv --reuid $OTHER --regid $OTHER --clear-groups unshare -Urn bash -c "echo 1 > $ON && test \$(cat $ON) = 1"
ip netns exec c1 ping -U -c 5 -i 0.2 $REMOTE4 >/tmp/ping.out 2>&1
ip netns exec c1 cat /dev/mace >/tmp/lines
eg=$(grep -c 'egress: [0-9]*$' /tmp/lines)
in=$(grep -c 'ingress: [0-9]*$' /tmp/lines)
check "root's container measures every ping: 5 egress and 5 ingress lines" test "$eg $in" = "5 5"
# "seq rtt_ns" per reply; ping prints its RTT rounded, so allow for that.
sed -n 's/.*icmp_seq=\([0-9]*\) .*time=\([0-9.]*\) ms.*/\1 \2/p' /tmp/ping.out >/tmp/rtts
over=$(awk '
	FNR == NR { rtt[$1] = $2 * 1e6; next }
	{ id = $2; gsub(/[()]/, "", id); sum[id] += $NF }
	END { n = 0; for (id in sum) if (!(id in rtt) || sum[id] >= rtt[id] + 1000) n++; print n }' /tmp/rtts /tmp/lines)
check "and egress + ingress stays below each RTT" test "$over" = 0

# --------------------------------------------- stats reads do not stall probes
# Probe self-cost (self_cost=1) per hit while pinging, idle and while a root
# shell reads stats in a loop over large tables.
rmmod mace
check "insmod with self_cost=1 table_size=262144" \
	insmod "$KO" outer_dev=eth0 self_cost=1 table_size=262144 ring_size=$RING max_netns_per_user=$LIMIT
ip netns exec c1 bash -c "echo 1 > $ON"
# pert NAME: total hits and ns over every hook.
pert() { awk '$1 ~ /^pert_/ { h += $2; t += $3 } END { print h, t }' $SYS/stats; }
# cost_per_hit: ns per probe hit during 20 pings.
cost_per_hit() {
	local h0 t0 h1 t1
	read -r h0 t0 < <(pert)
	ip netns exec c1 ping -U -q -c 20 -i 0.05 $REMOTE4 >/dev/null 2>&1
	read -r h1 t1 < <(pert)
	echo "$(((t1 - t0) / (h1 - h0 > 0 ? h1 - h0 : 1))) $((h1 - h0))"
}
# One read of stats, timed with bash builtins (an exec alone costs about a
# second in the debug kernel under TCG).
read_stats() { local l; while read -r l; do :; done <$SYS/stats; }
t0=$EPOCHREALTIME
read_stats
t_stats=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
read -r idle idle_hits < <(cost_per_hit)
bash -c "$(declare -f read_stats); SYS=$SYS; while :; do read_stats; done" &
reader=$!
sleep 1
read -r busy busy_hits < <(cost_per_hit)
kill $reader
wait $reader 2>/dev/null
printf 'probe self-cost: %d ns/hit idle (%d hits), %d ns/hit while stats is read in a loop (%d hits); one stats read of %d buckets: %s s\n' \
	"$idle" "$idle_hits" "$busy" "$busy_hits" $((262144 * 2 + 65536)) "$t_stats"
check "probes hit in both runs" test "$idle_hits" -gt 0 -a "$busy_hits" -gt 0
check "self-cost while stats is read stays within 2x of idle ($busy vs $idle ns/hit)" test "$busy" -le $((2 * idle))
ip netns exec c1 bash -c "echo 0 > $ON"

# ---------------------------------------------------- unload with them held
# The hostile user's namespaces of the last load still exist (held by
# descriptor) but capture nothing in this one: it starts over, up to the
# limit again; then mace is unloaded while they are held.
kill "$hostile_pid"
chmod 666 $ON
hostile_pid=$(hold hostile2 $HOSTILE on)
wait_for /tmp/hostile2.out held 300
n_on=$(grep -c ' on$' /tmp/hostile2.out)
if [[ $n_on == "$LIMIT" ]]; then
	pass "with this load too: $LIMIT on"
else
	fail "with this load too: $LIMIT on" "$n_on: $(tr '\n' ' ' </tmp/hostile2.out)"
fi
sleep 1
m_held=$(kmem hostile2)
check "rmmod while the user holds $LIMIT capturing namespaces" rmmod mace
sleep 1
m_unloaded=$(kmem hostile2)
m_base=$(kmem baseline)
printf 'kernel memory charged (bytes): hostile2 %d with mace loaded, %d after rmmod; baseline %d\n' \
	"$m_held" "$m_unloaded" "$m_base"
check "rmmod frees the rings of namespaces still alive (charge down by >= $LIMIT rings)" \
	test $((m_held - m_unloaded)) -ge $((LIMIT * RING_BYTES))
check "and leaves less than a ring more than the baseline" test $((m_unloaded - m_base)) -lt $RING_BYTES
kill "$hostile_pid" "$base_pid"
check "insmod again" insmod "$KO" outer_dev=eth0
check "rmmod again" rmmod mace

summary
