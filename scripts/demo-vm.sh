#!/bin/bash
# The demo, inside the VM (run by scripts/demo through scripts/vm-run).
set -euo pipefail
source /mace/scripts/topology.sh

say() { printf '\n### %s\n' "$*"; }

say "Topology: container c1 -> veth -> br0 -> NAT -> eth0 (outer) -> remote host"
topo_up 1
ip -br addr show

say "insmod mace.ko outer_dev=eth0"
insmod "$MACE_KO" outer_dev=eth0
dmesg | grep 'mace:' | tail -n 2

say "Inside the container: echo 1 > /sys/class/mace/on"
ip netns exec c1 bash -c 'echo 1 > /sys/class/mace/on; echo "on = $(cat /sys/class/mace/on)"'

say "Inside the container: ping -U -c 10 $REMOTE4 (-U: user-to-user RTT)"
ip netns exec c1 ping -U -c 10 -i 0.2 "$REMOTE4" | tee /tmp/ping.out

say "Inside the container: cat /dev/mace"
ip netns exec c1 cat /dev/mace | tee /tmp/mace.out

say "Corrected RTT = ping's RTT - egress - ingress (TCG-emulated times)"
awk '
	FNR == NR {
		if (match($0, /icmp_seq=[0-9]+/)) {
			seq = substr($0, RSTART + 9, RLENGTH - 9)
			if (match($0, /time=[0-9.]+/)) rtt[seq] = substr($0, RSTART + 5, RLENGTH - 5) * 1000
		}
		next
	}
	{ id = $2; gsub(/[()]/, "", id); v[id, $3] = $4 / 1000 }
	END {
		printf "%5s %12s %12s %12s %14s\n", "seq", "rtt_us", "egress_us", "ingress_us", "corrected_us"
		for (s = 1; s in rtt; s++)
			printf "%5d %12.1f %12.1f %12.1f %14.1f\n", s, rtt[s], v[s, "egress:"], v[s, "ingress:"], rtt[s] - v[s, "egress:"] - v[s, "ingress:"]
	}
' /tmp/ping.out /tmp/mace.out

say "Inside the container: cat /sys/class/mace/stats"
ip netns exec c1 cat /sys/class/mace/stats

rmmod mace
