#!/bin/bash
# VM suite: Prometheus scrapes mace-exporter while containers ping, and
# asks for each container's p99 egress and ingress latency, which must
# agree with the same run's /dev/mace lines within one bucket; promtool
# checks the exporter's real output; a container's id comes from its
# cgroup; "mace not loaded" and "capture off everywhere" are metrics.
# Debian's prometheus and promtool come into the VM by vm-run's
# --prometheus (from scripts/setup's unpacked package).
# vm-run: --prometheus
source /mace/tests/vm/lib.sh
source /mace/scripts/topology.sh

KO=${MACE_KO:-/lib/mace/mace.ko}
PROMETHEUS=${MACE_TEST_PROMETHEUS:-}
PROMTOOL=${MACE_TEST_PROMTOOL:-}
EXPORTER=127.0.0.1:9470
PROM=127.0.0.1:9090
N=40
# A Docker-like container id for c1's cgroup.
CID=4f1c7e0a9b2d3c4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789

if [[ ! -x $PROMETHEUS || ! -x $PROMTOOL ]]; then
	fail "prometheus and promtool in the VM" "not found ('$PROMETHEUS', '$PROMTOOL'): run with scripts/vm-run --prometheus"
	summary
	exit 1
fi
ip link set lo up

# scrape: the exporter's /metrics into /tmp/metrics.
scrape() { wget -qO /tmp/metrics "http://$EXPORTER/metrics"; }
# metric NAME_AND_LABELS: the value of the first sample line that starts so.
metric() { awk -v m="$1" 'index($0, m) == 1 { print $NF; exit }' /tmp/metrics; }
# query PROMQL: the instant query's JSON result into /tmp/q.json.
query() {
	local q
	q=$(printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n' | sed 's/../%&/g')
	wget -qO /tmp/q.json "http://$PROM/api/v1/query?query=$q"
}
# values: "netns value" pairs of /tmp/q.json's vector (labels netns only).
values() { sed 's/},{/}\n{/g' /tmp/q.json | sed -n 's/.*"netns":"\([0-9]*\)".*"value":\[[0-9.]*,"\([^"]*\)"\].*/\1 \2/p'; }
# bucket NS: the index of the mace bucket of a latency of NS ns (le bounds
# of /dev/mace-hist, read by the caller into the array le).
bucket() { awk -v v="$1" -v b="${le[*]}" 'BEGIN { n = split(b, a, " "); for (i = 1; i <= n; i++) if (v <= a[i] + 0) { print i - 1; exit } print n }'; }
# p99 FILE DIR: the nearest-rank 99th percentile of DIR's latencies in
# /dev/mace lines.
p99() { awk -v d="$2:" '$3 == d { print $4 }' "$1" | sort -n | awk '{ v[NR] = $1 } END { r = int(0.99 * NR); if (r < 0.99 * NR) r++; print v[r] }'; }

# ------------------------------------------------- before mace is loaded
mace-exporter --listen $EXPORTER >/tmp/exporter.log 2>&1 &
exporter=$!
for _ in $(seq 1 50); do scrape 2>/dev/null && break; sleep 0.2; done
if scrape; then pass "the exporter serves /metrics without mace loaded"; else fail "exporter without mace" "$(tail -3 /tmp/exporter.log)"; fi
if [[ $(metric "mace_up ") == 0 ]]; then pass "mace not loaded is mace_up 0"; else fail "mace_up without mace" "$(grep mace_up /tmp/metrics)"; fi
if "$PROMTOOL" check metrics </tmp/metrics >/tmp/promtool.out 2>&1; then pass "promtool check metrics: clean without mace"; else fail "promtool without mace" "$(head -5 /tmp/promtool.out)"; fi

topo_up 2 || { fail "topology" "could not build it"; summary; exit 1; }
insmod "$KO" outer_dev=eth0 || { fail "insmod" "mace did not load"; summary; exit 1; }
scrape
if [[ $(metric "mace_up ") == 1 && $(metric "mace_capturing_namespaces ") == 0 ]]; then
	pass "capture off everywhere is mace_up 1, mace_capturing_namespaces 0"
else
	fail "capture off everywhere" "$(grep -E '^mace_(up|capturing)' /tmp/metrics)"
fi

# c1 is a "Docker container": a process of its namespace in a cgroup
# named as Docker names them.
mount | grep -q ' /sys/fs/cgroup ' || mount -t cgroup2 none /sys/fs/cgroup
mkdir -p "/sys/fs/cgroup/system.slice/docker-$CID.scope"
ip netns exec c1 sleep 100000 &
holder=$!
echo $holder >"/sys/fs/cgroup/system.slice/docker-$CID.scope/cgroup.procs"
c1=$(ip netns exec c1 readlink /proc/self/ns/net | tr -dc 0-9)
c2=$(ip netns exec c2 readlink /proc/self/ns/net | tr -dc 0-9)
ip netns exec c1 sh -c 'echo 1 > /sys/class/mace/on'
ip netns exec c2 sh -c 'echo 1 > /sys/class/mace/on'

# ----------------------------------------------------------- Prometheus
mkdir -p /tmp/prom
cat >/tmp/prom/prometheus.yml <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mace
    static_configs:
      - targets: ['$EXPORTER']
EOF
check "promtool check config: the scrape configuration" "$PROMTOOL" check config /tmp/prom/prometheus.yml
"$PROMETHEUS" --config.file=/tmp/prom/prometheus.yml --storage.tsdb.path=/tmp/prom/data \
	--web.listen-address=$PROM >/tmp/prom/log 2>&1 &
prom=$!
up=0
for _ in $(seq 1 120); do
	if query 'up{job="mace"}' 2>/dev/null && grep -q '"value":\[[0-9.]*,"1"\]' /tmp/q.json; then up=1 && break; fi
	sleep 1
done
if ((up)); then pass "Prometheus scrapes the exporter (up == 1)"; else fail "Prometheus up" "$(tail -5 /tmp/prom/log)"; fi
sleep 3 # a few scrapes before any ping: every series starts at 0

ip netns exec c1 ping -c $N -i 0.1 -W 2 "$REMOTE4" >/tmp/ping1 2>&1 &
p1=$!
ip netns exec c2 ping -c $N -i 0.1 -W 2 "$REMOTE4" >/tmp/ping2 2>&1
wait $p1
sleep 4 # a few scrapes after the last ping
ip netns exec c1 cat /dev/mace >/tmp/lines1
ip netns exec c2 cat /dev/mace >/tmp/lines2
read -r -a le <<<"$(sed -n 2p /dev/mace-hist)"
le=("${le[@]:1}")

# --------------------------------------------- the exporter's real output
scrape
if "$PROMTOOL" check metrics </tmp/metrics >/tmp/promtool.out 2>&1; then pass "promtool check metrics: clean with two capturing containers"; else fail "promtool check metrics" "$(head -5 /tmp/promtool.out)"; fi
if [[ $(metric "mace_capturing_namespaces ") == 2 ]]; then pass "mace_capturing_namespaces 2"; else fail "capturing namespaces" "$(grep '^mace_capturing' /tmp/metrics)"; fi
for dir in egress ingress; do
	for ns in "$c1" "$c2"; do
		n=$(grep "^mace_${dir}_latency_seconds_count{" /tmp/metrics | grep "netns=\"$ns\"" | awk '{ print $NF }')
		if [[ $n == "$N" ]]; then pass "netns $ns: mace_${dir}_latency_seconds_count is $N"; else fail "netns $ns $dir count" "'$n'"; fi
	done
done
if grep "^mace_egress_latency_seconds_count{" /tmp/metrics | grep "netns=\"$c1\"" | grep -q "container_id=\"$CID\""; then
	pass "c1's series carry its container id, from its cgroup"
else
	fail "container id" "$(grep "^mace_egress_latency_seconds_count{" /tmp/metrics)"
fi

# ------------------------------- PromQL p99 against /dev/mace, per container
for dir in egress ingress; do
	query "histogram_quantile(0.99, sum by (netns, le) (rate(mace_${dir}_latency_seconds_bucket[1m])))"
	values >/tmp/p99.$dir
	for i in 1 2; do
		ns=$([[ $i == 1 ]] && echo "$c1" || echo "$c2")
		want=$(p99 /tmp/lines$i $dir)
		got=$(awk -v n="$ns" '$1 == n { printf "%.0f", $2 * 1e9 }' /tmp/p99.$dir)
		lines=$(grep -c " $dir: " /tmp/lines$i)
		if [[ -z $got || -z $want ]] || ((lines != N)); then
			fail "c$i $dir p99" "PromQL '$got' ns, /dev/mace '$want' ns over $lines lines: $(head -c 300 /tmp/q.json)"
			continue
		fi
		bw=$(bucket "$want") bg=$(bucket "$got")
		d=$((bw > bg ? bw - bg : bg - bw))
		if ((d <= 1)); then
			pass "c$i $dir p99: PromQL $got ns, /dev/mace $want ns: buckets $bg and $bw, within one"
		else
			fail "c$i $dir p99" "PromQL $got ns (bucket $bg), /dev/mace $want ns (bucket $bw)"
		fi
	done
done

kill $prom $exporter $holder 2>/dev/null
wait $prom $exporter $holder 2>/dev/null
rmdir "/sys/fs/cgroup/system.slice/docker-$CID.scope" /sys/fs/cgroup/system.slice 2>/dev/null
topo_down
check "rmmod" rmmod mace
summary
