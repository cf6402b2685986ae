"""`hkai-qa serve` in its own process on a free loopback port, for the tests that need a real server process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx


class ServeProcess:
    """A real `hkai-qa serve` writing to `log` (stderr always; stdout too unless `stdout_to_log` is off)."""

    def __init__(
        self, corpus: Path, index: Path, log: Path, env: Mapping[str, str], *, stdout_to_log: bool = True
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log: IO[bytes] = log.open("ab")
        command = [sys.executable, "-m", "hkai_qa", "serve", "--corpus", str(corpus), "--index", str(index)]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            stdout=self._log if stdout_to_log else subprocess.DEVNULL,
            stderr=self._log,
            env=dict(env),
        )

    def wait_ready(self, seconds: float = 180) -> None:
        """Until /readyz answers 200 (model and index loaded); fails with the server's log if it exits."""
        deadline = time.monotonic() + seconds
        while True:
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            assert time.monotonic() < deadline, "server not ready in time"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()
