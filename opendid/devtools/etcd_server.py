"""A throwaway `etcd` (Debian's etcd-server) on free ports with its own data folder, for tests.

`restart()` stops it and starts it again on the same ports with the same data, which is what
the "etcd down, then back" tests want: the keys survive, the client must reconnect. With
`cert_file`/`key_file` the client port serves TLS (the JSON gateway included).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

from opendid.devtools.devchain import free_port


class EtcdServer:
    def __init__(self, folder: Path, cert_file: Path | None = None, key_file: Path | None = None,
                 ca_file: Path | None = None) -> None:
        self.folder = folder
        self.client_port = free_port()
        self.peer_port = free_port()
        while self.peer_port == self.client_port:
            self.peer_port = free_port()
        self.cert_file, self.key_file, self.ca_file = cert_file, key_file, ca_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.cert_file else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def endpoint(self) -> str:
        """As the config's `etcd.endpoints` lists it: host:port."""
        return f"127.0.0.1:{self.client_port}"

    def start(self, timeout: float = 60.0) -> EtcdServer:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not installed (make deps installs etcd-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [binary, "--name", "test", "--data-dir", str(self.folder / "data"),
                "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", f"test={peer}", "--log-outputs", "stderr"]
        if self.cert_file and self.key_file:
            args += ["--cert-file", str(self.cert_file), "--key-file", str(self.key_file)]
        if self.ca_file:  # clients must present a certificate this CA signed
            args += ["--client-cert-auth", "--trusted-ca-file", str(self.ca_file)]
        log_path = self.folder / f"etcd-{self.client_port}.log"
        log = open(log_path, "ab")  # noqa: SIM115
        offset = log.tell()
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while not self._serving(log_path, offset):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"etcd did not start, see {log_path}")
            time.sleep(0.05)
        return self

    def _serving(self, log_path: Path, offset: int) -> bool:
        """etcd logs "serving … client requests on <address>" once it answers requests."""
        with open(log_path, "rb") as handle:
            handle.seek(offset)
            return f"client requests on 127.0.0.1:{self.client_port}".encode() in handle.read()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> EtcdServer:
        self.stop()
        return self.start()

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
