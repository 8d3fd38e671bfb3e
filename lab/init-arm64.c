/*
 * /init of the arm64 lab initramfs (busybox for arm64 is not installable on the host without multiarch,
 * so this is a tiny static C program, cross-built with `aarch64-linux-gnu-gcc -static`).
 *
 * Does what lab/init.sh does for x86 without kdump: mount proc/sysfs/devtmpfs, load
 * /lib/modules/crashmod.ko (finit_module), bring `lo` up, and trigger `lab.action=NAME` from a
 * CHILD process (from PID 1 an oops becomes "Attempted to kill init"):
 *   echo NAME > /proc/crashmod                       (every scenario)
 *   ... && exec /bin/udpsend 127.0.0.1 5555 4789 ktriage-lab   (netfilter-udp)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *fmt, const char *arg)
{
	printf(fmt, arg);
	fflush(stdout);
}

static void lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr))
			say("LAB: lo up failed: %s\n", strerror(errno));
	}
	close(fd);
}

int main(void)
{
	char cmdline[4096] = "", action[64] = "", *p, *tok;
	int fd;
	ssize_t n;
	pid_t pid;

	mkdir("/proc", 0755);
	mkdir("/sys", 0755);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	if (fcntl(1, F_GETFD) < 0) {	/* the cpio has no /dev/console: the kernel gave us no stdio */
		fd = open("/dev/console", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
			if (fd > 2)
				close(fd);
		}
	}

	fd = open("/proc/cmdline", O_RDONLY);
	if (fd >= 0) {
		n = read(fd, cmdline, sizeof(cmdline) - 1);
		cmdline[n > 0 ? n : 0] = 0;
		close(fd);
	}
	for (tok = strtok_r(cmdline, " \n", &p); tok; tok = strtok_r(NULL, " \n", &p))
		if (!strncmp(tok, "lab.action=", 11))
			snprintf(action, sizeof(action), "%s", tok + 11);

	fd = open("/lib/modules/crashmod.ko", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || syscall(SYS_finit_module, fd, "", 0))
		say("LAB: loading crashmod.ko failed: %s\n", strerror(errno));
	else
		say("LAB: crashmod loaded%s\n", "");
	if (fd >= 0)
		close(fd);
	lo_up();
	say("LAB: triggering %s\n", action);
	if (action[0]) {
		pid = fork();
		if (pid == 0) {
			prctl(PR_SET_NAME, "lab-trigger");	/* not "init": the oops names the crashing task */
			fd = open("/proc/crashmod", O_WRONLY);
			if (fd < 0 || write(fd, action, strlen(action)) < 0)
				say("LAB: write /proc/crashmod failed: %s\n", strerror(errno));
			if (!strcmp(action, "netfilter-udp")) {
				/* the hook is armed first, then a real datagram 127.0.0.1:5555 -> 127.0.0.1:4789 */
				execl("/bin/udpsend", "udpsend", "127.0.0.1", "5555", "4789", "ktriage-lab", (char *)NULL);
				say("LAB: exec udpsend failed: %s\n", strerror(errno));
			}
			_exit(0);
		}
	}
	for (;;) {
		if (waitpid(-1, NULL, 0) < 0)
			sleep(3600);
	}
}
