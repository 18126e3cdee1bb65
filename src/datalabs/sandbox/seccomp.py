"""The seccomp filter every sandbox runs under: everything allowed except a list of dangerous calls.

Compiled by libseccomp (the library bubblewrap, systemd, Docker and Flatpak use; Debian's libseccomp2)
through a few ctypes calls, exported as a BPF program and handed to `bwrap --seccomp FD`, which installs
it just before the sandboxed command starts. A denied call fails with EPERM (ENOSYS for `clone3`, whose
flags sit in a struct the filter cannot read: libc then falls back to `clone`, which is checked).

What is denied, and why (the list follows Docker's and Flatpak's defaults):
- new user namespaces (`unshare`/`clone` with CLONE_NEWUSER): they hand an unprivileged process a full
  set of capabilities over new namespaces, the start of most container escapes of the last decade;
- `setns`, mounts (`mount`, `umount2`, `pivot_root`, the new mount API): no reason for a lab to change
  its view of the filesystem;
- the kernel keyring (`keyctl`, `add_key`, `request_key`): not namespaced, shared by the host;
- `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_*`: large kernel attack surface;
- `open_by_handle_at` (the "shocker" escape), kernel modules, `kexec_*`, `reboot`, `swapon/off`, clocks,
  `acct`, `quotactl`, `syslog`, `iopl`/`ioperm`;
- the ioctls of quota.LAB_DENIED_IOCTLS (FS_IOC_FSSETXATTR): the owner of a file could otherwise move it
  to another filesystem project, out of its workspace's quota.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os

from datalabs.sandbox.quota import LAB_DENIED_IOCTLS

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_MASKED_EQ = 7
CLONE_NEWUSER = 0x10000000

DENIED = (
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "open_by_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "acct",
    "quotactl",
    "syslog",
    "iopl",
    "ioperm",
    "lookup_dcookie",
    "vhangup",
)


class _ArgCmp(ctypes.Structure):
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


def _errno_action(code: int) -> int:
    return 0x00050000 | (code & 0xFFFF)  # SCMP_ACT_ERRNO(code)


@functools.cache
def _lib() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError:
        return None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint32,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.POINTER(_ArgCmp),
    ]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    return lib


def available() -> tuple[bool, str]:
    """(True, how) when the filter can be built here; (False, why) otherwise."""
    try:
        program()
    except OSError as exc:
        return False, str(exc)
    return True, f"libseccomp: {len(DENIED) + 3 + len(LAB_DENIED_IOCTLS)} rules, default allow"


@functools.cache
def program() -> bytes:
    """The compiled BPF program (the same for every sandbox, built once per process)."""
    lib = _lib()
    if lib is None:
        raise OSError("libseccomp is not installed (Debian package libseccomp2)")
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        for name in DENIED:
            _add(lib, ctx, _errno_action(errno.EPERM), name)
        newuser = (_ArgCmp * 1)(_ArgCmp(0, SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER))
        for name in ("unshare", "clone"):
            _add(lib, ctx, _errno_action(errno.EPERM), name, newuser)
        _add(lib, ctx, _errno_action(errno.ENOSYS), "clone3")
        for request in LAB_DENIED_IOCTLS:
            cmd = (_ArgCmp * 1)(_ArgCmp(1, SCMP_CMP_MASKED_EQ, 0xFFFFFFFF, request))
            _add(lib, ctx, _errno_action(errno.EPERM), "ioctl", cmd)
        fd = os.memfd_create("datalabs-seccomp-export", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise OSError(-rc, "seccomp_export_bpf failed")
            size = os.lseek(fd, 0, os.SEEK_CUR)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)


def _add(lib: ctypes.CDLL, ctx: int, action: int, name: str, args=None) -> None:
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr < 0:  # not a call of this architecture (e.g. iopl on arm64): nothing to deny
        return
    count = len(args) if args is not None else 0
    rc = lib.seccomp_rule_add_array(ctx, action, nr, count, args)
    if rc < 0:
        raise OSError(-rc, f"seccomp: cannot add a rule for {name}")


def program_fd() -> int:
    """A fresh readable fd holding the program at offset 0, for `bwrap --seccomp FD` (the caller passes
    it to the child with pass_fds and closes it after the spawn)."""
    fd = os.memfd_create("datalabs-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
