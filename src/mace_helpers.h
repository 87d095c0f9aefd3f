/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C half of mace's kernel layer.
 *
 * The `kernel` crate of the kernels mace supports has no abstractions for
 * attaching probes to tracepoints, class attributes, pernet operations or
 * netdevice notifiers, and many of the kernel facilities mace needs are
 * inline functions or macros that bindgen cannot turn into callable symbols.
 * This header declares a thin set of C helpers (mace_helpers.c) that wrap
 * them, the types of the probes, and the operation tables through which C
 * calls back into Rust.
 *
 * The build runs bindgen over this header (see Kbuild), so the Rust side gets
 * its declarations from here and nowhere else: a change of a signature here
 * is a compile error on both sides instead of a silent ABI mismatch. The
 * probe types are checked against the tracepoints' TP_PROTO by the kernel's
 * own check_trace_callback_type_<name>() in mace_helpers.c, and Rust's
 * probes against these types, so a tracepoint that changes its prototype in
 * a new kernel breaks the build.
 *
 * The header is freestanding on purpose: it uses only C's basic types and
 * incomplete struct declarations, so that bindgen can parse it without the
 * kernel's include paths and compiler flags. Differences between kernel
 * versions live in mace_helpers.c, never here.
 */
#ifndef MACE_HELPERS_H
#define MACE_HELPERS_H

struct net;
struct net_device;
struct pt_regs;
struct sk_buff;
struct raw_spinlock;
struct file;

/* Hooks: tracepoints, and one kernel function. */

struct sock;

/**
 * The hooks mace attaches probes to: seven tracepoints, and five kernel
 * functions through the function tracer (ftrace). skb_consume_udp(): no
 * tracepoint sees a UDP datagram handed to its reader on every kernel mace
 * supports (6.12 frees it with the consume_skb tracepoint, newer kernels
 * without, in skb_attempt_defer_free()). __neigh_event_send(): a packet
 * that waits for its neighbour to be resolved is queued there in its
 * sender's context, and reaches net_dev_queue only later, from a softirq.
 * packet_poll() and packet_recvmsg(): a task waits for or reads a packet
 * socket (libpcap), which no tracepoint shows. __consume_stateless_skb(): a
 * UDP datagram reaches its reader where the compiler inlined
 * skb_consume_udp() into udp_recvmsg() (6.12 built with -O2), and is freed
 * there. The tracepoint sk_data_ready
 * fires for every socket: its probe sees packet sockets only (filtered in C).
 *
 * A task's send syscalls and its sockets' receives are followed either on
 * the syscall tracepoints (sys_enter, sys_exit), which send every syscall of
 * every task through the syscall slow path while registered, or on the
 * socket calls (MACE_HOOK_SEND_CALLS: the native send syscalls' entry
 * points and sock_write_iter() through one ftrace_ops, whose probe gets
 * sys_enter's arguments; MACE_HOOK_SOCK_RECV_LENGTH: the tracepoint at the
 * end of sock_recvmsg(), whose probe finds the task's registers itself),
 * which only those calls pay for.
 */
enum mace_hook {
	MACE_HOOK_SYS_ENTER = 0,
	MACE_HOOK_SYS_EXIT = 1,
	MACE_HOOK_NET_DEV_QUEUE = 2,
	MACE_HOOK_NET_DEV_START_XMIT = 3,
	MACE_HOOK_NETIF_RECEIVE_SKB = 4,
	MACE_HOOK_SKB_COPY_DATAGRAM_IOVEC = 5,
	MACE_HOOK_SKB_CONSUME_UDP = 6,
	MACE_HOOK_NEIGH_EVENT_SEND = 7,
	MACE_HOOK_PACKET_POLL = 8,
	MACE_HOOK_PACKET_RECVMSG = 9,
	MACE_HOOK_SK_DATA_READY = 10,
	MACE_HOOK_CONSUME_STATELESS_SKB = 11,
	MACE_HOOK_SEND_CALLS = 12,
	MACE_HOOK_SOCK_RECV_LENGTH = 13,
	/** Number of hooks. */
	MACE_HOOKS = 14,
};

