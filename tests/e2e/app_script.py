"""An app that uses only the installed offload-client wheel, run by test_wheel_install in a fresh venv.

`python app_script.py online GRPC HTTP API_FILE`: checks the public names, offloads frames, pulls the
device model through `sync_models_from`, and that nothing imported is undeclared.
`python app_script.py offline GRPC`: the server is gone; the cached device model answers every frame,
in `adaptive`, in `local-only` and in continuous mode. Prints one JSON line of what it saw.
"""

from __future__ import annotations

import sys

# What the interpreter loaded before any import of ours (site hooks such as setuptools' distutils shim).
AT_STARTUP = set(sys.modules)

import importlib.metadata as md  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import offload_client  # noqa: E402
from offload_client import OffloadClient, Where  # noqa: E402


def frame(i: int) -> np.ndarray:
    image = np.full((360, 640, 3), 235, np.uint8)
    for row, word in enumerate(("OFFLOAD", f"FRAME {i}", "HELLO")):
        cv2.putText(image, word, (40, 90 + 100 * row), cv2.FONT_HERSHEY_SIMPLEX, 2.2, (20, 20, 20), 5)
    return image


def requirement_closure(dist: str) -> set[str]:
    """`dist` and every distribution it requires (its extras' requirements left out), normalised names."""
    seen: set[str] = set()
    todo = [dist]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        for req in md.requires(name) or []:
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    return seen


def undeclared_imports() -> list[str]:
    """Distributions whose modules this process imported but offload-client does not require."""
    owners = md.packages_distributions()
    allowed = requirement_closure("offload-client")
    imported = {name.split(".")[0] for name in set(sys.modules) - AT_STARTUP} - set(sys.stdlib_module_names)
    found = {re.sub(r"[-_.]+", "-", d).lower() for top in imported for d in owners.get(top, [])}
    return sorted(found - allowed)


def online(grpc: str, http: str, api_file: str) -> dict[str, object]:
    with open(api_file) as f:
        expected = f.read().split()
    assert sorted(offload_client.__all__) == expected, sorted(set(offload_client.__all__) ^ set(expected))
    with OffloadClient(grpc, policy="adaptive", sync_models_from=http) as oc:
        first = oc.infer(frame(0))
        ready = oc.wait_for_device_model(timeout_s=180)
        oc.privacy = "local-only"
        private = oc.infer(frame(1))
    return {
        "first": [first.where.value, first.reason, first.words],
        "ready": ready,
        "private": [private.where.value, private.uplink_bytes, private.words],
        "undeclared": undeclared_imports(),
        "tools_loaded": sorted(m for m in sys.modules if m.startswith("offload_tools")),  # not on the SDK's path
    }


def offline(grpc: str) -> dict[str, object]:
    with OffloadClient(grpc, policy="adaptive", deadline_ms=500) as oc:
        adaptive = [oc.infer(frame(i)) for i in range(4)]
    with OffloadClient(grpc, privacy="local-only") as oc:
        private = [oc.infer(frame(i)) for i in range(2)]
    with OffloadClient(grpc, mode="continuous") as oc:  # at camera rate; the device's key frames answer
        shown = []
        for _ in range(30):
            shown.append(oc.infer(frame(0)))
            time.sleep(1 / 15)
    return {
        "continuous": [[None if r.source is None else r.source.value, r.words] for r in shown[-3:]],
        "adaptive": [[r.where.value, r.reason, r.words] for r in adaptive],
        "local_only": [[r.where.value, r.uplink_bytes] for r in private],
        "all_local": all(r.where == Where.LOCAL for r in adaptive + private),
    }


if __name__ == "__main__":
    phase, *args = sys.argv[1:]
    print(json.dumps(online(*args) if phase == "online" else offline(*args)))
