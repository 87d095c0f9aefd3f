#!/bin/bash
# The instruction profile's guest side (run by scripts/bench-profile through
# scripts/vm-run on the bench kernel, under -icount with the insncount
# plugin). For each condition, the perturbation's ping of scripts/bench
# (mace-ping --plain --dgram from c1 to the remote host, 1 ms apart) runs
# between two sync(2) calls: the plugin's mark is sync's entry, so each
# sync closes a segment of counts (counts.K on the host, K = 1, 2, ...),
# and the segment closed by the second sync is the ping's.
#
# Prints on the console, for scripts/bench-profile-report:
#   PROFILE TEXT ADDR               the kernel's _text (the host symbolizes
#                                   with System.map, moved by any offset)
#   PROFILE-BEGIN kallsyms cond=C   mace.ko's symbols while C ran (module
#   ... PROFILE-END                 text moves from one load to the next)
#   PROFILE COND cond=C segment=K replies=R rc=S [unit=MB]
#                                   (with a TCP transfer: R is its size
#                                   in MB, the unit of the report)
#
# Usage: bench-profile-vm.sh
#   MACE_TEST_PROFILE_CONDS  conditions, in order (default "off null on other"):
#     unloaded  no module
#     off       mace loaded, no namespace capturing
#     null      the floor module (probes that return at once), c1 capturing
#     on        mace, c1 capturing (the pinging namespace)
#     other     mace, c2 capturing (another namespace)
#     breakdown mace, c1 capturing with breakdown on
#   MACE_TEST_PINGS          pings per condition (default 2000)
#   MACE_TEST_PROFILE_TCP_MB the workload is instead a TCP transfer of this
#                            many MB from c1 to the remote host (iperf3 -n)
#   MACE_TEST_PROFILE_IPUTILS the ping is iputils ping in its default mode
#                            (its replies' windows end at the kernel's
#                            receive timestamp), 20 ms apart, if set to 1
#   MACE_TEST_PROFILE_START  guest uptime in seconds at which the first
#                            condition's ping starts (default 5): under
#                            -icount guest time is exact, so that in a VM
#                            per condition the kernel's periodic work
#                            (conntrack's garbage collection, say) falls
#                            at the same point of every condition's ping
set -uo pipefail
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
NULL_KO=/lib/mace/mace-null.ko
ON=/sys/class/mace/on
CONDS=${MACE_TEST_PROFILE_CONDS:-"off null on other"}
PINGS=${MACE_TEST_PINGS:-2000}
START=${MACE_TEST_PROFILE_START:-5}
TCP_MB=${MACE_TEST_PROFILE_TCP_MB:-}
IPUTILS=${MACE_TEST_PROFILE_IPUTILS:-}

unload() { grep -q '^mace ' /proc/modules && rmmod mace; return 0; }
capture() { ip netns exec "$1" bash -c "echo 1 > $ON"; }
condition() {
	unload || return 1
	case $1 in
	unloaded) ;;
	off) insmod "$KO" outer_dev=eth0 ;;
	null) insmod "$NULL_KO" outer_dev=eth0 && capture c1 ;;
	on) insmod "$KO" outer_dev=eth0 && capture c1 ;;
	other) insmod "$KO" outer_dev=eth0 && capture c2 ;;
	breakdown)
		insmod "$KO" outer_dev=eth0 &&
			ip netns exec c1 bash -c "echo 1 > /sys/class/mace/breakdown" && capture c1
		;;
	*) echo "bench-profile-vm.sh: unknown condition $1" >&2 && return 1 ;;
	esac
}

# Module addresses are readable by root only with kptr_restrict 0.
echo 0 >/proc/sys/kernel/kptr_restrict
topo_up 2 || exit 1
for i in 1 2; do
	ip netns exec "c$i" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
done
# Warm up: neighbour caches and conntrack entries exist before counting,
# and the neighbours pinned as in scripts/bench's cost parts (a dynamic
# entry not yet confirmed sends by the slow path for seconds at a time).
ip netns exec c1 ping -c 3 -i 0.01 "$REMOTE4" >/dev/null
topo_neigh_pin
if [[ -n $TCP_MB ]]; then
	ip netns exec remote iperf3 -s -D >/dev/null 2>&1
	sleep 0.3
fi

# workload quiet|measured: the work counted (ping or TCP transfer), or a
# short warm-up run of it.
workload() {
	if [[ -n $TCP_MB ]]; then
		ip netns exec c1 iperf3 -c "$REMOTE4" -n "$([[ $1 == quiet ]] && echo 1 || echo "$TCP_MB")M"
	elif [[ $IPUTILS == 1 ]]; then
		# 20 ms apart: at shorter intervals iputils ping polls its socket
		# until the next send is due, so the work per ping follows the
		# time each iteration takes, not the ping.
		ip netns exec c1 ping $([[ $1 == quiet ]] && echo "-q -c 5" || echo "-c $PINGS") -i 0.02 "$REMOTE4"
	else
		ip netns exec c1 mace-ping --plain --dgram $([[ $1 == quiet ]] && echo "-q -c 5" || echo "-c $PINGS") -i 0.001 "$REMOTE4"
	fi
}
echo "PROFILE TEXT $(awk '$3 == "_text" { print $1; exit }' /proc/kallsyms)"

status=0
marks=0
for cond in $CONDS; do
	if ! condition "$cond"; then
		echo "PROFILE FAILED cond=$cond"
		status=1
		continue
	fi
	echo "PROFILE-BEGIN kallsyms cond=$cond"
	grep '\[mace\]$' /proc/kallsyms
	echo "PROFILE-END"
	# Warm up after the change (deferred work of insmod, caches).
	workload quiet >/dev/null 2>&1
	if ((marks == 0)); then
		read -r up _ </proc/uptime
		if awk -v u="$up" -v s="$START" 'BEGIN { exit !(u < s) }'; then
			sleep "$(awk -v u="$up" -v s="$START" 'BEGIN { print s - u }')"
		else
			echo "PROFILE LATE uptime=$up start=$START"
		fi
	fi
	sync
	workload measured >/tmp/ping.out 2>&1
	rc=$?
	sync
	marks=$((marks + 2))
	if [[ -n $TCP_MB ]]; then
		# iperf3's receiver line says the transfer completed.
		done_mb=$(grep -q 'receiver' /tmp/ping.out && echo "$TCP_MB" || echo 0)
		echo "PROFILE COND cond=$cond segment=$marks replies=$done_mb rc=$rc unit=MB"
	else
		echo "PROFILE COND cond=$cond segment=$marks replies=$(grep -c 'bytes from' /tmp/ping.out) rc=$rc"
	fi
	((rc == 0)) || { tail -n 3 /tmp/ping.out; status=1; }
done
unload
exit $status
