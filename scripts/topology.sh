# shellcheck shell=bash
# The test network of mace, built inside the VM: a container host as Docker
# builds it, plus the other topologies of the MACE experiments.
#
#   source /mace/scripts/topology.sh
#   topo_up [N]      remote host + outer device + bridge + NAT + N containers
#   topo_down        remove all of it
#   topo_reaches NS N  whether container NS reaches the remote host in N pings
#   topo_far_up      a host behind the remote one, which routes to it
#   topo_neigh_pin   make every resolved neighbour entry permanent
#   topo_neigh_unpin make them stale again (the kernel then confirms them)
#   topo_namespaces  every namespace, the root one as "-"; topo_ip NS ARGS: ip in it
#
# Layout (IPv4 from 198.18.0.0/15, IPv6 from 2001:db8::/32):
#
#   netns "remote" (the LAN peer)       198.18.0.2/24   2001:db8::2/64
#        | veth
#   eth0 (root netns: the outer device) 198.18.0.1/24   2001:db8::1/64
#        | routing + nftables masquerade (oifname eth0)
#   br0  (root netns: Docker's bridge)  198.19.0.1/24   2001:db8:1::1/64
#        | veth "vc<i>" enslaved to br0
#   netns "c<i>", its eth0              198.19.0.<10+i>/24   2001:db8:1::<10+i>/64
#
#   netns "far", behind "remote"        198.18.1.2/24   2001:db8:2::2/64
#        (topo_far_up: "remote" routes to it from its eth1, 198.18.1.1 and
#        2001:db8:2::1; a traceroute from a container to it has the remote
#        host as a router beyond the outer device)
#
# Container to container (CC) is c1 -> c2 over br0; container to host (CH)
# is c1 -> 198.19.0.1 (br0); container to network (CN) is c1 -> remote.
# The remote host has no route to 198.19.0.0/24: replies only come back
# through the NAT, as on a real LAN.

REMOTE4=198.18.0.2
REMOTE6=2001:db8::2
OUTER4=198.18.0.1
BRIDGE4=198.19.0.1
BRIDGE6=2001:db8:1::1
# The containers' network, behind the bridge.
CONTAINERS4=198.19.0.0/24

FAR4=198.18.1.2
FAR6=2001:db8:2::2

# container_addr4 I / container_addr6 I: addresses of container I.
container_addr4() { echo "198.19.0.$((10 + $1))"; }
container_addr6() { echo "2001:db8:1::$((10 + $1))"; }

# Each command of the debug kernel costs about a second under TCG, so the
# topology is built with few of them: ip -batch (which takes no options such
# as -6 per line: the address tells the family), one nft script.

# container_cmds I: ip -batch commands of the root namespace for container I.
container_cmds() {
	local i=$1
	cat <<-EOF
		netns add c$i
		link add vc$i type veth peer name eth0 netns c$i
		link set vc$i master br0 up
	EOF
}

# container_ns_cmds I: ip -batch commands inside container I.
container_ns_cmds() {
	local i=$1
	cat <<-EOF
		link set lo up
		addr add $(container_addr4 "$i")/24 dev eth0
		addr add $(container_addr6 "$i")/64 dev eth0 nodad
		link set eth0 up
		route add default via $BRIDGE4
		route add default via $BRIDGE6
	EOF
}

# topo_add_container I: adds container namespace c<I> on the bridge.
topo_add_container() {
	container_cmds "$1" | ip -batch -
	container_ns_cmds "$1" | ip -n "c$1" -batch -
}

topo_up() {
	local n=${1:-1} i
	{
		echo "link set lo up"
		echo "netns add remote"
		echo "link add eth0 type veth peer name eth0 netns remote"
		echo "addr add $OUTER4/24 dev eth0"
		echo "addr add 2001:db8::1/64 dev eth0 nodad"
		echo "link set eth0 up"
		echo "link add br0 type bridge"
		echo "addr add $BRIDGE4/24 dev br0"
		echo "addr add $BRIDGE6/64 dev br0 nodad"
		echo "link set br0 up"
		for i in $(seq 1 "$n"); do
			container_cmds "$i"
		done
	} | ip -batch -
	ip -n remote -batch - <<-EOF
		link set lo up
		addr add $REMOTE4/24 dev eth0
		addr add $REMOTE6/64 dev eth0 nodad
		link set eth0 up
	EOF
	for i in $(seq 1 "$n"); do
		container_ns_cmds "$i" | ip -n "c$i" -batch -
	done
	echo 1 >/proc/sys/net/ipv4/ip_forward
	echo 1 >/proc/sys/net/ipv6/conf/all/forwarding
	nft -f - <<-'NFT'
		table ip mace_nat {
			chain postrouting {
				type nat hook postrouting priority srcnat; policy accept;
				oifname "eth0" ip saddr 198.19.0.0/24 masquerade
			}
		}
		table ip6 mace_nat {
			chain postrouting {
				type nat hook postrouting priority srcnat; policy accept;
				oifname "eth0" ip6 saddr 2001:db8:1::/64 masquerade
			}
		}
	NFT
	# Wait until the paths work (bridge ports forward at once: no STP).
	topo_reaches c1 50 && return 0
	echo "topology: c1 cannot reach $REMOTE4" >&2
	return 1
}

