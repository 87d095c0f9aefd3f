#!/bin/bash
# VM suite: the breakdown of latencies into segments (`breakdown`).
#
# Each segment is checked by injecting delay where it belongs and seeing it
# show up there only: netem in the container (egress container), a tbf rate
# limit on the outer device (egress outer), netem on the bridge's port to
# the container (ingress host), a large nftables rule set in the host's
# forward path (egress and ingress host), one in the container's input path
# (ingress container), a reader that sleeps before recv (ingress socket).
# The injected segment must grow by at least 90 % of the injected delay and
# by at most the delay plus the unloaded segment's p99 (and 2 ms of slack
# for TCG's timer); every other segment's median must move by less than
# its unloaded p99 (at least 1 ms). Segments always add up to the latency.
# "Unloaded" is a run that differs only in where the delay is: for the
# ingress host segment, the same delay at the remote host.
source /mace/tests/vm/lib.sh
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
BD=/sys/class/mace/breakdown

topo_up 2 || { fail "topology" "could not build it"; summary; exit 1; }
insmod "$KO" outer_dev=eth0 || { fail "insmod" "failed"; summary; exit 1; }

# ------------------------------------------------------------ the file
in_netns c1 <<'END'
BD=/sys/class/mace/breakdown
check "breakdown reads 0 at first" test "$(cat $BD)" = 0
expect_fail_errno "breakdown rejects 'yes'" "Invalid argument" bash -c "echo yes > $BD"
expect_fail_errno "breakdown rejects '2'" "Invalid argument" bash -c "echo 2 > $BD"
check "breakdown still 0 after bad writes" test "$(cat $BD)" = 0
check "breakdown can be set before capture" bash -c "echo 1 > $BD"
check "breakdown reads 1" test "$(cat $BD)" = 1
check "stats shows breakdown 1" grep -qx 'breakdown 1' /sys/class/mace/stats
check "capture on" bash -c "echo 1 > /sys/class/mace/on"
END
check "breakdown of another namespace is its own (0 in c2)" test "$(ip netns exec c2 cat $BD)" = 0
chmod 666 $BD
expect_fail_errno "an unprivileged writer is refused, even with a world-writable file" "Operation not permitted" \
	ip netns exec c2 setpriv --reuid 65534 --regid 65534 --clear-groups bash -c "echo 1 > $BD"
check "an unprivileged user switches its own user+net namespace's breakdown" \
	setpriv --reuid 65534 --regid 65534 --clear-groups unshare -r -n bash -c "echo 1 > $BD && test \$(cat $BD) = 1 && echo 0 > $BD"
chmod 644 $BD
check "host: one namespace with breakdown on, the waypoints registered" \
	test "$(counter - host_breakdown_netns) $(counter - host_waypoints)" = "1 1"
check "breakdown changes are logged" bash -c "dmesg | grep -q 'mace: breakdown on in network namespace'"

ip netns exec remote mace-echo udp-server 0.0.0.0:7777 >/dev/null 2>&1 &
sleep 0.3

drain() { ip netns exec c1 cat /dev/mace >/dev/null; }

# segs FILE DIR: "latency s1 s2 s3" for each DIR line of FILE with segments
# (in the order the line names them).
segs() {
	awk -v d="$2:" '$3 == d && NF == 7 {
		split($5, a, "="); split($6, b, "="); split($7, c, "=")
		print $4, a[2], b[2], c[2] }' "$1"
}

# quantile Q: the Q quantile of the numbers on stdin.
quantile() {
	sort -n | awk -v q="$1" '{ v[NR] = $1 } END { if (NR == 0) { print -1; exit } i = int(q * (NR - 1)) + 1; print v[i] }'
}

