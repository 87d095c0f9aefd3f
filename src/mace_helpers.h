/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C half of mace's FFI layer.
 *
 * The 6.12 `kernel` crate has no abstractions for tracepoints, misc devices,
 * class attributes, pernet operations or module parameters, and many of the
 * kernel facilities mace needs are inline functions or macros that bindgen
 * cannot turn into callable symbols.  This header declares a thin set of C
 * helpers (mace_helpers.c) that wrap them, plus the table of callbacks the
 * Rust side implements.
 *
 * The build runs bindgen over this header (see Kbuild), so the Rust side gets
 * its declarations from here and nowhere else: a change of a signature here
 * is a compile error on both sides instead of a silent ABI mismatch.
 *
 * The header is freestanding on purpose: it uses only C's basic types and
 * incomplete struct declarations, so that bindgen can parse it without the
 * kernel's include paths and compiler flags.
 */
#ifndef MACE_HELPERS_H
#define MACE_HELPERS_H

struct file;
struct net;
struct net_device;
struct sk_buff;
struct spinlock;

/** Attributes of the `mace` class, i.e. the files in /sys/class/mace/. */
enum mace_attr {
	/** `on`: capture switch of the caller's network namespace. */
	MACE_ATTR_ON = 0,
	/** `outer_devs`: the outer devices (host NICs), global. */
	MACE_ATTR_OUTER_DEVS = 1,
	/** `stats`: counters of the caller's network namespace. */
	MACE_ATTR_STATS = 2,
};

/** Network device events mace follows (see mace_callbacks.netdev_event). */
enum mace_netdev_event {
	MACE_NETDEV_REGISTER = 0,
	MACE_NETDEV_UNREGISTER = 1,
	MACE_NETDEV_CHANGENAME = 2,
};

/**
 * struct mace_callbacks - what the Rust side implements.
 *
 * Defined in Rust as the symbol `mace_rust_callbacks`.  Every callback runs
 * in process context and may sleep.
 */
struct mace_callbacks {
	/**
	 * @net_init: a network namespace is created (or exists when the module
	 * loads).  Store the namespace's state in *@state.  Returns 0 or a
	 * negative errno.
	 */
	int (*net_init)(struct net *net, void **state);
	/**
	 * @net_pre_exit: the namespace is going away; an RCU grace period
	 * follows before @net_exit is called.
	 */
	void (*net_pre_exit)(struct net *net, void *state);
	/** @net_exit: free the namespace's state. */
	void (*net_exit)(struct net *net, void *state);
	/**
	 * @dev_open: /dev/mace is opened.  Store the per-open-file state in
	 * *@priv.  Returns 0 or a negative errno.
	 */
	int (*dev_open)(void **priv);
	/**
	 * @dev_read: read(2) of /dev/mace into the user buffer @ubuf of @len
	 * bytes.  Returns the bytes read or a negative errno.
	 */
	long (*dev_read)(void *priv, void *ubuf, unsigned long len);
	/** @dev_release: the last reference to an open /dev/mace is gone. */
	void (*dev_release)(void *priv);
	/**
	 * @attr_show: read of a class attribute into @buf (a page of
	 * @size bytes).  Returns the bytes written or a negative errno.
	 */
	long (*attr_show)(enum mace_attr attr, char *buf, unsigned long size);
	/**
	 * @attr_store: write of @len bytes at @buf to a class attribute.
	 * Returns @len or a negative errno.
	 */
	long (*attr_store)(enum mace_attr attr, const char *buf,
			   unsigned long len);
	/**
	 * @netdev_event: a device of the initial network namespace was
	 * registered, renamed or is being unregistered (RTNL is held).
	 */
	void (*netdev_event)(enum mace_netdev_event event, int ifindex);
};

/** Numbers of the syscalls that send and receive on sockets. */
struct mace_syscalls {
	long sendto;
	long sendmsg;
	long sendmmsg;
	long write;
	long writev;
	long recvfrom;
	long recvmsg;
	long recvmmsg;
	long read;
	long readv;
};

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

/* Registrations; each register has its unregister. */

/** Registers pernet operations; calls net_init for every existing netns. */
int mace_pernet_register(void);
/** Unregisters pernet operations; calls net_exit for every netns. */
void mace_pernet_unregister(void);
/** Creates the misc device /dev/mace. */
int mace_misc_register(void);
/** Removes /dev/mace. */
void mace_misc_deregister(void);
/** Creates the class `mace` and its attribute files. */
int mace_class_register(void);
/** Removes the attribute files and the class. */
void mace_class_unregister(void);
/** Follows network devices (replays REGISTER for the existing ones). */
int mace_netdev_notifier_register(void);
/** Stops following network devices. */
void mace_netdev_notifier_unregister(void);

