#!/bin/bash
# The benchmark's measurements, inside the VM (run by scripts/bench through
# scripts/vm-run on the bench kernel). Prints raw results on the console,
# one "BENCH ..." line per figure and "BENCH-BEGIN name" ... "BENCH-END"
# blocks for files; scripts/bench-report turns them into tables and plots.
#
# Usage: bench-vm.sh icount   perturbation, TCP throughput, the paper's
#                              comparison with the host's own RTTs,
#                              accuracy, coverage, breakdown, self-cost
#                              (run under qemu -icount: guest time counts
#                              instructions, so results repeat exactly)
#        bench-vm.sh tcg       TCP throughput (unloaded, on, ftrace and
#                              unloaded again as a control), and coverage
#                              (and the breakdown) with many namespaces
#                              pinging at once (plain TCG)
#
# Sizes: MACE_TEST_ROUNDS (default 9), MACE_TEST_PINGS (default 200),
# MACE_TEST_LOADS (default "0 1 5 10"), MACE_TEST_TCP_ROUNDS (default 9),
# MACE_TEST_TCPI_ROUNDS (TCP rounds under icount, default 4: each moves by
# about a per cent with iperf3's batching, while mace's own instructions
# are some 0.6 % of the kernel's per MB, so a ratio near the target wants
# more than two; 2.4 % of those that are not the iterations of a copy's
# rep movsb, which icount counts once per byte), MACE_TEST_TCPI_CONDS
# (their conditions, each round in this order; default "unloaded null on
# ftrace"), MACE_TEST_SCALE
# (namespaces pinging at once, default 100); MACE_TEST_PARTS=pert
# (scripts/bench --pert) runs only the perturbation rounds and self-cost,
# MACE_TEST_PARTS=tcp (scripts/bench --tcp) only TCP under icount.
set -uo pipefail
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
ON=/sys/class/mace/on
BD=/sys/class/mace/breakdown
TR=/sys/kernel/tracing
ROUNDS=${MACE_TEST_ROUNDS:-9}
PINGS=${MACE_TEST_PINGS:-200}
LOADS=${MACE_TEST_LOADS:-"0 1 5 10"}
TCP_ROUNDS=${MACE_TEST_TCP_ROUNDS:-9}
TCPI_ROUNDS=${MACE_TEST_TCPI_ROUNDS:-4}
SCALE=${MACE_TEST_SCALE:-100}
# For ftrace to record: the six tracepoints the cost issue compares with
# (what mace hooked with syscall_tracepoints=1) as events, and the kernel
# functions mace hooks with the function tracer. Not recorded: the hooks of
# packet sockets' readers and the UDP fallbacks (sk_data_ready,
# packet_poll(), packet_recvmsg(), __consume_stateless_skb(),
# __sock_recv_cmsgs()), of which the perturbation's ping hits only
# sk_data_ready, once per reply (mace's filter returns at once there).
EVENTS="raw_syscalls/sys_enter raw_syscalls/sys_exit net/net_dev_queue
	net/net_dev_start_xmit net/netif_receive_skb skb/skb_copy_datagram_iovec"
FUNCTIONS="skb_consume_udp __neigh_event_send"
# What mace hooks by default ("ftrace-hooks"): the socket calls in place of
# the syscall tracepoints.
HOOK_EVENTS="sock/sock_recv_length net/net_dev_queue net/net_dev_start_xmit
	net/netif_receive_skb skb/skb_copy_datagram_iovec"
HOOK_FUNCTIONS="__x64_sys_sendto __x64_sys_sendmsg __x64_sys_sendmmsg
	sock_write_iter skb_consume_udp __neigh_event_send"

section() {
	echo "BENCH-BEGIN $1"
	cat "$2"
	echo "BENCH-END"
}

# The tools of the accuracy table, each with its own ICMP payload size.
ACC_TOOLS="ping4 pingU4 ping6 hping3 hping3-syn traceroute mtr fping mp-raw4 mp-dgram4 mp-raw6 mp-dgram6 udp4 udp6 tcp4 tcp6"
NETEM_MS=${MACE_TEST_NETEM_MS:-20}

