/* udpsend: send one UDP datagram from a fixed source port (busybox nc has no -u). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *msg = argc > 4 ? argv[4] : "ktriage-lab";
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	int fd;

	if (argc < 4) {
		fprintf(stderr, "usage: udpsend DST-IP SPORT DPORT [PAYLOAD]\n");
		return 2;
	}
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	src.sin_port = htons(atoi(argv[2]));
	dst.sin_port = htons(atoi(argv[3]));
	inet_pton(AF_INET, argv[1], &dst.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
		perror("udpsend: bind");
		return 1;
	}
	if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		perror("udpsend: sendto");
		return 1;
	}
	return 0;
}
