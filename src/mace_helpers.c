// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of mace's kernel layer: static kernel structures and thin
 * wrappers of inline functions and macros that Rust cannot call. No logic
 * lives here; every callback forwards to the operations table the Rust side
 * registered. Differences between the kernel versions mace supports are
 * handled here (with LINUX_VERSION_CODE) and in src/ffi/, nowhere else.
 */

#include <linux/capability.h>
#include <linux/clocksource_ids.h>
#include <linux/compat.h>
#include <linux/cred.h>
#include <linux/device/class.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/ftrace.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/net_tstamp.h>
#include <linux/pvclock_gtod.h>
#include <linux/moduleparam.h>
#include <linux/netdevice.h>
#include <linux/percpu.h>
#include <linux/net.h>
#include <linux/poll.h>
#include <linux/ratelimit.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timekeeper_internal.h>
#include <linux/timekeeping.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <linux/user_namespace.h>
#include <linux/version.h>
#include <linux/workqueue.h>
#include <net/hotdata.h>
#include <net/neighbour.h>
#include <net/net_namespace.h>
#include <net/tcp.h>
#include <net/udp.h>
#include <net/netns/generic.h>
#include <asm/syscall.h>
#include <asm/unistd.h>
/* Only for check_trace_callback_type_<name>(): no tracepoint is defined here. */
#include <trace/events/net.h>
#include <trace/events/skb.h>
#include <trace/events/sock.h>
#include <trace/events/syscalls.h>

#include "mace_helpers.h"

/*
 * Hooks. Tracepoints are looked up by name, since most are not exported to
 * modules; skb_consume_udp(), __neigh_event_send(), packet_poll(),
 * packet_recvmsg() and __consume_stateless_skb() are hooked through the
 * function tracer, one ftrace_ops each, and so are the send calls
 * (mace_send_call_funcs), all through one.
 */

/*
 * The send calls are the x86-64 syscalls' entry points (__x64_sys_*), on a
 * kernel with the dynamic function tracer and arguments in its callbacks.
 */
#if defined(CONFIG_X86_64) && defined(CONFIG_DYNAMIC_FTRACE) && \
	defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS)
#define MACE_SEND_CALLS_SUPPORTED 1
#else
#define MACE_SEND_CALLS_SUPPORTED 0
#endif

static const char *const mace_hook_names[MACE_HOOKS] = {
	[MACE_HOOK_SYS_ENTER] = "sys_enter",
	[MACE_HOOK_SYS_EXIT] = "sys_exit",
	[MACE_HOOK_NET_DEV_QUEUE] = "net_dev_queue",
	[MACE_HOOK_NET_DEV_START_XMIT] = "net_dev_start_xmit",
	[MACE_HOOK_NETIF_RECEIVE_SKB] = "netif_receive_skb",
	[MACE_HOOK_SKB_COPY_DATAGRAM_IOVEC] = "skb_copy_datagram_iovec",
	[MACE_HOOK_SKB_CONSUME_UDP] = "skb_consume_udp",
	[MACE_HOOK_NEIGH_EVENT_SEND] = "__neigh_event_send",
	[MACE_HOOK_PACKET_POLL] = "packet_poll",
	[MACE_HOOK_PACKET_RECVMSG] = "packet_recvmsg",
	[MACE_HOOK_SK_DATA_READY] = "sk_data_ready",
	[MACE_HOOK_CONSUME_STATELESS_SKB] = "__consume_stateless_skb",
	[MACE_HOOK_SEND_CALLS] = "send_calls",
	[MACE_HOOK_SOCK_RECV_LENGTH] = "sock_recv_length",
};

/*
 * A probe of mace's behind a filter in C: the filter is the tracepoint's
 * probe, with its mace_filter_hook as data, and calls mace's probe (of the
 * type the filter knows) for the hits it passes.
 */
struct mace_filter_hook {
	void *probe;
	void *data;
	bool registered;
};

static int mace_filter_register(struct tracepoint *tp, void *filter,
				struct mace_filter_hook *h, void *probe,
				void *data)
{
	int err;

	if (h->registered)
		return -EBUSY;
	h->probe = probe;
	h->data = data;
	err = tracepoint_probe_register(tp, filter, h);
	h->registered = !err;
	return err;
}

static int mace_filter_unregister(struct tracepoint *tp, void *filter,
				  struct mace_filter_hook *h)
{
	if (!h->registered)
		return -ENOENT;
	/* The caller waits for running probes (mace_tp_sync()). */
	h->registered = false;
	return tracepoint_probe_unregister(tp, filter, h);
}

/*
 * sk_data_ready fires whenever any socket of the machine gets something to
 * read: mace's probe is called for packet sockets only, from this filter.
 */
static struct mace_filter_hook mace_ready_hook;

static void mace_sk_data_ready_filter(void *data, const struct sock *sk)
{
	struct mace_filter_hook *h = data;
	mace_packet_read_probe probe = h->probe;

	if (sk->sk_family == AF_PACKET)
		probe(h->data, (struct sock *)sk);
}

/*
 * The waypoint of `breakdown` on sk_data_ready: the same filter for IP
 * sockets, registered only while some namespace breaks its latencies down.
 */
static struct mace_filter_hook mace_ready_ip_hook;

static void mace_sk_data_ready_ip_filter(void *data, const struct sock *sk)
{
	struct mace_filter_hook *h = data;
	mace_packet_read_probe probe = h->probe;

	if (sk->sk_family == AF_INET || sk->sk_family == AF_INET6)
		probe(h->data, (struct sock *)sk);
}

/*
 * Each probe type of mace_helpers.h must be what its tracepoint calls: the
 * kernel's own check of a probe against TP_PROTO, at compile time. Never
 * called.
 */
static void __maybe_unused mace_check_probe_types(void)
{
	check_trace_callback_type_sys_enter((mace_sys_enter_probe)NULL);
	check_trace_callback_type_sys_exit((mace_sys_exit_probe)NULL);
	check_trace_callback_type_net_dev_queue((mace_net_dev_queue_probe)NULL);
	check_trace_callback_type_net_dev_start_xmit(
		(mace_net_dev_start_xmit_probe)NULL);
	check_trace_callback_type_netif_receive_skb(
		(mace_netif_receive_skb_probe)NULL);
	check_trace_callback_type_skb_copy_datagram_iovec(
		(mace_skb_copy_datagram_iovec_probe)NULL);
	check_trace_callback_type_sk_data_ready(mace_sk_data_ready_filter);
	check_trace_callback_type_sk_data_ready(mace_sk_data_ready_ip_filter);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	check_trace_callback_type_sock_recv_length(
		(mace_sock_recv_length_probe)NULL);
#endif
}

