// SPDX-License-Identifier: GPL-2.0
/*
 * crashmod: the ktriage crash lab's own crash module.
 *
 * Write a scenario name to /proc/crashmod (from a child of PID 1), or load the
 * module with action=NAME.  Each scenario mirrors a pattern from the seeds:
 *
 *   null-member        NULL struct pointer, member at 0xa30, process context
 *                      (crashmod_read_rx_count: mov 0xf0(%rdi),%rax; mov 0xa30(%rax),...)
 *   null-member-timer  the same from a timer (softirq)
 *   null-member-work   the same from a workqueue worker
 *   netfilter-udp      NF_INET_LOCAL_OUT hook crashes on a UDP packet 127.0.0.1:5555 -> :4789
 *                      (conntrack enabled first: the packet carries its new, unconfirmed nf_conn)
 *   uaf-poison         use after free of an object of the named cache "crashmod_obj" (poisoned)
 *   list-corruption    list_del() twice: CONFIG_DEBUG_LIST report + BUG
 *   oob-small-object   a 64-byte "request" read as a larger "sock": member at 0x230 is out of bounds
 *   hung-task          a kthread holds a mutex forever, the writer blocks on it
 *   deadlock           ABBA: kthread A holds a mutex and wants an rwsem that kthread B holds while
 *                      B wants the mutex; the writer then blocks on the mutex too (section 11)
 *   soft-lockup        spin with interrupts on and no cond_resched()
 *   bug-on             BUG_ON()
 *   warn               WARN_ON() (boot with panic_on_warn=1)
 *   panic              panic()       (race-member, synrecv-sk: sections 9 and 10)
 */
#define pr_fmt(fmt) "crashmod: " fmt

#include <linux/build_bug.h>
#include <linux/delay.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/kthread.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4.h>
#include <linux/proc_fs.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/skbuff.h>
#include <linux/slab.h>
#include <linux/stddef.h>
#include <linux/timer.h>
#include <linux/udp.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <net/net_namespace.h>
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
#include <net/netfilter/nf_conntrack.h>
#endif

#define CRASHMOD_UDP_SPORT 5555
#define CRASHMOD_UDP_DPORT 4789

static char action[32];
module_param_string(action, action, sizeof(action), 0);
MODULE_PARM_DESC(action, "scenario to trigger at load time");

/* ---------------------------------------------------------------- 1-3: NULL member at 0xa30 */

struct crashmod_dev {
	char name[16];
	unsigned long flags;
	unsigned long regs[323];	/* pad: rx_count lands at 0xa30 */
	unsigned long rx_count;		/* 0xa30 */
	unsigned long rx_bytes;		/* 0xa38 */
	unsigned long tx_count;
};
static_assert(offsetof(struct crashmod_dev, rx_count) == 0xa30);

struct crashmod_port {
	char name[16];
	unsigned long state;
	void *priv[27];			/* pad: dev lands at 0xf0 */
	struct crashmod_dev *dev;	/* 0xf0 */
	struct list_head node;
};
static_assert(offsetof(struct crashmod_port, dev) == 0xf0);

static struct crashmod_port *crashmod_port;	/* ->dev stays NULL */

/*
 * Not a scenario: 64 bytes of int3 at the start of .text (GCC emits top-level asm before the
 * functions), so that no function sits at offset 0 of the module's text: the oops "Code:" line reads
 * 42 bytes before RIP and, before the module's first page, prints "Unable to access opcode bytes".
 */
asm(".pushsection .text\n\t.skip 64, 0xcc\n\t.popsection");

noinline unsigned long crashmod_read_rx_count(struct crashmod_port *port)
{
	return port->dev->rx_count;	/* mov 0xf0(%rdi),%rax; mov 0xa30(%rax),%rax */
}
EXPORT_SYMBOL_GPL(crashmod_read_rx_count);

static void crashmod_null_member(void)
{
	pr_info("rx_count %lu\n", crashmod_read_rx_count(crashmod_port));
}

static struct timer_list crashmod_timer;

static void crashmod_timer_fn(struct timer_list *t)
{
	pr_info("timer rx_count %lu\n", crashmod_read_rx_count(crashmod_port));
}

static void crashmod_work_fn(struct work_struct *w)
{
	pr_info("work rx_count %lu\n", crashmod_read_rx_count(crashmod_port));
}
static DECLARE_WORK(crashmod_work, crashmod_work_fn);

/* ---------------------------------------------------------------- 3: netfilter hook */

