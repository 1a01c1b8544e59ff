"""Every source of the TensorRT plugin carries an SPDX header with the project's licence."""

import re
from pathlib import Path

from dattn.plugin.build import plugin_source_dir

REPO = Path(__file__).resolve().parents[1]
SOURCE_SUFFIXES = {".h", ".cpp", ".cu"}


def test_every_plugin_source_has_the_project_spdx_header():
    licence = re.search(r'^license = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    sources = [path for path in sorted(plugin_source_dir().rglob("*"))
               if path.suffix in SOURCE_SUFFIXES or path.name == "CMakeLists.txt"]
    sources = [path for path in sources if not path.relative_to(plugin_source_dir()).parts[0].startswith("build")]
    assert len(sources) >= 15, sources
    missing = [str(path.relative_to(plugin_source_dir())) for path in sources
               if f"SPDX-License-Identifier: {licence}" not in "".join(path.read_text().splitlines(True)[:3])]
    assert not missing, f"no SPDX-License-Identifier: {licence} in the first lines of {missing}"
