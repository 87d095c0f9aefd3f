// SPDX-License-Identifier: GPL-2.0
/*
 * The layout of the few kernel fields mace's probes read without calling C,
 * the kernel's asm-offsets way: Kbuild compiles this file to assembly with
 * the flags of the kernel being built (its configuration, compiler and any
 * structure randomization), and a sed script turns the DEFINE() lines of
 * that assembly into Rust constants (src/mace_offsets_generated.rs, see
 * Kbuild), which src/ffi/ reads the fields at. Nothing of this file is
 * linked into the module.
 *
 * Every field is checked to have the type the Rust side reads it as; a
 * kernel that changes one breaks the build here. Configuration-dependent
 * layouts are flags: NET_NS (possible_net_t is empty without
 * CONFIG_NET_NS: every object is in init_net) and SKB_DATA_USES_OFFSET
 * (NET_SKBUFF_DATA_USES_OFFSET: skb->tail and skb->end are offsets from
 * skb->head on 64-bit kernels, pointers on 32-bit ones).
 */

#include <linux/build_bug.h>
#include <linux/fdtable.h>
#include <linux/fs.h>
#include <linux/kbuild.h>
#include <linux/net.h>
#include <linux/net_tstamp.h>
#include <linux/netdevice.h>
#include <linux/nsproxy.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/stddef.h>
#include <linux/tcp.h>
#include <linux/version.h>
#include <net/net_namespace.h>
#include <net/netns/generic.h>
#include <net/sock.h>
#ifdef CONFIG_X86_64
#include <asm/ptrace.h>
#include <asm/thread_info.h>
#include <asm/unistd.h>
#endif

