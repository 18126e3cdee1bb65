"""Desktop labs with several apps (the "Astro desktop"): a window manager with a launcher, a SAMP hub.

A single-app desktop lab runs matchbox, which shows one maximised window (so the app follows noVNC's
`resize=remote`). Several apps need overlapping windows and a way to (re)start them, so these labs run
JWM instead: one small process with a taskbar, a clock and an "Apps" menu (also on a click on the
desktop) whose configuration the platform writes into the runtime dir (`/run/datalab/jwmrc`). The menu
lists the definition's apps that are installed on the host; those marked `autostart` start with the
session. The lab lives as long as the X server and the window manager: closing an app does not end it
(the menu starts it again); "End the session" in the menu, stopping the lab or the idle culler does.

SAMP. When the definition asks for it, the session starts JSAMP's hub (`topcat -jsamp hub`: the reference
hub, the one TOPCAT would start itself; astropy's `samp_hub` could listen on loopback only, but astropy.samp
is deprecated since astropy 8 in favour of pyvo, which the platform does not install) before the apps and
waits until it has written its lockfile, `~/.samp`, so every app registers with that one hub instead of
racing to start its own. The lockfile is in the lab's home (as the SAMP standard profile says), which the
owner's labs of the same datalab share (labs/manager.py). If the owner
already runs a hub in another lab, JSAMP refuses to start a second one and the apps join that one (tried:
two Astro desktops of one user, six apps on one hub); when that other lab stops, its hub goes with it and
these apps lose SAMP until a hub runs again and they reconnect (the SAMP_HUB variable could give each lab
its own lockfile, but not every app honours it).

Security of the hub: labs share the host's network namespace and JSAMP's hub listens on a TCP port on
every interface (JSAMP has no option to bind loopback only), so other labs, and other hosts the
firewall lets in, can connect to it. What they cannot do is use it: every SAMP call needs the secret
from the lockfile, and the lockfile lies in the owner's workspace, which no other user's lab mounts
(the hub writes it mode 0600 as well). The apps' own SAMP callback servers likewise check the private
key the hub gave them. The same holds for another lab of the same owner, which mounts the same
workspace and therefore may use the hub: that is the owner talking to their own apps.

What the secret does not cover: a table sent over SAMP travels as a URL, and TOPCAT serves the tables it
sends from its own HTTP server (JSAMP's, a TCP port on every interface, by default 2525) at short,
guessable paths (`/dynamic/1/t-1.votable`) without any secret. While TOPCAT serves a table, any process
that can reach the port (another user's lab included: the network namespace is shared) can read it.
Closing that needs a network namespace per lab (loopback private to the lab); until then, treat tables
sent between apps as visible to the host's other labs.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from datalabs.runtimes.base import DesktopApp, LabSpec
from datalabs.sandbox.bwrap import sandbox_path

JWM_CONFIG = "jwmrc"  # in the runtime dir (/run/datalab inside the lab)
HUB_MARK = "samp-hub-start"  # touched just before the hub starts: a lockfile newer than it is the hub's
# The executables a several-app session needs beyond desktop.SESSION_TOOLS, and their Debian packages.
TOOLS = {"jwm": "jwm"}
# TOPCAT's launcher runs JSAMP; 128 MB of heap is plenty for a hub (it relays messages, not tables).
SAMP_HUB = ["topcat", "-Xmx128m", "-jsamp", "hub", "-mode", "no-gui", "-profiles", "std"]
SAMP_HUB_PACKAGE = {"topcat": "topcat"}

# Runs after the X server is up (desktop.XVNC: $rt, $xvnc, the TERM trap). $1..: the shell command lines
# of the apps that start with the session. {placeholders} are filled in by session_script().
SESSION = r"""
jwm -f "$rt/{config}" &
wm=$!
if {samp_hub}; then
  : > "$rt/{mark}"
  {hub} &
  hub=$!
  # The apps must find this hub's lockfile, not a stale one a killed lab left behind (the hub replaces
  # it): wait for a lockfile newer than the mark, or for the hub to give up.
  for _ in $(seq 1200); do
    [ "$HOME/.samp" -nt "$rt/{mark}" ] && break
    kill -0 "$hub" 2>/dev/null || break
    sleep 0.05
  done
  if ! kill -0 "$hub" 2>/dev/null; then
    # JSAMP refuses to start beside a live hub (the owner's other lab runs one: the apps join it).
    echo "the SAMP hub exited (see above): the apps use a live hub of ~/.samp or start their own" >&2
  elif ! [ "$HOME/.samp" -nt "$rt/{mark}" ]; then
    echo "the SAMP hub wrote no lockfile within 60 s: starting the apps anyway" >&2
  fi