# acc_tool TOOL NAME [NS]: runs TOOL in namespace NS (c1 by default; "host":
# the initial namespace) for PINGS packets, 10 ms apart, and prints its
# output and NS's /dev/mace lines (none where mace is not loaded) as
# sections NAME.out and NAME.mace (mace-ping prints its own joined lines).
acc_tool() {
	local tool=$1 name=$2 ns=${3:-c1} n=$PINGS i in_ns=()
	[[ $ns == host ]] || in_ns=(ip netns exec "$ns")
	# (The host's own runs are made with mace not loaded: no lines.)
	if loaded; then "${in_ns[@]}" cat /dev/mace >/dev/null; fi
	case $tool in
	ping4) "${in_ns[@]}" ping -c "$n" -i 0.01 -s 136 "$REMOTE4" ;;
	pingU4) "${in_ns[@]}" ping -U -c "$n" -i 0.01 -s 152 "$REMOTE4" ;;
	ping6) "${in_ns[@]}" ping -6 -c "$n" -i 0.01 -s 168 "$REMOTE6" ;;
	hping3) "${in_ns[@]}" hping3 -1 -c "$n" -i u10000 -d 184 "$REMOTE4" 2>&1 ;;
	# TCP SYN probes to a port of their own, where the remote listens.
	hping3-syn) "${in_ns[@]}" hping3 -S -p 7781 -c "$n" -i u10000 "$REMOTE4" 2>&1 ;;
	# Probes to the far host that expire at the remote host (hop 2), ten a
	# run (traceroute's most), one at a time (-N 1), 10 ms apart (-z).
	traceroute)
		for ((i = 0; i < n; i += 10)); do
			"${in_ns[@]}" traceroute -n -N 1 -q 10 -f 2 -m 2 -z 0.01 -w 2 "$FAR4"
		done
		;;
	# ICMP echo probes from a raw socket (mtr-packet's), numbered from 33000,
	# with TTL 2 only (-f 2 -m 2): the remote host, hop 2, answers each; one
	# probe a round, a round every 10 ms (-i). -s is the whole IP packet.
	mtr) "${in_ns[@]}" mtr -n --raw -c "$n" -i 0.01 -f 2 -m 2 -s 276 "$REMOTE4" 2>&1 ;;
	# (-t: in count mode, fping times a reply out after its period by
	# default, 10 ms here, shorter than the netem delay.)
	fping) "${in_ns[@]}" fping -c "$n" -p 10 -t 1000 -b 232 "$REMOTE4" 2>&1 ;;
	mp-raw4) "${in_ns[@]}" mace-ping --raw --json -c "$n" -i 0.01 -s 120 "$REMOTE4" ;;
	mp-dgram4) "${in_ns[@]}" mace-ping --dgram --json -c "$n" -i 0.01 -s 104 "$REMOTE4" ;;
	mp-raw6) "${in_ns[@]}" mace-ping -6 --raw --json -c "$n" -i 0.01 -s 200 "$REMOTE6" ;;
	mp-dgram6) "${in_ns[@]}" mace-ping -6 --dgram --json -c "$n" -i 0.01 -s 216 "$REMOTE6" ;;
	udp4) "${in_ns[@]}" mace-echo udp-client "$REMOTE4:7777" "$n" 10 ;;
	udp6) "${in_ns[@]}" mace-echo udp-client "[$REMOTE6]:7778" "$n" 10 ;;
	tcp4) "${in_ns[@]}" mace-echo tcp-client "$REMOTE4:7779" "$n" 10 ;;
	tcp6) "${in_ns[@]}" mace-echo tcp-client "[$REMOTE6]:7780" "$n" 10 ;;
	esac >/tmp/tool.out
	# Lines of packets only a packet socket read come after a grace period.
	[[ $tool == hping3* ]] && sleep 0.6
	if loaded; then "${in_ns[@]}" cat /dev/mace; fi >/tmp/tool.mace
	section "$name.out" /tmp/tool.out
	section "$name.mace" /tmp/tool.mace
}

