# Lets the client library's tests import hps_client from sdk/client/src without installing the package.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "sdk" / "client" / "src"))