/* The function hooks read their functions' arguments: check them. */
static_assert(__same_type(&skb_consume_udp,
			  void (*)(struct sock *, struct sk_buff *, int)));
static_assert(__same_type(&__neigh_event_send,
			  int (*)(struct neighbour *, struct sk_buff *, bool)));
static_assert(__same_type(&__consume_stateless_skb,
			  void (*)(struct sk_buff *)));

const char *mace_hook_name(enum mace_hook hook)
{
	if ((unsigned int)hook >= MACE_HOOKS)
		return NULL;
	return mace_hook_names[hook];
}

struct mace_tp_lookup {
	const char *name;
	struct tracepoint *tp;
};

static void mace_tp_match(struct tracepoint *tp, void *priv)
{
	struct mace_tp_lookup *lookup = priv;

	if (!lookup->tp && !strcmp(tp->name, lookup->name))
		lookup->tp = tp;
}

static struct tracepoint *mace_tp_find(enum mace_hook hook)
{
	struct mace_tp_lookup lookup = { .name = mace_hook_name(hook) };

	if (!lookup.name)
		return NULL;
	for_each_kernel_tracepoint(mace_tp_match, &lookup);
	return lookup.tp;
}

#if defined(CONFIG_DYNAMIC_FTRACE) && \
	defined(CONFIG_HAVE_DYNAMIC_FTRACE_WITH_ARGS)
/* A kernel function hooked through an ftrace_ops of its own. */
struct mace_fhook {
	struct ftrace_ops ops;
	ftrace_func_t func;
	void *probe;
	void *data;
	bool registered;
	/* Registered as a direct call (mace_send_calls_tramp). */
	bool direct;
};

/* skb_consume_udp(sk, skb, len) */
static void notrace mace_udp_hook_func(unsigned long ip,
				       unsigned long parent_ip,
				       struct ftrace_ops *op,
				       struct ftrace_regs *fregs)
{
	struct mace_fhook *h = container_of(op, struct mace_fhook, ops);
	mace_skb_consume_udp_probe probe = h->probe;

	probe(h->data, (struct sock *)ftrace_regs_get_argument(fregs, 0),
	      (struct sk_buff *)ftrace_regs_get_argument(fregs, 1));
}

/* __neigh_event_send(neigh, skb, immediate_ok) */
static void notrace mace_neigh_hook_func(unsigned long ip,
					 unsigned long parent_ip,
					 struct ftrace_ops *op,
					 struct ftrace_regs *fregs)
{
	struct mace_fhook *h = container_of(op, struct mace_fhook, ops);
	mace_neigh_event_send_probe probe = h->probe;

	probe(h->data, (struct sk_buff *)ftrace_regs_get_argument(fregs, 1));
}

/*
 * packet_poll(file, sock, wait) and packet_recvmsg(sock, msg, len, flags):
 * static functions of net/packet/af_packet.c, called through the packet
 * socket's proto_ops, so their types cannot be checked here; both have had
 * these arguments since 2.6.
 */
static void mace_packet_read(struct mace_fhook *h, struct socket *sock)
{
	mace_packet_read_probe probe = h->probe;

	if (sock && sock->sk)
		probe(h->data, sock->sk);
}

/*
 * poll() and select() pass their poll table's queueing function in their
 * first pass over the files only (poll_wait() queues the task then), and
 * none after wakeups or for a zero timeout; epoll passes none where it
 * waits.
 */
static void notrace mace_packet_poll_hook_func(unsigned long ip,
					       unsigned long parent_ip,
					       struct ftrace_ops *op,
					       struct ftrace_regs *fregs)
{
	struct mace_fhook *h = container_of(op, struct mace_fhook, ops);
	struct socket *sock = (struct socket *)ftrace_regs_get_argument(fregs, 1);
	poll_table *wait = (poll_table *)ftrace_regs_get_argument(fregs, 2);
	mace_packet_poll_probe probe = h->probe;

	if (sock && sock->sk)
		probe(h->data, sock->sk, wait && wait->_qproc);
}

static void notrace mace_packet_recvmsg_hook_func(unsigned long ip,
						  unsigned long parent_ip,
						  struct ftrace_ops *op,
						  struct ftrace_regs *fregs)
{
	mace_packet_read(container_of(op, struct mace_fhook, ops),
			 (struct socket *)ftrace_regs_get_argument(fregs, 0));
}

/* __consume_stateless_skb(skb) */
static void notrace mace_stateless_hook_func(unsigned long ip,
					     unsigned long parent_ip,
					     struct ftrace_ops *op,
					     struct ftrace_regs *fregs)
{
	struct mace_fhook *h = container_of(op, struct mace_fhook, ops);
	mace_consume_stateless_skb_probe probe = h->probe;

	probe(h->data, (struct sk_buff *)ftrace_regs_get_argument(fregs, 0));
}

/*
 * The send calls: the native send syscalls' entry points, where their
 * registers are the first argument, and sock_write_iter(), where write(2)
 * and writev(2) on a socket (and other callers, whose syscalls are no sends)
 * reach it. The probe gets what sys_enter's gets: the task's registers and
 * its syscall's number. Each takes at most two arguments, all that
 * mace_send_calls_tramp keeps: a syscall's entry point its registers, and
 * sock_write_iter() a write_iter file operation's two.
 */
static const char *const mace_send_call_funcs[] = {
	"__x64_sys_sendto",
	"__x64_sys_sendmsg",
	"__x64_sys_sendmmsg",
	"sock_write_iter",
};

static void notrace mace_send_calls_hook_func(unsigned long ip,
					      unsigned long parent_ip,
					      struct ftrace_ops *op,
					      struct ftrace_regs *fregs)
{
	struct mace_fhook *h = container_of(op, struct mace_fhook, ops);
	mace_sys_enter_probe probe = h->probe;
	struct pt_regs *regs = task_pt_regs(current);

	probe(h->data, regs, syscall_get_nr(current, regs));
}

static struct mace_fhook mace_fhooks[] = {
	{ .func = mace_udp_hook_func },
	{ .func = mace_neigh_hook_func },
	{ .func = mace_packet_poll_hook_func },
	{ .func = mace_packet_recvmsg_hook_func },
	{ .func = mace_stateless_hook_func },
	{ .func = mace_send_calls_hook_func },
};

