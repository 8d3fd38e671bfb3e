#!/bin/busybox sh
# /init of the lab initramfs.  Two modes, chosen on the kernel command line:
#   lab.action=SCENARIO [lab.kdump=1]   first kernel: load kdump, load crashmod, trigger from a child shell
#   lab.capture                         capture kernel (kexec -p): write /proc/vmcore to /dev/vda, reboot
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
ACTION= KDUMP=0 CAPTURE=0
for w in $(cat /proc/cmdline); do
	case "$w" in
	lab.action=*) ACTION="${w#lab.action=}" ;;
	lab.kdump=*) KDUMP="${w#lab.kdump=}" ;;
	lab.capture) CAPTURE=1 ;;
	esac
done

if [ "$CAPTURE" = 1 ]; then
	echo "LAB: capture kernel up"
	mkdir -p /mnt
	if mount -t ext4 /dev/vda /mnt; then
		makedumpfile -c -d 31 /proc/vmcore /mnt/vmcore >/mnt/makedumpfile.log 2>&1
		echo "LAB: makedumpfile rc=$?"
		tail -n 3 /mnt/makedumpfile.log
		sync
		umount /mnt
	else
		echo "LAB: cannot mount /dev/vda"
	fi
	echo "LAB: capture done"
	reboot -f
	sleep 3600
fi

if [ "$KDUMP" = 1 ]; then
	if kexec -p /boot/bzImage --initrd=/boot/capture.cpio.gz \
		--append="console=ttyS0 loglevel=4 irqpoll nr_cpus=1 reset_devices panic=1 slab_nomerge lab.capture"; then
		echo "LAB: kdump loaded ($(cat /sys/kernel/kexec_crash_loaded))"
	else
		echo "LAB: kexec -p failed"
	fi
fi
insmod /lib/modules/crashmod.ko
ip link set lo up
echo "LAB: triggering $ACTION"
case "$ACTION" in
netfilter-udp)
	# the hook is armed first, then a real datagram 127.0.0.1:5555 -> 127.0.0.1:4789 goes out
	sh -c 'echo netfilter-udp > /proc/crashmod && exec /bin/udpsend 127.0.0.1 5555 4789 ktriage-lab' &
	;;
synrecv-sk)
	# a listener on :7777, the SYN-ACK hook armed, then a connect: the SYN-ACK's owner is the request sock
	nc -l -p 7777 >/dev/null </dev/null &
	sleep 1
	sh -c 'echo synrecv-sk > /proc/crashmod && exec nc 127.0.0.1 7777 </dev/null' &
	;;
"") ;;
*)
	sh -c "echo $ACTION > /proc/crashmod" &
	;;
esac
while :; do sleep 3600; done