static bool crashmod_nf_armed;

noinline void crashmod_account_skb(struct crashmod_port *port, struct sk_buff *skb)
{
	port->dev->rx_bytes += skb->len;	/* port->dev is NULL: write at 0xa38 */
}

static unsigned int crashmod_nf_hook(void *priv, struct sk_buff *skb,
				     const struct nf_hook_state *state)
{
	const struct iphdr *iph;
	const struct udphdr *uh;

	if (!READ_ONCE(crashmod_nf_armed) || !skb)
		return NF_ACCEPT;
	iph = ip_hdr(skb);
	if (iph->protocol != IPPROTO_UDP)
		return NF_ACCEPT;
	uh = (const struct udphdr *)((const u8 *)iph + iph->ihl * 4);
	if (ntohs(uh->dest) != CRASHMOD_UDP_DPORT)
		return NF_ACCEPT;
	crashmod_account_skb(priv, skb);
	return NF_ACCEPT;
}

static struct nf_hook_ops crashmod_nf_ops = {
	.hook = crashmod_nf_hook,
	.pf = NFPROTO_IPV4,
	.hooknum = NF_INET_LOCAL_OUT,
	.priority = NF_IP_PRI_FILTER,
};

/*
 * Conntrack hooks are registered only when something in the namespace asks for them (an iptables/nft
 * rule that matches on state does this).  With them, conntrack's LOCAL_OUT hook (NF_IP_PRI_CONNTRACK,
 * -200) runs before ours (0): the packet reaches crashmod_nf_hook with skb->_nfct pointing at a new,
 * not yet confirmed nf_conn -- the state seed 000's packet was in while NFQUEUE held it.
 */
static int crashmod_netfilter_udp(void)
{
#if IS_ENABLED(CONFIG_NF_CONNTRACK)
	int ret = nf_ct_netns_get(&init_net, NFPROTO_IPV4);

	if (ret)
		return ret;
#endif
	WRITE_ONCE(crashmod_nf_armed, true);
	return 0;
}

/* ---------------------------------------------------------------- 4: use after free */

struct crashmod_obj_ops {
	void (*handle)(struct crashmod_obj_ops *ops);
};

struct crashmod_obj {
	unsigned long cookie;
	struct list_head link;
	const struct crashmod_obj_ops *ops;	/* 0x18 */
	char payload[72];
};

static struct kmem_cache *crashmod_obj_cache;

static void crashmod_obj_handle(struct crashmod_obj_ops *ops) { }
static const struct crashmod_obj_ops crashmod_obj_default_ops = { .handle = crashmod_obj_handle };

noinline void crashmod_obj_dispatch(struct crashmod_obj *obj)
{
	/* After kmem_cache_free() obj is poisoned: obj->ops == 0x6b6b6b6b6b6b6b6b */
	obj->ops->handle((struct crashmod_obj_ops *)obj->ops);
}

static void crashmod_uaf(void)
{
	struct crashmod_obj *obj = kmem_cache_alloc(crashmod_obj_cache, GFP_KERNEL);

	if (!obj)
		return;
	obj->cookie = 0xc0ffee;
	obj->ops = &crashmod_obj_default_ops;
	crashmod_obj_dispatch(obj);
	kmem_cache_free(crashmod_obj_cache, obj);
	crashmod_obj_dispatch(obj);	/* use after free */
}

/* ---------------------------------------------------------------- 5: list corruption */

static LIST_HEAD(crashmod_list);

noinline void crashmod_list_remove(struct crashmod_port *port)
{
	list_del(&port->node);
}

static void crashmod_list_corruption(void)
{
	list_add(&crashmod_port->node, &crashmod_list);
	crashmod_list_remove(crashmod_port);
	crashmod_list_remove(crashmod_port);	/* next == LIST_POISON1 */
}

/* ---------------------------------------------------------------- 6: small object as larger type */

struct crashmod_req {			/* a small "request" (64 bytes) */
	unsigned int state;		/* common header, like skc_state */
	unsigned int refcnt;
	unsigned long cookie;
	char data[48];
};
static_assert(sizeof(struct crashmod_req) == 64);

struct crashmod_sock_cb {
	unsigned long lock;
	unsigned long count;
};

struct crashmod_sock {			/* the full "sock" the request is mistaken for */
	unsigned int state;
	unsigned int refcnt;
	unsigned long cookie;
	char body[0x220];
	struct crashmod_sock_cb *reuse_cb;	/* 0x230: past the end of a crashmod_req */
};
static_assert(offsetof(struct crashmod_sock, reuse_cb) == 0x230);