static struct mace_fhook *mace_fhook_of(enum mace_hook hook)
{
	switch (hook) {
	case MACE_HOOK_SKB_CONSUME_UDP:
		return &mace_fhooks[0];
	case MACE_HOOK_NEIGH_EVENT_SEND:
		return &mace_fhooks[1];
	case MACE_HOOK_PACKET_POLL:
		return &mace_fhooks[2];
	case MACE_HOOK_PACKET_RECVMSG:
		return &mace_fhooks[3];
	case MACE_HOOK_CONSUME_STATELESS_SKB:
		return &mace_fhooks[4];
	case MACE_HOOK_SEND_CALLS:
		return MACE_SEND_CALLS_SUPPORTED ? &mace_fhooks[5] :
						   ERR_PTR(-EOPNOTSUPP);
	default:
		return NULL;
	}
}

/*
 * The send calls as a direct call of the function tracer
 * (register_ftrace_direct()): while no other ftrace_ops is on them, their
 * call sites call mace_send_calls_tramp itself, instead of a trampoline of
 * the tracer that calls ftrace_ops_assist_func(), which calls the
 * callback. Every send syscall of the machine pays for this hook.
 *
 * The trampoline runs at the entry of a hooked function, where only its
 * argument registers are live: it keeps the two that the send calls take
 * (%rdi, %rsi; see mace_send_call_funcs) and calls
 * mace_send_calls_direct(), which does what the assist did for the
 * callback (no preemption, which is also the RCU read-side section the
 * probe needs) and what the callback does. The probe calls none of the
 * hooked functions: it needs no recursion guard. Unregistering the ops
 * waits until no task runs in either (the ops is a module's, so ftrace
 * synchronizes with RCU tasks before it returns).
 */
#if MACE_SEND_CALLS_SUPPORTED && \
	defined(CONFIG_DYNAMIC_FTRACE_WITH_DIRECT_CALLS)
#define MACE_SEND_CALLS_DIRECT 1

#include <asm/ibt.h>
#include <asm/linkage.h>
#include <asm/nospec-branch.h>

void mace_send_calls_tramp(void);

static void notrace __used mace_send_calls_direct(void)
{
	struct mace_fhook *h = &mace_fhooks[5];
	mace_sys_enter_probe probe = h->probe;
	struct pt_regs *regs = task_pt_regs(current);

	preempt_disable_notrace();
	probe(h->data, regs, syscall_get_nr(current, regs));
	preempt_enable_notrace();
}

asm(".pushsection .text, \"ax\", @progbits\n"
    ".type mace_send_calls_tramp, @function\n"
    ".globl mace_send_calls_tramp\n"
    "mace_send_calls_tramp:\n"
    ASM_ENDBR
    "pushq %rbp\n"
    "movq %rsp, %rbp\n"
    CALL_DEPTH_ACCOUNT
    "pushq %rdi\n"
    "pushq %rsi\n"
    "call mace_send_calls_direct\n"
    "popq %rsi\n"
    "popq %rdi\n"
    "leave\n"
    ASM_RET
    ".size mace_send_calls_tramp, .-mace_send_calls_tramp\n"
    ".popsection\n");
#else
#define MACE_SEND_CALLS_DIRECT 0
#endif

/* The functions @hook's ftrace_ops is on: its name's, or the send calls. */
static int mace_fhook_filter(struct mace_fhook *h, enum mace_hook hook)
{
	const char *func = mace_hook_name(hook);
	size_t i;
	int err;

	if (hook != MACE_HOOK_SEND_CALLS)
		return ftrace_set_filter(&h->ops, (unsigned char *)func,
					 strlen(func), 1);
	for (i = 0; i < ARRAY_SIZE(mace_send_call_funcs); i++) {
		func = mace_send_call_funcs[i];
		err = ftrace_set_filter(&h->ops, (unsigned char *)func,
					strlen(func), i == 0);
		if (err) {
			pr_err("mace: cannot hook %s: error %d\n", func, err);
			return err;
		}
	}
	return 0;
}

static int mace_fhook_register(struct mace_fhook *h, enum mace_hook hook,
			       void *probe, void *data)
{
	ftrace_func_t hook_func = h->func;
	int err;

	if (h->registered)
		return -EBUSY;
	memset(&h->ops, 0, sizeof(h->ops));
	h->probe = probe;
	h->data = data;
	h->direct = false;
#if MACE_SEND_CALLS_DIRECT
	if (hook == MACE_HOOK_SEND_CALLS) {
		err = mace_fhook_filter(h, hook);
		if (!err)
			err = register_ftrace_direct(
				&h->ops, (unsigned long)mace_send_calls_tramp);
		if (!err) {
			h->direct = true;
			h->registered = true;
			return 0;
		}
		/*
		 * Another direct call (a BPF trampoline) on a send call, for
		 * one: the callback list, as without direct calls.
		 */
		pr_info("mace: send calls: no direct call (error %d), the function tracer's callback instead\n",
			err);
		ftrace_free_filter(&h->ops);
		memset(&h->ops, 0, sizeof(h->ops));
	}
#endif
	h->ops.func = hook_func;
	/* ftrace's recursion protection, which also disables preemption. */
	h->ops.flags = FTRACE_OPS_FL_RECURSION;
	err = mace_fhook_filter(h, hook);
	if (err) {
		ftrace_free_filter(&h->ops);
		return err;
	}
	err = register_ftrace_function(&h->ops);
	if (err) {
		ftrace_free_filter(&h->ops);
		return err;
	}
	h->registered = true;
	return 0;
}

static int mace_fhook_unregister(struct mace_fhook *h)
{
	int err;

	if (!h->registered)
		return -ENOENT;
#if MACE_SEND_CALLS_DIRECT
	if (h->direct) {
		/* Waits until no task runs the trampoline; frees the filter. */
		err = unregister_ftrace_direct(
			&h->ops, (unsigned long)mace_send_calls_tramp, true);
		h->registered = false;
		h->direct = false;
		return err;
	}
#endif
	/* Waits until no callback runs any more. */
	err = unregister_ftrace_function(&h->ops);
	ftrace_free_filter(&h->ops);
	h->registered = false;
	return err;
}
#else
/* Without the dynamic function tracer, or callbacks that see arguments. */
struct mace_fhook {
	int unused;
};