# measure NAME DIR CMD...: runs CMD (in c1), then keeps DIR's segments of
# its lines in /tmp/bd.NAME.DIR and checks them: most lines carry segments,
# and each line's add up to its latency.
measure() {
	local name=$1 dir=$2 total known bad
	shift 2
	drain
	"$@" >/tmp/bd.cmd 2>&1 || echo "($* failed: $(tail -1 /tmp/bd.cmd))"
	sleep 0.3
	ip netns exec c1 cat /dev/mace >/tmp/bd.lines
	total=$(grep -c " $dir: " /tmp/bd.lines)
	segs /tmp/bd.lines "$dir" >"/tmp/bd.$name.$dir"
	known=$(wc -l <"/tmp/bd.$name.$dir")
	bad=$(awk '$1 != $2 + $3 + $4' "/tmp/bd.$name.$dir" | head -3 | tr '\n' ';')
	if ((total >= 10 && known * 10 >= total * 9)) && [[ -z $bad ]]; then
		pass "$name: $known of $total $dir lines carry segments, each adding up to its latency"
	else
		fail "$name: $dir segments" "$known of $total lines with segments; not adding up: '$bad'; $(head -2 /tmp/bd.lines | tr '\n' ' ')"
	fi
}

# seg FILE I Q: the Q quantile of segment I (1..3) in FILE.
seg() { awk -v i=$(($2 + 1)) '{ print $i }' "$1" | quantile "$3"; }

# injected NAME DIR BASE I DELAY_NS: segment I of DIR grew by the injected
# DELAY_NS in NAME against BASE, the others did not move.
injected() {
	local name=$1 dir=$2 base=$3 want=$4 delay=$5 i names
	read -r -a names <<<"$(segment_names "$dir")"
	for i in 1 2 3; do
		local b0 b99 m grow tol
		b0=$(seg "/tmp/bd.$base.$dir" "$i" 0.5)
		b99=$(seg "/tmp/bd.$base.$dir" "$i" 0.99)
		m=$(seg "/tmp/bd.$name.$dir" "$i" 0.5)
		grow=$((m - b0))
		local what="$name: $dir ${names[i - 1]} median $b0 -> $m ns"
		if ((i == want)); then
			if ((grow >= delay * 9 / 10 && grow <= delay + b99 + 2000000)); then
				pass "$what: grew by the injected $((delay / 1000)) us"
			else
				fail "$what" "grew by $grow ns, want $((delay * 9 / 10))..$((delay + b99 + 2000000))"
			fi
		else
			tol=$((b99 > 1000000 ? b99 : 1000000))
			if ((grow < tol && -grow < tol)); then
				pass "$what: unchanged (within $tol ns)"
			else
				fail "$what" "moved by $grow ns, more than $tol"
			fi
		fi
	done
}

segment_names() {
	case $1 in
	egress) echo "container host outer" ;;
	ingress) echo "host container socket" ;;
	esac
}

ping20() { ip netns exec c1 ping -c 20 -i 0.05 -W 3 "$REMOTE4"; }
udp20() { ip netns exec c1 mace-echo udp-client "$REMOTE4:7777" 20 50 "$@"; }

# ------------------------------------------------------------- unloaded
measure base egress ping20
measure base-udp ingress udp20
cp /tmp/bd.base-udp.ingress /tmp/bd.base.ingress
echo "breakdown: unloaded egress medians (container host outer): $(for i in 1 2 3; do seg /tmp/bd.base.egress $i 0.5; done | tr '\n' ' ')"
echo "breakdown: unloaded ingress medians (host container socket): $(for i in 1 2 3; do seg /tmp/bd.base.ingress $i 0.5; done | tr '\n' ' ')"

# ------------------------------------------- netem in the container: egress
tc -n c1 qdisc add dev eth0 root netem delay 20ms
measure netem-c1 egress ping20
injected netem-c1 egress base 1 20000000
tc -n c1 qdisc del dev eth0 root