#define CRASHMOD_NEW_REQ 12		/* like TCP_NEW_SYN_RECV */

static struct kmem_cache *crashmod_req_cache;

noinline void crashmod_sock_release(struct crashmod_sock *sk)
{
	struct crashmod_sock_cb *cb = sk->reuse_cb;	/* out of bounds read */

	if (cb)
		cb->count--;	/* poisoned neighbour: 0x6b6b... -> GPF */
}

static void crashmod_oob(void)
{
	struct crashmod_req *req = kmem_cache_alloc(crashmod_req_cache, GFP_KERNEL);

	if (!req)
		return;
	req->state = CRASHMOD_NEW_REQ;
	req->refcnt = 1;
	crashmod_sock_release((struct crashmod_sock *)req);	/* type confusion */
}

/* ---------------------------------------------------------------- 7: hung task */

static DEFINE_MUTEX(crashmod_mutex);
static DECLARE_COMPLETION(crashmod_holding);

static int crashmod_holder_fn(void *arg)
{
	mutex_lock(&crashmod_mutex);
	complete(&crashmod_holding);
	for (;;)
		msleep_interruptible(1000);	/* holds crashmod_mutex forever */
	return 0;
}

noinline void crashmod_hung_lock(void)
{
	mutex_lock(&crashmod_mutex);	/* blocks forever in D state */
	mutex_unlock(&crashmod_mutex);
}

static void crashmod_hung_task(void)
{
	kthread_run(crashmod_holder_fn, NULL, "crashmod_holder");
	wait_for_completion(&crashmod_holding);
	crashmod_hung_lock();
}

/* ---------------------------------------------------------------- 8: lockup, BUG, WARN, panic */

noinline void crashmod_spin(void)
{
	unsigned long n = 0;

	for (;;) {			/* no cond_resched(): soft lockup */
		n++;
		cpu_relax();
		barrier();
	}
}

noinline void crashmod_check_state(struct crashmod_port *port)
{
	BUG_ON(port->dev == NULL);
}

noinline void crashmod_warn(struct crashmod_port *port)
{
	WARN_ON(port->dev == NULL);
}

noinline void crashmod_panic(void)
{
	panic("crashmod: explicit panic requested");
}

/* ---------------------------------------------------------------- 9: race (seed 000) */

/*
 * The reader is crashmod_read_rx_count() itself (mov 0xf0(%rdi),%rax; mov 0xa30(%rax),%rax) on a port whose
 * ->dev is NULL.  A kthread bound to another CPU waits for the oops to begin (oops_in_progress, raised by
 * oops_begin() long before panic() stops the other CPUs) and only then stores a valid ->dev: the register
 * says NULL, the dump says otherwise -- what seed 000 saw with ct->ct_net.  Deterministic: the store cannot
 * happen before the load (the oops is the load's consequence) and the console output of the oops takes
 * milliseconds before the CPUs are stopped.
 */
static struct crashmod_port *crashmod_race_port;
static struct crashmod_dev *crashmod_race_dev;
static DECLARE_COMPLETION(crashmod_race_armed);

static int crashmod_race_writer(void *arg)
{
	complete(&crashmod_race_armed);
	while (!READ_ONCE(oops_in_progress))
		cpu_relax();
	WRITE_ONCE(crashmod_race_port->dev, crashmod_race_dev);
	for (;;)
		cpu_relax();
	return 0;
}

static void crashmod_race_member(void)
{
	struct task_struct *t;
	int cpu, me;

	crashmod_race_port = kzalloc(sizeof(*crashmod_race_port), GFP_KERNEL);
	crashmod_race_dev = kzalloc(sizeof(*crashmod_race_dev), GFP_KERNEL);
	if (!crashmod_race_port || !crashmod_race_dev)
		return;
	strscpy(crashmod_race_port->name, "cm-race", sizeof(crashmod_race_port->name));
	t = kthread_create(crashmod_race_writer, NULL, "crashmod_writer");
	if (IS_ERR(t))
		return;
	me = raw_smp_processor_id();
	cpu = cpumask_any_but(cpu_online_mask, me);
	if (cpu >= nr_cpu_ids) {
		pr_err("race-member needs two online CPUs\n");
		kthread_stop(t);
		return;
	}
	set_cpus_allowed_ptr(current, cpumask_of(me));	/* reader here, writer spinning there */
	kthread_bind(t, cpu);
	wake_up_process(t);
	wait_for_completion(&crashmod_race_armed);
	pr_info("race rx_count %lu\n", crashmod_read_rx_count(crashmod_race_port));
}