static struct mace_fhook *mace_fhook_of(enum mace_hook hook)
{
	switch (hook) {
	case MACE_HOOK_SKB_CONSUME_UDP:
	case MACE_HOOK_NEIGH_EVENT_SEND:
	case MACE_HOOK_PACKET_POLL:
	case MACE_HOOK_PACKET_RECVMSG:
	case MACE_HOOK_CONSUME_STATELESS_SKB:
	case MACE_HOOK_SEND_CALLS:
		return ERR_PTR(-EOPNOTSUPP);
	default:
		return NULL;
	}
}

static int mace_fhook_register(struct mace_fhook *h, enum mace_hook hook,
			       void *probe, void *data)
{
	return -EOPNOTSUPP;
}

static int mace_fhook_unregister(struct mace_fhook *h)
{
	return -ENOENT;
}
#endif

int mace_hook_register(enum mace_hook hook, void *probe, void *data)
{
	struct mace_fhook *h = mace_fhook_of(hook);
	struct tracepoint *tp;

	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h)
		return mace_fhook_register(h, hook, probe, data);
	tp = mace_tp_find(hook);
	if (!tp)
		return -ENOENT;
	if (hook == MACE_HOOK_SK_DATA_READY)
		return mace_filter_register(tp, mace_sk_data_ready_filter,
					    &mace_ready_hook, probe, data);
	return tracepoint_probe_register(tp, probe, data);
}

int mace_hook_unregister(enum mace_hook hook, void *probe, void *data)
{
	struct mace_fhook *h = mace_fhook_of(hook);
	struct tracepoint *tp;

	if (IS_ERR(h))
		return PTR_ERR(h);
	if (h)
		return mace_fhook_unregister(h);
	tp = mace_tp_find(hook);
	if (!tp)
		return -ENOENT;
	if (hook == MACE_HOOK_SK_DATA_READY)
		return mace_filter_unregister(tp, mace_sk_data_ready_filter,
					      &mace_ready_hook);
	return tracepoint_probe_unregister(tp, probe, data);
}

bool mace_socket_calls_supported(void)
{
	return MACE_SEND_CALLS_SUPPORTED &&
	       mace_tp_find(MACE_HOOK_SOCK_RECV_LENGTH);
}

int mace_ready_ip_register(mace_packet_read_probe probe, void *data)
{
	struct tracepoint *tp = mace_tp_find(MACE_HOOK_SK_DATA_READY);

	if (!tp)
		return -ENOENT;
	return mace_filter_register(tp, mace_sk_data_ready_ip_filter,
				    &mace_ready_ip_hook, probe, data);
}

int mace_ready_ip_unregister(void)
{
	struct tracepoint *tp = mace_tp_find(MACE_HOOK_SK_DATA_READY);

	if (!tp)
		return -ENOENT;
	return mace_filter_unregister(tp, mace_sk_data_ready_ip_filter,
				      &mace_ready_ip_hook);
}

void mace_tp_sync(void)
{
	tracepoint_synchronize_unregister();
}

/* RCU */

void mace_rcu_read_lock(void)
{
	rcu_read_lock();
}

void mace_rcu_read_unlock(void)
{
	rcu_read_unlock();
}

unsigned long mace_rcu_cookie(void)
{
	return get_state_synchronize_rcu();
}

void mace_rcu_cond_sync(unsigned long cookie)
{
	cond_synchronize_rcu(cookie);
}

/* Module parameters; Rust validates them in the module's init. */

static char *outer_dev = "";
module_param(outer_dev, charp, 0444);
MODULE_PARM_DESC(outer_dev,
		 "Outer (host NIC) devices: comma-separated names or ifindexes, e.g. \"eth0,3\"");

static unsigned int table_size = 4096;
module_param(table_size, uint, 0444);
MODULE_PARM_DESC(table_size,
		 "Buckets of each correlation table, a power of two in [64, 1048576] (default 4096)");

static unsigned int ring_size = 4096;
module_param(ring_size, uint, 0444);
MODULE_PARM_DESC(ring_size,
		 "Latency records queued per network namespace, a power of two in [16, 65536] (default 4096)");

static unsigned int max_age_ms = 1000;
module_param(max_age_ms, uint, 0444);
MODULE_PARM_DESC(max_age_ms,
		 "Age after which an unmatched packet is forgotten, in ms, [1, 60000] (default 1000)");

static bool self_cost;
module_param(self_cost, bool, 0444);
MODULE_PARM_DESC(self_cost,
		 "Count and time every probe hit for the pert_* counters in stats (default off)");

static unsigned int max_netns_per_user = 32;
module_param(max_netns_per_user, uint, 0444);
MODULE_PARM_DESC(max_netns_per_user,
		 "Network namespaces that may capture at once under the user namespaces of one unprivileged user, [0, 4096] (default 32)");

static unsigned int peer_window_ms = 60000;
module_param(peer_window_ms, uint, 0444);
MODULE_PARM_DESC(peer_window_ms,
		 "How long a remote address stays a peer of the capturing namespaces after one sent to it, in ms; outer devices stamp only peers' packets; 0: every packet, [0, 3600000] (default 60000)");

static bool syscall_tracepoints;
module_param(syscall_tracepoints, bool, 0444);
MODULE_PARM_DESC(syscall_tracepoints,
		 "Follow sends and receives on the sys_enter and sys_exit tracepoints, which every syscall of the machine pays for, instead of the socket calls' own hooks (default off; on where the kernel lacks those)");

const char *mace_param_outer_dev(void)
{
	return outer_dev ? outer_dev : "";
}

unsigned int mace_param_table_size(void)
{
	return table_size;
}

unsigned int mace_param_ring_size(void)
{
	return ring_size;
}

unsigned int mace_param_max_age_ms(void)
{
	return max_age_ms;
}

_Bool mace_param_self_cost(void)
{
	return self_cost;
}

unsigned int mace_param_max_netns_per_user(void)
{
	return max_netns_per_user;
}

unsigned int mace_param_peer_window_ms(void)
{
	return peer_window_ms;
}

_Bool mace_param_syscall_tracepoints(void)
{
	return syscall_tracepoints;
}

/*
 * Per-network-namespace state. The generic slot (struct mace_net_slot)
 * holds two pointers: the state that readers find (the probes, from Rust,
 * without calling C), and the state of an exiting namespace waiting for the
 * grace period after which it is released.
 */

static unsigned int mace_net_id;
static const struct mace_pernet_ops *mace_pernet;
static void *mace_pernet_data;

static struct mace_net_slot *mace_slot(const struct net *net)
{
	return net_generic(net, mace_net_id);
}

