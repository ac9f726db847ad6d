"""The project's one fingerprint: sha256 over canonical JSON (sorted keys).

Used for OUT/plan.json (inputs + config + task counts), manifest.json (what decides the token
stream) and checkpoints (model, data and run config a resume must match)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def fingerprint(identity: Any, length: int = 64) -> str:
    """Hex sha256 of `identity` as canonical JSON; values JSON cannot encode are written with str()."""
    canonical = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]