loaded() { grep -q '^mace ' /proc/modules; }
unload() { loaded && rmmod mace; return 0; }

# flood_start N: containers c2 .. c(N+1) flood-ping the remote host (their
# pids in FLOODERS); flood_stop ends them.
flood_start() {
	local i
	FLOODERS=()
	for i in $(seq 2 $(($1 + 1))); do
		ip netns exec "c$i" ping -f -q "$REMOTE4" >/dev/null 2>&1 &
		FLOODERS+=($!)
	done
}
flood_stop() {
	# (With no flooders, a bare "wait" would wait for the servers.)
	((${#FLOODERS[@]})) || return 0
	kill "${FLOODERS[@]}" 2>/dev/null
	wait "${FLOODERS[@]}" 2>/dev/null
	FLOODERS=()
}
# load_ko KO [PARAM...]: loads KO (the module under test, or another build
# of mace) in place of the one loaded.
load_ko() {
	local ko=$1
	shift
	unload
	insmod "$ko" outer_dev=eth0 "$@"
}
load() { load_ko "$KO" "$@"; }
# capture_in NS: switches capture on in namespace NS.
capture_in() { ip netns exec "$1" bash -c "echo 1 > $ON"; }
# ftrace 0|1 [EVENTS FUNCTIONS]: ftrace off, or recording EVENTS and
# FUNCTIONS (the six tracepoints' set by default).
ftrace() {
	local e events=${2:-$EVENTS} functions=${3:-$FUNCTIONS}
	echo 0 >$TR/tracing_on
	for e in $EVENTS $HOOK_EVENTS; do echo 0 >"$TR/events/$e/enable"; done
	if (($1)); then
		for e in $events; do echo 1 >"$TR/events/$e/enable"; done
		echo "$functions" >$TR/set_ftrace_filter
		echo function >$TR/current_tracer
	else
		echo nop >$TR/current_tracer
		echo >$TR/set_ftrace_filter
	fi
	echo >$TR/trace
	echo "$1" >$TR/tracing_on
}

# The eBPF peer (scripts/bench-peer.bt), when the VM has bpftrace and the
# kernel's headers (scripts/bench passes them as MACE_TEST_BPFTRACE_*).
peer_pid=
peer_ok() { command -v bpftrace >/dev/null && [[ -d ${MACE_TEST_BPFTRACE_SOURCE:-/nonexistent}/include ]]; }
# peer_catches_int: whether the peer has its SIGINT handler (SigCgt bit 2).
peer_catches_int() {
	local cgt
	cgt=$(awk '/^SigCgt:/ { print $2 }' "/proc/$peer_pid/status" 2>/dev/null)
	[[ -n $cgt ]] && (((0x$cgt >> 1) & 1))
}
peer_start() {
	local inum init i
	inum=$(ip netns exec c1 stat -L -c %i /proc/self/ns/net)
	init=$(stat -L -c %i /proc/self/ns/net)
	BPFTRACE_KERNEL_SOURCE=$MACE_TEST_BPFTRACE_SOURCE BPFTRACE_KERNEL_BUILD=$MACE_TEST_BPFTRACE_BUILD \
		bpftrace /mace/scripts/bench-peer.bt "$inum" "$init" >/tmp/peer.out 2>&1 &
	peer_pid=$!
	# Compiling the script under TCG takes a while. bpftrace prints
	# "Attaching" and catches SIGINT some time after (once 4 s of guest
	# time): ready when it has done both.
	for i in $(seq 1 6000); do
		grep -q '^Attaching' /tmp/peer.out && peer_catches_int && { sleep 1; return 0; }
		kill -0 "$peer_pid" 2>/dev/null || break
		sleep 0.1
	done
	echo "bench: bpftrace did not attach: $(tail -5 /tmp/peer.out)" >&2
	return 1
}
peer_stop() {
	local i
	[[ -n $peer_pid ]] || return 0
	kill -INT "$peer_pid" 2>/dev/null
	# bpftrace prints its maps and detaches on SIGINT. In 5 of 40 stops it
	# stayed asleep in epoll_wait() with SIGINT caught (its handler
	# installed), as if the signal had come between its check of the flag
	# and the wait: SIGINT again every 3 s, in case (no stop has needed it
	# yet). Then a bounded wait (60 s of guest time), and SIGKILL, whose
	# exit closes its BPF links and detaches its probes all the same.
	for i in $(seq 1 600); do
		kill -0 "$peer_pid" 2>/dev/null || break
		((i % 30)) || kill -INT "$peer_pid" 2>/dev/null
		sleep 0.1
	done
	if kill -0 "$peer_pid" 2>/dev/null; then
		echo "bench: bpftrace did not exit on SIGINT within 60 s: killed" >&2
		echo "BENCH PEER killed"
		kill -KILL "$peer_pid" 2>/dev/null
	fi
	wait "$peer_pid" 2>/dev/null
	peer_pid=
	# Whether it measured: it prints its histogram when it exits on SIGINT.
	# A killed peer printed nothing, and may have measured nothing (once
	# its pings read the unloaded RTT, and it then hung on SIGINT).
	grep -q '@egress_ns' /tmp/peer.out || return 1
	echo "BENCH PEER $(grep -c '|@' /tmp/peer.out) histogram rows"
}

# condition COND: sets up one perturbation condition.
condition() {
	ftrace 0
	peer_stop
	case $1 in
	unloaded) unload ;;
	loaded-off) load ;;
	null)
		# The floor: the same probes registered, doing nothing.
		load_ko /lib/mace/mace-null.ko && capture_in c1
		;;
	on) load && capture_in c1 ;;
	on-tracepoints)
		# mace on, following sends and receives on sys_enter and sys_exit,
		# as on a kernel without the socket calls' hooks.
		load syscall_tracepoints=1 && capture_in c1
		;;
	on-breakdown)
		# mace on, each line with its segments: what the breakdown costs.
		load && ip netns exec c1 bash -c "echo 1 > $BD && echo 1 > $ON"
		;;
	on-prev)
		# mace on, the module of another version of the code
		# (MACE_PREV_MODULE): the two versions' cost in one run.
		load_ko /lib/mace/mace-prev.ko && capture_in c1
		;;
	other-prev)
		# Capture on in another namespace only, with the module of the
		# other version of the code: what its neighbours paid.
		load_ko /lib/mace/mace-prev.ko && capture_in c2
		;;
	on-nohist)
		# mace on, counting nothing in its histograms: what they cost.
		load_ko /lib/mace/mace-nohist.ko && capture_in c1
		;;
	other-on) load && capture_in c2 ;;
	ftrace) unload && ftrace 1 ;;
	ftrace-hooks) unload && ftrace 1 "$HOOK_EVENTS" "$HOOK_FUNCTIONS" ;;
	bpftrace) unload && peer_start ;;
	esac
}