static int mace_net_init(struct net *net)
{
	struct mace_net_slot *slot = mace_slot(net);
	void *state = NULL;
	int err;

	err = mace_pernet->init(mace_pernet_data, net, &state);
	if (err)
		return err;
	slot->retired = NULL;
	WRITE_ONCE(slot->state, state);
	return 0;
}

static void mace_net_pre_exit(struct net *net)
{
	struct mace_net_slot *slot = mace_slot(net);

	mace_pernet->pre_exit(mace_pernet_data, net, slot->state);
}

static void mace_net_exit(struct net *net)
{
	struct mace_net_slot *slot = mace_slot(net);

	/* Hidden now; released after the grace period in exit_batch. */
	slot->retired = slot->state;
	WRITE_ONCE(slot->state, NULL);
}

static void mace_net_exit_batch(struct list_head *net_exit_list)
{
	struct net *net;

	synchronize_rcu();
	mace_pernet->exit_batch(mace_pernet_data);
	list_for_each_entry(net, net_exit_list, exit_list) {
		struct mace_net_slot *slot = mace_slot(net);

		if (slot->retired)
			mace_pernet->release(slot->retired);
		slot->retired = NULL;
	}
}

static struct pernet_operations mace_net_ops = {
	.init = mace_net_init,
	.pre_exit = mace_net_pre_exit,
	.exit = mace_net_exit,
	.exit_batch = mace_net_exit_batch,
	.id = &mace_net_id,
	.size = sizeof(struct mace_net_slot),
};

int mace_pernet_register(const struct mace_pernet_ops *ops, void *data,
			 unsigned int *id)
{
	int err;

	mace_pernet = ops;
	mace_pernet_data = data;
	err = register_pernet_subsys(&mace_net_ops);
	if (!err)
		*id = mace_net_id;
	return err;
}

void mace_pernet_unregister(void)
{
	unregister_pernet_subsys(&mace_net_ops);
}

void mace_net_get(struct net *net)
{
	get_net(net);
}

void mace_net_put(struct net *net)
{
	put_net(net);
}

unsigned int mace_net_inum(const struct net *net)
{
	return net->ns.inum;
}

_Bool mace_net_capable(const struct net *net)
{
	return ns_capable(net->user_ns, CAP_NET_ADMIN);
}

_Bool mace_net_opener_capable(const struct net *net, const struct file *file)
{
	return file_ns_capable(file, net->user_ns, CAP_NET_ADMIN);
}

long long mace_net_owner_uid(const struct net *net)
{
	const struct user_namespace *ns = net->user_ns;
	int depth;

	if (ns == &init_user_ns)
		return -1;
	/* User namespaces nest at most 32 deep; the bound is for the reader. */
	for (depth = 0; depth < 64 && ns->parent && ns->parent != &init_user_ns;
	     depth++)
		ns = ns->parent;
	return from_kuid(&init_user_ns, ns->owner);
}

/* /dev/mace and /dev/mace-hist */

/* A misc device of mace and the Rust side of its open files. */
struct mace_misc {
	struct miscdevice dev;
	const struct mace_file_ops *ops;
	void *data;
};

static struct mace_misc mace_miscs[MACE_MISC_COUNT];

/*
 * The file operations of each device, which lead back to it: an open file's
 * private_data is the Rust side's, and a deregistered device's minor may be
 * reused, but its f_op stays.
 */
struct mace_misc_fops {
	struct file_operations fops;
	unsigned int index;
};

static struct mace_misc *mace_misc_of(const struct file *file)
{
	const struct mace_misc_fops *f =
		container_of_const(file->f_op, struct mace_misc_fops, fops);

	return &mace_miscs[f->index];
}

static int mace_fop_open(struct inode *inode, struct file *file)
{
	struct mace_misc *m = mace_misc_of(file);
	void *priv = NULL;
	int err;

	err = stream_open(inode, file);
	if (err)
		return err;
	err = m->ops->open(m->data, &priv);
	if (err)
		return err;
	file->private_data = priv;
	return 0;
}

static ssize_t mace_fop_read(struct file *file, char __user *buf, size_t len,
			     loff_t *ppos)
{
	return mace_misc_of(file)->ops->read(file->private_data,
					     (void __force *)buf, len);
}

static int mace_fop_release(struct inode *inode, struct file *file)
{
	mace_misc_of(file)->ops->release(file->private_data);
	return 0;
}

#define MACE_MISC_FOPS(i)                          \
	[i] = {                                    \
		.fops = {                          \
			.owner = THIS_MODULE,      \
			.open = mace_fop_open,     \
			.read = mace_fop_read,     \
			.release = mace_fop_release, \
		},                                 \
		.index = i,                        \
	}

static const struct mace_misc_fops mace_misc_fops[MACE_MISC_COUNT] = {
	MACE_MISC_FOPS(MACE_MISC_RECORDS),
	MACE_MISC_FOPS(MACE_MISC_HIST),
};

static const char *const mace_misc_names[MACE_MISC_COUNT] = {
	[MACE_MISC_RECORDS] = "mace",
	[MACE_MISC_HIST] = "mace-hist",
};

unsigned long mace_copy_to_user(void *ubuf, const void *src,
				unsigned long len)
{
	return copy_to_user((void __user __force *)ubuf, src, len);
}

int mace_misc_register(unsigned int index, const struct mace_file_ops *ops,
		       void *data)
{
	struct mace_misc *m;

	if (index >= MACE_MISC_COUNT)
		return -EINVAL;
	m = &mace_miscs[index];
	m->ops = ops;
	m->data = data;
	m->dev.minor = MISC_DYNAMIC_MINOR;
	m->dev.name = mace_misc_names[index];
	m->dev.fops = &mace_misc_fops[index].fops;
	m->dev.mode = 0444;
	return misc_register(&m->dev);
}

void mace_misc_deregister(unsigned int index)
{
	if (index < MACE_MISC_COUNT)
		misc_deregister(&mace_miscs[index].dev);
}

/* /sys/class/mace */

static const struct mace_class_ops *mace_class_ops;
static void *mace_class_data;

static ssize_t mace_attr_show(enum mace_attr attr, char *buf)
{
	return mace_class_ops->show(mace_class_data, attr, buf, PAGE_SIZE);
}

/*
 * The files a write changes something through are binary attributes, the
 * only sysfs files whose callbacks get the open file: the capability is
 * checked against the credentials of whoever opened it (as file_ns_capable()
 * does), so that a privileged process made to write to a descriptor an
 * unprivileged one opened does not lend it its rights.
 */