#define MACE_FIELD_IS(str, mem, type) \
	static_assert(__same_type(((struct str *)0)->mem, type), \
		      "struct " #str "." #mem " is not " #type)

/*
 * struct sk_buff: what Skb::dev(), Skb::owner(), Skb::gso_size() and
 * Skb::net_bytes() read.
 */
MACE_FIELD_IS(sk_buff, dev, struct net_device *);
MACE_FIELD_IS(sk_buff, sk, struct sock *);
MACE_FIELD_IS(sk_buff, head, unsigned char *);
MACE_FIELD_IS(sk_buff, data, unsigned char *);
MACE_FIELD_IS(sk_buff, len, unsigned int);
MACE_FIELD_IS(sk_buff, data_len, unsigned int);
MACE_FIELD_IS(sk_buff, network_header, __u16);
MACE_FIELD_IS(sk_buff, tail, sk_buff_data_t);
MACE_FIELD_IS(sk_buff, end, sk_buff_data_t);
#ifdef NET_SKBUFF_DATA_USES_OFFSET
static_assert(sizeof(sk_buff_data_t) == sizeof(u32));
#else
static_assert(sizeof(sk_buff_data_t) == sizeof(void *));
#endif
MACE_FIELD_IS(skb_shared_info, gso_size, unsigned short);
/*
 * Skb::cloned(): the byte of the sk_buff's "cloned" bit, as the kernel
 * gives it to BPF (CLONED_OFFSET, CLONED_MASK); a bit field has no
 * offsetof().
 */
static_assert(sizeof(((struct sk_buff *)0)->__cloned_offset) == 0);
static_assert(CLONED_MASK > 0 && CLONED_MASK <= 0xff);

/* struct net_device and struct sock: Dev::ifindex(), Dev::net(), Sock::net(). */
MACE_FIELD_IS(net_device, ifindex, int);
MACE_FIELD_IS(net_device, nd_net, possible_net_t);
MACE_FIELD_IS(sock, __sk_common.skc_net, possible_net_t);
#ifdef CONFIG_NET_NS
static_assert(__same_type(((possible_net_t *)0)->net, struct net *));
static_assert(offsetof(possible_net_t, net) == 0);
#endif

/*
 * Dev::has_taps(): dev_nit_active()'s two lists of packet taps, the
 * device's own and those on every device, which are the kernel's one list
 * up to 6.14 (mace_global_taps) and the device's namespace's from 6.15
 * (NET_TAPS); a list is empty when its head's next is the head.
 */
MACE_FIELD_IS(net_device, ptype_all, struct list_head);
MACE_FIELD_IS(list_head, next, struct list_head *);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
MACE_FIELD_IS(net, ptype_all, struct list_head);
#endif

/*
 * The current task (src/ffi/task.rs): its namespace, thread id, whether it
 * is in a compat syscall (x86_64: thread_info's status; x32 syscalls carry
 * a bit in their number) and, under PREEMPT_RT, whether it serves softirqs;
 * the syscall number in its registers.
 */
MACE_FIELD_IS(task_struct, nsproxy, struct nsproxy *);
MACE_FIELD_IS(nsproxy, net_ns, struct net *);
MACE_FIELD_IS(task_struct, pid, pid_t);
static_assert(sizeof(pid_t) == sizeof(int));
/*
 * The current task's migrations (src/ffi/task.rs, current_migrations()):
 * set_task_cpu() counts each move to another CPU there, whatever the
 * task's scheduling class.
 */
MACE_FIELD_IS(task_struct, se.nr_migrations, u64);
#ifdef CONFIG_X86_64
MACE_FIELD_IS(task_struct, thread_info.status, u32);
MACE_FIELD_IS(pt_regs, orig_ax, unsigned long);
/*
 * The current task's own registers, task_pt_regs(): the top of its stack
 * (task->stack, CONFIG_THREAD_INFO_IN_TASK), less the padding and the
 * registers; whether it is a kernel thread or an io_uring worker, which
 * are in no syscall (task->flags); the first argument of a 64-bit syscall
 * (di).
 */
MACE_FIELD_IS(task_struct, stack, void *);
MACE_FIELD_IS(task_struct, flags, unsigned int);
MACE_FIELD_IS(pt_regs, di, unsigned long);
#endif
#ifdef CONFIG_PREEMPT_RT
MACE_FIELD_IS(task_struct, softirq_disable_cnt, int);
#endif

/*
 * The socket behind one of the current task's file descriptors, as fdget()
 * and sock_from_file() find it while the task's file table is its own
 * (src/ffi/task.rs, fd_sock()): the table, its reference count, its array
 * of files and their number; a file's operations and private data (a
 * socket's struct socket); the socket's struct sock, its family, type and
 * protocol, and a TCP socket's write_seq (struct tcp_sock starts with its
 * struct sock).
 */
MACE_FIELD_IS(task_struct, files, struct files_struct *);
MACE_FIELD_IS(files_struct, count, atomic_t);
MACE_FIELD_IS(files_struct, fdt, struct fdtable __rcu *);
MACE_FIELD_IS(fdtable, max_fds, unsigned int);
MACE_FIELD_IS(fdtable, fd, struct file __rcu **);
MACE_FIELD_IS(file, f_op, const struct file_operations *);
MACE_FIELD_IS(file, private_data, void *);
MACE_FIELD_IS(socket, sk, struct sock *);
MACE_FIELD_IS(sock, __sk_common.skc_family, unsigned short);
MACE_FIELD_IS(sock, sk_type, u16);
MACE_FIELD_IS(sock, sk_protocol, u16);
MACE_FIELD_IS(tcp_sock, write_seq, u32);
/*
 * Whether a socket's reader takes software receive timestamps, as
 * __sock_recv_timestamp() decides (Sock::rx_stamp()): its flags and its
 * timestamping flags.
 */
MACE_FIELD_IS(sock, __sk_common.skc_flags, unsigned long);
MACE_FIELD_IS(sock, sk_tsflags, u32);
static_assert(offsetof(struct tcp_sock, inet_conn.icsk_inet.sk) == 0);
static_assert(sizeof(atomic_t) == sizeof(int));

/* struct net: PernetKey's lookup, net_generic(net, id). */
MACE_FIELD_IS(net, gen, struct net_generic *);
static_assert(__same_type(((struct net_generic *)0)->ptr[0], void *));

int main(void)
{
	OFFSET(SKB_DEV, sk_buff, dev);
	OFFSET(SKB_SK, sk_buff, sk);
	OFFSET(SKB_HEAD, sk_buff, head);
	OFFSET(SKB_DATA, sk_buff, data);
	OFFSET(SKB_DATA_LEN, sk_buff, data_len);
	OFFSET(SKB_NETWORK_HEADER, sk_buff, network_header);
	OFFSET(SKB_TAIL, sk_buff, tail);
	OFFSET(SKB_END, sk_buff, end);
#ifdef NET_SKBUFF_DATA_USES_OFFSET
	DEFINE(SKB_DATA_USES_OFFSET, 1);
#else
	DEFINE(SKB_DATA_USES_OFFSET, 0);
#endif
	OFFSET(SHINFO_GSO_SIZE, skb_shared_info, gso_size);
	DEFINE(SKB_CLONED_OFFSET, CLONED_OFFSET);
	DEFINE(SKB_CLONED_MASK, CLONED_MASK);

	OFFSET(DEV_IFINDEX, net_device, ifindex);
	OFFSET(DEV_ND_NET, net_device, nd_net);
	OFFSET(SOCK_NET, sock, __sk_common.skc_net);
	DEFINE(NET_NS, IS_ENABLED(CONFIG_NET_NS));
	OFFSET(DEV_PTYPE_ALL, net_device, ptype_all);
	OFFSET(LIST_HEAD_NEXT, list_head, next);
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 15, 0)
	DEFINE(NET_TAPS, 1);
	OFFSET(NET_PTYPE_ALL, net, ptype_all);
#else
	DEFINE(NET_TAPS, 0);
	DEFINE(NET_PTYPE_ALL, 0);
#endif

	OFFSET(NET_GEN, net, gen);
	OFFSET(NET_GENERIC_PTR, net_generic, ptr);

	OFFSET(TASK_FILES, task_struct, files);
	OFFSET(FILES_COUNT, files_struct, count);
	OFFSET(FILES_FDT, files_struct, fdt);
	OFFSET(FDT_MAX_FDS, fdtable, max_fds);
	OFFSET(FDT_FD, fdtable, fd);
	OFFSET(FILE_F_OP, file, f_op);
	OFFSET(FILE_PRIVATE_DATA, file, private_data);
	OFFSET(SOCKET_SK, socket, sk);
	OFFSET(SOCK_FAMILY, sock, __sk_common.skc_family);
	OFFSET(SOCK_TYPE, sock, sk_type);
	OFFSET(SOCK_PROTOCOL, sock, sk_protocol);
	OFFSET(TCP_WRITE_SEQ, tcp_sock, write_seq);
	OFFSET(SOCK_FLAGS, sock, __sk_common.skc_flags);
	OFFSET(SOCK_TSFLAGS, sock, sk_tsflags);
	DEFINE(SOCK_RCVTSTAMP_BIT, SOCK_RCVTSTAMP);
	DEFINE(SOF_SOFTWARE, SOF_TIMESTAMPING_SOFTWARE);
	DEFINE(SOF_RX_SOFTWARE, SOF_TIMESTAMPING_RX_SOFTWARE);
	DEFINE(SOF_OPT_RX_FILTER, SOF_TIMESTAMPING_OPT_RX_FILTER);
	DEFINE(SOCK_AF_INET, AF_INET);
	DEFINE(SOCK_AF_INET6, AF_INET6);
	DEFINE(SOCK_STREAM_TYPE, SOCK_STREAM);
	DEFINE(SOCK_DGRAM_TYPE, SOCK_DGRAM);
	DEFINE(SOCK_RAW_TYPE, SOCK_RAW);
	DEFINE(SOCK_IPPROTO_TCP, IPPROTO_TCP);

	OFFSET(TASK_NSPROXY, task_struct, nsproxy);
	OFFSET(NSPROXY_NET_NS, nsproxy, net_ns);
	OFFSET(TASK_PID, task_struct, pid);
	OFFSET(TASK_NR_MIGRATIONS, task_struct, se.nr_migrations);
	/* in_task(): the preempt count's bits, and PREEMPT_RT's own softirq count. */
#ifdef CONFIG_PREEMPT_RT
	DEFINE(IN_TASK_PREEMPT_MASK, NMI_MASK | HARDIRQ_MASK);
	OFFSET(TASK_SOFTIRQ_DISABLE_CNT, task_struct, softirq_disable_cnt);
	DEFINE(PREEMPT_RT, 1);
#else
	DEFINE(IN_TASK_PREEMPT_MASK, NMI_MASK | HARDIRQ_MASK | SOFTIRQ_OFFSET);
	DEFINE(TASK_SOFTIRQ_DISABLE_CNT, 0);
	DEFINE(PREEMPT_RT, 0);
#endif
	DEFINE(SOFTIRQ_OFFSET, SOFTIRQ_OFFSET);
	/*
	 * Whether kernel code may be preempted at all, and the bits of the
	 * preempt count that keep the CPU's task on it where it may.
	 */
	DEFINE(PREEMPTION, IS_ENABLED(CONFIG_PREEMPTION));
	DEFINE(PINNED_PREEMPT_MASK, PREEMPT_MASK | SOFTIRQ_MASK | HARDIRQ_MASK | NMI_MASK);
#ifdef CONFIG_X86_64
	OFFSET(TASK_TI_STATUS, task_struct, thread_info.status);
	DEFINE(TS_COMPAT_MASK, IS_ENABLED(CONFIG_IA32_EMULATION) ? TS_COMPAT : 0);
	DEFINE(X32_SYSCALL_MASK, IS_ENABLED(CONFIG_X86_X32_ABI) ? __X32_SYSCALL_BIT : 0);
	OFFSET(PT_REGS_ORIG_AX, pt_regs, orig_ax);
	OFFSET(PT_REGS_DI, pt_regs, di);
	OFFSET(TASK_STACK, task_struct, stack);
	OFFSET(TASK_FLAGS, task_struct, flags);
	DEFINE(TASK_NO_SYSCALL_FLAGS, PF_KTHREAD | PF_IO_WORKER);
	DEFINE(TASK_STACK_TO_PT_REGS,
	       THREAD_SIZE - TOP_OF_KERNEL_STACK_PADDING - sizeof(struct pt_regs));
#endif
	return 0;
}
