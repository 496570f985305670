"""The built-in text spotter reads what it read before the public task API: the same words on the same frames.

`tests/data/text_spotter_words.json` holds what a225ddf (the last commit before the task API and the
package split) read on 12 frames of the real-photo sample. The server variant must read exactly that;
the device's int8 variant may differ on a frame where another CPU rounds differently.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offload_core.engine import ModelRepository
from offload_tools.sample import render_frames

pytestmark = pytest.mark.integration
GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "data" / "text_spotter_words.json").read_text())


def test_the_same_words_on_the_same_frames(models_dir: Path) -> None:
    frames, _ = render_frames(41, 12, style="real")
    repo = ModelRepository(models_dir)
    server, device = repo.load("text-spotter"), repo.load("text-spotter", "device")
    assert [[t.text for t in server.run(f)[0].texts] for f in frames] == GOLDEN["server"]
    same = sum([t.text for t in device.run(f)[0].texts] == w for f, w in zip(frames, GOLDEN["device"], strict=True))
    assert same >= 11, f"the device variant reads differently on {12 - same} of 12 frames"
