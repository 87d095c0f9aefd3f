#!/usr/bin/env bash
# Host-side tests of scripts/check-host, the Makefile's check, its choice of
# compiler and `make install`, the VMs' emulator, dkms.conf,
# scripts/bench-profile-report, mace-exporter's output and the Kubernetes
# samples. No VM, no root needed (the dkms build test runs only as root, in
# a scratch dkms tree); nothing is loaded and nothing is installed outside
# a temporary directory.
#
# Prints "PASS: name", "FAIL: name: why" or "SKIP: name: why" per test, and
# ends with "N passed, N failed"; skipped tests count as neither. Exits
# non-zero if any test failed.
#
# Cases:
#   - the running kernel: the verdict its configuration calls for (on a kernel
#     without CONFIG_RUST, "no" with that reason), also for a user without root;
#   - mace's test kernels (6.12: LLVM=1, 7.3: LLVM=-19): "ok", when built;
#   - fake build trees made here from the local toolchain: a complete one
#     ("ok"), and ones without CONFIG_RUST, without rust/ metadata, with a
#     dangling rust/ link, with another rustc or bindgen, another clang, gcc,
#     a missing tracepoint, no Module.symvers;
#   - the Makefile against fake trees whose "kernel Makefile" only records
#     what it is given: it stops with check-host's findings, picks LLVM=/CC=
#     from the .config, ignores dkms's CC=, passes the install variables;
#   - the emulator of multi-threaded VM runs: QEMU 7.2 refused, 8.1 taken,
#     the one scripts/setup unpacks preferred;
#   - make install INSTALL_MOD_PATH=<tmp> against the 6.12 test kernel (a
#     copy of the work tree's sources);
#   - dkms.conf: its values, and a dkms add+build in a scratch dkms tree;
#   - scripts/bench-profile-report on a small made-up run: its tables;
#   - scripts/bench-report: what iputils ping's clock and print allow, and
#     which of the eBPF peer's two costs the judged ratio takes; a --tcp
#     run's table and status;
#   - mace-exporter on fixtures: its exposition (checked by promtool check
#     metrics, which scripts/setup unpacks into the cache), with mace absent,
#     and --textfile --once;
#   - Documentation/*.rst: parsed by docutils without a warning
#     (tests/check-docs.py), and a broken document refused;
#   - samples/kubernetes: YAML syntax and required fields
#     (tests/check-manifests.py; no cluster), and promtool check config on
#     the scrape configuration it can read.
#
# Usage: tests/host-scripts.sh
source "$(dirname "$0")/../scripts/lib.sh"
cd "$MACE_TOP"