# pert_ping CPU SOCKET-OPTIONS...: the perturbation's ping from c1, on CPU,
# after a short warm-up (deferred work of insmod, caches); its JSON lines
# on stdout.
pert_ping() {
	local cpu=$1
	shift
	ip netns exec c1 taskset -c "$cpu" mace-ping --plain "$@" -q -c 5 -i 0.001 "$REMOTE4" >/dev/null
	ip netns exec c1 taskset -c "$cpu" mace-ping --plain "$@" --json -c "$PINGS" -i 0.001 "$REMOTE4"
}

icount() {
	local cpu
	cpu=$(($(nproc) - 1))
	echo "BENCH CONFIG pert_cpu=$cpu pings=$PINGS rounds=$ROUNDS loads=${LOADS// /,} netem_ms=$NETEM_MS parts=${MACE_TEST_PARTS:-all}"
	local max=$(($(echo $LOADS | tr ' ' '\n' | sort -n | tail -1) + 1)) r cond load i sock
	topo_up "$max" || exit 1
	for i in $(seq 1 "$max"); do
		ip netns exec "c$i" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
	done
	# Warm up: neighbour caches and conntrack entries exist before timing.
	ip netns exec c1 ping -c 3 -i 0.01 "$REMOTE4" >/dev/null
	# The cost parts (perturbation and TCP) with the neighbours pinned:
	# a dynamic entry that is not confirmed sends each packet by the slow
	# path (172 instructions more a ping) for seconds at a time, which
	# moved whole rounds by steps of 86. Pinned, the unloaded RTT was the
	# same to the ns over 25 loads and unloads of mace.
	topo_neigh_pin
	if [[ ${MACE_TEST_PARTS:-all} == tcp ]]; then
		# The server's stop is not a measurement: its status is not the run's.
		tcp_icount
		return 0
	fi

	# 1. Perturbation: the same plain ping under each condition, the
	#    conditions interleaved round by round, always on the same CPU (the
	#    VM's last). Where the ping runs moves no condition but the eBPF
	#    peer: bpftrace's tracepoint programs return 1, which hands each
	#    hit on to perf when the CPU has a perf event on the tracepoint,
	#    and the peer's events are on CPU 0 only, where each ping then
	#    costs some 6700 instructions more (perf prepares a sample per
	#    hit). Its rounds also ping from CPU 0 ("bpftrace-cpu0").
	for r in $(seq 1 "$ROUNDS"); do
		# raw-*: the same conditions for a ping on a raw socket that reads
		# its replies with recvmsg(2), as iputils ping does there: the case
		# the C original measures both ways (its receive hook follows
		# recvmsg only, so the plain ping above gets its egress alone).
		for cond in unloaded loaded-off null on on-tracepoints on-breakdown $([[ -f /lib/mace/mace-prev.ko ]] && echo on-prev) $([[ -f /lib/mace/mace-nohist.ko ]] && echo on-nohist) other-on $([[ -f /lib/mace/mace-prev.ko ]] && echo other-prev) ftrace ftrace-hooks $(peer_ok && echo bpftrace) raw-unloaded raw-null raw-on; do
			if ! condition "${cond#raw-}"; then
				echo "BENCH FAILED condition=$cond round=$r"
				continue
			fi
			sock=(--dgram)
			[[ $cond == raw-* ]] && sock=(--raw --recvmsg)
			pert_ping "$cpu" "${sock[@]}" >/tmp/pert.json
			if [[ $cond == bpftrace ]]; then
				pert_ping 0 "${sock[@]}" >/tmp/pert0.json
				# The peer's round counts only if it shows it measured.
				if ! peer_stop; then
					echo "BENCH FAILED condition=$cond round=$r: the peer printed no histogram"
					continue
				fi
				section "pert round=$r cond=bpftrace-cpu0" /tmp/pert0.json
			fi
			section "pert round=$r cond=$cond" /tmp/pert.json
		done
	done
	condition unloaded
	tcp_icount
	if [[ ${MACE_TEST_PARTS:-all} != pert ]]; then
		bare
	fi
	# The tools' accuracy with the neighbours dynamic, as on a host.
	topo_neigh_unpin
	if [[ ${MACE_TEST_PARTS:-all} != pert ]]; then
		accuracy
		breakdown
	fi
	self_cost
}

