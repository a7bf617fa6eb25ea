/*
 * pause: the process that holds a pod's namespaces open.
 *
 * A pod sandbox is this program running in the pod's network, IPC and UTS
 * namespaces; the pod's containers join them through /proc/<pid>/ns/. It does
 * nothing but wait, so it costs nothing, and when the pod shares one PID namespace
 * it is PID 1 there and must reap the orphans the kernel hands it, or they stay
 * zombies. It exits 0 on SIGTERM or SIGINT, which is how the pod is stopped.
 *
 * The signals are blocked and taken with sigwaitinfo() rather than by handlers:
 * PID 1 of a namespace gets no signal whose action is the default, but a blocked
 * signal is always queued, and nothing runs asynchronously.
 *
 * Built static (cc -static -Os) so it runs in an image holding nothing else.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static void reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

int main(int argc, char **argv)
{
	sigset_t waited;
	siginfo_t info;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		puts("cdfs pause 1");
		return 0;
	}
	sigemptyset(&waited);
	sigaddset(&waited, SIGTERM);
	sigaddset(&waited, SIGINT);
	sigaddset(&waited, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &waited, NULL) != 0) {
		perror("pause: sigprocmask");
		return 1;
	}
	for (;;) {
		if (sigwaitinfo(&waited, &info) < 0)
			continue; /* EINTR from a signal outside the set (e.g. SIGSTOP/SIGCONT) */
		if (info.si_signo == SIGCHLD)
			reap(); /* one SIGCHLD may stand for several exits */
		else
			return 0;
	}
}
