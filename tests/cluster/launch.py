"""Start one container's process inside its pod: run as `python -I -S launch.py SPEC.json`.

The kubelet writes SPEC (JSON: netns, hostname, mounts [[host, path, read_only]], cwd, nice, argv,
env). This joins the pod's network namespace, takes a mount and a UTS namespace of its own,
bind-mounts the pod's hosts file, resolv.conf and volumes where the container expects them, sets
the pod's hostname and execs the command. Standard library only: it starts for every container.

There is no container image, so the process still needs this checkout (its .venv, trainer-image/)
and its pod directory on the node. A volume mounted over a directory that holds them (an emptyDir
at /tmp, with the checkout in /tmp) would hide them: the paths in SPEC's `keep` are bound back
in place after the volumes are mounted.
"""

import ctypes
import json
import os
import socket
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWNET = 0x00020000, 0x04000000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 1, 32, 4096, 16384, 1 << 19

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def bind(source: str, is_dir: bool, target: str, read_only: bool) -> None:
    if is_dir:
        os.makedirs(target, exist_ok=True)
    elif not os.path.exists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "a").close()
    check(libc.mount(source.encode(), target.encode(), None, MS_BIND | MS_REC, None), target)
    if read_only:
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        check(libc.mount(None, target.encode(), None, flags, None), f"read-only {target}")


def main(path: str) -> None:
    with open(path) as f:
        spec = json.load(f)
    if spec["netns"]:
        fd = os.open(f"/run/netns/{spec['netns']}", os.O_RDONLY)
        check(libc.setns(fd, CLONE_NEWNET), "setns")
        os.close(fd)
    check(libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    check(libc.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "make / a slave")
    # every source is opened before the first mount, which may hide it (a volume under /tmp)
    sources = [(os.open(m[0], os.O_PATH), os.path.isdir(m[0])) for m in spec["mounts"]]
    kept = [(path, os.open(path, os.O_PATH), os.stat(path)) for path in spec["keep"]]
    for (fd, is_dir), (_, target, read_only) in zip(sources, spec["mounts"], strict=True):
        bind(f"/proc/self/fd/{fd}", is_dir, target, read_only)
        os.close(fd)
    for path, fd, before in kept:
        if not os.path.exists(path) or os.stat(path).st_ino != before.st_ino:
            bind(f"/proc/self/fd/{fd}", True, path, False)
        os.close(fd)
    socket.sethostname(spec["hostname"])
    os.chdir(spec["cwd"])
    if spec["nice"]:
        os.nice(spec["nice"])
    argv = spec["argv"]
    os.execvpe(argv[0], argv, spec["env"])


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except OSError as exc:  # the container's log shows why it could not start
        print(f"kubetune test kubelet: cannot start the container: {exc}", file=sys.stderr)
        sys.exit(128)
