// SPDX-License-Identifier: GPL-2.0
/*
 * The C half of mace's FFI layer: static kernel structures and thin wrappers
 * of inline functions and macros that Rust cannot call.  No logic lives here;
 * every callback forwards to the Rust side through mace_rust_callbacks.
 */

#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/device/class.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/netdevice.h>
#include <linux/net.h>
#include <linux/nsproxy.h>
#include <linux/ratelimit.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/tracepoint.h>
#include <linux/user_namespace.h>
#include <net/net_namespace.h>
#include <net/tcp.h>
#include <net/netns/generic.h>
#include <asm/syscall.h>
#include <asm/unistd.h>

#include "mace_helpers.h"

extern const struct mace_callbacks mace_rust_callbacks;
#define CB (&mace_rust_callbacks)

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

/* Per-network-namespace state: the generic slot holds a pointer to Rust's. */

static unsigned int mace_net_id;

static int mace_net_init(struct net *net)
{
	return CB->net_init(net, net_generic(net, mace_net_id));
}

static void mace_net_pre_exit(struct net *net)
{
	CB->net_pre_exit(net, *(void **)net_generic(net, mace_net_id));
}

static void mace_net_exit(struct net *net)
{
	CB->net_exit(net, *(void **)net_generic(net, mace_net_id));
}

static struct pernet_operations mace_net_ops = {
	.init = mace_net_init,
	.pre_exit = mace_net_pre_exit,
	.exit = mace_net_exit,
	.id = &mace_net_id,
	.size = sizeof(void *),
};

int mace_pernet_register(void)
{
	return register_pernet_subsys(&mace_net_ops);
}

void mace_pernet_unregister(void)
{
	unregister_pernet_subsys(&mace_net_ops);
}

void *mace_net_state(const struct net *net)
{
	return *(void **)net_generic(net, mace_net_id);
}

struct net *mace_current_net(void)
{
	/* Only the task itself changes its nsproxy; an exiting task has none. */
	struct nsproxy *nsproxy = current->nsproxy;

	return nsproxy ? nsproxy->net_ns : NULL;
}

struct net *mace_current_net_get(void)
{
	struct net *net = mace_current_net();

	return net ? get_net(net) : NULL;
}

void mace_net_put(struct net *net)
{
	put_net(net);
}

unsigned int mace_net_inum(const struct net *net)
{
	return net->ns.inum;
}

_Bool mace_net_is_init(const struct net *net)
{
	return net_eq(net, &init_net);
}

_Bool mace_net_capable(const struct net *net)
{
	return ns_capable(net->user_ns, CAP_NET_ADMIN);
}

/* /dev/mace */

static int mace_fop_open(struct inode *inode, struct file *file)
{
	void *priv = NULL;
	int err;

	err = stream_open(inode, file);
	if (err)
		return err;
	err = CB->dev_open(&priv);
	if (err)
		return err;
	file->private_data = priv;
	return 0;
}

static ssize_t mace_fop_read(struct file *file, char __user *buf, size_t len,
			     loff_t *ppos)
{
	return CB->dev_read(file->private_data, (void __force *)buf, len);
}

static int mace_fop_release(struct inode *inode, struct file *file)
{
	CB->dev_release(file->private_data);
	return 0;
}

static const struct file_operations mace_fops = {
	.owner = THIS_MODULE,
	.open = mace_fop_open,
	.read = mace_fop_read,
	.release = mace_fop_release,
};

static struct miscdevice mace_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "mace",
	.fops = &mace_fops,
	.mode = 0444,
};

int mace_misc_register(void)
{
	return misc_register(&mace_misc);
}

void mace_misc_deregister(void)
{
	misc_deregister(&mace_misc);
}

/* /sys/class/mace */

static ssize_t mace_attr_show(enum mace_attr attr, char *buf)
{
	return CB->attr_show(attr, buf, PAGE_SIZE);
}

static ssize_t mace_attr_store(enum mace_attr attr, const char *buf,
			       size_t len)
{
	return CB->attr_store(attr, buf, len);
}

