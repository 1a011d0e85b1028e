"""A throwaway one-node SLURM cluster for tests: munged, slurmctld and slurmd on 127.0.0.1.

Everything the cluster needs (munge key and socket, slurm.conf, state, logs) lives in one temporary
directory, on ports of its own, and clients find it through ``SLURM_CONF``: a SLURM or munge
already on the machine is left alone. There is no accounting (no slurmdbd, no ``sacct``), so job
states come from ``squeue``, which keeps finished jobs for ``MinJobAge`` seconds.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PARTITION = "alignfuse"  # the partition tests submit to; the default partition is another one
DEFAULT_PARTITION = "debug"
CLIENTS = ("sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
DAEMONS = ("munged", "mungekey", "munge", "slurmctld", "slurmd")
INSTALL_HINT = "apt-get install -y slurm-wlm munge"
# squeue reports a finished job for this long: longer than the executor's status checks need
MIN_JOB_AGE = 900
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}


def unavailable_reason() -> str | None:
    """Why no cluster can be started here, or None when one can."""
    missing = [name for name in CLIENTS + DAEMONS if shutil.which(name) is None]
    if missing:
        return f"SLURM is not installed (missing {', '.join(missing)}): {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "starting slurmd needs root; run the SLURM tests as root (as CI does)"
    return None


def node_hardware() -> tuple[int, int]:
    """(CPUs, RealMemory in MiB) as slurmd itself detects them, so the node is never drained."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True).stdout
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    try:
        return int(fields["CPUs"]), int(fields["RealMemory"])
    except (KeyError, ValueError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return os.cpu_count() or 1, pages // 2**20


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on, distinct (all held open until each is picked)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def slurm_conf(root: Path, node: str, cpus: int, memory_mb: int, partition: str) -> str:
    """slurm.conf of one node on 127.0.0.1: no accounting, no cgroups, state and logs in root."""
    ctld_port, slurmd_port = free_ports(2)
    return f"""\
ClusterName=alignfusetest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
ReturnToService=2
MinJobAge={MIN_JOB_AGE}
KillWait=5
InactiveLimit=0
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={DEFAULT_PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
PartitionName={partition} Nodes={node} Default=NO MaxTime=INFINITE State=UP
"""


@dataclass
class SlurmCluster:
    """A running one-node cluster; ``env`` is the environment its clients (and Snakemake) need."""

    root: Path
    node: str
    partition: str
    cpus: int
    memory_mb: int
    env: dict[str, str]
    daemons: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a SLURM client command (sinfo, squeue, scancel, ...) against this cluster."""
        result = subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stdout}{result.stderr}")
        return result

    def jobs(self) -> list[dict[str, str]]:
        """Every job slurmctld still knows (finished ones for MinJobAge seconds), in id order.

        Keys: id (``123``, or ``123_4`` for an array task), state, name, partition, memory
        (requested, e.g. ``4000M``), time_limit (e.g. ``1:00:00``) and comment.
        """
        keys = ("id", "state", "name", "partition", "memory", "time_limit", "comment")
        out = self.run(
            "squeue", "--states=all", "--noheader", "--array", "--sort=i",
            "--format=%i|%T|%j|%P|%m|%l|%k",
        ).stdout  # fmt: skip
        rows = [line.split("|", len(keys) - 1) for line in out.splitlines() if line.strip()]
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def logs(self) -> str:
        """The daemons' logs, for failure messages."""
        parts = []
        for name in (f"{daemon}.{ext}" for daemon, _ in self.daemons for ext in ("log", "out")):
            path = self.root / name
            if path.exists() and path.stat().st_size:
                lines = path.read_text(errors="replace").splitlines()[-30:]
                parts.append(f"--- {name} (last lines)\n" + "\n".join(lines))
        return "\n".join(parts)

    def wait_until_idle(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            for name, process in self.daemons:
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode}\n{self.logs()}")
            state = self.run("sinfo", "--noheader", "--Node", "--format=%t", check=False).stdout
            if set(state.split()) == {"idle"}:
                return
            time.sleep(0.5)
        reason = self.run("sinfo", "--list-reasons", check=False).stdout
        raise RuntimeError(f"node not idle after {timeout}s: {state!r} {reason}\n{self.logs()}")

    def cancel_all_jobs(self, timeout: float = 60) -> None:
        """Cancel every job and wait until none is left running, so no job outlives slurmd."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            active = [job["id"] for job in self.jobs() if job["state"] in ACTIVE]
            if not active:
                return
            self.run("scancel", *active, check=False)
            time.sleep(1)

    def stop(self) -> None:
        """Cancel all jobs, stop slurmd, slurmctld and munged (by their pids), remove the files."""
        try:
            if all(process.poll() is None for _, process in self.daemons):
                self.cancel_all_jobs()
        finally:
            for _, process in reversed(self.daemons):
                if process.poll() is None:
                    process.terminate()
            for _, process in reversed(self.daemons):
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.daemons.clear()
            shutil.rmtree(self.root, ignore_errors=True)


def start_cluster(partition: str = PARTITION, timeout: float = 60) -> SlurmCluster:
    """Start munged, slurmctld and slurmd in a new temporary directory; wait for an idle node."""
    # short path: unix sockets are limited to ~100 characters; munged wants the directory
    # traversable by everyone and refuses group/world-writable parents (/tmp is sticky: fine)
    root = Path(tempfile.mkdtemp(prefix="slurm-"))
    root.chmod(0o755)
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    node = socket.gethostname().split(".")[0]
    cpus, memory_mb = node_hardware()
    (root / "slurm.conf").write_text(slurm_conf(root, node, cpus, memory_mb, partition))
    env = dict(os.environ, SLURM_CONF=str(root / "slurm.conf"))
    # The executor's job step removes SLURM_* variables (SLURM_CONF too) before its inner
    # `srun`, which on a real cluster finds /etc/slurm/slurm.conf. Rather than write there,
    # an `srun` first on PATH points the real one at this cluster.
    (root / "bin").mkdir()
    wrapper = root / "bin/srun"
    wrapper.write_text(
        f'#!/bin/sh\nSLURM_CONF="{root}/slurm.conf" exec "{shutil.which("srun")}" "$@"\n'
    )
    wrapper.chmod(0o755)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    for name in list(env):
        if name.startswith(("SLURM_JOB", "SBATCH_", "SRUN_", "SQUEUE_")):
            del env[name]
    cluster = SlurmCluster(root, node, partition, cpus, memory_mb, env)

    def launch(name: str, *command: str) -> None:
        with (root / f"{name}.out").open("w") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root
            )
        cluster.daemons.append((name, process))

    try:
        key = root / "munge.key"
        subprocess.run(
            ["mungekey", "--create", f"--keyfile={key}"], check=True, capture_output=True
        )
        key.chmod(0o600)
        launch(
            "munged",
            "munged",
            "--foreground",
            f"--socket={root}/munge.socket",
            f"--key-file={key}",
            f"--pid-file={root}/munged.pid",
            f"--log-file={root}/munged.log",
            f"--seed-file={root}/munged.seed",
        )
        wait_for_munge(root / "munge.socket", cluster)
        launch("slurmctld", "slurmctld", "-D", "-i", "-f", str(cluster.conf))
        launch("slurmd", "slurmd", "-D", "-f", str(cluster.conf), "-N", node)
        cluster.wait_until_idle(timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def wait_for_munge(sock: Path, cluster: SlurmCluster, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.exists():
            credential = subprocess.run(
                ["munge", f"--socket={sock}", "--no-input"], capture_output=True, text=True
            )
            if credential.returncode == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"munged did not start\n{cluster.logs()}")


@contextmanager
def one_node_cluster(partition: str = PARTITION):
    cluster = start_cluster(partition)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running one-node cluster. Without SLURM: fails under CI (CI=true), skips elsewhere."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run the SLURM tests: {reason}", pytrace=False)
        pytest.skip(reason)
    with one_node_cluster() as cluster:
        yield cluster
