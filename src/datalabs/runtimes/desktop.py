"""Desktop labs (DESIGN §5, §9): TigerVNC's `Xvnc`, a light window manager and the app, in the lab's sandbox.

Inside the sandbox a small bash session script starts `Xvnc` on display :0 listening for RFB on a unix
socket in the runtime dir only (`/run/datalab/vnc.sock`; no TCP port, no abstract X socket), then
`matchbox-window-manager` (one maximised window at a time, so the app follows `resize=remote`), then the
app in the user's workspace. The lab lives as long as the app (or the X server): closing the app ends
the lab, and a crashing app fails the start with its last log line. A desktop with several apps (the
Astro desktop) runs jwm with a taskbar and an Apps menu instead, and a SAMP hub first: desktop_apps.py.

Desktop apps resolve the lab's own hostname (DS9 puts it in its SAMP callback URL, Java's getLocalHost()
throws without it), so the lab gets an /etc/hosts naming it, bound from the runtime dir.

The X server's socket directory is the runtime dir's `X11/`, bound at `/tmp/.X11-unix`, so the platform
(and tests and benchmarks) can reach the lab's display with `x_command()` without entering the sandbox.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import replace
from pathlib import Path

from datalabs.runtimes import desktop_apps
from datalabs.runtimes.base import LabSpec
from datalabs.sandbox.bwrap import NOBODY, sandbox_path

VNC_SOCKET = "vnc.sock"
PASSWORD_FILE = "vncpasswd"  # in the runtime dir: Xvnc's password, in TigerVNC's file format
X11_DIR = "X11"  # in the runtime dir; bound at /tmp/.X11-unix inside the lab
HOSTS = "hosts"  # in the runtime dir; bound at /etc/hosts inside the lab
WINDOW_MARK = "window"  # written by the session once the app shows a window
DISPLAY = ":0"  # every lab has its own /tmp and no abstract socket, so all can use :0
GEOMETRY = "1280x800"  # until the browser asks for its own size (noVNC resize=remote)

# The executables the desktop session needs, and the Debian package that provides each.
SESSION_TOOLS = {
    "Xvnc": "tigervnc-standalone-server",
    "matchbox-window-manager": "matchbox-window-manager",
    "xdotool": "xdotool",
}

# The X server, first in every desktop session. Runs as the lab's user, inside the sandbox, with bash
# from /bin; leaves $rt (the runtime dir), $xvnc (its pid) and the trap that forwards a stop signal.
XVNC = r"""
set -u
rt=/run/datalab
export DISPLAY=:0
# RFB only on the unix socket in the runtime dir (mode 0600, the lab's uid; no TCP port), and only with
# the lab's VNC password, which the proxy supplies (proxy/rfb.py): even a connection that reached this
# socket some other way gets nothing without it. -nolisten local: no abstract X socket. Every client
# comes from the same "host" (the proxy): Xvnc's blacklist of hosts that fail before authenticating
# must not lock the owner out.
Xvnc :0 -rfbunixpath "$rt/vnc.sock" -rfbunixmode 0600 -rfbport -1 -nolisten tcp -nolisten local \
  -SecurityTypes VncAuth -PasswordFile "$rt/vncpasswd" -geometry "${DATALAB_GEOMETRY:-1280x800}" -depth 24 \
  -desktop "${DATALAB_TITLE:-Datalab}" -AlwaysShared -BlacklistThreshold 1000000 &
