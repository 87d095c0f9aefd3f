#!/bin/bash
# VM suite: /dev/mace-hist, the latency histograms and counters of each
# namespace: its format, that its buckets hold exactly the latencies
# /dev/mace gave, who sees which namespaces, reads of any size, and that
# reading it consumes nothing.
# vm-run: --kmemleak
source /mace/tests/vm/lib.sh
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
HIST=/dev/mace-hist
USER_ID=1000
N=12

as_user() { setpriv --reuid $USER_ID --regid $USER_ID --clear-groups "$@"; }
# inum NS: the inode number of network namespace NS.
inum() { ip netns exec "$1" readlink /proc/self/ns/net | tr -dc 0-9; }
# hist_line FILE INUM DIR: the "hist" line of INUM's DIR in FILE.
hist_line() { grep "^hist $2 $3 " "$1"; }
# counter FILE INUM NAME: the value of a counter line.
counter() { awk -v i="$2" -v n="$3" '$1 == "counter" && $2 == i && $3 == n { print $4 }' "$1"; }

# buckets_of BOUNDS_FILE LINES_FILE DIR: "COUNT SUM i:n..." computed from
# /dev/mace lines of DIR, with the bounds of the le_ns line: each latency
# in the first bucket whose bound is not below it.
buckets_of() {
	awk -v dir="$3" '
		NR == FNR { if ($1 == "le_ns") { nb = NF - 1; for (i = 2; i <= NF; i++) b[i - 2] = $i + 0 } next }
		$3 == dir ":" {
			v = $4 + 0; k = nb
			for (i = 0; i < nb; i++) if (v <= b[i]) { k = i; break }
			c[k]++; n++; s += v
		}
		END {
			printf "%d %d", n, s
			for (i = 0; i <= nb; i++) if (c[i]) printf " %d:%d", i, c[i]
			printf "\n"
		}' "$1" "$2"
}

check "/dev/mace-hist is absent before the module is loaded" test ! -e $HIST
topo_up 2 || { fail "topology" "could not build it"; summary; exit 1; }
insmod "$KO" outer_dev=eth0 || { fail "insmod" "mace did not load"; summary; exit 1; }