/* ---------------------------------------------------------------- 10: a request sock read as a full sock (seed 004) */

/*
 * synrecv-sk: a LOCAL_OUT hook looks at the owner of an outgoing TCP SYN-ACK from port 7777.  For a SYN-ACK
 * that owner, skb->sk, is the listener's request sock (state TCP_NEW_SYN_RECV, a struct tcp_request_sock of
 * 0x128 bytes in 6.1, from the request_sock_TCP cache), not a full struct sock (0x2d0 bytes): reading
 * sk->sk_socket (0x258) reads past the object, and using what is there faults -- seed 004's class of bug.
 * Sent in softirq context (the SYN arrives on lo).  The includes sit here so that the lines above keep
 * the numbers the tests quote.
 */
#include <linux/tcp.h>
#include <net/sock.h>

#define CRASHMOD_TCP_PORT 7777

noinline unsigned long crashmod_sk_socket_flags(struct sock *sk)
{
	return sk->sk_socket->flags;	/* sk_socket at 0x258: beyond a request sock */
}

static unsigned int crashmod_synack_hook(void *priv, struct sk_buff *skb, const struct nf_hook_state *state)
{
	const struct iphdr *iph;
	const struct tcphdr *th;

	if (!skb || !skb->sk)
		return NF_ACCEPT;
	iph = ip_hdr(skb);
	if (iph->protocol != IPPROTO_TCP)
		return NF_ACCEPT;
	th = (const struct tcphdr *)((const u8 *)iph + iph->ihl * 4);
	if (!th->syn || !th->ack || ntohs(th->source) != CRASHMOD_TCP_PORT)
		return NF_ACCEPT;
	pr_info("SYN-ACK owner state %u\n", skb->sk->sk_state);
	pr_info("owner's socket flags %lu\n", crashmod_sk_socket_flags(skb->sk));
	return NF_ACCEPT;
}

static struct nf_hook_ops crashmod_synack_ops = {
	.hook = crashmod_synack_hook,
	.pf = NFPROTO_IPV4,
	.hooknum = NF_INET_LOCAL_OUT,
	.priority = NF_IP_PRI_FILTER,
};
static bool crashmod_synack_armed;

static int crashmod_synrecv_sk(void)
{
	int ret = nf_register_net_hook(&init_net, &crashmod_synack_ops);

	crashmod_synack_armed = !ret;
	return ret;
}

/* ---------------------------------------------------------------- 11: ABBA deadlock (mutex + rwsem) */

/*
 * crashmod_lock_a (a mutex) and crashmod_sem_b (an rwsem) taken in opposite orders by two kthreads, each
 * waiting until the other holds its first lock: a certain deadlock, no timing involved.  The writer then
 * blocks on crashmod_lock_a as well (a waiter outside the cycle), and the hung-task detector panics.
 */
static DEFINE_MUTEX(crashmod_lock_a);
static DECLARE_RWSEM(crashmod_sem_b);
static DECLARE_COMPLETION(crashmod_a_held);
static DECLARE_COMPLETION(crashmod_b_held);

noinline void crashmod_take_sem_b(void)
{
	down_write(&crashmod_sem_b);	/* held by crashmod_b, which waits for crashmod_lock_a */
	up_write(&crashmod_sem_b);
}

noinline void crashmod_take_lock_a(void)
{
	mutex_lock(&crashmod_lock_a);	/* held by crashmod_a, which waits for crashmod_sem_b */
	mutex_unlock(&crashmod_lock_a);
}

static int crashmod_abba_a(void *arg)
{
	mutex_lock(&crashmod_lock_a);
	complete_all(&crashmod_a_held);	/* crashmod_b and the writer both wait for it */
	wait_for_completion(&crashmod_b_held);
	crashmod_take_sem_b();
	mutex_unlock(&crashmod_lock_a);
	return 0;
}

static int crashmod_abba_b(void *arg)
{
	down_write(&crashmod_sem_b);
	complete_all(&crashmod_b_held);
	wait_for_completion(&crashmod_a_held);
	crashmod_take_lock_a();
	up_write(&crashmod_sem_b);
	return 0;
}