/* Longest text a writable file shows; what a read returns is cut from it. */
#define MACE_BIN_SHOW_MAX 256

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
#define MACE_BIN_ATTR_CONST const
#else
#define MACE_BIN_ATTR_CONST
#endif

static ssize_t mace_bin_read(enum mace_attr attr, char *buf, loff_t off,
			     size_t count)
{
	char text[MACE_BIN_SHOW_MAX];
	long len;

	len = mace_class_ops->show(mace_class_data, attr, text, sizeof(text));
	if (len < 0)
		return len;
	if (off < 0 || off >= len)
		return 0;
	count = min_t(size_t, count, len - off);
	memcpy(buf, text + off, count);
	return count;
}

/*
 * Every write is a command of its own, whatever the offset (as with the
 * other sysfs files). kernfs hands over at most a page at once; a longer
 * write arrives cut, and the Rust side refuses anything that long (E2BIG).
 */
static ssize_t mace_bin_write(struct file *file, enum mace_attr attr,
			      const char *buf, size_t count)
{
	return mace_class_ops->store(mace_class_data, attr, file, buf, count);
}

#define MACE_BIN_ATTR(_name, _id, _mode)                                      \
	static ssize_t _name##_read(struct file *file, struct kobject *kobj,  \
				    MACE_BIN_ATTR_CONST struct bin_attribute *a, \
				    char *buf, loff_t off, size_t count)      \
	{                                                                     \
		return mace_bin_read(_id, buf, off, count);                   \
	}                                                                     \
	static ssize_t _name##_write(struct file *file, struct kobject *kobj, \
				     MACE_BIN_ATTR_CONST struct bin_attribute *a, \
				     char *buf, loff_t off, size_t count)     \
	{                                                                     \
		return mace_bin_write(file, _id, buf, count);                 \
	}                                                                     \
	static struct bin_attribute bin_attr_##_name = {                      \
		.attr = { .name = __stringify(_name), .mode = _mode },        \
		.read = _name##_read,                                         \
		.write = _name##_write,                                       \
	}

MACE_BIN_ATTR(on, MACE_ATTR_ON, 0644);
MACE_BIN_ATTR(outer_devs, MACE_ATTR_OUTER_DEVS, 0644);
MACE_BIN_ATTR(tap_end, MACE_ATTR_TAP_END, 0644);
MACE_BIN_ATTR(breakdown, MACE_ATTR_BREAKDOWN, 0644);

static ssize_t stats_show(const struct class *class,
			  const struct class_attribute *attr, char *buf)
{
	return mace_attr_show(MACE_ATTR_STATS, buf);
}
static struct class_attribute class_attr_stats = __ATTR_RO(stats);

static struct attribute *mace_class_attrs[] = {
	&class_attr_stats.attr,
	NULL,
};

static MACE_BIN_ATTR_CONST struct bin_attribute *const mace_class_bin_attrs[] = {
	&bin_attr_on,
	&bin_attr_outer_devs,
	&bin_attr_tap_end,
	&bin_attr_breakdown,
	NULL,
};

static const struct attribute_group mace_class_group = {
	.attrs = mace_class_attrs,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 13, 0)
	.bin_attrs = mace_class_bin_attrs,
#else
	.bin_attrs = (struct bin_attribute **)mace_class_bin_attrs,
#endif
};

static const struct attribute_group *mace_class_groups[] = {
	&mace_class_group,
	NULL,
};

static const struct class mace_class = {
	.name = "mace",
	.class_groups = mace_class_groups,
};

int mace_class_register(const struct mace_class_ops *ops, void *data)
{
	mace_class_ops = ops;
	mace_class_data = data;
	return class_register(&mace_class);
}

void mace_class_unregister(void)
{
	class_unregister(&mace_class);
}

/* Network device events */

static const struct mace_netdev_ops *mace_netdev;
static void *mace_netdev_data;
/*
 * Set while the notifier is unregistered: unregistering replays
 * NETDEV_UNREGISTER for every device, which is not news to forward.
 */
static bool mace_netdev_closing;

static int mace_netdev_event(struct notifier_block *nb, unsigned long event,
			     void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	enum mace_netdev_event ev;

	if (READ_ONCE(mace_netdev_closing) || !net_eq(dev_net(dev), &init_net))
		return NOTIFY_DONE;
	switch (event) {
	case NETDEV_REGISTER:
		ev = MACE_NETDEV_REGISTER;
		break;
	case NETDEV_UNREGISTER:
		ev = MACE_NETDEV_UNREGISTER;
		break;
	case NETDEV_CHANGENAME:
		ev = MACE_NETDEV_CHANGENAME;
		break;
	default:
		return NOTIFY_DONE;
	}
	mace_netdev->event(mace_netdev_data, ev, dev->ifindex);
	return NOTIFY_DONE;
}

static struct notifier_block mace_netdev_nb = {
	.notifier_call = mace_netdev_event,
};

int mace_netdev_notifier_register(const struct mace_netdev_ops *ops,
				  void *data)
{
	mace_netdev = ops;
	mace_netdev_data = data;
	WRITE_ONCE(mace_netdev_closing, false);
	return register_netdevice_notifier(&mace_netdev_nb);
}

void mace_netdev_notifier_unregister(void)
{
	WRITE_ONCE(mace_netdev_closing, true);
	unregister_netdevice_notifier(&mace_netdev_nb);
}

int mace_init_net_ifindex(const char *name, unsigned long len)
{
	char buf[IFNAMSIZ];
	struct net_device *dev;
	int ifindex = 0;

	if (len >= IFNAMSIZ)
		return 0;
	memcpy(buf, name, len);
	buf[len] = '\0';
	rcu_read_lock();
	dev = dev_get_by_name_rcu(&init_net, buf);
	if (dev && dev->reg_state == NETREG_REGISTERED)
		ifindex = dev->ifindex;
	rcu_read_unlock();
	return ifindex;
}

/* The sweep: deferred work on the system workqueue. */

static struct delayed_work mace_sweep_work;
static const struct mace_sweep_ops *mace_sweep;
static void *mace_sweep_data;
static bool mace_sweep_live;

static void mace_sweep_fn(struct work_struct *work)
{
	unsigned int next;

	rcu_read_lock();
	next = mace_sweep->sweep(mace_sweep_data);
	rcu_read_unlock();
	if (next)
		mace_sweep_schedule(next);
}