/*
 * The probe of each hook: the tracepoint's TP_PROTO with the probe's data
 * pointer first (include/trace/events/{syscalls,net,skb}.h), and for the
 * functions the arguments mace reads.
 */
typedef void (*mace_sys_enter_probe)(void *data, struct pt_regs *regs,
				     long id);
typedef void (*mace_sys_exit_probe)(void *data, struct pt_regs *regs,
				    long ret);
typedef void (*mace_net_dev_queue_probe)(void *data, struct sk_buff *skb);
typedef void (*mace_net_dev_start_xmit_probe)(void *data,
					      const struct sk_buff *skb,
					      const struct net_device *dev);
typedef void (*mace_netif_receive_skb_probe)(void *data, struct sk_buff *skb);
typedef void (*mace_skb_copy_datagram_iovec_probe)(void *data,
						   const struct sk_buff *skb,
						   int len);
typedef void (*mace_skb_consume_udp_probe)(void *data, struct sock *sk,
					   struct sk_buff *skb);
typedef void (*mace_neigh_event_send_probe)(void *data, struct sk_buff *skb);
typedef void (*mace_consume_stateless_skb_probe)(void *data,
						 struct sk_buff *skb);
typedef void (*mace_sock_recv_length_probe)(void *data, struct sock *sk,
					    int ret, int flags);
/*
 * packet_poll() and packet_recvmsg(), and sk_data_ready for packet sockets:
 * the packet socket's struct sock.
 */
typedef void (*mace_packet_read_probe)(void *data, struct sock *sk);
/*
 * packet_poll(): the packet socket's struct sock, and whether this is the
 * first pass of a poll() or select() over its files (a wait's start; the
 * later passes come after wakeups).
 */
typedef void (*mace_packet_poll_probe)(void *data, struct sock *sk,
				       _Bool first);

/** The name of @hook's tracepoint or function, or NULL for a bad @hook. */
const char *mace_hook_name(enum mace_hook hook);
/**
 * Registers @probe (of @hook's probe type) with @data on @hook. Returns 0,
 * -ENOENT if this kernel has no such tracepoint, -EBUSY if the function hook
 * is registered already, -EOPNOTSUPP for a function hook on a kernel
 * without the dynamic function tracer, or another errno.
 */
int mace_hook_register(enum mace_hook hook, void *probe, void *data);
/** Unregisters what mace_hook_register() registered. */
int mace_hook_unregister(enum mace_hook hook, void *probe, void *data);
/**
 * Whether this kernel and build can follow sends and receives on the socket
 * calls (MACE_HOOK_SEND_CALLS, MACE_HOOK_SOCK_RECV_LENGTH): x86-64, the
 * dynamic function tracer with arguments, and the sock_recv_length
 * tracepoint (6.3).
 */
_Bool mace_socket_calls_supported(void);
/**
 * Registers @probe with @data on sk_data_ready for IP sockets (AF_INET,
 * AF_INET6) only, filtered in C: a waypoint of `breakdown`, the moment a
 * received packet joins its socket's queue. Returns 0, -EBUSY if it is
 * registered already, -ENOENT if this kernel has no such tracepoint
 * (before 6.3), or another errno.
 */
int mace_ready_ip_register(mace_packet_read_probe probe, void *data);
/** Unregisters what mace_ready_ip_register() registered. */
int mace_ready_ip_unregister(void);
/**
 * Waits until no probe unregistered before the call can still be running
 * (tracepoint_synchronize_unregister()).
 */
void mace_tp_sync(void);

/* RCU. */

/** rcu_read_lock(). */
void mace_rcu_read_lock(void);
/** rcu_read_unlock(). */
void mace_rcu_read_unlock(void);
/** get_state_synchronize_rcu(): a cookie for the grace period to come. */
unsigned long mace_rcu_cookie(void);
/**
 * cond_synchronize_rcu(): waits until a full grace period has elapsed
 * since @cookie was taken, at once if one has (process context).
 */
