"""Print the dependencies that pyproject.toml files declare, one per line (for a cached pip layer).

Used by the Dockerfiles: the dependency layer is installed from these lines before the sources are
copied, so that editing the code does not reinstall the dependencies.
"""

from __future__ import annotations

import sys
import tomllib

lines: list[str] = []
for arg in sys.argv[1:]:
    path, _, extras = arg.partition("[")
    project = tomllib.load(open(path, "rb"))["project"]
    lines += project.get("dependencies", [])
    for extra in filter(None, extras.rstrip("]").split(",")):
        lines += project["optional-dependencies"][extra]
print("\n".join(d for d in lines if not d.startswith("offload-")))