int mace_sweep_register(const struct mace_sweep_ops *ops, void *data)
{
	mace_sweep = ops;
	mace_sweep_data = data;
	INIT_DELAYED_WORK(&mace_sweep_work, mace_sweep_fn);
	WRITE_ONCE(mace_sweep_live, true);
	return 0;
}

void mace_sweep_unregister(void)
{
	WRITE_ONCE(mace_sweep_live, false);
	/* Also waits for a run that would schedule itself again. */
	cancel_delayed_work_sync(&mace_sweep_work);
}

void mace_sweep_schedule(unsigned int ms)
{
	if (READ_ONCE(mace_sweep_live))
		queue_delayed_work(system_wq, &mace_sweep_work,
				   msecs_to_jiffies(ms));
}

/* Syscalls and tasks */

static void mace_syscall_mark(unsigned char *kinds, long nr, unsigned char kind)
{
	if (nr >= 0 && nr < MACE_SYSCALL_SLOTS)
		kinds[nr] |= kind;
}

void mace_syscall_kinds(unsigned char *kinds)
{
	/* The one list of the syscalls mace follows. */
	static const long send[] = {
		__NR_sendto, __NR_sendmsg, __NR_sendmmsg, __NR_write, __NR_writev,
	};
	static const long recv[] = {
		__NR_recvfrom, __NR_recvmsg, __NR_recvmmsg, __NR_read, __NR_readv,
	};
	static const long wait[] = {
#ifdef __NR_poll
		__NR_poll,
#endif
#ifdef __NR_select
		__NR_select,
#endif
#ifdef __NR_epoll_wait
		__NR_epoll_wait,
#endif
		__NR_ppoll,	 __NR_pselect6, __NR_epoll_pwait,
#ifdef __NR_epoll_pwait2
		__NR_epoll_pwait2,
#endif
	};
	static const long file[] = {
		__NR_write, __NR_writev, __NR_read, __NR_readv,
	};
	int i;

	memset(kinds, 0, MACE_SYSCALL_SLOTS);
	for (i = 0; i < ARRAY_SIZE(send); i++)
		mace_syscall_mark(kinds, send[i], MACE_SYSCALL_SEND);
	for (i = 0; i < ARRAY_SIZE(recv); i++)
		mace_syscall_mark(kinds, recv[i], MACE_SYSCALL_RECV | MACE_SYSCALL_EXIT);
	for (i = 0; i < ARRAY_SIZE(wait); i++)
		mace_syscall_mark(kinds, wait[i], MACE_SYSCALL_EXIT);
	for (i = 0; i < ARRAY_SIZE(file); i++)
		mace_syscall_mark(kinds, file[i], MACE_SYSCALL_FILE);
}

long mace_syscall_nr(struct pt_regs *regs)
{
	return syscall_get_nr(current, regs);
}

unsigned long mace_syscall_arg0(struct pt_regs *regs)
{
	unsigned long args[6];

	syscall_get_arguments(current, regs, args);
	return args[0];
}

unsigned long mace_fd_sock(unsigned long fd, unsigned long long *tcp_seq)
{
	struct socket *sock;
	struct sock *sk = NULL;
	struct fd f;

	*tcp_seq = 0;
	if (fd > INT_MAX)
		return 0;
	f = fdget(fd);
	if (fd_file(f)) {
		sock = sock_from_file(fd_file(f));
		if (sock)
			sk = READ_ONCE(sock->sk);
		/* Only IP sockets send packets mace can follow. */
		if (sk && sk->sk_family != AF_INET && sk->sk_family != AF_INET6)
			sk = NULL;
		/* The file reference keeps sk alive until fdput(). */
		if (sk && sk_is_tcp(sk))
			*tcp_seq = 1ULL << 32 | READ_ONCE(tcp_sk(sk)->write_seq);
	}
	fdput(f);
	return (unsigned long)sk;
}

/*
 * The wall clock's offset and the clock read: where the timekeeper's
 * notifier stores them.
 */
static long long *mace_real_offset;
static struct mace_clock *mace_clock;

/*
 * Publishes @tk's clock read, or none if @tk is NULL or its clocksource is
 * not the TSC, as raw_write_seqcount_begin() and _end() would, but for
 * none, which leaves the count odd; one writer at a time.
 */
static void mace_clock_publish(const struct timekeeper *tk)
{
	struct mace_clock *c = mace_clock;
	const struct tk_read_base *tkr = tk ? &tk->tkr_mono : NULL;
	unsigned int seq;

	if (!c)
		return;
	seq = c->seq;
	if (!(seq & 1)) {
		WRITE_ONCE(c->seq, ++seq);
		smp_wmb();
	}
	/*
	 * Only the TSC is read inline (its clocksources' read_tsc(), as
	 * rdtsc_ordered(), over all 64 bits); a change of clocksource updates
	 * the timekeeper.
	 */
	if (!IS_ENABLED(CONFIG_X86_64) || !tkr ||
	    (tkr->clock->id != CSID_X86_TSC &&
	     tkr->clock->id != CSID_X86_TSC_EARLY) ||
	    tkr->mask != U64_MAX)
		return;
	c->base = ktime_to_ns(tkr->base);
	c->cycle_last = tkr->cycle_last;
	c->max_cycles = tkr->clock->max_cycles;
	c->xtime_nsec = tkr->xtime_nsec;
	c->mult = tkr->mult;
	c->shift = tkr->shift;
	smp_wmb();
	WRITE_ONCE(c->seq, seq + 1);
}

static int mace_timekeeper_updated(struct notifier_block *nb,
				   unsigned long was_set, void *priv)
{
	const struct timekeeper *tk = priv;

	/* Under the timekeeper's lock: its offs_real is the new one. */
	WRITE_ONCE(*mace_real_offset, ktime_to_ns(tk->offs_real));
	mace_clock_publish(tk);
	return NOTIFY_OK;
}

static struct notifier_block mace_timekeeper_nb = {
	.notifier_call = mace_timekeeper_updated,
};

int mace_real_offset_register(long long *real_offset, struct mace_clock *clock)
{
	mace_real_offset = real_offset;
	mace_clock = clock;
	return pvclock_gtod_register_notifier(&mace_timekeeper_nb);
}

void mace_real_offset_unregister(void)
{
	pvclock_gtod_unregister_notifier(&mace_timekeeper_nb);
	/* The notifier has stopped (under the timekeeper's lock): no stale read. */
	mace_clock_publish(NULL);
}