/* Tracepoints. */

/**
 * Registers @probe with @data on the kernel tracepoint called @name.
 * Returns 0, -ENOENT if there is no such tracepoint, or another errno.
 */
int mace_tp_register(const char *name, void *probe, void *data);
/** Unregisters what mace_tp_register() registered. */
int mace_tp_unregister(const char *name, void *probe, void *data);
/**
 * Waits until no probe unregistered before the call can still be running
 * (tracepoint_synchronize_unregister()).
 */
void mace_tp_sync(void);

/* Syscalls and tasks. */

/** Fills @out with this kernel's syscall numbers. */
void mace_syscall_numbers(struct mace_syscalls *out);
/**
 * The socket (its struct sock, as a number) behind file descriptor @fd of
 * the current task, or 0 if @fd is not a socket. If it is a TCP socket,
 * *@tcp_seq is set to 1 << 32 | its write_seq (the sequence number of the
 * next byte written to it), else to 0.
 */
unsigned long mace_fd_sock(unsigned long fd, unsigned long long *tcp_seq);
/** A number that identifies the current task while it lives. */
unsigned long mace_current_task(void);
/** The current task's thread id in the initial pid namespace. */
int mace_current_tid(void);
/** Whether the CPU runs a task (not an interrupt or softirq): in_task(). */
_Bool mace_in_task(void);
/**
 * The number of the syscall the current task is in, or -1 (kernel threads,
 * or not in a syscall).  Meaningful only in task context.
 */
long mace_current_syscall_nr(void);

/* Packets and devices. */

/**
 * The first @len bytes (or fewer, as far as the packet goes) of @skb from
 * its network header on (from skb->data on if @from_data): a pointer into
 * the skb when they are in its linear part, else a copy in @buf.  Sets
 * *@out_len to their number (0, and returns NULL, if the skb has no network
 * header).  Callable in any context.
 */
const void *mace_skb_net_bytes(const struct sk_buff *skb, _Bool from_data,
			       void *buf, unsigned int len,
			       unsigned int *out_len);
/** The socket that owns @skb (skb->sk, as a number), or 0. */
unsigned long mace_skb_sock(const struct sk_buff *skb);
/** The device @skb is on (skb->dev). */
const struct net_device *mace_skb_dev(const struct sk_buff *skb);
/** The ifindex of @dev. */
int mace_dev_ifindex(const struct net_device *dev);
/** The network namespace of @dev. */
struct net *mace_dev_net(const struct net_device *dev);
/**
 * The ifindex of the device called @name (@len bytes, not NUL-terminated)
 * in the initial network namespace, or 0.
 */
int mace_init_net_ifindex(const char *name, unsigned long len);

/* Network namespaces. */

/**
 * The current task's network namespace, without taking a reference; NULL for
 * an exiting task.  In interrupt context, that of the interrupted task.
 */
struct net *mace_current_net(void);
/** The current task's network namespace, with a reference taken, or NULL. */
struct net *mace_current_net_get(void);
/** Drops a reference taken by mace_current_net_get(). */
void mace_net_put(struct net *net);
/** The state net_init stored for @net. */
void *mace_net_state(const struct net *net);
/** The inode number of @net, as shown by `ls -l /proc/self/ns/net`. */
unsigned int mace_net_inum(const struct net *net);
/** Whether @net is the initial network namespace. */
_Bool mace_net_is_init(const struct net *net);
/**
 * Whether the caller has CAP_NET_ADMIN over the user namespace that owns
 * @net.
 */
_Bool mace_net_capable(const struct net *net);

/* Time. */

/** Monotonic clock (CLOCK_MONOTONIC) in nanoseconds. */
unsigned long long mace_mono_ns(void);
/** Wall clock (CLOCK_REALTIME) in nanoseconds. */
unsigned long long mace_real_ns(void);

/* Logging. */

/**
 * Whether a message about bad user input may be logged now (at most 10
 * every 5 seconds, shared by all such messages of mace).
 */
_Bool mace_log_ratelimit(void);

/* Locks. */

/** Size in bytes of a spinlock_t in this kernel configuration. */
unsigned long mace_spinlock_size(void);
/** Initializes the spinlock at @lock (all share one lockdep class). */
void mace_spin_init(struct spinlock *lock);
/** spin_lock_irqsave(); returns the saved interrupt flags. */
unsigned long mace_spin_lock_irqsave(struct spinlock *lock);
/** spin_unlock_irqrestore() with the flags from the matching lock. */
void mace_spin_unlock_irqrestore(struct spinlock *lock, unsigned long flags);

#endif /* MACE_HELPERS_H */
