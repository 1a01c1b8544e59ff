"""The node contract is stated once, in dattn/plugin/contract.py; the C++ plugin, its CMake target and its README
say the same. The C++ constants are read from gridSamplePluginCommon.h and compared with the Python contract."""

import re

from dattn.plugin import contract
from dattn.plugin.build import plugin_source_dir

SOURCE = plugin_source_dir()


def cpp_constants() -> dict:
    """`constexpr` strings and integers of gridSamplePluginCommon.h, by name."""
    text = (SOURCE / "gridSamplePluginCommon.h").read_text()
    strings = dict(re.findall(r'constexpr char const\* (k\w+) = "([^"]*)";', text))
    integers = {name: int(value) for name, value in re.findall(r"constexpr int32_t (k\w+) = (\d+);", text)}
    return {**strings, **integers}


def test_cpp_constants_are_the_python_contract():
    constants = cpp_constants()
    assert {name: constants.get(name) for name in (
        "kGridSamplePluginName", "kGridSamplePluginVersion", "kGridSamplePluginNamespace", "kAlignCornersField",
        "kNbInputs", "kNbOutputs", "kInputIndex", "kGridIndex")} == {
        "kGridSamplePluginName": contract.OP_TYPE,
        "kGridSamplePluginVersion": contract.PLUGIN_VERSION,
        "kGridSamplePluginNamespace": contract.PLUGIN_NAMESPACE,
        "kAlignCornersField": contract.ALIGN_CORNERS,
        "kNbInputs": len(contract.INPUTS),
        "kNbOutputs": len(contract.OUTPUTS),
        "kInputIndex": contract.INPUTS.index("X"),
        "kGridIndex": contract.INPUTS.index("grid"),
    }
    # TensorRT >= 10.10 takes the node's domain as the plugin namespace.
    assert contract.PLUGIN_NAMESPACE == contract.DOMAIN


def test_cmake_target_is_the_library_the_loader_looks_for():
    text = (SOURCE / "CMakeLists.txt").read_text()
    target = re.search(r"add_library\((\w+) SHARED\s+gridSamplePluginCommon\.cpp", text).group(1)
    assert f"lib{target}.so" == contract.LIBRARY_NAME


def test_readme_states_the_contract():
    table = dict(re.findall(r"^\| (.+?) \| (.+?) \|$", (SOURCE / "README.md").read_text(), re.M))
    assert table["op type"].startswith(f"`{contract.OP_TYPE}`")
    assert table["domain"].startswith(f"`{contract.DOMAIN}`")
    assert table["plugin name / version / namespace"] == \
        f"`{contract.OP_TYPE}` / `{contract.PLUGIN_VERSION}` / `{contract.PLUGIN_NAMESPACE}`"
    assert f"input 0 `{contract.INPUTS[0]}`" in table and f"input 1 `{contract.INPUTS[1]}`" in table
    assert f"output 0 `{contract.OUTPUTS[0]}`" in table
    assert f"attribute `{contract.ALIGN_CORNERS}`" in table
    assert all(dtype in table[f"input 0 `{contract.INPUTS[0]}`"] for dtype in contract.DTYPES)