# tcp_icount: icount experiment 1b.
tcp_icount() {
	local bps r cond

	# 1b. TCP throughput under icount too: plain TCG cannot resolve a few
	#     per cent, while here a run repeats exactly (guest time counts
	#     instructions, so this is bytes per instruction, not real speed).
	ip netns exec remote iperf3 -s -D
	sleep 0.5
	for r in $(seq 1 "$TCPI_ROUNDS"); do
		for cond in ${MACE_TEST_TCPI_CONDS:-unloaded null on ftrace}; do
			condition "$cond"
			bps=$(ip netns exec c1 iperf3 -c "$REMOTE4" -t 2 -f k | awk '/receiver/ { print $(NF - 2) * 1000 }')
			echo "BENCH TCPI round=$r cond=$cond bps=$bps"
		done
	done
	condition unloaded
	killall iperf3
}

# The tools of the comparison with the host itself: iputils ping in its
# three modes of the accuracy table, mtr and fping (from the host, mtr's
# probes with TTL 2 reach the remote host all the same).
BARE_TOOLS="ping4 pingU4 ping6 mtr fping"

# bare: icount experiment 1c, the paper's comparison: a container's RTT
# corrected by mace against the same tool's RTT from the host's own
# namespace, whose packets leave straight through the outer device (no veth,
# bridge or NAT). No load, the neighbours pinned; mace is not loaded while
# the host pings, and captures in c1 while c1 does.
bare() {
	local tool
	unload
	for tool in $BARE_TOOLS; do
		acc_tool "$tool" "bare ns=host tool=$tool" host
	done
	load
	capture_in c1
	for tool in $BARE_TOOLS; do
		acc_tool "$tool" "bare ns=c1 tool=$tool"
	done
	unload
}

