"""The project's RuntimeDefault seccomp profile: what CRI's `RuntimeDefault` means here.

It refuses (EPERM) the system calls that Docker's default profile keeps from
containers, the ones its documentation names as blocked: calls that reach kernel
state no namespace isolates (the clock, keyrings, kernel modules, swap, reboot,
accounting, NUMA policy), that tamper with other processes (ptrace, process_vm_*),
that make new namespaces or mounts (unshare, setns, mount, the new mount API, and
clone/clone3 with namespace flags), and old or dangerous interfaces (uselib, ustat,
vm86, userfaultfd, io_uring, bpf, perf_event_open). As in Docker's profile, a call is
allowed again when the container holds the capability that guards it (mount with
CAP_SYS_ADMIN, ptrace with CAP_SYS_PTRACE...), so a pod that adds a capability gets
what the capability is for.

Docker writes its profile as an allow-list; this one is written as the list of what
is refused, over a default of allowing, so a program never fails on a harmless call
missing from a list. The cost is that a system call newer than this list is allowed.

clone3 answers ENOSYS rather than EPERM (as Docker does): its flags live in memory a
filter cannot read, and ENOSYS makes libc fall back to clone, whose flags it can.
"""

from collections.abc import Iterable, Mapping
from typing import Any

EPERM = 1
ENOSYS = 38

# clone(2) flags that make new namespaces (linux/sched.h).
CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000, "CLONE_NEWTIME": 0x00000080,
}

# Refused unless the container has the capability named (None: refused always).
GUARDED: Mapping[str | None, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": (
        "mount", "umount", "umount2", "unshare", "setns", "pivot_root", "quotactl",
        "quotactl_fd", "lookup_dcookie", "fanotify_init", "name_to_handle_at", "fsopen",
        "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
        "bpf", "perf_event_open",
    ),
    "CAP_SYSLOG": ("syslog",),
    "CAP_SYS_PTRACE": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
                       "pidfd_getfd", "process_madvise"),
    "CAP_SYS_MODULE": ("init_module", "finit_module", "delete_module", "create_module",
                       "query_module", "get_kernel_syms"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64",
                     "adjtimex", "clock_adjtime", "clock_adjtime64"),
    "CAP_SYS_BOOT": ("reboot", "kexec_load", "kexec_file_load"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_NICE": ("mbind", "set_mempolicy", "move_pages", "get_mempolicy",
                     "set_mempolicy_home_node"),
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    None: (
        "add_key", "request_key", "keyctl", "swapon", "swapoff", "uselib", "ustat",
        "sysfs", "_sysctl", "nfsservctl", "vm86", "vm86old", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register",
    ),
}

ARCHITECTURES: Mapping[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
}


def refused_calls(capabilities: Iterable[str]) -> list[str]:
    """The system calls the profile refuses to a process holding `capabilities`
    (names such as CAP_SYS_ADMIN), sorted."""
    held = set(capabilities)
    return sorted(name for cap, names in GUARDED.items() if cap is None or cap not in held
                  for name in names)


def default_profile(capabilities: Iterable[str], machine: str) -> dict[str, Any]:
    """linux.seccomp of an OCI spec for a process holding `capabilities` on a host
    whose `uname -m` is `machine` (its other ABIs are filtered too: a 32-bit call
    must not go round the list)."""
    held = set(capabilities)
    rules: list[dict[str, Any]] = [
        {"names": refused_calls(held), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
    ]
    if "CAP_SYS_ADMIN" not in held:
        # clone's flags are its first argument on every architecture but s390, where
        # they are its second.
        index = 1 if machine.startswith("s390") else 0
        rules += [{"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM,
                   "args": [{"index": index, "value": flag, "valueTwo": flag,
                             "op": "SCMP_CMP_MASKED_EQ"}]}
                  for flag in CLONE_NAMESPACE_FLAGS.values()]
        rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": list(ARCHITECTURES.get(machine, ())),
        "syscalls": rules,
    }
