/* datalabs-become: the last step into a sandbox, run by bubblewrap (as root) inside it.
 *
 *   datalabs-become UID GID GROUPS NPROC SECCOMP NETNS CGROUP_PROCS... -- COMMAND [ARG...]
 *
 * In this order: enters the network namespace NETNS ("-" for none: bwrap made one, or the sandbox shares
 * the host's), joins each cgroup by writing its own pid to the given cgroup.procs files (both bound into
 * the sandbox by bwrap.py), sets RLIMIT_NPROC (NPROC, "-" for none), empties the capability bounding set,
 * switches to GROUPS (comma-separated, "" for none), GID and UID, clears the remaining capability sets,
 * sets no_new_privs, loads the seccomp program read (as root, first of all) from the file SECCOMP ("-"
 * for none; a raw array of struct sock_filter, as bwrap's --seccomp reads), and execs COMMAND. Any failure ends it with status
 * 126 and a message naming the step, before COMMAND runs.
 *
 * Why a program of its own: a wide CWL scatter starts one sandbox per tool, and the shell and `setpriv`
 * this replaces were two executables more per tool (dynamically linked: ~1.2 ms of CPU together, against
 * ~0.5 ms for this one, statically linked). It does what they did; sandbox/bwrap.py keeps using them
 * where this program was not built. Built by `make setup` into the environment's bin folder.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_GROUPS 256
#define MAX_PROGRAM (64 * 1024)

static void fail(const char *step, const char *what) {
  fprintf(stderr, "datalabs-become: %s%s%s: %s\n", step, what ? " " : "", what ? what : "", strerror(errno));
  exit(126);
}

static unsigned long number(const char *text, const char *what) {
  char *end;
  errno = 0;
  unsigned long value = strtoul(text, &end, 10);
  if (errno || end == text || *end) {
    errno = EINVAL;
    fail("bad number for", what);
  }
  return value;
}

static void join_cgroup(const char *procs) {
  char pid[32];
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail("opening", procs);
  int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (write(fd, pid, n) != n) fail("joining the cgroup of", procs);
  close(fd);
}

static struct sock_fprog read_seccomp(const char *path) {
  static struct sock_filter program[MAX_PROGRAM / sizeof(struct sock_filter)];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("opening the seccomp program", path);
  ssize_t size = read(fd, program, sizeof program);
  if (size <= 0 || size % sizeof(struct sock_filter) || size == (ssize_t)sizeof program) {
    errno = EINVAL;
    fail("reading the seccomp program", path);
  }
  close(fd);
  return (struct sock_fprog){.len = size / sizeof(struct sock_filter), .filter = program};
}

int main(int argc, char **argv) {
  int sep = 0;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      sep = i;
      break;
    }
  if (sep < 7 || sep + 1 >= argc) {
    fprintf(stderr, "usage: datalabs-become UID GID GROUPS NPROC SECCOMP NETNS CGROUP_PROCS... -- COMMAND...\n");
    return 126;
  }
  uid_t uid = number(argv[1], "UID");
  gid_t gid = number(argv[2], "GID");
  if (uid == 0 || gid == 0) {
    errno = EPERM;
    fail("refusing to stay root", NULL);
  }
  gid_t groups[MAX_GROUPS];
  int ngroups = 0;
  for (char *s = argv[3], *next; *s; s = next) {
    next = strchr(s, ',');
    if (next) *next++ = '\0'; else next = s + strlen(s);
    if (ngroups == MAX_GROUPS) {
      errno = E2BIG;
      fail("too many groups", NULL);
    }
    groups[ngroups++] = number(s, "GROUPS");
  }
  /* Read while still root: the folder bwrap made for these files is root's alone. */
  struct sock_fprog seccomp = {0, NULL};
  if (strcmp(argv[5], "-") != 0) seccomp = read_seccomp(argv[5]);
  if (strcmp(argv[6], "-") != 0) {
    int net = open(argv[6], O_RDONLY | O_CLOEXEC);
    if (net < 0) fail("opening the network namespace", argv[6]);
    if (setns(net, CLONE_NEWNET)) fail("entering the network namespace", argv[6]);
    close(net);
  }
  for (int i = 7; i < sep; i++) join_cgroup(argv[i]);
  if (strcmp(argv[4], "-") != 0) {
    rlim_t nproc = number(argv[4], "NPROC");
    struct rlimit limit = {nproc, nproc};
    if (setrlimit(RLIMIT_NPROC, &limit)) fail("setting RLIMIT_NPROC", NULL);
  }
  for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) && errno != EINVAL) fail("dropping capabilities", NULL);
  if (setgroups(ngroups, groups)) fail("setting the groups", NULL);
  if (setresgid(gid, gid, gid)) fail("setting the gid", argv[2]);
  if (setresuid(uid, uid, uid)) fail("setting the uid", argv[1]);
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {{0}};
  if (syscall(SYS_capset, &header, none)) fail("clearing the capabilities", NULL);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL) fail("clearing ambient capabilities", NULL);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) fail("setting no_new_privs", NULL);
  if (seccomp.filter && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &seccomp, 0, 0))
    fail("loading the seccomp program", argv[5]);
  execvp(argv[sep + 1], argv + sep + 1);
  fail("starting", argv[sep + 1]);
  return 126;
}