static void crashmod_deadlock(void)
{
	kthread_run(crashmod_abba_a, NULL, "crashmod_a");
	kthread_run(crashmod_abba_b, NULL, "crashmod_b");
	wait_for_completion(&crashmod_a_held);
	wait_for_completion(&crashmod_b_held);
	msleep(200);			/* both are now blocked on each other's lock */
	crashmod_take_lock_a();		/* the writer joins the queue on crashmod_lock_a */
}

/* ---------------------------------------------------------------- trigger */

static int crashmod_trigger(const char *what)
{
	pr_info("trigger %s (pid %d, comm %s)\n", what, current->pid, current->comm);
	if (!strcmp(what, "null-member"))
		crashmod_null_member();
	else if (!strcmp(what, "null-member-timer"))
		mod_timer(&crashmod_timer, jiffies + 1);
	else if (!strcmp(what, "null-member-work"))
		schedule_work(&crashmod_work);
	else if (!strcmp(what, "netfilter-udp"))
		return crashmod_netfilter_udp();
	else if (!strcmp(what, "uaf-poison"))
		crashmod_uaf();
	else if (!strcmp(what, "list-corruption"))
		crashmod_list_corruption();
	else if (!strcmp(what, "oob-small-object"))
		crashmod_oob();
	else if (!strcmp(what, "hung-task"))
		crashmod_hung_task();
	else if (!strcmp(what, "deadlock"))
		crashmod_deadlock();
	else if (!strcmp(what, "soft-lockup"))
		crashmod_spin();
	else if (!strcmp(what, "bug-on"))
		crashmod_check_state(crashmod_port);
	else if (!strcmp(what, "warn"))
		crashmod_warn(crashmod_port);
	else if (!strcmp(what, "race-member"))
		crashmod_race_member();
	else if (!strcmp(what, "synrecv-sk"))
		return crashmod_synrecv_sk();
	else if (!strcmp(what, "panic"))
		crashmod_panic();
	else
		return -EINVAL;
	return 0;
}

static ssize_t crashmod_write(struct file *file, const char __user *buf, size_t len, loff_t *pos)
{
	char what[32];
	size_t n = min(len, sizeof(what) - 1);
	int ret;

	if (copy_from_user(what, buf, n))
		return -EFAULT;
	what[n] = 0;
	strim(what);
	ret = crashmod_trigger(what);
	return ret ? ret : len;
}

static const struct proc_ops crashmod_proc_ops = {
	.proc_write = crashmod_write,
};

static int __init crashmod_init(void)
{
	int ret;

	crashmod_port = kzalloc(sizeof(*crashmod_port), GFP_KERNEL);
	if (!crashmod_port)
		return -ENOMEM;
	strscpy(crashmod_port->name, "cm0", sizeof(crashmod_port->name));
	INIT_LIST_HEAD(&crashmod_port->node);
	timer_setup(&crashmod_timer, crashmod_timer_fn, 0);
	crashmod_obj_cache = kmem_cache_create("crashmod_obj", sizeof(struct crashmod_obj), 0,
					       SLAB_POISON | SLAB_RED_ZONE | SLAB_STORE_USER, NULL);
	crashmod_req_cache = kmem_cache_create("crashmod_req", sizeof(struct crashmod_req), 0,
					       SLAB_POISON, NULL);
	if (!crashmod_obj_cache || !crashmod_req_cache)
		return -ENOMEM;
	crashmod_nf_ops.priv = crashmod_port;
	ret = nf_register_net_hook(&init_net, &crashmod_nf_ops);
	if (ret)
		return ret;
	if (!proc_create("crashmod", 0200, NULL, &crashmod_proc_ops))
		return -ENOMEM;
	pr_info("loaded; write a scenario name to /proc/crashmod\n");
	if (action[0])
		crashmod_trigger(action);
	return 0;
}

static void __exit crashmod_exit(void)
{
	remove_proc_entry("crashmod", NULL);
	nf_unregister_net_hook(&init_net, &crashmod_nf_ops);
	if (crashmod_synack_armed)
		nf_unregister_net_hook(&init_net, &crashmod_synack_ops);
	del_timer_sync(&crashmod_timer);
	cancel_work_sync(&crashmod_work);
	kmem_cache_destroy(crashmod_req_cache);
	kmem_cache_destroy(crashmod_obj_cache);
	kfree(crashmod_port);
}

module_init(crashmod_init);
module_exit(crashmod_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ktriage crash lab scenarios");
