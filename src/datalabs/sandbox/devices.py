"""Which device nodes a sandbox may open, enforced by its cgroup: cgroup v1's `devices` controller (an
allow list in files), or on cgroup v2, which has no such files, an eBPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE attached to the sandbox's cgroup.

Why both a fresh /dev and a rule: bwrap's `--dev /dev` shows a sandbox only the nodes bound into it, but
a path is not a permission. A device node reached some other way (one lying in a bound folder, a node
made where capabilities allow) would open as well; with the rule the kernel refuses at open(2) any node
the sandbox was not given (EPERM), whatever its path.

No maintained Python package loads cgroup device programs (bcc and libbpf compile C, which needs a
compiler and kernel headers on the host; pyroute2 has no BPF loader), so the program is assembled here from
the rules, as runc (libcontainer/cgroups/devices) and libvirt (vircgroupv2devices.c) do, and loaded with
the bpf(2) system call. The kernel's verifier checks it. Once attached it stays with the cgroup without
being pinned (a restarted platform need do nothing) and goes when the cgroup is removed.
"""

from __future__ import annotations

import ctypes
import os
import platform
import stat
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DeviceRule:
    """Access `access` (letters of "rwm": read, write, mknod) to the `kind` ("c" or "b") device
    `major`:`minor`; None stands for any number."""

    kind: str
    major: int | None
    minor: int | None
    access: str = "rw"

    def v1_line(self) -> str:
        """The rule as cgroup v1's devices.allow reads it, e.g. "c 195:0 rw"."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.kind} {major}:{minor} {self.access}"


def _char(major: int, minor: int | None) -> DeviceRule:
    return DeviceRule("c", major, minor)


# What bwrap's fresh /dev holds (null, zero, full, random, urandom, tty, and a devpts instance whose
# ptmx and pts/N are 5:2 and 136-143:N): any sandbox may use these.
BASE_RULES: tuple[DeviceRule, ...] = (
    *(_char(1, minor) for minor in (3, 5, 7, 8, 9)),
    _char(5, 0),
    _char(5, 2),
    *(_char(major, None) for major in range(136, 144)),
)


def rules_for(nodes: Iterable[Path]) -> list[DeviceRule]:
    """Read-write rules for the character or block device nodes `nodes` (stat'ed now)."""
    rules = []
    for node in nodes:
        st = os.stat(node)
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise ValueError(f"{node} is not a device node")
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        rules.append(DeviceRule(kind, os.major(st.st_rdev), os.minor(st.st_rdev)))
    return rules


# ---- cgroup v1: the devices controller's files ------------------------------------------------------


def write_v1(cgroup_dir: Path, rules: Sequence[DeviceRule]) -> None:
    """Deny every device in the v1 devices cgroup `cgroup_dir`, then allow `rules` (before any process
    joins it: the kernel applies the list at every open)."""
    (cgroup_dir / "devices.deny").write_text("a")
    for rule in rules:
        (cgroup_dir / "devices.allow").write_text(rule.v1_line())


# ---- cgroup v2: a BPF_PROG_TYPE_CGROUP_DEVICE program -----------------------------------------------

# From linux/bpf.h.
BPF_PROG_LOAD, BPF_PROG_ATTACH = 5, 8
BPF_PROG_TYPE_CGROUP_DEVICE, BPF_CGROUP_DEVICE = 15, 6
BPF_F_ALLOW_MULTI = 2  # the program runs beside those of parent cgroups (e.g. systemd's): all must allow
DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}  # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE
# bpf(2)'s number on the little-endian machines the instructions below are encoded for.
SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "riscv64": 280}