# -------------------------------------- tbf on the outer device: egress
# 500 kbit/s, a burst of 10 pings of 1400 bytes (1442 on the wire): each
# waits 23 ms for every packet before it, in the outer device's qdisc.
tc qdisc add dev eth0 root tbf rate 500kbit burst 1600 latency 1s
measure tbf egress ip netns exec c1 ping -c 20 -l 10 -s 1400 -i 0.2 -W 3 "$REMOTE4"
tc qdisc del dev eth0 root
# The last of the burst waits for the nine before it (207 ms) less the time
# the guest took to send them: a slow guest (27 ms of 75 at 1 Mbit/s with
# 1000 bytes, 7.3 on a slow host) still leaves it more than two (46 ms).
max_outer=$(seg /tmp/bd.tbf.egress 3 1)
if ((max_outer > 46000000)); then
	pass "tbf: the outer segment holds the rate limit's wait (up to $max_outer ns)"
else
	fail "tbf: outer segment" "at most $max_outer ns, want > 46 ms"
fi
for i in 1 2; do
	m=$(seg /tmp/bd.tbf.egress $i 0.5) b=$(seg /tmp/bd.base.egress $i 0.5) b99=$(seg /tmp/bd.base.egress $i 0.99)
	tol=$((b99 > 1000000 ? b99 : 1000000))
	if ((m - b < tol && b - m < tol)); then
		pass "tbf: egress segment $i median unchanged ($b -> $m ns, within $tol)"
	else
		fail "tbf: egress segment $i" "median $b -> $m ns, more than $tol"
	fi
done

# ---------------------------------- netem on the bridge's port: ingress host
# Its base has the same 20 ms at the remote host, outside both windows: a
# reply that comes 20 ms after the request finds the reader asleep, and
# waking it is part of the socket segment (under TCG on a busy machine,
# milliseconds more than for a reply that comes at once). So only where
# the delay is differs between the two runs.
tc -n remote qdisc add dev eth0 root netem delay 20ms
measure base-far ingress udp20
tc -n remote qdisc del dev eth0 root
tc qdisc add dev vc1 root netem delay 20ms
measure netem-vc1 ingress udp20
injected netem-vc1 ingress base-far 1 20000000
tc qdisc del dev vc1 root

# ------------------------------------- a reader that sleeps: ingress socket
measure sleepy ingress udp20 --recv-delay-ms 50
injected sleepy ingress base 3 50000000

# ------------------------------------ nftables rule sets: host, container
# 4000 rules that each packet matches and counts, all of them.
rules() {
	local hook=$1 i
	echo "table inet mace_bd { chain c { type filter hook $hook priority 0; policy accept;"
	for ((i = 1; i <= 4000; i++)); do echo "meta mark != $i counter"; done
	echo "}"
	echo "}"
}
rules forward >/tmp/bd.fwd.nft
check "4000 nftables rules in the host's forward path" nft -f /tmp/bd.fwd.nft
measure nft-fwd egress ping20
measure nft-fwd ingress udp20
nft delete table inet mace_bd
for dir in egress ingress; do
	h=$([[ $dir == egress ]] && echo 2 || echo 1)
	c=$([[ $dir == egress ]] && echo 1 || echo 2)
	hb=$(seg /tmp/bd.base.$dir $h 0.5) hn=$(seg /tmp/bd.nft-fwd.$dir $h 0.5)
	cb=$(seg /tmp/bd.base.$dir $c 0.5) cn=$(seg /tmp/bd.nft-fwd.$dir $c 0.5)
	hg=$((hn - hb)) cg=$((cn - cb))
	if ((hg > 300000 && 2 * cg < hg && -2 * cg < hg)); then
		pass "nft forward rules: $dir host segment grew ($hb -> $hn ns), container segment did not ($cb -> $cn ns)"
	else
		fail "nft forward rules: $dir" "host $hb -> $hn ns, container $cb -> $cn ns"
	fi