# topo_far_up: adds the host "far" behind the remote host, which forwards
# to it, and the host's routes to it through the remote host. None of the
# host, the remote host and the far host rate-limits its ICMP errors, so
# that every probe of a traceroute gets its answer, time exceeded or port
# unreachable (Linux sends a destination one error a second after a burst
# of six by default; mtr sends more than six probes to the far host in a
# second). Returns non-zero if c1 cannot reach it.
topo_far_up() {
	local i
	ip netns add far
	ip -n remote link add eth1 type veth peer name eth0 netns far
	ip -n remote -batch - <<-EOF
		addr add 198.18.1.1/24 dev eth1
		addr add 2001:db8:2::1/64 dev eth1 nodad
		link set eth1 up
	EOF
	ip -n far -batch - <<-EOF
		link set lo up
		addr add $FAR4/24 dev eth0
		addr add $FAR6/64 dev eth0 nodad
		link set eth0 up
		route add default via 198.18.1.1
		route add default via 2001:db8:2::1
	EOF
	ip -batch - <<-EOF
		route add 198.18.1.0/24 via $REMOTE4
		route add 2001:db8:2::/64 via $REMOTE6
	EOF
	ip netns exec remote sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
	ip netns exec far sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
	sysctl -qw net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
	for ((i = 0; i < 50; i++)); do
		ip netns exec c1 ping -c 1 -W 1 "$FAR4" >/dev/null 2>&1 &&
			ip netns exec c1 ping -c 1 -W 1 "$FAR6" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	echo "topology: c1 cannot reach $FAR4 and $FAR6" >&2
	return 1
}

# topo_reaches NS TRIES: whether container NS gets a reply from the remote
# host within TRIES pings (a second each at most, 0.2 s apart).
topo_reaches() {
	local i
	for ((i = 0; i < $2; i++)); do
		ip netns exec "$1" ping -c 1 -W 1 "$REMOTE4" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# topo_namespaces: every network namespace of the topology, the root one as
# "-" (for topo_ip), then the named ones.
topo_namespaces() {
	echo -
	ip netns list | awk '{ print $1 }'
}

# topo_ip NS ARGS...: ip ARGS in namespace NS ("-": the root namespace).
topo_ip() {
	local ns=$1
	shift
	if [[ $ns == - ]]; then ip "$@"; else ip -n "$ns" "$@"; fi
}

# topo_neigh_set NUD: gives every neighbour entry with a link-layer address,
# in every namespace, the state NUD (permanent or stale).
topo_neigh_set() {
	local ns
	for ns in $(topo_namespaces); do
		topo_ip "$ns" neigh show | awk -v nud="$1" '
			{ for (i = 1; i < NF; i++) if ($i == "lladdr") {
				dev = ""; for (j = 1; j < NF; j++) if ($j == "dev") dev = $(j + 1)
				router = / router / ? " router" : ""
				print "neigh replace " $1 " lladdr " $(i + 1) " dev " dev router " nud " nud
			} }' | topo_ip "$ns" -batch -
	done
}

# topo_neigh_pin: makes the neighbour entries resolved so far permanent, so
# that every packet takes the same output path for as long as they stay.
# A dynamic entry leaves REACHABLE after its reachable time (15 to 45 s)
# and an entry a neighbour's request created starts STALE; until one is
# confirmed again, each packet through it goes by neigh_resolve_output()
# (172 instructions more per ping on the benchmark's path, in a few
# seconds' windows that fall on some of its rounds and not others).
topo_neigh_pin() { topo_neigh_set permanent; }

# topo_neigh_unpin: makes the pinned entries dynamic again, as STALE: the
# next packet through one has the kernel confirm it (no packet waits).
topo_neigh_unpin() { topo_neigh_set stale; }

topo_down() {
	local ns
	for ns in $(ip netns list | awk '{print $1}'); do
		ip netns del "$ns"
	done
	ip link del br0 2>/dev/null || true
	ip link del eth0 2>/dev/null || true
	nft delete table ip mace_nat 2>/dev/null || true
	nft delete table ip6 mace_nat 2>/dev/null || true
}