unsigned long mace_socket_fops(void)
{
	unsigned long fops = 0;
	struct socket *sock;
	struct file *file;

	if (sock_create_kern(&init_net, AF_INET, SOCK_DGRAM, IPPROTO_UDP, &sock))
		return 0;
	/* On failure it releases the socket. */
	file = sock_alloc_file(sock, 0, NULL);
	if (IS_ERR(file))
		return 0;
	if (sock_from_file(file) == sock)
		fops = (unsigned long)file->f_op;
	fput(file);
	return fops;
}

unsigned long mace_current_task(void)
{
	return (unsigned long)current;
}

_Bool mace_in_compat_syscall(void)
{
	return in_compat_syscall();
}

_Bool mace_in_task(void)
{
	return in_task();
}

unsigned int mace_cpu(void)
{
	return raw_smp_processor_id();
}

unsigned int mace_nr_cpu_ids(void)
{
	return nr_cpu_ids;
}

void mace_percpu_addrs(unsigned long *current_task_addr,
		       unsigned long *preempt_count_addr)
{
#if defined(CONFIG_X86_64) && defined(DECLARE_PER_CPU_CACHE_HOT)
	/* 6.15 and later: per-CPU variables of their own. */
	*current_task_addr = (unsigned long)&current_task;
	*preempt_count_addr = (unsigned long)&__preempt_count;
#elif defined(CONFIG_X86_64)
	*current_task_addr = (unsigned long)&pcpu_hot.current_task;
	*preempt_count_addr = (unsigned long)&pcpu_hot.preempt_count;
#else
	*current_task_addr = 0;
	*preempt_count_addr = 0;
#endif
}

unsigned long mace_alloc_percpu(unsigned long size)
{
	return (unsigned long)__alloc_percpu(size, 8);
}

void mace_free_percpu(unsigned long addr)
{
	free_percpu((void __percpu *)addr);
}

void *mace_this_cpu_ptr(unsigned long addr)
{
	return this_cpu_ptr((void __percpu *)addr);
}

void *mace_per_cpu_ptr(unsigned long addr, unsigned int cpu)
{
	if (cpu >= nr_cpu_ids || !cpu_possible(cpu))
		return NULL;
	return per_cpu_ptr((void __percpu *)addr, cpu);
}

unsigned int mace_next_possible_cpu(int prev)
{
	return cpumask_next(prev, cpu_possible_mask);
}

unsigned long mace_this_cpu_off_addr(void)
{
#ifdef CONFIG_X86_64
	return (unsigned long)&this_cpu_off;
#else
	return 0;
#endif
}

void mace_preempt_disable(void)
{
	preempt_disable_notrace();
}

void mace_preempt_enable(void)
{
	preempt_enable_notrace();
}

unsigned int mace_preempt_count(void)
{
	return preempt_count();
}

unsigned long mace_current_pt_regs(void)
{
	return (unsigned long)task_pt_regs(current);
}

long mace_current_syscall_nr(void)
{
	if (current->flags & (PF_KTHREAD | PF_IO_WORKER))
		return -1;
	return syscall_get_nr(current, task_pt_regs(current));
}

long mace_current_syscall(unsigned long *arg0)
{
	struct pt_regs *regs;
	unsigned long args[6];

	*arg0 = 0;
	if (current->flags & (PF_KTHREAD | PF_IO_WORKER))
		return -1;
	regs = task_pt_regs(current);
	syscall_get_arguments(current, regs, args);
	*arg0 = args[0];
	return syscall_get_nr(current, regs);
}

/* Packets and devices */

const void *mace_skb_net_bytes(const struct sk_buff *skb, _Bool from_data,
			       void *buf, unsigned int len,
			       unsigned int *out_len)
{
	const void *p;
	int off, avail;

	*out_len = 0;
	if (from_data) {
		off = 0;
	} else {
		/* A fresh skb's network header is 0 (the head): not set. */
		if (!skb->network_header ||
		    skb_network_header(skb) >= skb_tail_pointer(skb))
			return NULL;
		off = skb_network_offset(skb);
	}
	avail = (int)skb->len - off;
	if (avail <= 0)
		return NULL;
	if ((unsigned int)avail < len)
		len = avail;
	/* Points into the linear part, or copies into buf. */
	p = skb_header_pointer(skb, off, len, buf);
	if (p)
		*out_len = len;
	return p;
}

enum mace_rx_stamp mace_sock_rx_stamp(const struct sock *sk,
				      const struct sk_buff *skb,
				      unsigned long long *mono_ns)
{
	/* As __sock_recv_timestamp() decides what the reader gets. */
	u32 tsflags = READ_ONCE(sk->sk_tsflags);
	bool soft = sock_flag(sk, SOCK_RCVTSTAMP) ||
		    ((tsflags & SOF_TIMESTAMPING_SOFTWARE) &&
		     ((tsflags & SOF_TIMESTAMPING_RX_SOFTWARE) ||
		      !(tsflags & SOF_TIMESTAMPING_OPT_RX_FILTER)));
	ktime_t stamp = skb->tstamp;

	if (!soft)
		return MACE_RX_STAMP_NONE;
	if (!stamp || skb->tstamp_type != SKB_CLOCK_REALTIME)
		return MACE_RX_STAMP_AT_READ;
	/* A CLOCK_REALTIME stamp, on mace's CLOCK_MONOTONIC scale. */
	*mono_ns = ktime_to_ns(ktime_sub(stamp, ktime_mono_to_real(0)));
	return MACE_RX_STAMP_TAKEN;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
const struct list_head *const mace_global_taps;
#else
const struct list_head *const mace_global_taps = &net_hotdata.ptype_all;
#endif

/* Logging */

static DEFINE_RATELIMIT_STATE(mace_log_rs, 5 * HZ, 10);

_Bool mace_log_ratelimit(void)
{
	return __ratelimit(&mace_log_rs);
}

/* Locks */

unsigned long mace_raw_spinlock_size(void)
{
	return sizeof(raw_spinlock_t);
}

void mace_raw_spin_init(struct raw_spinlock *lock)
{
	raw_spin_lock_init(lock);
}

unsigned long mace_raw_spin_lock_irqsave(struct raw_spinlock *lock)
{
	unsigned long flags;

	raw_spin_lock_irqsave(lock, flags);
	return flags;
}

void mace_raw_spin_unlock_irqrestore(struct raw_spinlock *lock,
				     unsigned long flags)
{
	raw_spin_unlock_irqrestore(lock, flags);
}

void mace_cond_resched(void)
{
	cond_resched();
}