done
rules input >/tmp/bd.in.nft
check "4000 nftables rules in the container's input path" ip netns exec c1 nft -f /tmp/bd.in.nft
measure nft-in ingress udp20
ip netns exec c1 nft delete table inet mace_bd
hb=$(seg /tmp/bd.base.ingress 1 0.5) hn=$(seg /tmp/bd.nft-in.ingress 1 0.5)
cb=$(seg /tmp/bd.base.ingress 2 0.5) cn=$(seg /tmp/bd.nft-in.ingress 2 0.5)
hg=$((hn - hb)) cg=$((cn - cb))
if ((cg > 300000 && 2 * hg < cg && -2 * hg < cg)); then
	pass "nft input rules in the container: ingress container segment grew ($cb -> $cn ns), host did not ($hb -> $hn ns)"
else
	fail "nft input rules in the container" "container $cb -> $cn ns, host $hb -> $hn ns"
fi

# ------------------------------------------------ TCP and IPv6, ping's end
ip netns exec remote mace-echo tcp-server 0.0.0.0:7779 >/dev/null 2>&1 &
sleep 0.3
measure tcp egress ip netns exec c1 mace-echo tcp-client "$REMOTE4:7779" 20 50
tcp_in=$(segs /tmp/bd.lines ingress | wc -l)
echo "breakdown: TCP: $tcp_in of $(grep -c ' ingress: ' /tmp/bd.lines) ingress lines with segments"
measure ping6 egress ip netns exec c1 ping -6 -c 20 -i 0.05 -W 3 "$REMOTE6"
# iputils ping reads the kernel's receive stamp, taken when the packet
# entered the container (veth): its window ends there, and the segments
# after it are 0.
measure ping-in ingress ping20
late=$(awk '$3 != 0 || $4 != 0' /tmp/bd.ping-in.ingress | wc -l)
check "ping's ingress ends at its receive stamp: container and socket segments 0 ($late lines not)" test "$late" = 0

# hping3 reads its replies through a packet socket: the host segment ends
# at the tap on the container's device, the rest is its reader's wait.
ip netns exec c1 cat /dev/mace >/dev/null
ip netns exec c1 hping3 -1 -c 5 -i u50000 "$REMOTE4" >/dev/null 2>&1
sleep 0.6
ip netns exec c1 cat /dev/mace >/tmp/bd.lines
segs /tmp/bd.lines ingress >/tmp/bd.hping.ingress
n=$(wc -l </tmp/bd.hping.ingress)
zero=$(awk '$3 == 0 && $1 == $2 + $3 + $4' /tmp/bd.hping.ingress | wc -l)
check "hping3 (packet socket): $n of 5 replies with segments, $zero with container 0 adding up" \
	test "$n" -ge 4 -a "$zero" = "$n"

# The segments' histograms in /dev/mace-hist: one per segment, each
# counting every latency recorded with its segments (the same snapshot's
# counters).
ip netns exec c1 cat /dev/mace-hist >/tmp/bd.hist
if awk '
	$1 == "counter" && $3 ~ /^(egress|ingress)_segments$/ { want[substr($3, 1, index($3, "_") - 1)] = $4 }
	$1 == "seghist" { n[$3]++; got[$3 " " $4] = $5; if ($5 != want[$3]) bad = bad " " $3 "/" $4 "=" $5 }
	END {
		if (n["egress"] != 3 || n["ingress"] != 3) { print "seghist lines: " n["egress"] "+" n["ingress"]; exit 1 }
		if (want["egress"] == 0 || want["ingress"] == 0) { print "no segments counted"; exit 1 }
		if (bad != "") { print "counts differ from the counters " want["egress"] "/" want["ingress"] ":" bad; exit 1 }
	}' /tmp/bd.hist >/tmp/bd.hist.err; then
	pass "/dev/mace-hist: six segment histograms, each counting every latency with segments"
else
	fail "/dev/mace-hist segment histograms" "$(cat /tmp/bd.hist.err)"