xvnc=$!
# Xvnc leads its own process group: a stop signal to the lab's group must reach it through us. Then wait
# (8 s at most; the platform sends SIGKILL at 10) until every other process of the sandbox has ended: once
# this shell exits, the sandbox's pid namespace ends and the kernel kills what is left before it has
# cleaned up (e.g. a Java app behind its launcher script, or a SAMP hub removing its lockfile).
stop_session() {
  kill $(jobs -p) 2>/dev/null
  for _ in $(seq 80); do
    left=0
    for p in /proc/[0-9]*; do case ${p#/proc/} in 1|$$) ;; *) left=1; break ;; esac; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  exit 143
}
trap stop_session TERM INT HUP
for _ in $(seq 400); do [ -S /tmp/.X11-unix/X0 ] && break; sleep 0.025; done
[ -S /tmp/.X11-unix/X0 ] || { echo "Xvnc did not start" >&2; exit 70; }
"""

# A single-app session: $1..: the app's command.
SINGLE_APP = r"""
matchbox-window-manager -use_titlebar no -use_cursor yes &
"$@" &
app=$!
# Ready once a window is on screen: the user never waits on an empty desktop.
( until xdotool search --onlyvisible --name . >/dev/null 2>&1; do
    kill -0 "$app" 2>/dev/null || exit 0; sleep 0.1
  done; : > "$rt/window" ) &
# The lab lives as long as both the app and the X server (`wait -n` misses a job that ended already).
while kill -0 "$app" 2>/dev/null && kill -0 "$xvnc" 2>/dev/null; do sleep 0.2 & wait $!; done
if kill -0 "$app" 2>/dev/null; then
  wait "$xvnc"; code=$?; echo "the X server (Xvnc) exited with code $code" >&2
else
  wait "$app"; code=$?; echo "the application exited with code $code" >&2
fi
exit "$code"
"""


def missing_tools(
    commands: list[str] = (), packages: dict[str, str] | None = None, several_apps: bool = False
) -> list[str]:
    """What is missing on this host to run a desktop lab with `commands`, as 'tool (Debian package p)'
    phrases; `packages` names the package of each command where the definition says. `several_apps`:
    the session of a lab with several apps (its window manager too, desktop_apps.py)."""
    session = {**SESSION_TOOLS, **(desktop_apps.TOOLS if several_apps else {})}
    packages = {**session, **(packages or {})}
    missing = []
    for tool in dict.fromkeys([*session, *commands]):
        if shutil.which(tool, path=sandbox_path()) is None:
            package = packages.get(tool)
            missing.append(f"{tool} (Debian package {package})" if package else tool)
    return missing


def spec_missing_tools(spec: LabSpec) -> list[str]:
    """`missing_tools` for a lab spec: its app, or with several apps the session's own tools (the apps
    themselves are optional there: the menu lists those installed)."""
    if spec.apps:
        packages = {**desktop_apps.SAMP_HUB_PACKAGE}
        return missing_tools(desktop_apps.required_commands(spec), packages, several_apps=True)
    return missing_tools(spec.command[:1])


def session_spec(spec: LabSpec) -> LabSpec:
    """The spec whose command runs the desktop session around the app's command (or the apps)."""
    title = spec.command[0] if spec.command else "Desktop"
    env = {
        "DATALAB_TITLE": spec.env.get("DATALAB_TITLE") or Path(title).name,
        # Java takes its home from the passwd entry, not $HOME: said again here, so preferences and the
        # SAMP lockfile (~/.samp) go to the lab's home whatever the entry says. JSAMP hubs (TOPCAT's) run
        # the standard profile only: the web profile fails on current Java and serves no browser in a lab.
        "JAVA_TOOL_OPTIONS": f"-Duser.home={spec.env.get('HOME', spec.workdir)} -Djsamp.hub.profiles=std",
        **spec.env,
    }
    if spec.apps:
        script, args = XVNC + desktop_apps.session_script(spec), desktop_apps.session_args(spec)
    else:
        script, args = XVNC + SINGLE_APP, list(spec.command)
    command = ["/bin/bash", "-c", script, "datalab-desktop", *args]
    return replace(spec, command=command, env=env)


