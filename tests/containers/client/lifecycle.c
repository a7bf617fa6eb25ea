/* A container's whole life with plain open/read/write/mkdir/rmdir: no library, no
 * shell. Usage: lifecycle CONTAINERS_DIR NAME. Prints the container's stdout, then
 * "exit N", and exits 0 when every step worked. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[4096];

static int put(const char *file, const char *text) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0) { perror(path); return -1; }
    ssize_t n = write(fd, text, strlen(text));
    if (n < 0) perror(path);
    close(fd);
    return n < 0 ? -1 : 0;
}

/* Read a file to its end (for streams: until the process exits) into buf. */
static ssize_t get(const char *file, char *buf, size_t size) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { perror(path); return -1; }
    size_t got = 0;
    ssize_t n;
    while (got < size - 1 && (n = read(fd, buf + got, size - 1 - got)) > 0) got += n;
    close(fd);
    buf[got] = 0;
    return got;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s CONTAINERS_DIR NAME\n", argv[0]); return 2; }
    snprintf(dir, sizeof dir, "%s/%s", argv[1], argv[2]);
    char buf[65536];
    if (mkdir(dir, 0755) < 0) { perror(dir); return 1; }
    if (put("image", "cdfs.local/busybox:latest\n")) return 1;
    if (put("config.json", "{\"process\": {\"args\": [\"sh\", \"-c\", "
                           "\"while read l; do echo got $l; done; exit 9\"]}}")) return 1;
    if (put("ctl", "start\n")) return 1;
    if (put("stdin", "one\ntwo\n")) return 1;  /* close sends EOF */
    if (get("follow/stdout", buf, sizeof buf) < 0) return 1;
    fputs(buf, stdout);
    if (get("wait", buf, sizeof buf) < 0) return 1;
    printf("exit %s", buf);
    if (get("status", buf, sizeof buf) < 0 || strcmp(buf, "stopped\n") != 0) return 1;
    if (rmdir(dir) < 0) { perror(dir); return 1; }
    return 0;
}