fi
for app in "$@"; do /bin/sh -c "exec $app" & done
# Ready once an app shows a window (JWM's tray and menus have no name).
( until xdotool search --onlyvisible --name . >/dev/null 2>&1; do
    kill -0 "$wm" 2>/dev/null || exit 0; sleep 0.1
  done; : > "$rt/window" ) &
while kill -0 "$wm" 2>/dev/null && kill -0 "$xvnc" 2>/dev/null; do sleep 0.2 & wait $!; done
if kill -0 "$wm" 2>/dev/null; then
  wait "$xvnc"; code=$?; echo "the X server (Xvnc) exited with code $code" >&2
else
  wait "$wm"; code=$?; echo "the window manager (jwm) ended the session with code $code" >&2
fi
kill $(jobs -p) 2>/dev/null
exit "$code"
"""


def session_script(spec: LabSpec) -> str:
    """The session's part after the X server (desktop.XVNC) for this spec."""
    fill = {
        "{config}": JWM_CONFIG,
        "{mark}": HUB_MARK,
        "{samp_hub}": "true" if spec.samp_hub else "false",
        "{hub}": shlex.join(SAMP_HUB),
    }
    script = SESSION
    for placeholder, value in fill.items():
        script = script.replace(placeholder, value)
    return script


def installed(spec: LabSpec) -> list[DesktopApp]:
    """The spec's apps whose executable is on the lab's PATH (the others are left out of the menu)."""
    return [app for app in spec.apps if shutil.which(app.command[0], path=sandbox_path())]


def required_commands(spec: LabSpec) -> list[str]:
    """Executables without which the session cannot start (apps are optional: `installed`)."""
    return [*TOOLS, *(SAMP_HUB[:1] if spec.samp_hub else [])]


def write_config(spec: LabSpec) -> None:
    """JWM's configuration for this lab: the Apps menu (on the taskbar and on a click on the desktop)."""
    programs = "\n".join(
        f"    <Program label={quoteattr(app.name)}>{escape(shlex.join(app.command))}</Program>"
        for app in installed(spec)
    )
    config = JWM_TEMPLATE.replace("{programs}", programs)
    path = spec.runtime_dir / JWM_CONFIG
    path.write_text(config)
    path.chmod(0o644)  # read by the lab's uid


def session_args(spec: LabSpec) -> list[str]:
    """The session script's arguments: the shell command line of each app that starts with it."""
    return [shlex.join(app.command) for app in installed(spec) if app.autostart]


def stale_files(runtime_dir: Path) -> list[Path]:
    return [runtime_dir / HUB_MARK]


JWM_TEMPLATE = """<?xml version="1.0"?>
<JWM>
  <RootMenu onroot="123" label="Apps">
{programs}
    <Separator/>
    <Exit label="End the session (stops the lab)" confirm="true"/>
  </RootMenu>
  <Desktops width="1" height="1">
    <Background type="solid">#44566f</Background>
  </Desktops>
  <FocusModel>click</FocusModel>
  <SnapMode distance="8">border</SnapMode>
  <MoveMode>opaque</MoveMode>
  <ResizeMode>opaque</ResizeMode>
  <Tray x="0" y="-1" height="30" autohide="off">
    <TrayButton label="Apps">root:1</TrayButton>
    <Spacer width="6"/>
    <TaskList maxwidth="260"/>
    <Clock format="%H:%M"/>
  </Tray>
  <WindowStyle>
    <Font>DejaVu Sans-10:bold</Font>
    <Width>4</Width>
    <Height>24</Height>
    <Foreground>#e8eef7</Foreground>
    <Background>#3a4a63</Background>
    <Active>
      <Foreground>#ffffff</Foreground>
      <Background>#1f6fb2</Background>
    </Active>
  </WindowStyle>
  <TrayStyle>
    <Font>DejaVu Sans-10</Font>
    <Foreground>#ffffff</Foreground>
    <Background>#1b2a41</Background>
  </TrayStyle>
  <TaskListStyle list="all" group="false">
    <Font>DejaVu Sans-10</Font>
    <Foreground>#e8eef7</Foreground>
    <Background>#2b4066</Background>
    <Active>
      <Foreground>#ffffff</Foreground>
      <Background>#1f6fb2</Background>
    </Active>
  </TaskListStyle>
  <MenuStyle>
    <Font>DejaVu Sans-11</Font>
    <Foreground>#ffffff</Foreground>
    <Background>#2b4066</Background>
    <Active>
      <Foreground>#ffffff</Foreground>
      <Background>#1f6fb2</Background>
    </Active>
  </MenuStyle>
</JWM>
"""