# accuracy: icount experiment 2 (accuracy and coverage per tool and load).
accuracy() {
	local netem tool tpid rpid load i

	# 2. Accuracy and coverage, per tool, with LOAD co-located
	#    flood-pinging containers, without and with a netem delay on c1's
	#    eth0 (then an iperf3 UDP stream from c1 keeps many packets in
	#    that qdisc at once, so that every tool's packets wait among
	#    others). The wire RTT comes from a capture on the outer device
	#    (and, for TCP's replies, on the remote's).
	#    Each ICMP tool uses its own payload size, so that the capture
	#    tells their packets apart (and from the flooders', not captured).
	ip netns exec remote mace-echo udp-server 0.0.0.0:7777 &
	ip netns exec remote mace-echo udp-server '[::]:7778' &
	ip netns exec remote mace-echo tcp-server 0.0.0.0:7779 &
	ip netns exec remote mace-echo tcp-server '[::]:7780' &
	ip netns exec remote mace-echo tcp-server 0.0.0.0:7781 &
	ip netns exec remote iperf3 -s -D -p 5202
	# traceroute's far host, behind the remote one.
	topo_far_up || echo "BENCH FAILED accuracy: c1 cannot reach the far host"
	sleep 0.5
	load
	ip netns exec c1 bash -c "echo 1 > $ON; cat /dev/mace >/dev/null"
	for load in $LOADS; do
		flood_start "$load"
		for netem in 0 1; do
			if ((netem)); then
				ip netns exec c1 tc qdisc add dev eth0 root netem delay "$NETEM_MS"ms limit 10000
				ip netns exec c1 iperf3 -c "$REMOTE4" -p 5202 -u -b 400k -l 100 -t 100000 >/dev/null 2>&1 &
				local bg=$!
				sleep 0.5
			fi
			# The wire: the outer device's capture (eth0). A request is
			# stamped as the device hands it to its taps, right before it
			# transmits it; a reply when the link queues it for the device's
			# receive (netif_rx), just before mace's ingress window starts.
			# TCP's replies are stamped later, at the tap, after mace's probe
			# (they carry their sender's departure time, which the stack
			# keeps, so none is taken at netif_rx): for them the report takes
			# the remote's capture of its replies, as they leave its eth0,
			# plus the link's crossing, measured on the other replies.
			local filter="(icmp and not ip[2:2] == 84) or icmp6 or (udp and portrange 7777-7778) or (tcp and portrange 7779-7781) or (udp and dst host $FAR4)"
			tcpdump -i eth0 -n -U --time-stamp-precision=nano -w /tmp/wire.pcap "$filter" 2>/tmp/tcpdump.err &
			tpid=$!
			ip netns exec remote tcpdump -i eth0 -Q out -n -U --time-stamp-precision=nano -w /tmp/wire-remote.pcap \
				"$filter" 2>/tmp/tcpdump-remote.err &
			rpid=$!
			for i in $(seq 1 100); do
				grep -q listening /tmp/tcpdump.err && grep -q listening /tmp/tcpdump-remote.err && break
				sleep 0.05
			done
			for tool in $ACC_TOOLS; do
				((netem)) && [[ $tool == tcp* ]] && continue
				acc_tool "$tool" "acc load=$load netem=$netem tool=$tool"
			done
			ip netns exec c1 cat /sys/class/mace/stats >/tmp/stats
			cat /sys/class/mace/stats >/tmp/host.stats
			if ((netem)); then
				kill "$bg" 2>/dev/null
				wait "$bg" 2>/dev/null
				ip netns exec c1 tc qdisc del dev eth0 root
			fi
			# Let tcpdump drain its capture ring before it is stopped.
			sleep 1
			kill -INT $tpid $rpid
			wait $tpid $rpid 2>/dev/null
			tcpdump -r /tmp/wire.pcap -n -tt -S --time-stamp-precision=nano 2>/dev/null >/tmp/wire.txt
			tcpdump -r /tmp/wire-remote.pcap -n -tt -S --time-stamp-precision=nano 2>/dev/null >/tmp/wire-remote.txt
			section "acc load=$load netem=$netem wire" /tmp/wire.txt
			section "acc load=$load netem=$netem wire.remote" /tmp/wire-remote.txt
			section "acc load=$load netem=$netem stats" /tmp/stats
			section "acc load=$load netem=$netem host.stats" /tmp/host.stats
		done
		flood_stop
	done
	kill $(jobs -p) 2>/dev/null
	wait 2>/dev/null
	killall iperf3
}

