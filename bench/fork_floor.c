/* bench/fork_floor.c - what a process per task costs on this machine at
 * the least: fork, _exit and waitpid of a process the size of a
 * bygate-child (and larger), against vfork. The strict profile
 * (docs/security.md) pays one fork and one exit per task; this is its
 * floor, which depends on the kernel and the hypervisor far more than on
 * bygate. Prints one line per size, then a JSON line.
 *
 *   build/bench/fork_floor [ROUNDS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* One fork (or vfork) + _exit + waitpid; 0 or -1. Its own function so
 * that vfork clobbers no loop variable. */
static int once(int use_vfork)
{
	pid_t pid = use_vfork ? vfork() : fork();
	if (pid == 0)
		_exit(0);
	return pid == -1 || waitpid(pid, NULL, 0) != pid ? -1 : 0;
}

static double round_trip(int rounds, int use_vfork)
{
	double t0 = now_us();
	for (int i = 0; i < rounds; i++)
		if (once(use_vfork)) {
			perror("fork");
			exit(1);
		}
	return (now_us() - t0) / rounds;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 300;
	static const size_t mib[] = { 2, 16, 64 };
	double us[3];
	for (size_t i = 0; i < 3; i++) {
		char *p = malloc(mib[i] << 20);
		if (p == NULL)
			return 1;
		memset(p, 1, mib[i] << 20); /* resident, as a real child is */
		us[i] = round_trip(rounds, 0);
		printf("fork + _exit + waitpid, %2zu MiB resident: %7.1f us\n",
		       mib[i], us[i]);
		free(p);
	}
	double v = round_trip(rounds, 1);
	printf("vfork + _exit + waitpid:                  %7.1f us\n", v);
	printf("{\"fork_us_2mib\": %.1f, \"fork_us_16mib\": %.1f, "
	       "\"fork_us_64mib\": %.1f, \"vfork_us\": %.1f}\n",
	       us[0], us[1], us[2], v);
	return 0;
}