#define MACE_CLASS_ATTR(_name, _id, _mode)                                    \
	static ssize_t _name##_show(const struct class *class,                \
				    const struct class_attribute *attr,       \
				    char *buf)                                \
	{                                                                     \
		return mace_attr_show(_id, buf);                              \
	}                                                                     \
	static ssize_t _name##_store(const struct class *class,               \
				     const struct class_attribute *attr,      \
				     const char *buf, size_t len)             \
	{                                                                     \
		return mace_attr_store(_id, buf, len);                        \
	}                                                                     \
	static struct class_attribute class_attr_##_name =                    \
		__ATTR(_name, _mode, _name##_show, _name##_store)

MACE_CLASS_ATTR(on, MACE_ATTR_ON, 0644);
MACE_CLASS_ATTR(outer_devs, MACE_ATTR_OUTER_DEVS, 0644);
MACE_CLASS_ATTR(stats, MACE_ATTR_STATS, 0444);

static struct attribute *mace_class_attrs[] = {
	&class_attr_on.attr,
	&class_attr_outer_devs.attr,
	&class_attr_stats.attr,
	NULL,
};
ATTRIBUTE_GROUPS(mace_class);

static const struct class mace_class = {
	.name = "mace",
	.class_groups = mace_class_groups,
};

int mace_class_register(void)
{
	return class_register(&mace_class);
}

void mace_class_unregister(void)
{
	class_unregister(&mace_class);
}

/* Time */

unsigned long long mace_mono_ns(void)
{
	return ktime_get_ns();
}

unsigned long long mace_real_ns(void)
{
	return ktime_get_real_ns();
}

/* Logging */

static DEFINE_RATELIMIT_STATE(mace_log_rs, 5 * HZ, 10);

_Bool mace_log_ratelimit(void)
{
	return __ratelimit(&mace_log_rs);
}

/* Locks */

unsigned long mace_spinlock_size(void)
{
	return sizeof(spinlock_t);
}

void mace_spin_init(struct spinlock *lock)
{
	spin_lock_init(lock);
}

unsigned long mace_spin_lock_irqsave(struct spinlock *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

void mace_spin_unlock_irqrestore(struct spinlock *lock, unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

/* Network device events */

/*
 * Set while the notifier is unregistered: unregistering replays
 * NETDEV_UNREGISTER for every device, which is not news to forward.
 */
static bool mace_netdev_closing;

static int mace_netdev_event(struct notifier_block *nb, unsigned long event,
			     void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);

	if (READ_ONCE(mace_netdev_closing) || !net_eq(dev_net(dev), &init_net))
		return NOTIFY_DONE;
	switch (event) {
	case NETDEV_REGISTER:
		CB->netdev_event(MACE_NETDEV_REGISTER, dev->ifindex);
		break;
	case NETDEV_UNREGISTER:
		CB->netdev_event(MACE_NETDEV_UNREGISTER, dev->ifindex);
		break;
	case NETDEV_CHANGENAME:
		CB->netdev_event(MACE_NETDEV_CHANGENAME, dev->ifindex);
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block mace_netdev_nb = {
	.notifier_call = mace_netdev_event,
};

int mace_netdev_notifier_register(void)
{
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

/* Tracepoints: looked up by name, since most are not exported to modules. */

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

static struct tracepoint *mace_tp_find(const char *name)
{
	struct mace_tp_lookup lookup = { .name = name };

	for_each_kernel_tracepoint(mace_tp_match, &lookup);
	return lookup.tp;
}

int mace_tp_register(const char *name, void *probe, void *data)
{
	struct tracepoint *tp = mace_tp_find(name);

	if (!tp)
		return -ENOENT;
	return tracepoint_probe_register(tp, probe, data);
}

int mace_tp_unregister(const char *name, void *probe, void *data)
{
	struct tracepoint *tp = mace_tp_find(name);

	if (!tp)
		return -ENOENT;
	return tracepoint_probe_unregister(tp, probe, data);
}

void mace_tp_sync(void)
{
	tracepoint_synchronize_unregister();
}

/* Syscalls and tasks */

void mace_syscall_numbers(struct mace_syscalls *out)
{
	*out = (struct mace_syscalls){
		.sendto = __NR_sendto,
		.sendmsg = __NR_sendmsg,
		.sendmmsg = __NR_sendmmsg,
		.write = __NR_write,
		.writev = __NR_writev,
		.recvfrom = __NR_recvfrom,
		.recvmsg = __NR_recvmsg,
		.recvmmsg = __NR_recvmmsg,
		.read = __NR_read,
		.readv = __NR_readv,
	};
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
		/* The file reference keeps sk alive until fdput(). */
		if (sk && sk_is_tcp(sk))
			*tcp_seq = 1ULL << 32 | READ_ONCE(tcp_sk(sk)->write_seq);
	}
	fdput(f);
	return (unsigned long)sk;
}

unsigned long mace_current_task(void)
{
	return (unsigned long)current;
}

int mace_current_tid(void)
{
	return task_pid_nr(current);
}

_Bool mace_in_task(void)
{
	return in_task();
}

long mace_current_syscall_nr(void)
{
	if (current->flags & (PF_KTHREAD | PF_IO_WORKER))
		return -1;
	return syscall_get_nr(current, task_pt_regs(current));
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

unsigned long mace_skb_sock(const struct sk_buff *skb)
{
	return (unsigned long)skb->sk;
}

const struct net_device *mace_skb_dev(const struct sk_buff *skb)
{
	return skb->dev;
}

int mace_dev_ifindex(const struct net_device *dev)
{
	return dev->ifindex;
}

struct net *mace_dev_net(const struct net_device *dev)
{
	return dev_net(dev);
}