# Instruction encodings (linux/bpf_common.h, linux/bpf.h): class | operation | source.
LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
MOV32_REG, MOV64_IMM = 0xBC, 0xB7
AND32_IMM, RSH32_IMM = 0x54, 0x74
JNE_IMM = 0x55  # if dst != imm: pc += off
EXIT = 0x95


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(rules: Sequence[DeviceRule]) -> bytes:
    """The eBPF program allowing exactly `rules`: it returns 1 (allow) for an access matching one, else
    0 (the kernel answers EPERM).

    Its context is struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor}, where access_type
    is (access bits << 16) | device type. Registers: r2 type, r3 access asked for, r4 major, r5 minor;
    one block per rule, each of whose tests jumps to the next block when it fails."""
    code = [
        _insn(LDX_MEM_W, dst=2, src=1, off=0),
        _insn(MOV32_REG, dst=3, src=2),
        _insn(RSH32_IMM, dst=3, imm=16),
        _insn(AND32_IMM, dst=2, imm=0xFFFF),
        _insn(LDX_MEM_W, dst=4, src=1, off=4),
        _insn(LDX_MEM_W, dst=5, src=1, off=8),
    ]
    for rule in rules:
        tests = [(2, DEV_TYPE[rule.kind])]  # (register, value) of each "jump to the next block if not"
        if rule.major is not None:
            tests.append((4, rule.major))
        if rule.minor is not None:
            tests.append((5, rule.minor))
        size = len(tests) + 5  # the tests, the access test (3) and "return 1" (2)
        for n, (register, value) in enumerate(tests):
            code.append(_insn(JNE_IMM, dst=register, off=size - (n + 1), imm=value))
        # Every access bit asked for must be allowed: (asked & ~allowed) == 0, computed in r6.
        allowed = sum(ACCESS_BITS[a] for a in set(rule.access))
        code += [
            _insn(MOV32_REG, dst=6, src=3),
            _insn(AND32_IMM, dst=6, imm=~allowed & 0x7),
            _insn(JNE_IMM, dst=6, off=2, imm=0),
            _insn(MOV64_IMM, dst=0, imm=1),
            _insn(EXIT),
        ]
    code += [_insn(MOV64_IMM, dst=0, imm=0), _insn(EXIT)]
    return b"".join(code)


def _bpf(cmd: int, attr: bytes) -> int:
    number = SYS_BPF.get(platform.machine())
    if number is None:
        raise OSError(f"loading BPF programs is not supported on {platform.machine()} by this platform")
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = libc.syscall(ctypes.c_long(number), ctypes.c_int(cmd), buf, ctypes.c_uint(len(attr)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def _load(code: bytes) -> int:
    """Load `code` as a cgroup device program; an fd of it. If the kernel refuses it, it is loaded once
    more with the verifier's log on, whose reason goes into the error. Not at first: a successful
    load's log can outgrow its buffer, which fails the load."""
    attr, _held = _load_attr(code, None)  # _held: the buffers attr points to, alive until the call ends
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as exc:
        log = ctypes.create_string_buffer(256 * 1024)
        attr, _held = _load_attr(code, log)
        try:
            os.close(_bpf(BPF_PROG_LOAD, attr))
            why = ""
        except OSError:
            lines = log.value.decode(errors="replace").strip().splitlines()
            why = next((x for x in reversed(lines) if not x.startswith("processed ")), "")  # not the stats
        raise OSError(exc.errno, f"the kernel refused the device program: {exc.strerror} {why}") from None


def _load_attr(code: bytes, log: ctypes.Array | None) -> tuple[bytes, tuple[ctypes.Array, ...]]:
    """BPF_PROG_LOAD's union bpf_attr up to expected_attach_type (a kernel takes a shorter attr), and
    the buffers whose addresses it holds (the caller keeps them alive while the kernel reads them)."""
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = struct.pack(
        "<IIQQIIQII16sII",
        BPF_PROG_TYPE_CGROUP_DEVICE,
        len(code) // 8,
        ctypes.addressof(insns),
        ctypes.addressof(license_),
        1 if log is not None else 0,  # log_level
        len(log) if log is not None else 0,
        ctypes.addressof(log) if log is not None else 0,
        0,  # kern_version
        0,  # prog_flags
        b"datalabs_devs",
        0,  # prog_ifindex
        BPF_CGROUP_DEVICE,
    )
    return attr, (insns, license_)


def attach_v2(cgroup_dir: Path, rules: Sequence[DeviceRule]) -> None:
    """Allow only `rules` to the processes of the v2 cgroup `cgroup_dir` (before any joins it)."""
    prog = _load(program(rules))
    try:
        target = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            attr = struct.pack("<IIIII", target, prog, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, 0)
            _bpf(BPF_PROG_ATTACH, attr)
        finally:
            os.close(target)
    finally:
        os.close(prog)  # the attachment holds its own reference
