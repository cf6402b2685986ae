"""Index versions -> the served one: a background thread that swaps in each version `hkai-qa build` publishes."""

from __future__ import annotations

import logging
import threading

from hkai_qa.errors import HkaiError
from hkai_qa.service import QAService
from hkai_qa.versions import current_version

log = logging.getLogger("hkai_qa.service")


class IndexWatcher:
    """Polls the index folder's CURRENT pointer and loads new versions in a background thread."""

    def __init__(self, service: QAService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hkai-qa-index-watcher", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if current_version(self.service.settings.index_dir) in self.service.refused:
                    continue  # already refused and logged; wait for the next publish or a rollback
                self.service.reload()
            except HkaiError:
                pass  # logged by reload(); the old version keeps serving
            except Exception:  # a watcher that dies silently would stop all future reloads
                log.exception("index watcher: unexpected error while checking for a new version")
