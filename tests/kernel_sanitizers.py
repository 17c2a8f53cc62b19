"""pytest plugin (``-p tests.kernel_sanitizers``): the CPU kernel built with AddressSanitizer and
UndefinedBehaviorSanitizer (any finding aborts the run), for ``scripts/check_kernel.sh``.

The sanitizer runtimes must be loaded before Python (``LD_PRELOAD``, which the script sets); the
session refuses to start if the kernel it loads was not built with them, so that a run that silently
took the PyTorch path cannot pass.
"""

from __future__ import annotations

import pytest

from unifocal.losses import _kernel

SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g")
_kernel.FLAGS = _kernel.FLAGS + SANITIZE


def pytest_sessionstart(session: pytest.Session) -> None:
    status = _kernel.kernel_status()
    if not status.available or "-fsanitize=address,undefined" not in status.reason:
        raise pytest.UsageError(f"the kernel was not built with the sanitizers: {status.reason} "
                                "(run scripts/check_kernel.sh, which preloads their runtimes)")
