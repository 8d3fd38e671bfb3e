#!/bin/busybox sh
# /init of the stock Debian kernel's initramfs (lab/stock.py). No kdump: the host takes the dump with
# QEMU's QMP dump-guest-memory once the panic is over (panic=0 keeps the guest there).
#   lab.action=SCENARIO   load the stock modules listed in /lib/modules/load.list (in order, as
#                         `modprobe --show-depends` gave them on the host), then crashmod.ko, bring lo up and
#                         trigger the scenario from a CHILD shell (from PID 1 an oops is "Attempted to kill init").
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ACTION=
for w in $(cat /proc/cmdline); do
	case "$w" in
	lab.action=*) ACTION="${w#lab.action=}" ;;
	esac
done
while read -r ko args; do
	[ -n "$ko" ] || continue
	insmod "/lib/modules/$ko" $args || echo "LAB: insmod $ko failed"
done < /lib/modules/load.list
insmod /lib/modules/crashmod.ko || echo "LAB: insmod crashmod.ko failed"
[ -e /sys/firmware/qemu_fw_cfg ] && echo "LAB: qemu_fw_cfg up (VMCOREINFO for the QEMU dump)"
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
