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

say "Inside the container: echo 1 > /sys/class/mace/on (mace-ping also does it itself)"
ip netns exec c1 bash -c 'echo 1 > /sys/class/mace/on; echo "on = $(cat /sys/class/mace/on)"'

say "Inside the container: mace-ping -c 10 $REMOTE4 (raw RTT, egress, ingress, corrected RTT)"
ip netns exec c1 mace-ping -c 10 -i 0.2 "$REMOTE4"

say "Inside the container: mace-ping -c 5 --dgram $REMOTE6 (ping socket, IPv6)"
ip netns exec c1 sysctl -qw net.ipv4.ping_group_range="0 2147483647"
ip netns exec c1 mace-ping -c 5 -i 0.2 --dgram "$REMOTE6"

say "Any other tool: ping -U -c 3 $REMOTE4, then cat /dev/mace and mace-ping --annotate"
ip netns exec c1 ping -U -c 3 -i 0.2 "$REMOTE4"
ip netns exec c1 cat /dev/mace | tee /tmp/mace.out
ip netns exec c1 ping -U -c 3 -i 0.2 "$REMOTE4" >/dev/null
ip netns exec c1 mace-ping --annotate

say "Where the host held each packet: mace-ping --breakdown -c 3 $REMOTE4 (segments in us)"
ip netns exec c1 mace-ping --breakdown -c 3 -i 0.2 "$REMOTE4"

say "Inside the container: cat /sys/class/mace/stats"
ip netns exec c1 cat /sys/class/mace/stats

rmmod mace
