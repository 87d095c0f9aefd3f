#!/bin/bash
# VM suite: egress under queueing. Packets that wait after their send
# returned, in a qdisc in the container (netem delay), in a rate limit on the
# outer device (tbf), or for their neighbour to be resolved, must each be
# timed from their own send: never from a later send, never dropped without
# a count. And replies that wait for their packet socket's reader while
# other traffic churns the ingress table are not lost.
source /mace/tests/vm/lib.sh
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
ON=/sys/class/mace/on

topo_up 2 || { fail "topology" "could not build it"; summary; exit 1; }
insmod "$KO" outer_dev=eth0 || { fail "insmod" "failed"; summary; exit 1; }
ip netns exec c1 bash -c "echo 1 > $ON"

stat() { ip netns exec c1 awk -v k="$1" '$1 == k { print $2 }' /sys/class/mace/stats; }
drain() { ip netns exec c1 cat /dev/mace >/dev/null; }

# egress_by_seq FILE: "seq egress_ns" lines of FILE's egress records, by seq.
egress_by_seq() {
	sed -n 's/.*(\([0-9]*\)) egress: \([0-9]*\)$/\1 \2/p' "$1" | sort -n
}

# ping_rtts FILE: "seq rtt_ns" from ping output.
ping_rtts() {
	sed -n 's/.*icmp_seq=\([0-9]*\) .*time=\([0-9.]*\) ms.*/\1 \2/p' "$1" |
		awk '{ printf "%s %.0f\n", $1, ($2 + 0.001) * 1e6 }'
}

# burst NAME COUNT MIN_NS PING_ARGS...: pings from c1, then checks that
# every packet got exactly one egress line, each at least MIN_NS (the time
# every packet was held back) and below the packet's own RTT, and that
# the counters account for every packet.
burst() {
	local name=$1 count=$2 min=$3
	shift 3
	drain
	local sent0 eg0 exp0
	sent0=$(stat egress_sent)
	eg0=$(stat egress)
	exp0=$(stat egress_expired)
	ip netns exec c1 ping -c "$count" -W 3 "$@" "$REMOTE4" >/tmp/q.ping 2>&1
	ip netns exec c1 cat /dev/mace >/tmp/q.lines
	egress_by_seq /tmp/q.lines >/tmp/q.egress
	ping_rtts /tmp/q.ping >/tmp/q.rtts
	local n ids
	n=$(wc -l </tmp/q.egress)
	ids=$(cut -d' ' -f1 /tmp/q.egress | uniq | tr '\n' ' ')
	if ((n == count)) && [[ $ids == "$(seq -s ' ' 1 "$count") " ]]; then
		pass "$name: one egress line for each of the $count packets"
	else
		fail "$name: egress lines" "$n lines, ids $ids; $(tail -2 /tmp/q.ping | tr '\n' ' ')"
	fi
	local low
	low=$(awk -v m="$min" '$2 < m { printf "%s:%s ", $1, $2 }' /tmp/q.egress)
	if [[ -z $low ]]; then
		pass "$name: every egress latency includes the $(awk -v m="$min" 'BEGIN { printf "%g", m / 1e6 }') ms every packet waited"
	else
		fail "$name: egress below what every packet waited ($min ns)" "$low"
	fi
	local over
	over=$(awk 'FNR == NR { rtt[$1] = $2; next } !($1 in rtt) || $2 >= rtt[$1] { printf "%s:%s ", $1, $2 }' /tmp/q.rtts /tmp/q.egress)
	if [[ -z $over && -s /tmp/q.rtts ]]; then
		pass "$name: every egress latency is below its packet's RTT"
	else
		fail "$name: egress not below RTT" "${over:-no RTTs}"
	fi
	local sent eg exp
	sent=$(($(stat egress_sent) - sent0))
	eg=$(($(stat egress) - eg0))
	exp=$(($(stat egress_expired) - exp0))
	if ((sent == count && eg == count && exp == 0)); then
		pass "$name: stats: $count sent, $count egress latencies, none expired"
	else
		fail "$name: stats" "egress_sent +$sent, egress +$eg, egress_expired +$exp (want $count, $count, 0)"
	fi
}

# --------------------------------------------- a qdisc in the container
# 60 pings 2 ms apart through 30 ms of netem: about 15 wait at once.
tc -n c1 qdisc add dev eth0 root netem delay 30ms limit 1000
burst "netem 30 ms in the container, 60 pings 2 ms apart" 60 30000000 -i 0.002
# All at once (preload): every packet is queued behind the others.
burst "netem 30 ms in the container, 40 pings at once" 40 30000000 -l 40 -i 0.002
tc -n c1 qdisc del dev eth0 root