void mace_rcu_cond_sync(unsigned long cookie);

/* Module parameters (declared in C, validated by Rust at init). */

/** Value of the `outer_dev` parameter, never NULL. */
const char *mace_param_outer_dev(void);
/** Value of the `table_size` parameter. */
unsigned int mace_param_table_size(void);
/** Value of the `ring_size` parameter. */
unsigned int mace_param_ring_size(void);
/** Value of the `max_age_ms` parameter. */
unsigned int mace_param_max_age_ms(void);
/** Value of the `self_cost` parameter. */
_Bool mace_param_self_cost(void);
/** Value of the `max_netns_per_user` parameter. */
unsigned int mace_param_max_netns_per_user(void);
/** Value of the `peer_window_ms` parameter. */
unsigned int mace_param_peer_window_ms(void);
/** Value of the `syscall_tracepoints` parameter. */
_Bool mace_param_syscall_tracepoints(void);

/* Network namespaces: pernet operations. */

/**
 * struct mace_pernet_ops - the Rust side of mace's pernet operations.
 *
 * Every callback runs in process context and may sleep; @data is what
 * mace_pernet_register() was given.
 */
struct mace_pernet_ops {
	/**
	 * @init: a network namespace is created (or exists when the
	 * operations are registered). Store its state in *@state. Returns 0 or
	 * a negative errno.
	 */
	int (*init)(void *data, struct net *net, void **state);
	/**
	 * @pre_exit: the namespace is going away. Its state stays readable
	 * until an RCU grace period after the namespace's exit.
	 */
	void (*pre_exit)(void *data, struct net *net, void *state);
	/**
	 * @release: free a state that init stored; called once per state,
	 * when no RCU reader can still find it in the namespace's slot.
	 */
	void (*release)(void *state);
	/**
	 * @exit_batch: a batch of namespaces has exited, and a grace period
	 * has elapsed since their pre_exit (called before their release).
	 */
	void (*exit_batch)(void *data);
};

/**
 * struct mace_net_slot - what mace keeps in every namespace: its generic
 * pointer of mace's pernet id (net_generic()) points to one.
 *
 * Probes find a namespace's state without calling C: net->gen->ptr[id],
 * then @state, read once (src/ffi/net.rs, with the offsets of
 * mace_offsets.c).
 */
struct mace_net_slot {
	/**
	 * @state: the state init stored, or NULL while there is none (the
	 * namespace is exiting). Written with WRITE_ONCE(); an RCU read-side
	 * critical section keeps a non-NULL state alive.
	 */
	void *state;
	/**
	 * @retired: the state of an exiting namespace, released after the
	 * grace period that follows its exit (C only).
	 */
	void *retired;
};

/**
 * Registers the pernet operations; calls @ops->init for every namespace and
 * sets *@id to mace's pernet id (the index of its slot in every namespace's
 * generic pointers; it stays the same until mace_pernet_unregister()).
 * At exit, a namespace's state is first hidden (its slot's state set to
 * NULL), then released after an RCU grace period (once per batch of
 * namespaces).
 */
int mace_pernet_register(const struct mace_pernet_ops *ops, void *data,
			 unsigned int *id);
/** Unregisters them; pre_exit and release run for every namespace. */
void mace_pernet_unregister(void);

/* /dev/mace and /dev/mace-hist: misc devices. */

/* The misc devices: /dev/mace (latency records), /dev/mace-hist (histograms). */
#define MACE_MISC_RECORDS 0
#define MACE_MISC_HIST 1
#define MACE_MISC_COUNT 2

/**
 * struct mace_file_ops - the Rust side of a misc device's file operations.
 *
 * Every callback runs in process context and may sleep.
 */
