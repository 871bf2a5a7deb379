"""Print the third-party requirements of shoal's extras, one a line: `requirements.py pyproject.toml api`.

The images install these in a layer of their own, before the source tree is copied, so that editing code
does not re-download every dependency; the package itself is then installed with --no-deps. Self-references
such as `shoal[api,trainer]` (the dev extra) are expanded.
"""

from __future__ import annotations

import re
import sys
import tomllib


def requirements(project: dict, extras: list[str]) -> list[str]:
    name = project["name"]
    out = list(project.get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in project["optional-dependencies"][extra]:
            own = re.fullmatch(rf"{re.escape(name)}\[([^\]]+)\]", requirement.strip())
            if own:
                todo += [e.strip() for e in own.group(1).split(",")]
            else:
                out.append(requirement)
    return sorted(set(out))


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        print("\n".join(requirements(tomllib.load(f)["project"], sys.argv[2:])))