fi
check "/dev/mace-hist: no segment histograms for a namespace that never broke down" \
	test "$(ip netns exec c2 cat /dev/mace-hist | grep -c '^seghist')" = 0

# ------------------------------------------------------------ accounting
st() { counter c1 "$1"; }
if (($(st egress) == $(st egress_segments) + $(st egress_segments_unknown) &&
	$(st ingress) == $(st ingress_segments) + $(st ingress_segments_unknown))); then
	pass "every latency recorded with breakdown on is counted with known or unknown segments"
else
	fail "segments accounting" "egress $(st egress) = $(st egress_segments) + $(st egress_segments_unknown)? ingress $(st ingress) = $(st ingress_segments) + $(st ingress_segments_unknown)?"
fi
check_accounting "breakdown" c1

# --------------------------------------------------------------- off again
ip netns exec c1 bash -c "echo 0 > $BD"
drain
ping20 >/dev/null 2>&1
ip netns exec c1 cat /dev/mace >/tmp/bd.lines
n=$(grep -c 'gress: ' /tmp/bd.lines) with=$(grep -c '=' /tmp/bd.lines)
check "breakdown off: $n lines, none with segments" test "$n" -ge 20 -a "$with" = 0
check "breakdown off: reads 0, no namespace has it, the waypoint probes are unregistered" \
	test "$(counter c1 breakdown) $(counter - host_breakdown_netns) $(counter - host_waypoints)" = "0 0 0"

# mace-ping --breakdown switches it on for its run, prints each reply's
# segments and their statistics, and switches it off again.
ip netns exec c1 mace-ping --breakdown --raw -c 5 -i 0.05 "$REMOTE4" >/tmp/bd.mp 2>&1
n=$(grep -c '| egress container=[0-9.]* host=[0-9.]* outer=[0-9.]* | ingress host=[0-9.]* container=[0-9.]* socket=[0-9.]* us$' /tmp/bd.mp)
check "mace-ping --breakdown: $n of 5 replies with both directions' segments" test "$n" -ge 4
check "mace-ping --breakdown: per-segment statistics in the summary" \
	grep -q '^egress container min/avg/max/mdev = ' /tmp/bd.mp
check "mace-ping --breakdown: switched breakdown off again at exit" test "$(ip netns exec c1 cat $BD)" = 0
ip netns exec c1 mace-ping --breakdown --json --raw -6 -c 3 -i 0.05 "$REMOTE6" >/tmp/bd.mpj 2>&1
if grep -q '"egress_segments_ns":{"container":[0-9]*,"host":[0-9]*,"outer":[0-9]*}' /tmp/bd.mpj &&
	grep -q '"segments":{"egress":{"known":' /tmp/bd.mpj; then
	pass "mace-ping --breakdown --json (IPv6): segments objects per reply and in the summary"
else
	fail "mace-ping --breakdown --json" "$(head -c 600 /tmp/bd.mpj)"
fi

# A namespace that goes away with breakdown on, and unloading with it on.
ip netns exec c2 bash -c "echo 1 > $BD; echo 1 > /sys/class/mace/on"
check "c2 switched breakdown on: the waypoints are back" test "$(counter - host_waypoints)" = 1
ip netns del c2
sleep 1
check "c2 went away with breakdown on: the waypoint probes went with it" \
	test "$(counter - host_breakdown_netns) $(counter - host_waypoints)" = "0 0"
ip netns exec c1 bash -c "echo 1 > $BD"
ping20 >/dev/null 2>&1
kill %1 %2 2>/dev/null
rmmod mace && pass "rmmod with breakdown on" || fail "rmmod" "failed"
bad='BUG:|WARNING:|Oops|unreferenced object|possible .*deadlock|suspicious RCU'
if dmesg | grep -qE "$bad"; then
	fail "kernel log" "$(dmesg | grep -E "$bad" | head -3)"
else
	pass "kernel log: no BUG, WARNING, Oops, leak or lockdep report"
fi
topo_down
summary