struct mace_file_ops {
	/**
	 * @open: the device is opened. Store the open file's state in *@priv.
	 * Returns 0 or a negative errno.
	 */
	int (*open)(void *data, void **priv);
	/**
	 * @read: read(2) into the user buffer @ubuf of @len bytes. Returns the
	 * bytes read or a negative errno.
	 */
	long (*read)(void *priv, void *ubuf, unsigned long len);
	/** @release: the last reference to the open file is gone. */
	void (*release)(void *priv);
};

/**
 * copy_to_user() of @len bytes at @src to the user address @ubuf: the number
 * of bytes that could not be copied (0 on success).
 */
unsigned long mace_copy_to_user(void *ubuf, const void *src,
				unsigned long len);
/**
 * Creates misc device @index (MACE_MISC_*) with @ops, which get @data at
 * open. Returns 0 or a negative errno (-EINVAL for an unknown @index).
 */
int mace_misc_register(unsigned int index, const struct mace_file_ops *ops,
		       void *data);
/** Removes misc device @index; its open files stay valid. */
void mace_misc_deregister(unsigned int index);

/* /sys/class/mace. */

/** Attributes of the `mace` class, i.e. the files in /sys/class/mace/. */
enum mace_attr {
	/** `on`: capture switch of the caller's network namespace. */
	MACE_ATTR_ON = 0,
	/** `outer_devs`: the outer devices (host NICs), global. */
	MACE_ATTR_OUTER_DEVS = 1,
	/** `stats`: counters of the caller's network namespace. */
	MACE_ATTR_STATS = 2,
	/** `tap_end`: where packet-socket readers' windows end, per namespace. */
	MACE_ATTR_TAP_END = 3,
	/** `breakdown`: whether latencies are split into segments, per namespace. */
	MACE_ATTR_BREAKDOWN = 4,
};

/**
 * struct mace_class_ops - the Rust side of the class attributes.
 *
 * Every callback runs in process context and may sleep.
 */
struct mace_class_ops {
	/**
	 * @show: read of @attr into @buf (a page of @size bytes). Returns the
	 * bytes written or a negative errno.
	 */
	long (*show)(void *data, enum mace_attr attr, char *buf,
		     unsigned long size);
	/**
	 * @store: write of @len bytes at @buf to @attr through @opener, the
	 * open file (for its opener's credentials). Returns @len or a
	 * negative errno.
	 */
	long (*store)(void *data, enum mace_attr attr,
		      const struct file *opener, const char *buf,
		      unsigned long len);
};

/** Creates the class `mace` and its attribute files. */
int mace_class_register(const struct mace_class_ops *ops, void *data);
/** Removes the attribute files and the class. */
void mace_class_unregister(void);

/* Network devices. */

/** Network device events mace follows. */
enum mace_netdev_event {
	MACE_NETDEV_REGISTER = 0,
	MACE_NETDEV_UNREGISTER = 1,
	MACE_NETDEV_CHANGENAME = 2,
};

/** struct mace_netdev_ops - the Rust side of the netdevice notifier. */
struct mace_netdev_ops {
	/**
	 * @event: a device of the initial network namespace was registered,
	 * renamed or is being unregistered (RTNL is held).
	 */
	void (*event)(void *data, enum mace_netdev_event event, int ifindex);
};

/** Follows network devices (replays REGISTER for the existing ones). */
int mace_netdev_notifier_register(const struct mace_netdev_ops *ops,
				  void *data);
/** Stops following network devices. */
void mace_netdev_notifier_unregister(void);

/**
 * The ifindex of the device called @name (@len bytes, not NUL-terminated)
 * in the initial network namespace, or 0.
 */
int mace_init_net_ifindex(const char *name, unsigned long len);

/* Deferred work: one sweep, run in process context. */

/** struct mace_sweep_ops - the Rust side of the sweep. */
struct mace_sweep_ops {
	/**
	 * @sweep: runs in process context, in an RCU read-side critical
	 * section (it must not sleep). Returns in how many ms to run again, or
	 * 0 to stop until mace_sweep_schedule().
	 */
	unsigned int (*sweep)(void *data);
};