CH=$MACE_TOP/scripts/check-host
passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); printf 'PASS: %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf 'FAIL: %s: %s\n' "$1" "$2"; }
skip() { skipped=$((skipped + 1)); printf 'SKIP: %s: %s\n' "$1" "$2"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mace-host-scripts.XXXXXX")
# serve_pid: mace-exporter serving in the background, if it still runs.
serve_pid=
cleanup() {
	[[ -z $serve_pid ]] || kill "$serve_pid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

# run CMD...: run CMD, keep its output in $out and its status in $st.
out=
st=0
run() {
	st=0
	out=$("$@" 2>&1) || st=$?
}
# expect NAME STATUS PATTERN...: the last run exited STATUS and printed a
# line matching each (extended) regular expression PATTERN.  Counts the
# result and returns 0 either way.
expect() {
	local name=$1 want=$2 p
	shift 2
	if [[ $st != "$want" ]]; then
		fail "$name" "exit status $st, expected $want; output: $(tail -n 5 <<<"$out" | tr '\n' '|')"
		return 0
	fi
	for p in "$@"; do
		if ! grep -q -E -- "$p" <<<"$out"; then
			fail "$name" "no line matches /$p/; output: $(tail -n 8 <<<"$out" | tr '\n' '|')"
			return 0
		fi
	done
	pass "$name"
}
# refute NAME PATTERN: the last run printed no line matching PATTERN.
refute() {
	if grep -q -E -- "$2" <<<"$out"; then
		fail "$1" "unexpected line /$2/: $(grep -E -- "$2" <<<"$out" | head -n 1)"
		return 0
	fi
	pass "$1"
}

# re STRING: STRING as an extended regular expression matching itself.
re() { sed 's/[][\\.*^$+?(){}|]/\\&/g' <<<"$1"; }

# --- Usage ------------------------------------------------------------------

run "$CH" --no-such-option
expect "usage error exits 2" 2 'unknown argument'
run "$CH" --kdir
expect "--kdir without a directory exits 2" 2 'needs a directory'

# tests/run's deadline (.ci/run sets it) is a number of seconds.
run env MACE_TEST_DEADLINE=90min "$MACE_TOP/tests/run" --host
expect "tests/run refuses a deadline that is not a number of seconds" 1 \
	'MACE_TEST_DEADLINE: not a number of seconds: 90min'

# --- The emulator of multi-threaded VM runs (scripts/lib.sh, qemu_mt) ------------
# Fake QEMUs that print a version: 7.2 is refused with the reason, 8.1 is
# taken; with the QEMU scripts/setup unpacked, that one, with its firmware.
fake_qemu() {
	mkdir -p "$tmp/qemu-$1"
	printf '#!/bin/sh\necho "QEMU emulator version %s (fake)"\n' "$1" >"$tmp/qemu-$1/qemu-system-x86_64"
	chmod +x "$tmp/qemu-$1/qemu-system-x86_64"
	echo "$tmp/qemu-$1/qemu-system-x86_64"
}
q72=$(fake_qemu 7.2.22)
q81=$(fake_qemu 8.1.0)
run env MACE_CACHE="$tmp/no-cache" MACE_QEMU_MT="$q72" bash -c 'source scripts/lib.sh; qemu_mt'
expect "qemu_mt refuses QEMU 7.2 for multi-threaded TCG" 1 'is QEMU 7\.2, .*int3 oops; fixed in QEMU 8\.1.*run scripts/setup'
run env MACE_CACHE="$tmp/no-cache" MACE_QEMU_MT="$q81" bash -c 'source scripts/lib.sh; qemu_mt'
expect "qemu_mt takes QEMU 8.1" 0 "^$(re "$q81")\$"
run env MACE_CACHE="$tmp/no-cache" MACE_QEMU_MT="$tmp/no-such-qemu" bash -c 'source scripts/lib.sh; qemu_mt'
expect "qemu_mt names a missing QEMU" 1 'not a QEMU, or no version'
mkdir -p "$tmp/cache/deb/qemu/usr/bin"
cp "$q72" "$tmp/cache/deb/qemu/usr/bin/qemu-system-x86_64"
run env -u MACE_QEMU_MT MACE_CACHE="$tmp/cache" bash -c 'source scripts/lib.sh; qemu_mt'
expect "qemu_mt takes the QEMU scripts/setup unpacked, with its firmware" 0 \
	"^$(re "$tmp/cache/deb/qemu/usr/bin/qemu-system-x86_64")\$" "^$(re "$tmp/cache/deb/qemu/usr/share/seabios")\$"

# --- bench-profile-report ---------------------------------------------------------

# A made-up run: a kernel of three functions whose _text moved by 0x1000000,
# mace.ko loaded at another address for each condition, a mangled Rust name,
# a rep string instruction (ksys_c's, 10 iterations).
prof=$tmp/profile
mkdir -p "$prof/off" "$prof/on"
cat >"$prof/System.map" <<'EOF'
ffffffff81000000 T _text
ffffffff81000100 T ksys_a
ffffffff81000200 t ksys_b
ffffffff81000300 D some_data
ffffffff81000400 T ksys_c
EOF
cat >"$prof/off/console.log" <<'EOF'
PROFILE TEXT ffffffff82000000
PROFILE-BEGIN kallsyms cond=off
ffffffffa0000000 t _RNvNtCs1234_9mace_main6packet8identify	[mace]
ffffffffa0000100 t mace_net_state	[mace]
PROFILE-END
PROFILE COND cond=off segment=2 replies=10 rc=0
EOF
cat >"$prof/on/console.log" <<'EOF'
PROFILE TEXT ffffffff82000000
PROFILE-BEGIN kallsyms cond=on
ffffffffa0010000 t _RNvNtCs1234_9mace_main6packet8identify	[mace]
ffffffffa0010100 t mace_net_state	[mace]
PROFILE-END
PROFILE COND cond=on segment=2 replies=10 rc=0
EOF
printf '%s\n' 'ffffffff82000100 100' 'ffffffff82000104 100' 'ffffffff82000200 50' >"$prof/off/counts.2"
printf '%s\n' 'ffffffff82000100 100' 'ffffffff82000104 100' 'ffffffff82000108 30' 'ffffffff82000200 50' \
	'ffffffff82000400 10 rep' 'ffffffffa0010000 20' 'ffffffffa0010004 20' 'ffffffffa0010008 20' \
	'ffffffffa0010104 40' >"$prof/on/counts.2"
run "$MACE_TOP/scripts/bench-profile-report" --top 4 "$prof"
expect "bench-profile-report: totals per ping against off" 0 \
	'^== on against off, instructions per ping \(10 and 10 replies\)$' \
	'^kernel total +\+14\.0  \(on 39\.0, off 25\.0\)$' '^in mace\.ko +\+10\.0$' '^elsewhere +\+4\.0$'
expect "bench-profile-report: symbols by delta, demangled without hash" 0 \
	'^ +\+6\.0 +6\.0 +0\.0  mace_main::packet::identify \[mace\]$' \
	'^ +\+4\.0 +4\.0 +0\.0  mace_net_state \[mace\]$' \
	'^ +\+3\.0 +23\.0 +20\.0  ksys_a$' '^ +\+1\.0 +1\.0 +0\.0  ksys_c$'
expect "bench-profile-report: rep string iterations, and mace.ko's share with and without them" 0 \
	'^rep string iterations +\+1\.0  \(on 1\.0, off 0\.0\)$' \
	"^mace\\.ko's share of on's kernel instructions: 25\\.64 %, 26\\.32 % without the rep iterations$"
refute "bench-profile-report: --top 4 lists 4 symbols" '  ksys_b$'
expect "bench-profile-report: mace.ko functions with calls per ping" 0 \
	'^ +6\.0 +2\.00 +3\.0  mace_main::packet::identify$' '^ +4\.0 +0\.00 +-  mace_net_state$'
# --annotate: the instructions of a function that ran, from the module file
# (here an object assembled with the function's mangled name: three 4-byte
# nops and a ret, loaded at ffffffffa0010000 in the run above).
if command -v as >/dev/null && command -v objdump >/dev/null && command -v nm >/dev/null; then
	printf '%s\n' '.text' '.globl _RNvNtCs1234_9mace_main6packet8identify' \
		'_RNvNtCs1234_9mace_main6packet8identify:' \
		'.byte 0x0f, 0x1f, 0x40, 0x00' '.byte 0x0f, 0x1f, 0x40, 0x00' '.byte 0x0f, 0x1f, 0x40, 0x00' 'ret' \
		'.globl mace_net_state' 'mace_net_state:' 'ret' >"$tmp/fn.s"
	as -o "$prof/mace.ko" "$tmp/fn.s"
	run "$MACE_TOP/scripts/bench-profile-report" --top 4 --annotate identify "$prof"
	expect "bench-profile-report: --annotate lists a function's instructions that ran, per ping" 0 \
		'^== on: mace_main::packet::identify, instructions that ran, per ping$' \
		'^    2\.00  nopl   0x0\(%rax\)$' '^     6\.0  in all$'
	refute "bench-profile-report: --annotate lists only the functions asked for" 'mace_net_state, instructions'
	refute "bench-profile-report: --annotate leaves out instructions that did not run" 'ret *$'
	rm "$prof/mace.ko"
	run "$MACE_TOP/scripts/bench-profile-report" --annotate identify "$prof"
	expect "bench-profile-report: --annotate without the module is an error" 1 'no .*/mace\.ko'
else
	skip "bench-profile-report: --annotate" "binutils (as, nm, objdump) not installed"
fi
# The same run as a TCP transfer (bench-profile --tcp): 10 MB, per MB.
sed -i 's/^PROFILE COND \(.*\) rc=0$/PROFILE COND \1 rc=0 unit=MB/' "$prof/off/console.log" "$prof/on/console.log"
run "$MACE_TOP/scripts/bench-profile-report" --top 4 "$prof"
expect "bench-profile-report: a TCP transfer's run is read per MB" 0 \
	'^== on against off, instructions per MB \(10 and 10 MBs\)$' \
	'^kernel total +\+14\.0  \(on 39\.0, off 25\.0\)$' \
	'^mace\.ko functions of on, per MB '
rm -f "$prof/on/counts.2"
run "$MACE_TOP/scripts/bench-profile-report" "$prof"
expect "bench-profile-report: a missing segment is an error" 1 'on: no .*on/counts\.2'

# --- bench-report: what a tool's own clock allows ---------------------------------

# run_br: runs the Python on standard input with scripts/bench-report
# imported as br.
run_br() {
	run python3 -c 'import importlib.machinery, importlib.util, sys
loader = importlib.machinery.SourceFileLoader("bench_report", sys.argv[1])
spec = importlib.util.spec_from_loader("bench_report", loader)
br = importlib.util.module_from_spec(spec)
loader.exec_module(br)
'"$(cat)" "$MACE_TOP/scripts/bench-report"
}

# iputils ping prints the difference of two whole-microsecond stamps: below
# 1 ms up to 1 us from the time between them, above that its print's
# rounding too; the error of a packet is what lies beyond.
run_br <<'PY'
r = br.ping_rtts(["64 bytes from 198.18.0.2: icmp_seq=1 ttl=63 time=0.031 ms",
                  "64 bytes from 198.18.0.2: icmp_seq=2 ttl=63 time=1.23 ms"])
print("rtts", r[1], r[2])
f = br.fidelity([(31000, 10000, 11000, 8700, r[1][1]), (30000, 10000, 11000, 8700, r[1][1])], 2)
print("errors", f["err_mean"], f["err_p99"])
# Coverage is of the replies the tool reported: one without mace's ingress
# counts against it, one the tool never reported (the third sent) does not.
f = br.fidelity([(31000, 10000, 11000, 8700, 0), (30000, 10000, None, 8700, 0)], 3)
print("coverage", f["n"], f["replied"], f["sent"], f["err_mean"])
PY
expect "bench-report: iputils ping's RTT is allowed 1 us below 1 ms, 6 us at 2 decimals" 0 \
	'^rtts \(31000, 1000\) \(1230000, 6000\)$'
expect "bench-report: a packet's error is what lies beyond that" 0 '^errors 150(\.0)? 300$'
expect "bench-report: coverage counts mace's misses among the tool's replies, not the tool's losses" 0 \
	'^coverage 1 2 3 1300(\.0)?$'

# fping prints the difference of two ns stamps to three significant digits
# (three decimals below 1 ms): allowed half its last digit.
run_br <<'PY'
r = br.fping_rtts(["198.18.0.2 : [0], 240 bytes, 0.031 ms (0.031 avg, 0% loss)",
                   "198.18.0.2 : [1], 240 bytes, 20.1 ms (10.0 avg, 0% loss)",
                   "198.18.0.2 : xmt/rcv/%loss = 2/2/0%, min/avg/max = 0.031/10.0/20.1"])
print("fping", sorted(r.items()))
PY
expect "bench-report: fping's RTTs by packet number, allowed half the last digit it prints" 0 \
	'^fping \[\(0, \(31000, 500\)\), \(1, \(20100000, 50000\)\)\]$'

# mtr --raw: an answer is "p HOP RTT_US SEQ", the difference of two
# whole-microsecond stamps (allowed 1 us); its lines and its echo pairs on
# the wire carry the probe's sequence number; its other lines (probes sent,
# hosts) and another tool's echoes (another length) are no answers.
run_br <<'PY'
block = "acc load=0 netem=0"
wire = [
    "1796459225.100000000 IP 198.18.0.1 > 198.18.0.2: ICMP echo request, id 86, seq 33000, length 256",
    "1796459225.100100000 IP 198.18.0.1 > 198.18.0.2: ICMP echo request, id 7, seq 33001, length 144",
    "1796459225.100400000 IP 198.18.0.2 > 198.18.0.1: ICMP echo reply, id 86, seq 33000, length 256",
    "1796459225.110000000 IP 198.18.0.1 > 198.18.0.2: ICMP echo request, id 86, seq 33001, length 256",
    "1796459225.110300000 IP 198.18.0.2 > 198.18.0.1: ICMP echo reply, id 86, seq 33001, length 256",
]
secs = {
    f"{block} tool=mtr.out": ["x 1 33000", "h 1 198.18.0.2", "p 1 612 33000", "x 1 33001", "p 1 511 33001"],
    f"{block} tool=mtr.mace": [
        "[1796459225.100002] (33000) egress: 90000",
        "[1796459225.100500] (33000) ingress: 110000",
        "[1796459225.110003] (33001) egress: 91000",
    ],
}
print("rtts", sorted(br.mtr_rtts(secs[f"{block} tool=mtr.out"]).items()))
for row in sorted(br.tool_rows(secs, block, "mtr", wire, 2)):
    print("row", *row)
PY
expect "bench-report: mtr's RTTs by probe sequence number, allowed 1 us" 0 \
	'^rtts \[\(33000, \(612000, 1000\)\), \(33001, \(511000, 1000\)\)\]$'
expect "bench-report: an mtr probe's wire RTT is its echo pair's of mtr's length, its lines carry its number" 0 \
	'^row 612000 90000 110000 400000 1000$'
expect "bench-report: an mtr probe without mace's ingress line still counts as a reply" 0 \
	'^row 511000 91000 None 300000 1000$'

# The paper's comparison: medians of the host's own RTTs, the container's
# and the container's corrected per reply (its RTT less both latencies,
# over the replies with both); a tool missing a side has no row.
run_br <<'PY'
ping = lambda seq, ms: f"64 bytes from 198.18.0.2: icmp_seq={seq} ttl=63 time={ms} ms"
secs = {
    "bare ns=host tool=ping4.out": [ping(1, "0.020"), ping(2, "0.022"), ping(3, "0.021")],
    "bare ns=c1 tool=ping4.out": [ping(1, "0.040"), ping(2, "0.042"), ping(3, "0.041")],
    "bare ns=c1 tool=ping4.mace": [
        "[1796459225.100002] (1) egress: 15000",
        "[1796459225.100500] (1) ingress: 10000",
        "[1796459225.110002] (2) egress: 16000",
        "[1796459225.110500] (2) ingress: 10000",
        "[1796459225.120002] (3) egress: 15000",
    ],
    "bare ns=host tool=ping6.out": [ping(1, "0.020")],
    "bare ns=host tool=mtr.out": ["x 1 33000", "p 1 20 33000"],
    "bare ns=c1 tool=mtr.out": ["x 1 33000", "p 1 40 33000"],
    "bare ns=c1 tool=mtr.mace": [
        "[1796459225.100002] (33000) egress: 15000",
        "[1796459225.100500] (33000) ingress: 10000",
    ],
}
for tool, b in sorted(br.bare_rows(secs).items()):
    print("bare", tool, b["host"], b["c1"], b["corrected"], b["n"], b["replied"])
PY
expect "bench-report: the paper's comparison takes medians of the host's RTTs, the container's and its corrected ones" 0 \
	'^bare ping4 21000 41000 15000 2 3$'
expect "bench-report: the paper's comparison reads each tool's RTTs with its own parser (mtr's)" 0 \
	'^bare mtr 20000 40000 15000 1 1$'
if grep -q '^bare ping6' <<<"$out"; then
	fail "bench-report: a tool without the container's side has no row in the paper's comparison" "$out"
else
	pass "bench-report: a tool without the container's side has no row in the paper's comparison"
fi
# A crash must not read as a failed target (1), which every run of today's
# design has: scripts/bench stops on it.
br_out=$(mktemp -d)
st=0
out=$("$MACE_TOP/scripts/bench-report" "$br_out/no-icount.log" "$br_out/no-tcg.log" "$br_out" 2>&1) || st=$?
rm -rf "$br_out"
expect "bench-report: a crash exits 2, not a failed target's 1" 2 '^Traceback' 'FileNotFoundError'

# hping3 -S: its probe k is the k-th SYN to its port on the outer device;
# the SYN-ACK is the remote's stamp plus the link's crossing (measured on
# the ICMP reply both captured); the lines carry the SYN's sequence number.
run_br <<'PY'
block = "acc load=0 netem=0"
reply = "IP 198.18.0.2 > 198.18.0.1: ICMP echo reply, id 1, seq 1, length 144"
wire = [
    "1796459225.100000000 IP 198.18.0.1.2301 > 198.18.0.2.7781: Flags [S], seq 1000, win 512, length 0",
    "1796459225.101000000 IP 198.18.0.2.7781 > 198.18.0.1.2301: Flags [S.], seq 5000, ack 1001, win 64240, length 0",
    "1796459225.110000000 IP 198.18.0.1.2302 > 198.18.0.2.7781: Flags [S], seq 4294967295, win 512, length 0",
    "1796459225.200000000 " + reply,
]
remote = [
    "1796459225.100500000 IP 198.18.0.2.7781 > 198.18.0.1.2301: Flags [S.], seq 5000, ack 1001, win 64240, length 0",
    "1796459225.110400000 IP 198.18.0.2.7781 > 198.18.0.1.2302: Flags [S.], seq 7000, ack 0, win 64240, length 0",
    "1796459225.199990000 " + reply,
]
secs = {
    f"{block} wire.remote": remote,
    f"{block} tool=hping3-syn.out": [
        "HPING 198.18.0.2 (eth0 198.18.0.2): S set, 40 headers + 0 data bytes",
        "len=44 ip=198.18.0.2 ttl=63 DF id=0 sport=7781 flags=SA seq=0 win=64240 rtt=0.9 ms",
        "len=44 ip=198.18.0.2 ttl=63 DF id=0 sport=7781 flags=SA seq=1 win=64240 rtt=0.8 ms",
    ],
    f"{block} tool=hping3-syn.mace": [
        "[1796459225.100300] (1000) egress: 200000",
        "[1796459225.101300] (1000) ingress: 150000",
        "[1796459225.110300] (4294967295) egress: 210000",
        "[1796459225.111300] (4294967295) ingress: 160000",
    ],
}
for row in br.tool_rows(secs, block, "hping3-syn", wire, 2):
    print("row", *row)
PY
expect "bench-report: hping3 -S's probes are the SYNs in order, their wire RTT ends at the remote's SYN-ACK plus the crossing" 0 \
	'^row 900000 200000 150000 510000 50000$'
expect "bench-report: hping3 -S's SYN-ACK names its SYN across the wrap of the sequence space" 0 \
	'^row 800000 210000 160000 410000 50000$'

# traceroute -N 1: its probes to the far host expire at the remote host, one
# at a time; a probe's wire RTT ends at the time exceeded captured before
# the next probe, and its lines (all with one id) are those stamped in its
# window; a probe without answer ("*") has no row.
run_br <<'PY'
block = "acc load=0 netem=0"
probe = "IP 198.18.0.1.40000 > 198.18.1.2.33434: UDP, length 32"
exceeded = "IP 198.18.0.2 > 198.18.0.1: ICMP time exceeded in-transit, length 68"
wire = [
    "1796459225.100000000 " + probe,
    "1796459225.100400000 " + exceeded,
    "1796459225.110000000 " + probe,
    "1796459225.120000000 IP 198.18.0.1 > 198.18.0.2: ICMP echo request, id 1, seq 1, length 144",
    "1796459225.130000000 " + probe,
    "1796459225.130300500 " + exceeded,
]
secs = {
    f"{block} tool=traceroute.out": [
        "traceroute to 198.18.1.2 (198.18.1.2), 2 hops max, 60 byte packets",
        " 2  198.18.0.2  0.612 ms *  0.512 ms",
    ],
    f"{block} tool=traceroute.mace": [
        "[1796459225.100002] (0) egress: 90000",
        "[1796459225.100500] (0) ingress: 110000",
        "[1796459225.110003] (0) egress: 91000",
        "[1796459225.129999] (0) egress: 92000",
        "[1796459225.130300] (0) ingress: 111000",
    ],
}
for row in br.tool_rows(secs, block, "traceroute", wire, 3):
    print("row", *row)
print("rtts", br.trace_rtts(secs[f"{block} tool=traceroute.out"]))
PY
expect "bench-report: traceroute's RTTs in probe order, a lost probe as None, allowed 1 us" 0 \
	'^rtts \[\(612000, 1000\), None, \(512000, 1000\)\]$'
expect "bench-report: a traceroute probe's wire RTT ends at the next time exceeded, its lines are found by their stamps" 0 \
	'^row 612000 90000 110000 400000 1000$'
expect "bench-report: a line stamped within the microsecond before the capture still belongs to its probe" 0 \
	'^row 512000 92000 111000 300500 1000$'

# --- bench-report: the eBPF peer's two costs -----------------------------------

# A made-up --pert run of two rounds: the judged ratio is against the peer
# with the ping off CPU 0 (its cheaper cost); the CPU-0 figure is reported.
pert=$tmp/pert
mkdir -p "$pert"
{
	echo "BENCH CONFIG pert_cpu=1 pings=3 rounds=2 loads=0 netem_ms=20 parts=pert"
	for r in 1 2; do
		for c in unloaded:20000 on:21000 bpftrace:28000 bpftrace-cpu0:35000; do
			echo "BENCH-BEGIN pert round=$r cond=${c%%:*}"
			for i in 1 2 3; do
				echo "{\"type\":\"packet\",\"rtt_ns\":$((${c#*:} + 100 * r))}"
			done
			echo "BENCH-END"
		done
	done
} >"$pert/icount.log"
run "$MACE_TOP/scripts/bench-report" "$pert/icount.log" "$pert/none.log" "$pert/out"
expect "bench-report: mace / bpftrace is judged against the peer off CPU 0" 0 \
	'^\| perturbation: mace added / bpftrace script added \| 0\.125 \(bpftrace \+8000 ns\) \| <= 1/7 \(0\.143\) \| PASS \|$' \
	'^\| perturbation: mace added / bpftrace script added, the ping on CPU 0 [^|]*\| 0\.067 \(bpftrace \+15000 ns\) \| reported \| reported \|$'

# --- bench-report: the plain-TCG TCP rounds' control ---------------------------

# Made-up plain-TCG rounds: unloaded measured again last in each round is
# shown as the control, with its own ratio, and reported.
for r in 1 2 3; do
	for c in unloaded:2000000 on:1960000 ftrace:1800000 unloaded-again:$((1960000 + 20000 * r)); do
		echo "BENCH TCP round=$r cond=${c%%:*} bps=${c#*:}000"
	done
done >"$pert/tcg.log"
run "$MACE_TOP/scripts/bench-report" "$pert/icount.log" "$pert/tcg.log" "$pert/tcg"
expect "bench-report: the plain-TCG rounds show unloaded again as their control" 0 \
	'^\| on \| 3 \| 1960\.\.1960 \| 1960\.0 \| 0\.980 \| 0\.980 \|$' \
	'^\| unloaded, again \(control\) \| 3 \| 1980\.\.2020 \| 2000\.0 \| 1\.000 \| 1\.000 \|$' \
	'^\| TCP throughput, unloaded again / unloaded \(the plain-TCG rounds. control\) \| 1\.000 \| reported \| reported \|$'

# --- bench-report: a --tcp run ------------------------------------------------

# Made-up TCP rounds under icount: the ratio is the medians' (on 0.995 of
# unloaded here), the floor's is reported beside it.
tcpi=$tmp/tcpi
mkdir -p "$tcpi"
tcpi_log() {
	echo "BENCH CONFIG pert_cpu=1 pings=200 rounds=9 loads=0 netem_ms=20 parts=tcp"
	local r c
	for r in 1 2 3; do
		for c in "$@"; do
			echo "BENCH TCPI round=$r cond=${c%%:*} bps=$((${c#*:} + r))"
		done
	done
}
tcpi_log unloaded:2000000000 null:1998000000 on:1990000000 ftrace:1900000000 >"$tcpi/pass.log"
run "$MACE_TOP/scripts/bench-report" "$tcpi/pass.log" "$tcpi/none.log" "$tcpi/pass"
expect "bench-report: a --tcp run judges mace on against unloaded and reports the floor" 0 \
	'^\| TCP throughput under icount, mace on / off \| 0\.995 \| >= 0\.99 \| PASS \|$' \
	'^\| TCP throughput under icount, the floor \(probes returning at once\) / off \| 0\.999 \| reported \| reported \|$' \
	'^\| null \| 3 \| 1998\.0, 1998\.0, 1998\.0 \| 0\.999 \|$'
if grep -q -E 'Perturbation|Accuracy|Accounting' <<<"$out"; then
	fail "bench-report: a --tcp run prints only its own section" "$(grep -E 'Perturbation|Accuracy|Accounting' <<<"$out" | head -3 | tr '\n' '|')"
else
	pass "bench-report: a --tcp run prints only its own section"
fi
tcpi_log unloaded:2000000000 on:1970000000 >"$tcpi/fail.log"
run "$MACE_TOP/scripts/bench-report" "$tcpi/fail.log" "$tcpi/none.log" "$tcpi/fail"
expect "bench-report: a --tcp run below 0.99 fails" 1 \
	'^\| TCP throughput under icount, mace on / off \| 0\.985 \| >= 0\.99 \| FAIL \|$'
tcpi_log unloaded:2000000000 on:1979980000 >"$tcpi/near.log"
run "$MACE_TOP/scripts/bench-report" "$tcpi/near.log" "$tcpi/none.log" "$tcpi/near"
expect "bench-report: a ratio just below its target is not printed as the target" 1 \
	'^\| TCP throughput under icount, mace on / off \| 0\.98999 \| >= 0\.99 \| FAIL \|$'
tcpi_log >"$tcpi/empty.log"
run "$MACE_TOP/scripts/bench-report" "$tcpi/empty.log" "$tcpi/none.log" "$tcpi/empty"
expect "bench-report: a --tcp run without rounds fails" 1 \
	'^\| TCP throughput under icount, mace on / off \| no rounds of unloaded and on \| >= 0\.99 \| FAIL \|$'

# --- The running kernel -------------------------------------------------------

release=$(uname -r)
running_conf=
for f in "/lib/modules/$release/build/.config" "/boot/config-$release"; do
	[[ -r $f ]] && { running_conf=$(cat "$f"); break; }
done
[[ -n $running_conf || ! -r /proc/config.gz ]] || running_conf=$(gzip -dc /proc/config.gz)
if [[ -z $running_conf ]]; then
	skip "running kernel verdict" "no configuration of $release readable here"
elif grep -q '^CONFIG_RUST=y' <<<"$running_conf"; then
	skip "running kernel: no without CONFIG_RUST" "the running kernel $release has CONFIG_RUST=y"
else
	run "$CH"
	expect "running kernel: no, because CONFIG_RUST is not set" 1 \
		"^no: CONFIG_RUST is not set in $release" "^verdict: no: mace cannot be built and loaded on $release"
	refute "running kernel: no verdict ok" '^verdict: ok'
	# Without root: the same verdict, from what an ordinary user can read.
	if ((EUID == 0)) && command -v setpriv >/dev/null; then
		run setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/nonexistent "$CH"
		expect "running kernel, as an unprivileged user: same verdict" 1 \
			"^no: CONFIG_RUST is not set in $release" '^verdict: no'
	elif ((EUID != 0)); then
		skip "running kernel, as an unprivileged user" "this run is not root: the checks above ran unprivileged"
	else
		skip "running kernel, as an unprivileged user" "setpriv not found"
	fi
	run "$CH" --quiet
	expect "--quiet prints the no lines and the verdict only" 1 '^no: CONFIG_RUST' '^verdict: no'
	refute "--quiet prints no ok lines" '^ok:'
fi

# --- mace's test kernels --------------------------------------------------------

# test_kernel VERSION LLVM: check-host says ok for the complete test tree of
# MACE_KERNEL=VERSION, and that it is built with LLVM=LLVM.
test_kernel() {
	local v=$1 llvm=$2 dir
	dir=$(MACE_KERNEL=$v "$MACE_TOP/scripts/kernel" --print-dir 2>/dev/null) || {
		skip "test kernel $v" "scripts/kernel --print-dir failed for MACE_KERNEL=$v (kernel source not set up?)"
		return
	}
	if [[ ! -f $dir/.mace-complete ]]; then
		skip "test kernel $v: ok" "$dir is not built (MACE_KERNEL=$v scripts/kernel builds it)"
		return
	fi
	run "$CH" --kdir "$dir"
	expect "test kernel $v: ok, build with LLVM=$llvm" 0 '^verdict: ok: mace can be built and loaded' \
		"^ok: C compiler: .*make LLVM=$llvm\$" "^  build: +make KDIR=$(re "$dir") LLVM=$llvm\$" \
		'^ok: Rust metadata: .*libkernel\.rmeta' '^ok: tracepoint skb_copy_datagram_iovec' '^ok: function skb_consume_udp'
	run "$CH" --kdir "$dir" --print-make-vars
	expect "test kernel $v: --print-make-vars says LLVM=$llvm" 0 "^LLVM=$llvm( |\$)"
}
test_kernel 6.12 1
test_kernel 7.3 -19

# --- Fake build trees -----------------------------------------------------------

# Only files check-host and the Makefile read: a .config from the local
# toolchain's versions, the pieces of a prepared tree, rust/ metadata
# (libkernel.rmeta holding the rustc version text, as real ones do), a
# System.map with the tracepoints, and a Makefile standing for the kernel's
# that records how it was called.
have_toolchain=1
for t in rustc bindgen clang gcc; do
	command -v "$t" >/dev/null 2>&1 || have_toolchain=0
done
cc_num() {
	local v
	v=$(printf '%s\n' "$2" | "$1" -E -P -x c - 2>/dev/null | tr -s ' \n' ' ')
	# shellcheck disable=SC2086
	set -- $v
	echo $(($1 * 10000 + $2 * 100 + $3))
}

# make_tree DIR KIND [COMPILER]: KIND is clang or gcc; COMPILER the command
# whose version goes into the .config (default: clang, gcc).
make_tree() {
	local d=$1 kind=$2 comp=${3:-$2} num text
	mkdir -p "$d"/{include/config,include/generated,scripts/mod,rust}
	text=$("$comp" --version | head -n 1)
	if [[ $kind == clang ]]; then
		num=$(cc_num "$comp" '__clang_major__ __clang_minor__ __clang_patchlevel__')
	else
		num=$(cc_num "$comp" '__GNUC__ __GNUC_MINOR__ __GNUC_PATCHLEVEL__')
	fi
	{
		printf 'CONFIG_%s=y\n' RUST MODULES MODULE_UNLOAD TRACEPOINTS HAVE_SYSCALL_TRACEPOINTS FUNCTION_TRACER \
			DYNAMIC_FTRACE HAVE_DYNAMIC_FTRACE_WITH_ARGS NET_NS INET X86_64
		echo "CONFIG_CC_VERSION_TEXT=\"$text\""
		if [[ $kind == clang ]]; then
			echo "CONFIG_CC_IS_CLANG=y"
			echo "CONFIG_CLANG_VERSION=$num"
			echo "CONFIG_GCC_VERSION=0"
		else
			echo "CONFIG_CC_IS_GCC=y"
			echo "CONFIG_GCC_VERSION=$num"
			echo "CONFIG_CLANG_VERSION=0"
		fi
		echo "CONFIG_RUSTC_VERSION_TEXT=\"$(rustc --version)\""
		echo "CONFIG_BINDGEN_VERSION_TEXT=\"$(bindgen --version | head -n 1)\""
	} >"$d/.config"
	cp "$d/.config" "$d/include/config/auto.conf"
	echo 6.12.0-fake >"$d/include/config/kernel.release"
	touch "$d/include/generated/autoconf.h" "$d/Module.symvers" "$d/scripts/mod/modpost" "$d/scripts/target.json"
	local c
	for c in core compiler_builtins ffi bindings uapi build_error; do
		: >"$d/rust/lib$c.rmeta"
	done
	: >"$d/rust/libmacros.so"
	printf 'rust\0\0\0\x09%s\x01' "$(rustc --version)" >"$d/rust/libkernel.rmeta"
	local tp
	{
		for tp in sys_enter sys_exit net_dev_queue net_dev_start_xmit netif_receive_skb skb_copy_datagram_iovec sk_data_ready; do
			printf 'ffffffff82000000 D __tracepoint_%s\nffffffff81000000 T __traceiter_%s\n' "$tp" "$tp"
		done
		printf 'ffffffff81000100 T skb_consume_udp\nffffffff81000200 T __neigh_event_send\n'
		printf 'ffffffff81000500 T __consume_stateless_skb\n'
		printf 'ffffffff81000300 t packet_poll\nffffffff81000400 t packet_recvmsg\n'
	} >"$d/System.map"
	# The "kernel Makefile": records the variables a module build passes.
	cat >"$d/Makefile" <<'EOF'
modules clean modules_install:
	@echo "fake-kbuild: $@ LLVM=[$(LLVM)] CC=[$(CC)] CC-origin=[$(origin CC)] INSTALL_MOD_PATH=[$(INSTALL_MOD_PATH)] INSTALL_MOD_DIR=[$(INSTALL_MOD_DIR)] LIBCLANG_PATH=[$$LIBCLANG_PATH] M=[$(M)]"
EOF
}
# Set CONFIG_NAME to VALUE in tree DIR (.config and auto.conf); VALUE "" unsets.
set_config() {
	local d=$1 name=$2 value=$3 f
	for f in "$d/.config" "$d/include/config/auto.conf"; do
		sed -i "/^CONFIG_$name=/d" "$f"
		[[ -z $value ]] || echo "CONFIG_$name=$value" >>"$f"
	done
}

if ((!have_toolchain)); then
	skip "fake trees" "rustc, bindgen, clang and gcc are needed to make them (run scripts/setup)"
else
	good=$tmp/good
	make_tree "$good" clang clang
	run "$CH" --kdir "$good"
	expect "fake tree, complete (clang): ok" 0 '^verdict: ok' '^ok: C compiler: clang, .*make LLVM=1$' \
		'^ok: rustc: ' '^ok: bindgen: ' '^ok: Rust metadata: '

	t=$tmp/norust
	make_tree "$t" clang
	set_config "$t" RUST ""
	run "$CH" --kdir "$t"
	expect "fake tree without CONFIG_RUST: no, and why" 1 '^no: CONFIG_RUST is not set in 6\.12\.0-fake' '^verdict: no'

	t=$tmp/noftrace
	make_tree "$t" clang
	set_config "$t" FUNCTION_TRACER ""
	run "$CH" --kdir "$t"
	expect "fake tree without the function tracer: no, and why" 1 \
		'^no: CONFIG_FUNCTION_TRACER is not set: mace needs the function tracer' '^ok: CONFIG_RUST=y' '^verdict: no'

	t=$tmp/nometa
	make_tree "$t" clang
	rm "$t/rust/libkernel.rmeta" "$t/rust/libmacros.so"
	run "$CH" --kdir "$t"
	expect "fake tree without rust/libkernel.rmeta: no, naming the files" 1 \
		'^no: Rust metadata: .* lacks .*libkernel\.rmeta' '^no: Rust metadata: .*libmacros\.so' '^verdict: no'

	t=$tmp/dangling
	make_tree "$t" clang
	rm -r "$t/rust"
	ln -s /nonexistent/linux-lib-rust/rust "$t/rust"
	run "$CH" --kdir "$t"
	expect "fake tree whose rust/ is a dangling link (no linux-lib-rust): no" 1 \
		'^no: Rust metadata: .*dangling link to /nonexistent/linux-lib-rust/rust'

	t=$tmp/norustdir
	make_tree "$t" clang
	rm -r "$t/rust"
	run "$CH" --kdir "$t"
	expect "fake tree without rust/: no" 1 '^no: Rust metadata: .* has no rust/ directory'

	t=$tmp/rustc
	make_tree "$t" clang
	set_config "$t" RUSTC_VERSION_TEXT '"rustc 1.78.0 (9b00956e5 2024-04-29)"'
	run "$CH" --kdir "$t"
	expect "fake tree built by another rustc: no, with the rustup fix" 1 \
		"^no: rustc: 'rustc' is '$(re "$(rustc --version)")', the kernel was built by 'rustc 1\.78\.0 \(9b00956e5 2024-04-29\)'.*rustup toolchain install 1\.78\.0" \
		'^no: Rust metadata: .*not written by the kernel.s rustc'

	t=$tmp/rustc-distro
	make_tree "$t" clang
	set_config "$t" RUSTC_VERSION_TEXT '"rustc 1.89.0 (29483883e 2025-08-04) (Arch Linux rust 1:1.89.0-1)"'
	run "$CH" --kdir "$t"
	expect "fake tree built by a distribution's rustc: no, not rustup" 1 \
		"^no: rustc: .*a distribution build: .*a rustup 1\.89\.0 reports another version text"

	t=$tmp/bindgen
	make_tree "$t" clang
	set_config "$t" BINDGEN_VERSION_TEXT '"bindgen 0.65.1"'
	run "$CH" --kdir "$t"
	expect "fake tree built with another bindgen: no" 1 \
		"^no: bindgen: 'bindgen' is '$(re "$(bindgen --version | head -n 1)")', the kernel was built with 'bindgen 0\.65\.1'"

	t=$tmp/trace
	make_tree "$t" clang
	sed -i '/_skb_copy_datagram_iovec$/d' "$t/System.map"
	run "$CH" --kdir "$t"
	expect "fake tree without the skb_copy_datagram_iovec tracepoint: no" 1 \
		'^no: tracepoint skb_copy_datagram_iovec: not in .*System\.map' '^ok: tracepoint sys_enter'

	t=$tmp/func
	make_tree "$t" clang
	sed -i '/ skb_consume_udp$/d' "$t/System.map"
	run "$CH" --kdir "$t"
	expect "fake tree without skb_consume_udp: no" 1 '^no: function skb_consume_udp: not in .*System\.map' \
		'^ok: tracepoint sys_enter'
	run "$CH" --kdir "$t" --build-only
	expect "--build-only does not look at tracepoints" 0 '^verdict: ok: mace can be built on'

	t=$tmp/packet
	make_tree "$t" clang
	sed -i '/ packet_poll$/d' "$t/System.map"
	run "$CH" --kdir "$t"
	expect "fake tree without packet_poll (CONFIG_PACKET=m): a note, still ok" 0 \
		'^note: function packet_poll: not found .*falls back to "stamp"' '^ok: function packet_recvmsg' \
		'^verdict: ok: mace can be built and loaded'

	t=$tmp/ready
	make_tree "$t" clang
	sed -i '/_sk_data_ready$/d' "$t/System.map"
	run "$CH" --kdir "$t"
	expect "fake tree without sk_data_ready (before 6.3): a note, still ok" 0 \
		'^note: tracepoint sk_data_ready: not found .*falls back to "stamp"' '^ok: function packet_poll' \
		'^verdict: ok: mace can be built and loaded'

	t=$tmp/symvers
	make_tree "$t" clang
	rm "$t/Module.symvers"
	run "$CH" --kdir "$t"
	expect "fake tree without Module.symvers: no" 1 '^no: build tree .*incomplete, no Module\.symvers'

	t=$tmp/noconf
	make_tree "$t" clang
	rm "$t/.config" "$t/include/config/auto.conf"
	run "$CH" --kdir "$t"
	expect "fake tree without a configuration: no" 1 '^no: kernel configuration: .*neither \.config nor'

	t=$tmp/gcc
	make_tree "$t" gcc gcc
	run "$CH" --kdir "$t"
	expect "fake tree built by gcc: ok, no LLVM=" 0 '^ok: C compiler: gcc, gcc .*make \(no LLVM=: gcc\)$' '^verdict: ok'
	run "$CH" --kdir "$t" --print-make-vars
	expect "fake gcc tree: --print-make-vars says LLVM= only" 0 '^LLVM=$'
	run "$CH" --kdir "$t" --llvm 1
	expect "fake gcc tree with LLVM=1: no, the compiler differs" 1 '^no: C compiler: clang \(from LLVM=1\) is clang .*built by gcc'

	t=$tmp/gcc99
	make_tree "$t" gcc gcc
	set_config "$t" GCC_VERSION 990100
	run "$CH" --kdir "$t" --toolchain-only
	expect "fake tree built by an absent gcc 99: no, install it" 1 \
		'^no: C compiler: gcc \(no LLVM= or CC=\) is gcc .*built by gcc 99\.1\.0.*apt install gcc-99'

	t=$tmp/clang7
	make_tree "$t" clang clang
	set_config "$t" CLANG_VERSION 70001
	run "$CH" --kdir "$t" --toolchain-only
	expect "fake tree built by an absent clang 7: no, install it" 1 \
		'^no: C compiler: .*built by clang 7\.0\.1.*apt install clang-7 lld-7.*LLVM=-7'

	if command -v clang-19 >/dev/null && [[ $(clang-19 --version | head -n 1) != "$(clang --version | head -n 1)" ]]; then
		t=$tmp/clang19
		make_tree "$t" clang clang-19
		run "$CH" --kdir "$t"
		expect "fake tree built by clang-19: ok with LLVM=-19" 0 '^ok: C compiler: clang-19, .*make LLVM=-19$' \
			"^  build: +make KDIR=$(re "$t") LLVM=-19\$"
		run "$CH" --kdir "$t" --print-make-vars
		expect "fake clang-19 tree: --print-make-vars" 0 '^LLVM=-19( LIBCLANG_PATH=.*llvm-19.*)?$'
		run "$CH" --kdir "$t" --llvm 1 --toolchain-only
		expect "fake clang-19 tree with LLVM=1: no, use LLVM=-19" 1 \
			'^no: C compiler: clang \(from LLVM=1\) is clang .*built by clang 19\..*make LLVM=-19'
	else
		t=
		skip "fake tree built by clang-19" "no clang-19 besides clang here"
	fi

	# --- The Makefile ---------------------------------------------------------
	# In a copy of what the Makefile needs in KDIR mode, so that the work
	# tree's build state (.kdir, objects) is left alone.
	src=$tmp/src
	# lib.sh exported the test kernels' LIBCLANG_PATH; a user has none.
	unset LIBCLANG_PATH
	mkdir -p "$src/scripts"
	cp "$MACE_TOP/Makefile" "$src/"
	cp "$MACE_TOP/scripts/check-host" "$MACE_TOP/scripts/lib.sh" "$src/scripts/"

	run make -C "$src" KDIR="$tmp/rustc"
	expect "make with the wrong rustc stops with check-host's finding" 2 \
		"^no: rustc: .*the kernel was built by 'rustc 1\.78\.0" '^mace: not building'
	refute "make with the wrong rustc never reaches the kernel's make" '^fake-kbuild: modules'

	run make -C "$src" KDIR="$good" RUSTC="$tmp/no-such-rustc"
	expect "make RUSTC=<missing> stops with check-host's finding" 2 "^no: rustc: '$(re "$tmp")/no-such-rustc' not found"

	run make -C "$src" KDIR="$tmp/norust"
	expect "make against a kernel without Rust stops" 2 '^no: CONFIG_RUST is not set' '^mace: not building'

	run make -C "$src" KDIR="$good"
	expect "make picks LLVM=1 for a clang tree" 0 "^fake-kbuild: modules LLVM=\[1\] CC=\[cc\] CC-origin=\[default\]"

	run make -C "$src" KDIR="$tmp/gcc"
	expect "make picks no LLVM for a gcc tree" 0 '^fake-kbuild: modules LLVM=\[\] CC=\[cc\]'

	run make -C "$src" KDIR="$good" LLVM=-7
	expect "make with a given LLVM= checks that one" 2 '^no: C compiler: clang-7 \(from LLVM=-7\) not found'

	if [[ -n $t ]]; then
		run make -C "$src" KDIR="$t"
		expect "make picks LLVM=-19 and LLVM 19's libclang for a clang-19 tree" 0 \
			'^fake-kbuild: modules LLVM=\[-19\] CC=\[cc\] .*LIBCLANG_PATH=\[[^]]*llvm-19'
		run make -C "$src" KDIR="$t" DKMS=1 CC=clang LD=ld.lld
		expect "make DKMS=1 ignores dkms's CC=clang for a clang-19 tree" 0 \
			'^fake-kbuild: modules LLVM=\[-19\] CC=\[cc\] CC-origin=\[default\]'
		run make -C "$src" KDIR="$t" CC=clang
		expect "make with CC=clang (not dkms) checks that compiler" 2 '^no: C compiler: clang \(from CC=clang\) is clang'
	else
		skip "make picks LLVM=-19" "no clang-19 besides clang here"
	fi

	run make -C "$src" KDIR="$good" install INSTALL_MOD_PATH=staging DEPMOD=true
	expect "make install passes INSTALL_MOD_PATH (absolute) and INSTALL_MOD_DIR=updates" 0 \
		"^fake-kbuild: modules_install .*INSTALL_MOD_PATH=\[$(re "$src")/staging\] INSTALL_MOD_DIR=\[updates\]" \
		"^mace: installed $(re "$src")/staging/lib/modules/6\.12\.0-fake/updates/mace\.ko"
	run make -C "$src" KDIR="$good" install DESTDIR="$tmp/dest" INSTALL_MOD_DIR=extra DEPMOD=true
	expect "make install takes DESTDIR and INSTALL_MOD_DIR=extra" 0 \
		"^fake-kbuild: modules_install .*INSTALL_MOD_PATH=\[$(re "$tmp")/dest\] INSTALL_MOD_DIR=\[extra\]"
fi

# --- make install, for real, into a temporary root ---------------------------------

k612=$(MACE_KERNEL=6.12 "$MACE_TOP/scripts/kernel" --print-dir 2>/dev/null || true)
if [[ -z $k612 || ! -f $k612/.mace-complete ]]; then
	skip "make install into INSTALL_MOD_PATH" "the 6.12 test kernel is not built (scripts/kernel)"
else
	rel=$(<"$k612/include/config/kernel.release")
	# A copy of the work tree's sources, built out of the way of the work tree.
	build=$tmp/build
	from="the work tree"
	mkdir -p "$build/scripts" "$build/tests/host"
	cp -r "$MACE_TOP/Makefile" "$MACE_TOP/Kbuild" "$MACE_TOP/src" "$build/"
	cp "$MACE_TOP/scripts/check-host" "$MACE_TOP/scripts/lib.sh" "$build/scripts/"
	find "$build/src" \( -name '*.o' -o -name '.*.cmd' -o -name '*_generated.rs' \) -delete
	make -s -C "$build" KDIR="$k612" >"$tmp/build.log" 2>&1 || true
	if [[ ! -f $build/mace.ko ]]; then
		fail "make install into INSTALL_MOD_PATH" "mace.ko does not build from $from: $(tail -n 3 "$tmp/build.log" | tr '\n' '|')"
	else
		real_before=0
		[[ ! -e /lib/modules/$rel/updates/mace.ko ]] || real_before=1
		root=$tmp/root
		run make -s -C "$build" KDIR="$k612" install INSTALL_MOD_PATH="$root"
		ko=$root/lib/modules/$rel/updates/mace.ko
		if ((st != 0)); then
			fail "make install into INSTALL_MOD_PATH ($from)" "exit $st: $(tail -n 5 <<<"$out" | tr '\n' '|')"
		elif [[ ! -f $ko ]]; then
			fail "make install into INSTALL_MOD_PATH ($from)" "no $ko"
		elif [[ $(modinfo -F vermagic "$ko" 2>/dev/null) != "$rel "* ]]; then
			fail "make install into INSTALL_MOD_PATH ($from)" "vermagic of $ko is '$(modinfo -F vermagic "$ko")', not for $rel"
		elif ! grep -q '^updates/mace\.ko:' "$root/lib/modules/$rel/modules.dep" 2>/dev/null; then
			fail "make install into INSTALL_MOD_PATH ($from)" "depmod did not list updates/mace.ko in $root/lib/modules/$rel/modules.dep"
		elif ((!real_before)) && [[ -e /lib/modules/$rel/updates/mace.ko ]]; then
			fail "make install into INSTALL_MOD_PATH ($from)" "it wrote /lib/modules/$rel/updates/mace.ko"
		else
			pass "make install INSTALL_MOD_PATH=<tmp>: lib/modules/$rel/updates/mace.ko, in modules.dep ($from)"
		fi
	fi

	# Another installed rustup toolchain: make must stop with check-host's
	# finding, not with rustc's "compiled by an incompatible version" error.
	want=$(sed -n 's/^CONFIG_RUSTC_VERSION_TEXT="\(.*\)"$/\1/p' "$k612/.config")
	other=
	if command -v rustup >/dev/null; then
		while read -r tc _; do
			[[ -n $tc ]] || continue
			v=$(RUSTUP_TOOLCHAIN=$tc rustc --version 2>/dev/null) || continue
			[[ -z $v || $v == "$want" ]] || { other=$tc; break; }
		done < <(rustup toolchain list 2>/dev/null)
	fi
	if [[ -z $other ]]; then
		skip "make with another rustc toolchain" "no installed rustup toolchain other than the kernel's"
	elif [[ ! -f $build/mace.ko ]]; then
		skip "make with another rustc toolchain ($other)" "no buildable source (see above)"
	else
		make -s -C "$build" KDIR="$k612" clean >/dev/null 2>&1 || true
		run make -C "$build" KDIR="$k612" RUSTUP_TOOLCHAIN="$other"
		expect "make with rustup toolchain $other stops with check-host's finding" 2 \
			"^no: rustc: 'rustc' is '.*', the kernel was built by '$(re "$want")'" '^mace: not building'
		refute "make with rustup toolchain $other: no rustc error E0514" 'E0514|incompatible version of rustc'
		make -s -C "$build" KDIR="$k612" >/dev/null 2>&1 || true
	fi
fi

# --- dkms.conf ---------------------------------------------------------------------

ver=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$MACE_TOP/tests/host/Cargo.toml" | head -n 1)
run bash -c 'kernel_source_dir=/KSRC; source "$1"; printf "%s\n" "name=$PACKAGE_NAME" "version=$PACKAGE_VERSION" \
	"built=${BUILT_MODULE_NAME[0]}" "dest=${DEST_MODULE_LOCATION[0]}" "make=${MAKE[0]}" "auto=$AUTOINSTALL"' _ "$MACE_TOP/dkms.conf"
expect "dkms.conf: name, version of mace-core ($ver), module, location, make, autoinstall" 0 \
	'^name=mace$' "^version=$(re "$ver")\$" '^built=mace$' '^dest=/updates(/|$)' '^make=make KDIR=/KSRC ' '^auto=yes$'
v=$(cd / && bash -c 'source "$1"; echo "$PACKAGE_VERSION"' _ "$MACE_TOP/dkms.conf" 2>&1) || true
if [[ -n $v && $v == "$ver" ]]; then
	pass "dkms.conf: version read from any working directory"
else
	fail "dkms.conf: version read from any working directory" "got '$v', expected '$ver'"
fi

if ! command -v dkms >/dev/null; then
	skip "dkms add and build (scratch dkms tree)" "dkms is not installed"
elif ((EUID != 0)); then
	skip "dkms add and build (scratch dkms tree)" "dkms needs root"
elif [[ -z $k612 || ! -f $k612/.mace-complete || ! -f ${build:-/nonexistent}/mace.ko ]]; then
	skip "dkms add and build (scratch dkms tree)" "needs the 6.12 test kernel and a buildable source (see above)"
else
	# A source tree like a checkout's, from the sources that built above.
	dsrc=$tmp/dkms-src
	mkdir -p "$dsrc/scripts" "$dsrc/tests/host"
	cp -r "$build/Makefile" "$build/Kbuild" "$build/src" "$MACE_TOP/dkms.conf" "$dsrc/"
	cp "$build/scripts/check-host" "$build/scripts/lib.sh" "$dsrc/scripts/"
	cp "$MACE_TOP/tests/host/Cargo.toml" "$dsrc/tests/host/"
	(cd "$dsrc" && make -s KDIR="$k612" clean >/dev/null 2>&1 || true)
	mkdir -p "$tmp/dkms/tree" "$tmp/dkms/src" "$tmp/dkms/install"
	dk=(dkms --dkmstree "$tmp/dkms/tree" --sourcetree "$tmp/dkms/src" --installtree "$tmp/dkms/install")
	rel=$(<"$k612/include/config/kernel.release")
	run "${dk[@]}" add "$dsrc"
	if ((st != 0)); then
		fail "dkms add (scratch dkms tree)" "exit $st: $(tail -n 3 <<<"$out" | tr '\n' '|')"
	else
		pass "dkms add (scratch dkms tree): mace/$ver"
		run "${dk[@]}" build "mace/$ver" -k "$rel" --kernelsourcedir "$k612"
		built=$tmp/dkms/tree/mace/$ver/$rel/$(uname -m)/module/mace.ko
		if ((st == 0)) && [[ -f $built ]]; then
			pass "dkms build for the 6.12 test kernel (scratch dkms tree): mace.ko"
		else
			fail "dkms build for the 6.12 test kernel (scratch dkms tree)" "exit $st, $built: $(ls "$built" 2>&1); $(tail -n 3 <<<"$out" | tr '\n' '|')"
		fi
	fi
fi

# --- mace-exporter and the Kubernetes samples ------------------------------------

# The exporter's real output on the fixtures of /dev/mace-hist and stats, and
# with mace absent, checked by promtool (Debian's, which scripts/setup
# unpacks into the cache: missing, it is a failure, not a skip).
exporter=$MACE_TOP/target/release/mace-exporter
fixtures=$MACE_TOP/samples/mace-exporter/tests/fixtures
promtool=$(promtool_path)
# run_to FILE CMD...: like run, with CMD's standard output also in FILE.
run_to() {
	local file=$1
	shift
	st=0
	"$@" >"$file" 2>"$file.err" || st=$?
	out=$(cat "$file" "$file.err")
}
run cargo build --quiet --release -p mace-exporter
if ((st != 0)); then
	fail "mace-exporter builds" "exit $st: $(tail -n 5 <<<"$out" | tr '\n' '|')"
else
	pass "mace-exporter builds (target/release/mace-exporter)"
	# A fake /proc: one process in the fixture's container namespace.
	cid=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
	uid=5f3a1c2e-7b9d-4e21-a0f4-9c8b7a6d5e4f
	mkdir -p "$tmp/proc/4242/ns"
	ln -s 'net:[4026532211]' "$tmp/proc/4242/ns/net"
	echo "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uid//-/_}.slice/cri-containerd-$cid.scope" \
		>"$tmp/proc/4242/cgroup"
	run_to "$tmp/fixture.prom" "$exporter" --once --hist "$fixtures/mace-hist.txt" --stats "$fixtures/stats.txt" \
		--proc "$tmp/proc"
	c="netns=\"4026532211\",container_id=\"$cid\",pod_uid=\"$uid\""
	expect "mace-exporter --once: histograms, counters, labels of the fixture" 0 '^mace_up 1$' \
		'^mace_capturing_namespaces 2$' "^mace_egress_latency_seconds_bucket\{$c,le=\"5\.12e-07\"\} 0$" \
		"^mace_egress_latency_seconds_bucket\{$c,le=\"\+Inf\"\} 10$" "^mace_egress_latency_seconds_count\{$c\} 10$" \
		"^mace_egress_latency_seconds_sum\{$c\} 0\.002401837$" \
		"^mace_packets_total\{$c,direction=\"egress\",outcome=\"expired\"\} 1$" \
		"^mace_latency_segments_total\{$c,direction=\"egress\",segments=\"unknown\"\} 2$" \
		'^# TYPE mace_latency_segment_seconds histogram$' \
		"^mace_latency_segment_seconds_count\{$c,direction=\"egress\",segment=\"host\"\} 8$" \
		"^mace_latency_segment_seconds_bucket\{$c,direction=\"ingress\",segment=\"socket\",le=\"\+Inf\"\} 9$" \
		'^mace_probe_seconds_total\{hook="sys_enter"\} 0\.00025$' '^mace_host_packets_total\{event="ingress_stamped"\} 40$'
	refute "mace-exporter --once: no segment series for the namespaces that never had breakdown on" \
		'^mace_latency_segment_seconds_[a-z]+\{netns="(4026531840|4026532300)"'
	if [[ ! -x $promtool ]]; then
		fail "promtool check metrics: fixture" "no promtool at $promtool (run scripts/setup)"
	else
		run "$promtool" check metrics <"$tmp/fixture.prom"
		expect "promtool check metrics: the exporter's output for the fixture" 0
	fi
	run_to "$tmp/absent.prom" "$exporter" --once --hist "$tmp/no-mace-hist" --stats "$tmp/no-stats" --proc "$tmp/proc"
	expect "mace-exporter --once: mace not loaded is metrics, exit 0" 0 '^mace_up 0$' 'mace is down: .*no-mace-hist' \
		'^mace_down_reason\{reason="not_loaded"\} 1$' '^mace_capturing_namespaces 0$' '^mace_stats_up 0$'
	if [[ -x $promtool ]]; then
		run "$promtool" check metrics <"$tmp/absent.prom"
		expect "promtool check metrics: the exporter's output without mace" 0
	else
		fail "promtool check metrics: without mace" "no promtool at $promtool (run scripts/setup)"
	fi
	mkdir -p "$tmp/textfile"
	echo old >"$tmp/textfile/mace.prom"
	run "$exporter" --once --textfile "$tmp/textfile/mace.prom" --hist "$fixtures/mace-hist.txt" \
		--stats "$fixtures/stats.txt" --proc "$tmp/proc"
	if ((st != 0)); then
		fail "mace-exporter --textfile --once" "exit $st: $out"
	elif ! cmp -s "$tmp/textfile/mace.prom" "$tmp/fixture.prom"; then
		fail "mace-exporter --textfile --once" "the file differs from --once's standard output"
	elif [[ $(ls -A "$tmp/textfile") != mace.prom ]]; then
		fail "mace-exporter --textfile --once" "left other files: $(ls -A "$tmp/textfile" | tr '\n' ' ')"
	else
		pass "mace-exporter --textfile --once: the exposition replaces the file, nothing else left"
	fi
	run "$exporter" --once --textfile "$tmp/no-such-dir/mace.prom" --hist "$tmp/no-mace-hist"
	expect "mace-exporter --textfile --once into a missing directory exits 1" 1 'cannot write'
	# Serving on the loopback: a free port, a few requests, then stopped.
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	"$exporter" --listen "127.0.0.1:$port" --hist "$fixtures/mace-hist.txt" --stats "$fixtures/stats.txt" \
		--proc "$tmp/proc" 2>"$tmp/serve.err" &
	serve_pid=$!
	run python3 - "$port" <<'PY'
import sys, time, urllib.error, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
def get(path, accept=None):
    req = urllib.request.Request(base + path, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], ""
for _ in range(50):
    try:
        get("/")
        break
    except OSError:
        time.sleep(0.1)
status, ctype, body = get("/metrics")
print("plain", status, ctype, "mace_up 1" in body.splitlines(), body.rstrip().endswith("# EOF"))
status, ctype, body = get("/metrics", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
print("openmetrics", status, ctype, body.rstrip().endswith("# EOF"))
print("missing", get("/nothing")[0])
PY
	kill "$serve_pid" 2>/dev/null || true
	wait "$serve_pid" 2>/dev/null || true
	serve_pid=
	expect "mace-exporter serves /metrics: Prometheus text, or OpenMetrics on request" 0 \
		'^plain 200 text/plain; version=0\.0\.4; charset=utf-8 True False$' \
		'^openmetrics 200 application/openmetrics-text; version=1\.0\.0; charset=utf-8 True$' '^missing 404$'
fi

# The Kubernetes samples: YAML syntax and required fields (not a cluster
# run), a broken copy refused, and the scrape configurations promtool can
# read (Debian's promtool has no Kubernetes discovery, so the one with
# kubernetes_sd_configs is checked by tests/check-manifests.py only).
k8s=$MACE_TOP/samples/kubernetes
for f in module.yaml daemonset.yaml prometheus-scrape.yaml prometheus-static.yaml; do
	run python3 "$MACE_TOP/tests/check-manifests.py" "$k8s/daemonset.yaml" "$k8s/$f"
	expect "Kubernetes sample $f: YAML and required fields" 0 "^ok: .*/$f: "
done
sed -e 's/moduleName: mace/moduleName: other/' -e 's/^\( *\)- regexp:/\1- nothing:/' "$k8s/module.yaml" >"$tmp/module.yaml"
sed -e 's/hostPID: true/hostPID: false/' -e 's/name: metrics/name: http/' "$k8s/daemonset.yaml" >"$tmp/daemonset.yaml"
printf 'a: [\n' >"$tmp/broken.yaml"
run python3 "$MACE_TOP/tests/check-manifests.py" "$tmp/module.yaml" "$tmp/daemonset.yaml" "$tmp/broken.yaml"
expect "check-manifests.py refuses broken manifests" 1 'bad: .*module\.yaml: .*moduleName is not mace' \
	'bad: .*module\.yaml: kernelMappings\[0\] needs exactly one of regexp and literal' \
	'bad: .*daemonset\.yaml: hostPID is not true' 'bad: .*daemonset\.yaml: .*no container port named metrics' \
	'bad: .*broken\.yaml: not YAML'
if [[ -x $promtool ]]; then
	run "$promtool" check config "$k8s/prometheus-static.yaml"
	expect "promtool check config: prometheus-static.yaml" 0 'SUCCESS'
else
	fail "promtool check config: prometheus-static.yaml" "no promtool at $promtool (run scripts/setup)"
fi

# The documents: every reStructuredText file parses without a warning
# (Debian's python3-docutils, which scripts/setup installs; the machine's
# python3 may be another one, without Debian's modules), and a broken one
# is refused.
docpy=python3
python3 -c 'import docutils' 2>/dev/null || docpy=/usr/bin/python3
for f in "$MACE_TOP"/Documentation/*.rst; do
	run "$docpy" "$MACE_TOP/tests/check-docs.py" "$f"
	expect "Documentation/${f##*/}: reStructuredText without warnings" 0 "^ok: "
done
printf 'A section title\n=======\n\n* an item\nno blank line\n' >"$tmp/broken.rst"
run "$docpy" "$MACE_TOP/tests/check-docs.py" "$tmp/broken.rst"
expect "check-docs.py refuses a broken document" 1 'bad: .*broken\.rst:2: .*Title underline too short' \
	'bad: .*broken\.rst:5: .*Bullet list ends without a blank line'

((skipped == 0)) || printf '(%d skipped)\n' "$skipped"
printf '%d passed, %d failed\n' "$passed" "$failed"
((failed == 0))
