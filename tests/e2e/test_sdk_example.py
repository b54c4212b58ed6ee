"""The SDK installs as a CMake package; examples/hello builds against the installed
copy with its ten-line CMakeLists.txt, and pipehost loads and runs it."""
import json
import os
import shutil
import subprocess
import tempfile

from support import BUILD_DIR, SOURCE_DIR, pipehost, run_tests, write_config


def run(*cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_out_of_tree_plugin_builds_against_the_installed_sdk_and_runs():
    work = tempfile.mkdtemp(prefix="pipehost-sdk-")
    prefix = os.path.join(work, "prefix")
    run("cmake", "--install", BUILD_DIR, "--prefix", prefix)
    assert os.path.exists(os.path.join(prefix, "include/pipehost/sdk.hpp"))
    build = os.path.join(work, "hello-build")
    run("cmake", "-S", os.path.join(SOURCE_DIR, "examples/hello"), "-B", build, "-G", "Ninja",
        f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror")
    run("cmake", "--build", build)
    assert os.path.exists(os.path.join(build, "hello.so"))

    r = pipehost("plugins", "shout", "--plugin-path", build, check=0)
    assert "Upper-cases a string field" in r.stdout

    out = os.path.join(work, "out.jsonl")
    config = write_config(f"""
[pipelines.demo]
source = {{ plugin = "datagen", count = 50, seed = 3 }}
transforms = [ {{ plugin = "shout", field = "transaction_id" }} ]
sink = {{ plugin = "file", path = "{out}" }}
""")
    pipehost("run", config, "--plugin-path", build, "--no-progress", check=0)
    rows = [json.loads(l) for l in open(out)]
    assert len(rows) == 50
    for row in rows:
        assert row["transaction_id"] == row["transaction_id"].upper()
        assert any(c.isalpha() for c in row["transaction_id"])
    shutil.rmtree(work, ignore_errors=True)


run_tests(globals())