# ------------------------------------------------------------------ format
check "/dev/mace-hist is a character device" test -c $HIST
mode=$(stat -c %a $HIST)
if [[ $mode == 444 ]]; then pass "/dev/mace-hist has mode 0444"; else fail "/dev/mace-hist mode" "$mode"; fi
cat $HIST >/tmp/h0
if [[ $(sed -n 1p /tmp/h0) == "mace-hist 1" ]]; then pass "the first line is the version"; else fail "version line" "$(head -c 200 /tmp/h0)"; fi
read -r -a le <<<"$(sed -n 2p /tmp/h0)"
if [[ ${le[0]} == le_ns && ${#le[@]} == 102 && ${le[1]} == 512 && ${le[5]} == 1024 && ${le[101]} == 17179869184 ]]; then
	pass "the second line has the 101 finite bounds, 512 ns .. 2^34 ns"
else
	fail "bounds line" "${le[*]:0:8} ... (${#le[@]} fields)"
fi
if (($(wc -l </tmp/h0) == 2)); then pass "the host view lists no namespace while none captures"; else fail "host view, no capture" "$(cat /tmp/h0)"; fi

# -------------------------------------------------- buckets against /dev/mace
c1=$(inum c1)
c2=$(inum c2)
ip netns exec c1 sh -c 'echo 1 > /sys/class/mace/on'
ip netns exec c1 ping -c $N -i 0.05 -W 2 "$REMOTE4" >/tmp/ping.out 2>&1
ip netns exec c1 cat $HIST >/tmp/before
ip netns exec c1 cat /dev/mace >/tmp/lines
ip netns exec c1 cat $HIST >/tmp/after
if [[ $(grep ^hist /tmp/before) == "$(grep ^hist /tmp/after)" ]] && (($(grep -c "^hist $c1 " /tmp/after) == 2)); then
	pass "reading /dev/mace consumes nothing of /dev/mace-hist"
else
	fail "hist after reading /dev/mace" "$(diff /tmp/before /tmp/after | head -5)"
fi
if grep -qx "netns $c1 capture 1" /tmp/after; then pass "a container sees its own namespace, capturing"; else fail "own netns line" "$(grep ^netns /tmp/after)"; fi
if (($(grep -c '^netns ' /tmp/after) == 1)); then pass "a container sees only its own namespace"; else fail "container view" "$(grep ^netns /tmp/after)"; fi
for dir in egress ingress; do
	want=$(buckets_of /tmp/after /tmp/lines $dir)
	got=$(hist_line /tmp/after "$c1" $dir | cut -d' ' -f4-)
	n=${want%% *}
	if ((n == N)) && [[ $got == "$want" ]]; then
		pass "$dir: count, sum and buckets are exactly those of the $N /dev/mace lines"
	else
		fail "$dir buckets" "hist '$got', from /dev/mace '$want'"
	fi
	if [[ $(counter /tmp/after "$c1" $dir) == "$N" ]]; then pass "$dir: its counter agrees"; else fail "$dir counter" "$(counter /tmp/after "$c1" $dir)"; fi
done
if [[ $(counter /tmp/after "$c1" ring_popped) == $((2 * N)) ]]; then pass "the ring counters are there too (ring_popped)"; else fail "ring_popped" "$(counter /tmp/after "$c1" ring_popped)"; fi

# ------------------------------------------------------------- who sees what
ip netns exec c2 sh -c 'echo 1 > /sys/class/mace/on'
ip netns exec c2 ping -c 3 -i 0.05 -W 2 "$REMOTE4" >/dev/null 2>&1
cat $HIST >/tmp/host
if grep -qx "netns $c1 capture 1" /tmp/host && grep -qx "netns $c2 capture 1" /tmp/host && (($(grep -c '^netns ' /tmp/host) == 2)); then
	pass "the initial namespace sees every capturing namespace, and only those"
else
	fail "host view" "$(grep ^netns /tmp/host)"
fi
if [[ $(hist_line /tmp/host "$c2" egress | cut -d' ' -f4) == 3 ]]; then pass "the host view has the second container's 3 egress latencies"; else fail "c2 egress count" "$(hist_line /tmp/host "$c2" egress)"; fi
if (($(grep -c "^hist $c1 " /tmp/host) == 2)); then pass "each namespace has one hist line per direction"; else fail "hist lines" "$(grep -c "^hist $c1 " /tmp/host)"; fi
ip netns exec c2 cat $HIST >/tmp/c2
if ! grep -q "^netns $c1 " /tmp/c2; then pass "a container does not see another's namespace"; else fail "isolation" "c2 sees c1"; fi

# A read of any size returns the same text.
dd if=$HIST bs=1 2>/dev/null >/tmp/bs1
cat $HIST >/tmp/bsn
if cmp -s /tmp/bs1 /tmp/bsn; then pass "one-byte reads return the same snapshot as cat"; else fail "one-byte reads" "$(cmp /tmp/bs1 /tmp/bsn)"; fi
dd if=$HIST bs=7 count=3 2>/dev/null >/tmp/bs7
if [[ $(cat /tmp/bs7) == "$(head -c 21 /tmp/bsn)" ]]; then pass "short reads continue where the last stopped"; else fail "short reads" "$(od -c /tmp/bs7 | head -3)"; fi

# ------------------------------------------------------------------ rights
dmesg -c >/dev/null
expect_fail_errno "an unprivileged user cannot open it" "Operation not permitted" as_user cat $HIST
if dmesg | grep -q "open of /dev/mace-hist denied: CAP_NET_ADMIN over network namespace"; then pass "the refusal is logged"; else fail "refusal log" "$(dmesg | tail -3)"; fi
# A user's own user and network namespace: CAP_NET_ADMIN there is enough
# for its own namespace, which does not capture.
as_user unshare -Urn sh -c "cat $HIST" >/tmp/userns 2>&1
if grep -q '^netns [0-9]* capture 0$' /tmp/userns && (($(grep -c '^netns ' /tmp/userns) == 1)); then
	pass "an unprivileged user's own namespace is readable, capture 0"
else
	fail "user namespace" "$(head -c 300 /tmp/userns)"
fi

# ----------------------------------------------------- capture switched off
ip netns exec c1 sh -c 'echo 0 > /sys/class/mace/on'
cat $HIST >/tmp/host2
if ! grep -q "^netns $c1 " /tmp/host2 && grep -q "^netns $c2 " /tmp/host2; then pass "a namespace that stops capturing leaves the host view"; else fail "host view after off" "$(grep ^netns /tmp/host2)"; fi
ip netns exec c1 cat $HIST >/tmp/off
if grep -qx "netns $c1 capture 0" /tmp/off && [[ $(hist_line /tmp/off "$c1" egress) == "$(hist_line /tmp/after "$c1" egress)" ]]; then
	pass "its own view keeps its histograms after capture is off"
else
	fail "own view after off" "$(grep -E '^(netns|hist)' /tmp/off)"
fi
ip netns exec c1 ping -c 2 -i 0.05 -W 2 "$REMOTE4" >/dev/null 2>&1
ip netns exec c1 cat $HIST >/tmp/off2
if [[ $(hist_line /tmp/off2 "$c1" egress) == "$(hist_line /tmp/after "$c1" egress)" ]]; then pass "nothing is counted while capture is off"; else fail "counted while off" "$(hist_line /tmp/off2 "$c1" egress)"; fi

# ------------------------------------------------------------------ unload
exec 3<$HIST
if rmmod mace 2>/dev/null; then fail "an open /dev/mace-hist keeps the module loaded" "rmmod succeeded"; else pass "an open /dev/mace-hist keeps the module loaded"; fi
exec 3<&-
topo_down
check "rmmod after the file is closed" rmmod mace
check "/dev/mace-hist is gone after unload" test ! -e $HIST
summary
