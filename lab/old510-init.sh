#!/bin/busybox sh
# /init of the 5.10 target's initramfs (lab/old510.py): Debian 11's stock kernel, in-guest kdump.
#   lab.action=SCENARIO   first kernel: load the stock modules of /lib/modules/load.list (dependencies first, as
#                         `modprobe --show-depends` gave them on the host) and crashmod.ko, load the capture kernel
#                         with `kexec -p`, trigger the scenario from a CHILD shell (from PID 1 an oops is
#                         "Attempted to kill init")
#   lab.capture           capture kernel: load virtio_blk, write /proc/vmcore with makedumpfile (compressed,
#                         filtered, flattened to stdout) onto the raw disk /dev/vda, power off. The host reassembles
#                         the file with `makedumpfile -R`: a kdump-compressed vmcore as production machines write.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ACTION= CAPTURE=0
for w in $(cat /proc/cmdline); do
	case "$w" in
	lab.action=*) ACTION="${w#lab.action=}" ;;
	lab.capture) CAPTURE=1 ;;
	esac
done
while read -r ko; do
	[ -n "$ko" ] || continue
	insmod "/lib/modules/$ko" || echo "LAB: insmod $ko failed"
done < /lib/modules/load.list

if [ "$CAPTURE" = 1 ]; then
	echo "LAB: capture kernel up"
	i=0
	while [ ! -b /dev/vda ] && [ $i -lt 20 ]; do sleep 0.5; i=$((i + 1)); done
	makedumpfile -F -c -d 31 /proc/vmcore > /dev/vda 2>/tmp/makedumpfile.log
	echo "LAB: makedumpfile rc=$?"
	tail -n 3 /tmp/makedumpfile.log
	sync
	echo "LAB: capture done"
	poweroff -f
	sleep 3600
fi

if kexec -p /boot/vmlinuz --initrd=/boot/capture.cpio.gz \
	--append="console=ttyS0 loglevel=4 irqpoll nr_cpus=1 reset_devices panic=1 lab.capture"; then
	echo "LAB: kdump loaded ($(cat /sys/kernel/kexec_crash_loaded))"
else
	echo "LAB: kexec -p failed"
fi
insmod /lib/modules/crashmod.ko || echo "LAB: insmod crashmod.ko failed"
ip link set lo up
echo "LAB: modules: $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
set -- /proc/[0-9]*	# a glob, no fork: every task (kernel threads and this shell; busybox runs no threads)
echo "LAB: tasks before trigger: $#"
echo "LAB: triggering $ACTION"
case "$ACTION" in
netfilter-udp)
	# the hook is armed first, then a real datagram 127.0.0.1:5555 -> 127.0.0.1:4789 goes out
	sh -c 'echo netfilter-udp > /proc/crashmod && exec /bin/udpsend 127.0.0.1 5555 4789 ktriage-lab' &
	;;
"") ;;
*)
	sh -c "echo $ACTION > /proc/crashmod" &
	;;
esac
while :; do sleep 3600; done
