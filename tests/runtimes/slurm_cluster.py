"""A real single-node Slurm cluster for the tests, private to one temp dir and to loopback.

`slurm_cluster()` starts, as root, its own munged (own key and socket), slurmctld and slurmd (Debian's
`slurm-wlm` + `munge`, installed by `scripts/install-system-packages.sh test`). Nothing system-wide is
read or written: slurm.conf, gres.conf, the munge key and socket, state and spool dirs, logs and pid
files all live under the temp dir, the daemons listen on free ports of 127.0.0.1, and Slurm's clients
find everything through `SLURM_CONF` (the munge socket through `AuthInfo=socket=` in slurm.conf).
Several clusters (parallel test sessions) can run side by side.

The node is `localhost` (NodeAddr 127.0.0.1; jobs see the real hostname), with this machine's CPUs and
memory, two partitions, `debug` (default) and `gpu`, and two fake GPUs (`Gres=gpu:fake:2`): gres.conf
needs character devices, so two are made under the temp dir (copies of /dev/null's numbers); Slurm
schedules them and sets CUDA_VISIBLE_DEVICES / SLURM_JOB_GPUS, nothing can compute on them.
Without systemd or cgroup delegation: `proctrack/linuxproc` (a job's processes are found through their
parents) and `task/none`, so nothing fences a job's CPUs, memory or devices - Slurm only accounts.

`sacct` works: since Slurm 20.11 the only accounting storages are `none` and `slurmdbd`, and slurmdbd
needs MySQL/MariaDB, so the cluster starts its own private MariaDB (`mariadb-install-db` into the temp
dir, `mariadbd` on a unix socket there and a free loopback port, a `slurm` database user with a random
password, root only through the socket) and its own slurmdbd (slurmdbd.conf beside slurm.conf, 0600 and
owned by SlurmUser, root) on another free port; the cluster is registered (`sacctmgr -i add cluster`)
before slurmctld starts with `AccountingStorageType=accounting_storage/slurmdbd`. Job records reach the
database asynchronously: a finished job shows in `sacct` shortly after it ends (`wait_accounted`).
`slurm_cluster(accounting=False)` starts without MariaDB and slurmdbd (`accounting_storage/none`, a
few seconds faster), where `sacct` answers "Slurm accounting storage is disabled". Either way two more
records, both real Slurm output:
  - `job_info(id)` (`scontrol show job`): live and finished jobs, finished ones for MinJobAge (300 s);
  - `completed_jobs()`: the `jobcomp/filetxt` log, one line per finished job (state, start and end
    times, node list, TRES, exit code) for the cluster's whole life.

In the suite, use the session fixture `slurm_cluster` (tests/conftest.py) and mark the tests
`pytest.mark.xdist_group("slurm")` (or "slurm-platform", the tests through the whole platform) so that
one xdist worker starts one cluster for a group; the two groups' long waits then overlap.
Where the binaries are missing (or not root) the fixture skips with the reason, unless
DATALABS_REQUIRE_SLURM=1 (set by `make test`), where that is a failure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "slurmdbd", "mariadbd", "mariadb-install-db")
CLIENTS = ("sbatch", "squeue", "sacct", "sacctmgr", "scancel", "scontrol", "sinfo", "mariadb")
CLUSTER_NAME = "datalabs-test"
NODE = "localhost"
# A cluster for interactive labs schedules batch jobs at once (Slurm's default lets them wait up to 3 s:
# batch_sched_delay), as README.md recommends to sites; bench/slurm.py measures both.
INTERACTIVE = "batch_sched_delay=0"
FAKE_GPUS = 2
# Seconds a client or daemon waits for a round trip (Slurm's default 10). A client that cannot reach the
# controller retries the connection for MessageTimeout - 1 seconds per request before it fails (squeue 9 s
# or more, the outage tests' waits); loopback answers in milliseconds, so 5 s still leaves a loaded
# machine room.
MESSAGE_TIMEOUT = 5
# Set in every daemon's and client's environment (and so in every job's): teardown finds whatever this
# cluster started, slurmstepd and job processes included, by it.
MARKER = "DATALABS_TEST_SLURM_CLUSTER"
TERMINAL_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}


class SlurmError(RuntimeError):
    """The cluster did not come up or a job did not reach the awaited state; says what the logs say."""


def unavailable_reason() -> str | None:
    """Why this machine cannot run the cluster, or None if it can."""
    missing = [name for name in DAEMONS + CLIENTS if shutil.which(name) is None]
    if missing:
        return (
            f"Slurm/munge/MariaDB binaries missing: {', '.join(missing)} "
            "(scripts/install-system-packages.sh test)"
        )
    if os.geteuid() != 0:
        return "the test Slurm cluster runs its daemons as root (SlurmUser=root)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise SlurmError("no MemTotal in /proc/meminfo")


def _key_values(text: str) -> dict[str, str]:
    """`Key=Value Key=Value` as scontrol -o and jobcomp/filetxt print it (values without spaces)."""
    return dict(re.findall(r"(\w+)=(\S*)", text))


class SlurmCluster:
    def __init__(
        self, root: Path, cpus: int | None = None, accounting: bool = True, scheduler: str = INTERACTIVE
    ):
        self.root = root
        self.scheduler = scheduler
        self.conf = root / "slurm.conf"
        self.log_dir = root / "log"
        self.jobcomp = self.log_dir / "jobcomp.txt"
        self.cpus = cpus or os.cpu_count() or 1
        # Leave room for the platform itself: a node that claims more than it has is drained by slurmd.
        self.memory_mib = int(_memory_mib() * 0.8)
        self.ctld_port, self.slurmd_port = _free_port(), _free_port()
        self.accounting = accounting
        self.dbd_port, self.mariadb_port = (_free_port(), _free_port()) if accounting else (0, 0)
        self.env = {"SLURM_CONF": str(self.conf), MARKER: str(root)}
        self._procs: dict[str, subprocess.Popen] = {}

    # -- configuration -------------------------------------------------------------------------------

    def _write_config(self) -> None:
        # munged insists that everyone may traverse to its socket and that only its user reads the key.
        self.root.chmod(0o755)
        for sub in ("munge", "state", "spool", "log", "dev"):
            (self.root / sub).mkdir(mode=0o755)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        gpu_files = []
        for index in range(FAKE_GPUS):
            path = self.root / "dev" / f"gpu{index}"
            os.mknod(path, 0o644 | 0o020000, os.makedev(1, 3))  # a character device, as /dev/null
            gpu_files.append(path)
        r = self.root
        # More CPUs than the machine has (many small jobs at once) only with config_overrides.
        overrides = "SlurmdParameters=config_overrides\n" if self.cpus != os.cpu_count() else ""
        node = f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={self.memory_mib}"
        self.conf.write_text(
            f"""ClusterName={CLUSTER_NAME}
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
MessageTimeout={MESSAGE_TIMEOUT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/munge/munge.socket
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={self.log_dir}/slurmctld.log
SlurmdLogFile={self.log_dir}/slurmd.log
MailProg=/bin/true
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
{f"SchedulerParameters={self.scheduler}" if self.scheduler else "# Slurm's scheduler defaults"}
DefMemPerCPU=256
JobAcctGatherType=jobacct_gather/linux
{self._accounting_lines()}
JobCompType=jobcomp/filetxt
JobCompLoc={self.jobcomp}
GresTypes=gpu
ReturnToService=2
{overrides}{node} Gres=gpu:fake:{FAKE_GPUS} State=UNKNOWN
PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={NODE} Default=NO MaxTime=INFINITE State=UP
"""
        )
        (self.root / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={NODE} Name=gpu Type=fake File={r}/dev/gpu[0-{FAKE_GPUS - 1}]\n"
        )

    def _accounting_lines(self) -> str:
        if not self.accounting:
            return "AccountingStorageType=accounting_storage/none"
        return (
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={self.dbd_port}\n"
            # Connections to slurmdbd take their munge socket from here, not from AuthInfo.
            f"AccountingStoragePass={self.root}/munge/munge.socket\n"
            "AccountingStorageTRES=gres/gpu\n"  # GPUs in sacct's AllocTRES (gres/gpu=N), as CPUs are
            "JobAcctGatherFrequency=30"
        )

    def _write_dbd_config(self, password: str) -> None:
        r = self.root
        path = r / "slurmdbd.conf"  # slurmdbd reads it beside SLURM_CONF; refuses it unless 0600, SlurmUser's
        path.touch(mode=0o600)
        path.write_text(
            f"""AuthType=auth/munge
AuthInfo=socket={r}/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={self.dbd_port}
SlurmUser=root
PidFile={r}/slurmdbd.pid
LogFile={self.log_dir}/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={self.mariadb_port}
StorageUser=slurm
StoragePass={password}
StorageLoc=slurm_acct_db
"""
        )
        os.chown(path, 0, 0)

    # -- daemons -------------------------------------------------------------------------------------

    def _start_mariadb(self) -> str:
        """A private MariaDB for slurmdbd; returns the password of its `slurm` user. Small InnoDB log and
        buffer pool: it holds a few job records, and install-db writes the log files in full."""
        db = self.root / "mariadb"
        small = ["--innodb-log-file-size=4M", "--innodb-buffer-pool-size=16M"]
        with open(self.log_dir / "mariadb-install.out", "wb") as log:
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={db}/data",
                    "--user=root",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                    "--skip-name-resolve",
                    *small,
                ],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
            )
        self._spawn(
            "mariadbd",
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={db}/data",
                f"--socket={db}/mariadb.sock",
                f"--port={self.mariadb_port}",
                "--bind-address=127.0.0.1",
                "--user=root",
                f"--pid-file={db}/mariadbd.pid",
                f"--log-error={self.log_dir}/mariadbd.log",
                "--skip-name-resolve",
                "--skip-log-bin",
                *small,
            ],
        )
        answers = lambda: self._sql("SELECT 1").returncode == 0  # noqa: E731
        self._until(answers, "MariaDB to answer on its socket", "mariadbd")
        password = os.urandom(12).hex()
        self._sql(
            f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}'; "
            "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';",
            check=True,
        )
        return password

    def _sql(self, statements: str, check: bool = False) -> subprocess.CompletedProcess:
        """Statements as MariaDB's root, through the socket (root has no password, and no network login)."""
        sock = self.root / "mariadb" / "mariadb.sock"
        return subprocess.run(
            ["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root", "-e", statements],
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def _start_slurmdbd(self) -> None:
        self._write_dbd_config(self._start_mariadb())
        self._spawn("slurmdbd", ["slurmdbd", "-D"])
        registered = lambda: (  # noqa: E731 - sacctmgr answers once slurmdbd has made its tables
            self.run("sacctmgr", "-i", "add", "cluster", CLUSTER_NAME, check=False).returncode == 0
        )
        self._until(registered, "slurmdbd to register the cluster", "slurmdbd")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.log_dir / f"{name}.out", "ab")  # noqa: SIM115 - the daemon keeps it
        self._procs[name] = subprocess.Popen(
            argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

    def _start_munged(self) -> None:
        m = self.root / "munge"
        self._spawn(
            "munged",
            [
                "munged",
                "--foreground",
                f"--socket={m}/munge.socket",
                f"--key-file={m}/munge.key",
                f"--pid-file={m}/munged.pid",
                f"--log-file={m}/munged.log",
                f"--seed-file={m}/munged.seed",
            ],
        )
        self._until(lambda: (m / "munge.socket").exists(), "munged to create its socket", "munged")

    def start_controller(self) -> None:
        """Start slurmctld (again); it recovers jobs and nodes from StateSaveLocation."""
        self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf)])
        answers = lambda: self.run("scontrol", "ping", check=False).returncode == 0  # noqa: E731
        self._until(answers, "slurmctld to answer", "slurmctld")

    def stop_controller(self) -> None:
        """Stop slurmctld as an operator would (SIGTERM: it saves its state); jobs keep running."""
        self._stop("slurmctld")

    def start(self) -> SlurmCluster:
        self._write_config()
        self._start_munged()
        if self.accounting:
            self._start_slurmdbd()
        self.start_controller()
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", NODE])
        self._until(lambda: self.node_state() == "idle", "the node to become idle", "slurmd")
        return self

    def _stop(self, name: str) -> None:
        proc = self._procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Cancel every job, stop the daemons, then kill anything still carrying this cluster's marker."""
        with contextlib.suppress(Exception):
            if "slurmctld" not in self._procs and "slurmd" in self._procs:
                self.start_controller()
            self.cancel_all()
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            self._stop(name)
        for pid in self._marked_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _marked_pids(self) -> list[int]:
        needle = f"{MARKER}={self.root}".encode() + b"\0"
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ + b"\0":
                found.append(int(entry.name))
        return found

    def _until(self, ready, what: str, daemon: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            proc = self._procs.get(daemon)
            if proc is not None and proc.poll() is not None:
                exited = f"{daemon} exited ({proc.returncode})"
                raise SlurmError(f"{exited} waiting for {what}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise SlurmError(f"timed out waiting for {what}:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for path in sorted(self.log_dir.glob("*")) + [self.root / "munge" / "munged.log"]:
            if path.is_file() and path != self.jobcomp:
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    # -- clients -------------------------------------------------------------------------------------

    def run(self, *argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster (text output)."""
        result = subprocess.run(
            argv, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise SlurmError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def sbatch(self, script: str, *options: str) -> str:
        """Submit a batch script (its text); returns the job id."""
        path = Path(tempfile.mkstemp(dir=self.root, prefix="job-", suffix=".sh")[1])
        path.write_text(script)
        return self.run("sbatch", "--parsable", *options, str(path)).stdout.strip().split(";")[0]

    def node_state(self) -> str:
        result = self.run("sinfo", "-h", "-n", NODE, "-o", "%t", check=False)
        return result.stdout.strip().splitlines()[0].rstrip("*~#!%$@^-") if result.stdout.strip() else ""

    def job_info(self, job_id: str) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Reason, BatchHost, ExitCode, ...); {} if unknown."""
        result = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        return _key_values(result.stdout) if result.returncode == 0 else {}

    def wait_job(self, job_id: str, states: Iterable[str], timeout: float = 60) -> dict[str, str]:
        """Wait until the job's state is one of `states`; fails early if it ends in another one."""
        wanted = set(states)
        deadline = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < deadline:
            info = self.job_info(job_id)
            state = info.get("JobState", "")
            if state in wanted:
                return info
            if state in TERMINAL_STATES:
                raise SlurmError(f"job {job_id} ended {state} ({info.get('Reason')}), not {sorted(wanted)}")
            time.sleep(0.1)
        raise SlurmError(f"job {job_id} not {sorted(wanted)} in time: {info or 'unknown'}\n{self.log_tail()}")

    def queued(self) -> list[str]:
        """Ids of the jobs the controller still holds as pending or running."""
        out = self.run("squeue", "-h", "-t", "PENDING,RUNNING,SUSPENDED,CONFIGURING", "-o", "%i").stdout
        return out.split()

    def cancel_all(self) -> None:
        jobs = self.queued()
        if jobs:
            self.run("scancel", *jobs)
            for job in jobs:
                self.wait_job(job, TERMINAL_STATES)

    def accounted(self, *job_ids: str) -> dict[str, dict[str, str]]:
        """sacct's record of each job (one allocation line, -X): JobID, State, Start, End, Elapsed,
        ElapsedRaw, AllocTRES; jobs slurmdbd does not know yet are missing."""
        fields = ("JobID", "State", "Start", "End", "Elapsed", "ElapsedRaw", "AllocTRES")
        out = self.run("sacct", "-X", "-P", "-n", "-j", ",".join(job_ids), "-o", ",".join(fields)).stdout
        rows = [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines() if line]
        return {row["JobID"]: row for row in rows}

    def wait_accounted(self, job_id: str, timeout: float = 60) -> dict[str, str]:
        """sacct's record of a finished job once slurmdbd has its end (records arrive asynchronously)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.accounted(job_id).get(job_id)
            if row and row["State"].split()[0] in TERMINAL_STATES and row["End"] not in ("", "Unknown"):
                return row
            time.sleep(0.2)
        raise SlurmError(f"job {job_id} never reached sacct as finished\n{self.log_tail()}")

    def completed_jobs(self) -> list[dict[str, str]]:
        """The jobcomp/filetxt log: one dict per finished job (sacct's stand-in, see the module doc)."""
        if not self.jobcomp.exists():
            return []
        return [_key_values(line) for line in self.jobcomp.read_text().splitlines() if line.strip()]


@contextlib.contextmanager
def slurm_cluster(
    cpus: int | None = None, accounting: bool = True, scheduler: str = INTERACTIVE
) -> Iterator[SlurmCluster]:
    """A started cluster, torn down (jobs, daemons, temp dir) on exit whatever happened. `scheduler`:
    its SchedulerParameters ("": Slurm's defaults)."""
    root = Path(tempfile.mkdtemp(prefix="datalabs-slurm-"))
    cluster = SlurmCluster(root, cpus=cpus, accounting=accounting, scheduler=scheduler)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
