"""The client package (sdk/client/src/hps_client), imported from the checkout for hpsforge's own
use: its readiness wait (`ready`) and its stage-metrics reader (`stages`) are the one
implementation that serve, the serving benchmark and the conformance suite share."""

from __future__ import annotations

import sys

from hpsforge.core.settings import PROJECT_ROOT

CLIENT_SOURCE = PROJECT_ROOT / "sdk" / "client" / "src"
if str(CLIENT_SOURCE) not in sys.path:
    sys.path.append(str(CLIENT_SOURCE))

from hps_client import ready, stages  # noqa: E402

__all__ = ["ready", "stages"]