/** Sets the sweep up; it runs only once scheduled. */
int mace_sweep_register(const struct mace_sweep_ops *ops, void *data);
/** Stops the sweep and waits until it does not run any more. */
void mace_sweep_unregister(void);
/**
 * Runs the sweep in @ms milliseconds unless it is scheduled already.
 * Callable in any context; does nothing while the sweep is not registered.
 */
void mace_sweep_schedule(unsigned int ms);

/* Syscalls and tasks. */

/** How many syscall numbers mace_syscall_kinds() describes. */
enum { MACE_SYSCALL_SLOTS = 512 };

/** What mace does with a syscall: bits of its byte in mace_syscall_kinds(). */
enum {
	/** It sends (on a socket, or a file for write and writev). */
	MACE_SYSCALL_SEND = 1,
	/** It receives (on a socket, or a file for read and readv). */
	MACE_SYSCALL_RECV = 2,
	/**
	 * Its return is looked at: the receives, and the waits for a file to
	 * become readable (poll, select, epoll).
	 */
	MACE_SYSCALL_EXIT = 4,
	/** It takes any file, not only a socket (write, read, their vector forms). */
	MACE_SYSCALL_FILE = 8,
};

/**
 * Fills @kinds, MACE_SYSCALL_SLOTS bytes, with the MACE_SYSCALL_* bits of
 * each of this kernel's syscall numbers (a number beyond is left out).
 */
void mace_syscall_kinds(unsigned char *kinds);
/**
 * The number of the syscall the current task entered or leaves, given the
 * registers its syscall tracepoint passed (syscall_get_nr()).
 */
long mace_syscall_nr(struct pt_regs *regs);
/** The first argument of that syscall (syscall_get_arguments()). */
unsigned long mace_syscall_arg0(struct pt_regs *regs);
/**
 * The socket (its struct sock, as a number) behind file descriptor @fd of
 * the current task, or 0 if @fd is not an IPv4 or IPv6 socket. If it is a TCP socket,
 * *@tcp_seq is set to 1 << 32 | its write_seq (the sequence number of the
 * next byte written to it), else to 0.
 */
unsigned long mace_fd_sock(unsigned long fd, unsigned long long *tcp_seq);
/**
 * The file operations of a socket's file (net/socket.c's socket_file_ops,
 * which sock_from_file() tells sockets by and which is not exported), as a
 * number, read from a socket made and released here; 0 if none could be
 * made. Process context only: it may sleep.
 */
unsigned long mace_socket_fops(void);
/**
 * struct mace_clock - What ktime_get() computes CLOCK_MONOTONIC from (its
 * timekeeper's tk_read_base), as the timekeeper last published it:
 * base + (((tsc - cycle_last) * mult + xtime_nsec) >> shift), for a TSC
 * delta up to max_cycles (beyond it, ktime_get() takes a slow path; the
 * TSC's mask is all 64 bits). @seq is a sequence count
 * (raw_write_seqcount_begin() and _end()'s): odd while the fields are
 * written, and while none is published (the clocksource is not the TSC, or
 * the timekeeper is not followed); a reader uses what it read only if @seq
 * was even and has not moved meanwhile.
 */
struct mace_clock {
	unsigned int seq;
	unsigned int mult;
	unsigned int shift;
	unsigned long long base;
	unsigned long long cycle_last;
	unsigned long long max_cycles;
	unsigned long long xtime_nsec;
};
/**
 * Follows the timekeeper (pvclock_gtod_register_notifier()): at each of its
 * updates, and once now, stores CLOCK_REALTIME less CLOCK_MONOTONIC (its
 * offs_real, in ns) at @real_offset with one 64-bit store, so that a
 * monotonic time is made wall-clock time with an addition, as
 * ktime_mono_to_any() makes it, and publishes its clock read in @clock (if
 * not NULL), so that CLOCK_MONOTONIC is read from the TSC without a call.
 * 0 or an errno.
 */