# ------------------------------------------ a rate limit on the outer device
# 1 Mbit/s: a 1042-byte packet takes 8.3 ms to leave; a burst of 20 queues
# in the outer device's qdisc, and each packet waits for those before it.
tc qdisc add dev eth0 root tbf rate 1mbit burst 1600 latency 1s
burst "tbf 1 Mbit/s on the outer device, 20 pings at once" 20 1 -l 20 -s 1000 -i 0.002
# Each packet's window must start at its own send: the sends' times (a
# line's end time less its latency) follow the sequence numbers, since ping
# sends them in order. A packet timed from another send (a later one, as a
# per-socket queue of send starts would do) breaks the order. (The
# microseconds lose their leading zeros first: busybox awk reads "012345"
# as an octal number.)
order=$(sed -n 's/^\[\([0-9]*\)\.\([0-9]*\)\] (\([0-9]*\)) egress: \([0-9]*\)$/\3 \1 \2 \4/p' /tmp/q.lines | sort -n |
	awk '{ us = $3; sub(/^0+/, "", us); start = ($2 - 1700000000) * 1e9 + us * 1000 - $4 }
		NR > 1 && start <= prev { printf "%s starts %.0f ns after %s ", $1, start - prev, p } { prev = start; p = $1 }')
if [[ -z $order ]]; then
	pass "tbf: each packet's window starts at its own send, in the order they were sent"
else
	fail "tbf: send times out of order" "$order; $(grep egress /tmp/q.lines | sort -t"(" -k2 -n | tr "\n" " ")"
fi
# And they wait for those before them: the last packet's latency spans
# most of the burst's transmission (19 x 8.3 ms, less sending it: > 60 ms).
last=$(tail -n 1 /tmp/q.egress | cut -d' ' -f2)
if ((last > 60000000)); then
	pass "tbf: the last packet of the burst waited for the others ($last ns)"
else
	fail "tbf: the last packet's egress" "$last ns, want > 60 ms"
fi
tc qdisc del dev eth0 root

# --------------------------------------- TCP segmented on the way (GSO)
# TCP hands the container's device 64 KiB packets to be cut into segments
# later (GSO); a tbf with a small burst on the outer device cuts them there,
# into new socket buffers, which carry no egress stamp: the outer device
# identifies the first segment by its bytes, as the container's device did
# the whole packet. Each packet a send handed over still gets its line.
tc qdisc add dev eth0 root tbf rate 200mbit burst 1600 latency 100ms
ip netns exec remote iperf3 -s -D -1 >/dev/null 2>&1
sleep 0.5
drain
eg0=$(stat egress) sent0=$(stat egress_sent)
ip netns exec c1 iperf3 -c "$REMOTE4" -t 1 -l 64K >/tmp/iperf.txt 2>&1
sleep 0.5
drain
eg=$(($(stat egress) - eg0)) sent=$(($(stat egress_sent) - sent0))
echo "queueing: GSO through tbf: $sent packets handed over, $eg egress latencies; $(grep -m1 -o '[0-9.]* [MG]bits/sec' /tmp/iperf.txt)"
check "GSO TCP segmented by tbf on the outer device: an egress line per packet sent ($eg of $sent)" \
	test "$sent" -gt 10 -a "$eg" -ge $((sent * 9 / 10))
tc qdisc del dev eth0 root

# ---------------------------------------------------- neighbour resolution
# The bridge answers c1's ARP requests 50 ms late: packets sent meanwhile
# wait in the neighbour's queue, and leave from a softirq when it resolves.
# The first waits the whole 50 ms; the others, sent a few ms later, a little
# less (at least 40 ms).
tc qdisc add dev vc1 root netem delay 50ms
ip -n c1 neigh flush all
burst "neighbour resolution 50 ms late, 3 pings at once" 3 40000000 -l 3 -i 0.002
first=$(head -n 1 /tmp/q.egress | cut -d' ' -f2)
if ((first >= 50000000)); then
	pass "neighbour resolution: the first packet's egress includes the 50 ms wait ($first ns)"
else
	fail "neighbour resolution: the first packet's egress" "$first ns, want >= 50 ms"
fi
tc qdisc del dev vc1 root

check_accounting "queueing" c1

# ------------------------------------------ packet socket readers, a flood
# hping3 reads its replies through a packet socket: each waits for the
# sweep's grace period (250 ms) before it is reported. Meanwhile c2, which
# does not capture, flood-pings the same remote host: its replies, from a
# peer of c1, are stamped at the outer device (whose they are is not known
# there) and never taken, and churn a small
# array of stamps (256 for table_size=64). The replies the tap saw left the table for the tap queue,
# and all of them are reported.
rmmod mace
insmod "$KO" outer_dev=eth0 table_size=64 || fail "insmod table_size=64" "failed"
ip netns exec c1 bash -c "echo 1 > $ON"
ip netns exec c2 ping -f -q -w 4 "$REMOTE4" >/dev/null 2>&1 &
flood=$!
sleep 0.5
ip netns exec c1 hping3 -1 -c 10 -i u50000 "$REMOTE4" >/tmp/hping.out 2>&1
sleep 1
wait "$flood"
ip netns exec c1 cat /dev/mace >/tmp/q.lines
ids=$(sed -n 's/.*(\([0-9]*\)) ingress: .*/\1/p' /tmp/q.lines | sort -n | tr '\n' ' ')
want=$(seq 0 9 | awk '{ print $1 * 256 }' | tr '\n' ' ')
lost=$(awk '$1 == "host_ingress_stamps_lost" { print $2 }' /sys/class/mace/stats)
if [[ $ids == "$want" ]] && ((lost > 0)); then
	pass "hping3 during a flood: its 10 replies reported, while $lost other stamps were overwritten"
else
	fail "hping3 during a flood" "ingress ids '$ids', want '$want'; host_ingress_stamps_lost $lost; $(tail -2 /tmp/hping.out | tr '\n' ' ')"
fi
check_accounting "packet socket readers, a flood" c1

# --------------------------------------------------------------- the end
rmmod mace && pass "rmmod" || fail "rmmod" "failed"
topo_down
summary