def prepare_runtime_dir(runtime_dir: Path, spec: LabSpec | None = None) -> None:
    """The X socket directory (sticky and world-writable like /tmp/.X11-unix, but inside the runtime dir,
    which only the lab's uid and the platform can enter), no stale socket or ready mark, and for a lab
    with several apps its window manager's configuration."""
    x11 = runtime_dir / X11_DIR
    x11.mkdir(exist_ok=True)
    x11.chmod(0o1777)
    for stale in (
        runtime_dir / VNC_SOCKET,
        runtime_dir / WINDOW_MARK,
        x11 / "X0",
        *desktop_apps.stale_files(runtime_dir),
    ):
        stale.unlink(missing_ok=True)
    if spec is not None:
        write_hosts(spec)
        write_password(spec)
        if spec.apps:
            desktop_apps.write_config(spec)


def sandbox_binds(runtime_dir: Path) -> list[str]:
    """Extra bwrap arguments for a desktop lab (after /tmp and /etc are mounted): the X socket directory,
    and /etc/hosts with the lab's hostname when `prepare_runtime_dir` wrote one."""
    binds = ["--bind", str(runtime_dir / X11_DIR), "/tmp/.X11-unix"]
    if (runtime_dir / HOSTS).exists():
        binds += ["--ro-bind", str(runtime_dir / HOSTS), "/etc/hosts"]
    return binds


def sandbox_hostname(spec: LabSpec) -> str:
    return f"lab-{spec.lab_id[:8]}"


def vnc_password(spec: LabSpec) -> str:
    """The lab's VNC password: the first 8 characters of its secret (VNC authentication uses 8 bytes)."""
    # Imported here, not at the top: a web lab's start (a Slurm job's Python) skips proxy.rfb's imports.
    from datalabs.proxy import rfb

    return spec.secret[: rfb.PASSWORD_LENGTH]


def write_password(spec: LabSpec) -> None:
    """Xvnc's password file, readable by the lab's uid only."""
    from datalabs.proxy import rfb

    path = spec.runtime_dir / PASSWORD_FILE
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, rfb.password_file(vnc_password(spec)))
        if os.geteuid() == 0:
            identity = spec.policy.identity or NOBODY
            os.fchown(fd, identity.uid, identity.gid)
    finally:
        os.close(fd)


def write_hosts(spec: LabSpec) -> None:
    """The host's /etc/hosts plus the lab's own hostname on loopback. Desktop apps resolve their hostname:
    DS9 gives the SAMP hub a callback URL with it, Java's getLocalHost() throws without it."""
    try:
        hosts = Path("/etc/hosts").read_text()
    except OSError:
        hosts = "127.0.0.1\tlocalhost\n"
    path = spec.runtime_dir / HOSTS
    path.write_text(f"{hosts.rstrip()}\n127.0.0.1\t{sandbox_hostname(spec)}\n")
    path.chmod(0o644)


async def probe(runtime_dir: Path, desktop_up: bool = False) -> str:
    """'window' once the app shows a window, 'desktop' once Xvnc answers RFB (not asked again once
    `desktop_up`: each probe is a connection Xvnc logs), else ''."""
    if (runtime_dir / WINDOW_MARK).exists():
        return "window"
    socket = runtime_dir / VNC_SOCKET
    if desktop_up or not socket.exists():
        return "desktop" if desktop_up else ""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(socket)), 2)
    except (OSError, TimeoutError):
        return ""
    try:
        greeting = await asyncio.wait_for(reader.readexactly(12), 2)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return ""
    finally:
        writer.close()
    return "desktop" if greeting.startswith(b"RFB ") else ""


def x_command(runtime_dir: Path, argv: list[str]) -> list[str]:
    """A command line that runs `argv` (an X client such as xdotool) on the lab's display from the host:
    a throwaway bwrap view of the host where /tmp/.X11-unix is the lab's X socket directory."""
    bwrap = shutil.which("bwrap") or "bwrap"
    x11 = str(runtime_dir / X11_DIR)
    return [bwrap, "--dev-bind", "/", "/", "--bind", x11, "/tmp/.X11-unix", "--", "env", "DISPLAY=:0", *argv]