int mace_real_offset_register(long long *real_offset, struct mace_clock *clock);
/**
 * Stops following the timekeeper; no store runs after it returns but the
 * last one, which leaves the clock read's count odd: none is published.
 */
void mace_real_offset_unregister(void);
/** A number that identifies the current task while it lives. */
unsigned long mace_current_task(void);
/** Whether the current task is in a 32-bit compat syscall. */
_Bool mace_in_compat_syscall(void);
/** Whether the CPU runs a task (not an interrupt or softirq): in_task(). */
_Bool mace_in_task(void);
/** The current CPU's number (raw_smp_processor_id()). */
unsigned int mace_cpu(void);
/** The number of possible CPU ids (nr_cpu_ids): every CPU's number is below. */
unsigned int mace_nr_cpu_ids(void);
/**
 * The per-CPU addresses (what a %gs-relative load reads this CPU's copy at,
 * as this_cpu_read() does) of the current task pointer (*@current_task)
 * and of the preempt count (*@preempt_count), on x86_64; 0 on others.
 */
void mace_percpu_addrs(unsigned long *current_task,
		       unsigned long *preempt_count);
/**
 * Allocates @size bytes per CPU, zeroed, aligned to 8 bytes: the per-CPU
 * address (what a %gs-relative access reaches this CPU's copy at on
 * x86_64, what mace_this_cpu_ptr() takes elsewhere), or 0. Process context.
 */
unsigned long mace_alloc_percpu(unsigned long size);
/** Frees what mace_alloc_percpu() returned (0: nothing). */
void mace_free_percpu(unsigned long addr);
/** This CPU's copy of the per-CPU allocation @addr (this_cpu_ptr()). */
void *mace_this_cpu_ptr(unsigned long addr);
/**
 * CPU @cpu's copy of the per-CPU allocation @addr (per_cpu_ptr()), or NULL
 * if @cpu is no possible CPU. Any context.
 */
void *mace_per_cpu_ptr(unsigned long addr, unsigned int cpu);
/**
 * The first possible CPU after @prev (-1: the first of all), or at least
 * mace_nr_cpu_ids() if there is none (cpumask_next()).
 */
unsigned int mace_next_possible_cpu(int prev);
/**
 * The per-CPU address of this_cpu_off, what this_cpu_ptr() adds to a
 * per-CPU address (a %gs-relative load reads this CPU's), on x86_64; 0 on
 * others.
 */
unsigned long mace_this_cpu_off_addr(void);
/** preempt_disable_notrace(): a probe that may be preempted pins its CPU. */
void mace_preempt_disable(void);
/** preempt_enable_notrace(), after mace_preempt_disable(). */
void mace_preempt_enable(void);
/** preempt_count(), to check an inline read of it against. */
unsigned int mace_preempt_count(void);
/** task_pt_regs(current), to check an inline computation of it against. */
unsigned long mace_current_pt_regs(void);
/**
 * The number of the syscall the current task is in, or -1 (kernel threads,
 * or not in a syscall). Meaningful only in task context.
 */
long mace_current_syscall_nr(void);
/**
 * The number of the syscall the current task is in, or -1, as
 * mace_current_syscall_nr(); its first argument in @arg0 (0 with -1).
 */
long mace_current_syscall(unsigned long *arg0);

/* Packets and devices. */

/**
 * The first @len bytes (or fewer, as far as the packet goes) of @skb from
 * its network header on (from skb->data on if @from_data): a pointer into
 * the skb when they are in its linear part, else a copy in @buf. Sets
 * *@out_len to their number (0, and returns NULL, if the skb has no network
 * header). Callable in any context. Skb::net_bytes() computes the same
 * without calling C when the bytes are in the linear part (src/ffi/skb.rs),
 * and calls this for the others: keep the two in step.
 */