# bd_run NAME CMD...: runs CMD in c1 and appends c1's /dev/mace lines to
# /tmp/bd.mace after a line "# NAME" (bench-report tells the tools' lines
# apart by it).
bd_run() {
	local name=$1
	shift
	ip netns exec c1 cat /dev/mace >/dev/null
	ip netns exec c1 "$@" >/dev/null 2>&1
	echo "# $name" >>/tmp/bd.mace
	ip netns exec c1 cat /dev/mace >>/tmp/bd.mace
}

# breakdown: icount experiment 2b (where the added time goes, per load).
breakdown() {
	local srv load

	# 2b. The latencies' segments (breakdown on), with LOAD co-located
	#     flood-pinging containers: UDP echo (all six segments), then
	#     iputils ping (its ingress ends at the kernel's stamp, so its
	#     ingress container and socket segments are 0).
	ip netns exec remote mace-echo udp-server 0.0.0.0:7777 >/dev/null 2>&1 &
	srv=$!
	sleep 0.5
	load
	ip netns exec c1 bash -c "echo 1 > $BD; echo 1 > $ON; cat /dev/mace >/dev/null"
	for load in $LOADS; do
		flood_start "$load"
		: >/tmp/bd.mace
		bd_run udp mace-echo udp-client "$REMOTE4:7777" "$PINGS" 10
		bd_run ping ping -c "$PINGS" -i 0.01 "$REMOTE4"
		section "bd load=$load" /tmp/bd.mace
		flood_stop
	done
	kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	unload
}

# self_cost: icount experiment 3.
self_cost() {
	local traffic ns

	# 3. Self-cost per probe hit, with matching traffic (c1 captures and
	#    pings) and without (c1 captures, c2 pings).
	for traffic in matching other; do
		load self_cost=1
		ip netns exec c1 bash -c "echo 1 > $ON"
		local ns=c1
		[[ $traffic == other ]] && ns=c2
		ip netns exec "$ns" mace-ping --plain --dgram -q -c "$PINGS" -i 0.001 "$REMOTE4" >/dev/null
		grep '^pert_' /sys/class/mace/stats | sed "s/^/BENCH SELF traffic=$traffic /"
	done
	unload
}

