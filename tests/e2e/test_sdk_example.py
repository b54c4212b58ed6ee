"""The SDK installs as a CMake package; examples/hello, copied the way the README's
"Writing a plugin" says, builds out of tree against the installed copy, passes its own
tests, and pipehost loads it and runs its example.toml."""
import json
import os
import shutil
import subprocess
import tempfile

from support import BUILD_DIR, SOURCE_DIR, pipehost, run_tests


def run(*cmd, cwd=None):
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_the_example_plugin_builds_out_of_tree_passes_its_tests_and_runs():
    work = tempfile.mkdtemp(prefix="pipehost-sdk-")
    prefix = os.path.join(work, "prefix")
    run("cmake", "--install", BUILD_DIR, "--prefix", prefix)
    assert os.path.exists(os.path.join(prefix, "include/pipehost/sdk.hpp"))
    # An author copies the folder and builds it.
    plugin = os.path.join(work, "hello")
    shutil.copytree(os.path.join(SOURCE_DIR, "examples/hello"), plugin)
    assert sorted(os.listdir(plugin)) == ["CMakeLists.txt", "example.toml", "hello_plugin.cpp",
                                          "shout.hpp", "tests"]
    assert len(open(os.path.join(plugin, "CMakeLists.txt")).read().splitlines()) <= 10
    build = os.path.join(plugin, "build")
    run("cmake", "-S", plugin, "-B", build, "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={prefix}",
        "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Wpedantic -Werror")
    run("cmake", "--build", build)
    assert os.path.exists(os.path.join(build, "hello.so"))
    tests = run("ctest", "--test-dir", build, "--output-on-failure")
    assert "100% tests passed" in tests.stdout, tests.stdout

    r = pipehost("plugins", "shout", "--plugin-path", build, check=0)
    assert "Upper-cases a string field" in r.stdout
    assert "times" in r.stdout and "between 0 and 10" in r.stdout
    r = pipehost("validate", os.path.join(plugin, "example.toml"), "--plugin-path", build, check=0)

    r = pipehost("run", os.path.join(plugin, "example.toml"), "--plugin-path", build,
                 "--no-progress", check=0)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 100
    for row in rows:
        assert row["transaction_id"].endswith("!")
        assert row["transaction_id"] == row["transaction_id"].upper()
    shutil.rmtree(work, ignore_errors=True)


run_tests(globals())