const void *mace_skb_net_bytes(const struct sk_buff *skb, _Bool from_data,
			       void *buf, unsigned int len,
			       unsigned int *out_len);
/*
 * skb->sk, skb->dev, skb->head, the GSO size, the bytes above when they are
 * in the skb's linear part, a device's ifindex and namespace and a socket's
 * namespace are read without calling C, at the offsets of mace_offsets.c
 * (src/ffi/skb.rs).
 */

/** What mace_sock_rx_stamp() found. */
enum mace_rx_stamp {
	/** @sk reads no software receive timestamp. */
	MACE_RX_STAMP_NONE = 0,
	/** It will: @skb has none yet, so the read stamps it (now). */
	MACE_RX_STAMP_AT_READ = 1,
	/** It will read @skb's stamp, taken at *@mono_ns (CLOCK_MONOTONIC). */
	MACE_RX_STAMP_TAKEN = 2,
};

/**
 * Whether a read of @skb from @sk returns a software receive timestamp to
 * the reader (SO_TIMESTAMP, SO_TIMESTAMPNS, or SO_TIMESTAMPING with software
 * receive stamps, old or new variants), and which: the stamp @skb carries
 * (taken when the packet entered the reader's namespace), or one the read
 * will take.
 */
enum mace_rx_stamp mace_sock_rx_stamp(const struct sock *sk,
				      const struct sk_buff *skb,
				      unsigned long long *mono_ns);
/**
 * The list of the packet taps that see every device's packets (packet
 * sockets for all protocols bound to no device), the first of the two lists
 * dev_nit_active() looks at, which Dev::has_taps() reads inline: the
 * kernel's one list up to 6.14 (net_hotdata's), NULL from 6.15, where each
 * namespace has its own (struct net's ptype_all, NET_PTYPE_ALL in
 * src/mace_offsets.c).
 */
extern const struct list_head *const mace_global_taps;

/* Network namespaces. */

/**
 * The initial network namespace (exported by the kernel): without
 * CONFIG_NET_NS, every device and socket is in it. Net::is_init() compares
 * with its address, which the module loader resolves once.
 */
extern struct net init_net;
/** Takes a reference to @net. */
void mace_net_get(struct net *net);
/** Drops a reference taken by mace_net_get(). */
void mace_net_put(struct net *net);
/** The inode number of @net, as shown by `ls -l /proc/self/ns/net`. */
unsigned int mace_net_inum(const struct net *net);
/**
 * Whether the caller has CAP_NET_ADMIN over the user namespace that owns
 * @net.
 */
_Bool mace_net_capable(const struct net *net);
/**
 * Whether whoever opened @file had CAP_NET_ADMIN over the user namespace
 * owning @net (file_ns_capable()).
 */
_Bool mace_net_opener_capable(const struct net *net, const struct file *file);
/**
 * The user (uid in the initial user namespace) who created the outermost
 * user namespace above the one owning @net; -1 if the initial user namespace
 * owns @net.
 */
long long mace_net_owner_uid(const struct net *net);

/* Logging. */

/**
 * Whether a message about bad user input may be logged now (at most 10
 * every 5 seconds, shared by all such messages of mace).
 */
_Bool mace_log_ratelimit(void);

/* Locks. */

/** Size in bytes of a raw_spinlock_t in this kernel configuration. */
unsigned long mace_raw_spinlock_size(void);
/** Initializes the raw spinlock at @lock (all share one lockdep class). */
void mace_raw_spin_init(struct raw_spinlock *lock);
/** raw_spin_lock_irqsave(); returns the saved interrupt flags. */
unsigned long mace_raw_spin_lock_irqsave(struct raw_spinlock *lock);
/** raw_spin_unlock_irqrestore() with the flags from the matching lock. */
void mace_raw_spin_unlock_irqrestore(struct raw_spinlock *lock,
				     unsigned long flags);
/** cond_resched(): lets other tasks run (process context). */
void mace_cond_resched(void);

#endif /* MACE_HELPERS_H */