tcg() {
	topo_up "$SCALE" || exit 1
	ip netns exec remote iperf3 -s -D
	sleep 0.5
	local r cond bps i
	for r in $(seq 1 "$TCP_ROUNDS"); do
		# unloaded-again: unloaded once more, last in the round: a control
		# whose ratio to the round's unloaded is the rounds' own spread.
		for cond in unloaded on ftrace unloaded-again; do
			condition "${cond%-again}"
			# The receiver's rate, in kbit/s: "[  5] 0.00-3.00 sec ... N Kbits/sec receiver".
			bps=$(ip netns exec c1 iperf3 -c "$REMOTE4" -t 3 -f k | awk '/receiver/ { print $(NF - 2) * 1000 }')
			echo "BENCH TCP round=$r cond=$cond bps=$bps"
		done
	done
	condition unloaded

	# Coverage at scale: every container namespace captures and pings at
	# once; what each /dev/mace holds is compared with what its ping saw.
	load
	for i in $(seq 1 "$SCALE"); do
		ip netns exec "c$i" bash -c "echo 1 > $ON; cat /dev/mace >/dev/null" &
	done
	wait
	local pids=()
	for i in $(seq 1 "$SCALE"); do
		ip netns exec "c$i" ping -c 20 -i 0.05 -W 5 "$REMOTE4" >/tmp/ping.c$i 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}"
	for i in $(seq 1 "$SCALE"); do
		ip netns exec "c$i" bash -c "cat /dev/mace >/tmp/mace.c$i; cat /sys/class/mace/stats >/tmp/stats.c$i"
	done
	cat /tmp/ping.c* | awk '/packets transmitted/ { s += $1; r += $4 } END { printf "sent=%d received=%d ", s, r }' >/tmp/scale
	cat /tmp/mace.c* | awk '/ egress: / { e++ } / ingress: / { i++ } END { printf "egress_lines=%d ingress_lines=%d ", e, i }' >>/tmp/scale
	cat /tmp/stats.c* | awk '{ v[$1] += $2 } END {
		printf "egress_expired=%d ingress_expired=%d collisions=%d ingress_unreported=%d ring_full=%d ring_busy=%d",
			v["egress_expired"], v["ingress_expired"], v["egress_collisions"] + v["ingress_collisions"],
			v["ingress_unreported"], v["ring_full"], v["ring_busy"] }' >>/tmp/scale
	echo "BENCH SCALE namespaces=$SCALE $(cat /tmp/scale) $(grep -E '^host_(egress|ingress|tasks)_evicted' /sys/class/mace/stats | tr ' \n' '= ')"

	# The breakdown at scale: every namespace switches breakdown on and
	# sends UDP echo requests at once (all six segments); the lines of all
	# of them, together.
	ip netns exec remote mace-echo udp-server 0.0.0.0:7777 >/dev/null 2>&1 &
	local srv=$!
	sleep 0.5
	pids=()
	for i in $(seq 1 "$SCALE"); do
		ip netns exec "c$i" bash -c "echo 1 > $BD; cat /dev/mace >/dev/null" &
		pids+=($!)
	done
	wait "${pids[@]}"
	pids=()
	for i in $(seq 1 "$SCALE"); do
		ip netns exec "c$i" mace-echo udp-client "$REMOTE4:7777" 20 50 >/dev/null 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}"
	echo "# udp" >/tmp/bd.scale
	for i in $(seq 1 "$SCALE"); do
		ip netns exec "c$i" cat /dev/mace >>/tmp/bd.scale
	done
	section "bd scale=$SCALE" /tmp/bd.scale
	kill "$srv" 2>/dev/null
	wait "$srv" 2>/dev/null
	unload
}

case ${1:-} in
icount) icount ;;
tcg) tcg ;;
*) echo "usage: bench-vm.sh icount|tcg" >&2; exit 2 ;;
esac
