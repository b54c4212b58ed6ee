"""compose/*.yml and the Dockerfile, checked without Docker: no engine runs on the
development machine or in CI, so nothing here builds an image or starts a container.
Every compose file is read with PyYAML and checked for what would make `docker compose up`
fail or quietly run the wrong thing: unpinned or unknown images, a missing build context,
bad or clashing ports, bind mounts of paths that are not in the repository, `depends_on`
names that do not exist, and pipehost commands whose config files are missing, do not
pass `pipehost validate` with the service's environment, or read a variable the service
does not set (a default such as `embedded` or `127.0.0.1` would silently bypass the
containers)."""
import fnmatch
import glob
import os
import re
import shlex
import subprocess
import tomllib
import urllib.parse

import yaml

from support import PIPEHOST, SOURCE_DIR, run_tests

COMPOSE_DIR = os.path.join(SOURCE_DIR, "compose")
DOCKERFILE = os.path.join(SOURCE_DIR, "Dockerfile")
EXPECTED_FILES = ("transactions-redis.yml", "transactions-log.yml", "scale-out.yml", "trades.yml",
                  "food.yml", "tenants.yml")

# Images the compose files may pull. They are published on Docker Hub and cannot be pulled
# here (no Docker engine, no access to Docker Hub), so this list and the tag rules below
# are the whole check: a new image needs a deliberate entry.
ALLOWED_IMAGES = {"apache/kafka", "confluentinc/cp-schema-registry", "redis", "postgres"}
# Base images the Dockerfile may start from (also Docker Hub, also not pulled here).
ALLOWED_BASE_IMAGES = {"debian"}

# The connection variables configs/ reads; cleared from the test's own environment before
# `pipehost validate` so that only the compose file's values count (scripts/test exports
# them for the real-service tests).
SERVICE_VARIABLES = ("KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "REDIS_URL", "DATABASE_URL", "FOOD_DB",
                     "FOOD_API", "PIPEHOST_ENV")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")


# --- reading the compose files -------------------------------------------------------------

def compose_files():
    files = sorted(glob.glob(os.path.join(COMPOSE_DIR, "*.yml")) +
                   glob.glob(os.path.join(COMPOSE_DIR, "*.yaml")))
    assert files, f"no compose files in {COMPOSE_DIR}"
    return files


def load(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict) and doc["services"], \
        f"{rel(path)}: no services"
    return doc


def each_service():
    """(file, document, service name, service) for every service of every compose file."""
    for path in compose_files():
        doc = load(path)
        for name, service in doc["services"].items():
            assert isinstance(service, dict), f"{rel(path)}: service {name} is not a mapping"
            yield path, doc, name, service


def rel(path):
    return os.path.relpath(path, SOURCE_DIR)


def inside_repo(path):
    real, root = os.path.realpath(path), os.path.realpath(SOURCE_DIR)
    return real == root or real.startswith(root + os.sep)


def build_of(service):
    """(context, dockerfile) as absolute paths, or None for an image-only service."""
    build = service.get("build")
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    context = os.path.normpath(os.path.join(COMPOSE_DIR, build.get("context", ".")))
    dockerfile = os.path.normpath(os.path.join(context, build.get("dockerfile", "Dockerfile")))
    return context, dockerfile


def is_pipehost(service):
    """A service built from the repository's Dockerfile, i.e. one that runs pipehost."""
    build = build_of(service)
    return build is not None and build[1] == os.path.normpath(DOCKERFILE)


def command_of(service):
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def environment_of(path, name, service):
    assert "env_file" not in service, f"{rel(path)}: {name}: env_file is not read by this test"
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: ("" if v is None else str(v)) for k, v in env.items()}


def bind_mounts(service):
    """(host path, container path) for every bind mount; host paths relative to compose/."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            parts = volume.split(":")
            source, target = parts[0], parts[1] if len(parts) > 1 else None
            if target is None or not source.startswith((".", "/", "~")):
                continue  # an anonymous or named volume
        else:
            if volume.get("type") != "bind":
                continue
            source, target = volume["source"], volume["target"]
        mounts.append((os.path.normpath(os.path.join(COMPOSE_DIR, os.path.expanduser(source))), target))
    return mounts


def host_path(service, container_path):
    """Where a path inside the container comes from, through the service's bind mounts."""
    best = None
    for source, target in bind_mounts(service):
        t = target.rstrip("/")
        if container_path == t or container_path.startswith(t + "/"):
            if best is None or len(t) > len(best[1]):
                best = (source, t)
    if best is None:
        return None
    return os.path.normpath(best[0] + container_path[len(best[1]):])


def parse_run_command(path, name, service):
    """The config files (host paths) and the options of a pipehost `run` command."""
    args = command_of(service)
    assert args and args[0] == "run", f"{rel(path)}: {name}: command {args} is not `run FILE...`"
    files, options, i = [], [], 1
    takes_value = {"--env", "--set", "--pipeline", "--plugin-path", "--log-level", "--stats"}
    while i < len(args):
        if args[i] in takes_value:
            options += args[i:i + 2]
            i += 2
        elif args[i].startswith("--"):
            options.append(args[i])
            i += 1
        else:
            files.append(args[i])
            i += 1
    assert files, f"{rel(path)}: {name}: no config file in {args}"
    return files, options


def option_values(options, flag):
    return [options[i + 1] for i, o in enumerate(options) if o == flag and i + 1 < len(options)]


def loaded_files(path, name, service):
    """Host paths of every config file the service's pipehost loads: the files on its
    command line and the --env overlay (<folder of the first file>/env/NAME.toml), each
    checked to be reachable inside the container through a bind mount."""
    files, options = parse_run_command(path, name, service)
    env_names = option_values(options, "--env") or \
        [v for v in [environment_of(path, name, service).get("PIPEHOST_ENV")] if v]
    container_paths = list(files)
    for env_name in env_names[-1:]:
        container_paths.append(os.path.join(os.path.dirname(files[0]), "env", env_name + ".toml"))
    loaded = []
    for container_path in container_paths:
        local = host_path(service, container_path)
        assert local is not None, f"{rel(path)}: {name}: {container_path} is not under any bind mount"
        assert os.path.isfile(local), f"{rel(path)}: {name}: {container_path} is {rel(local)}, which does not exist"
        loaded.append(local)
    return loaded, options


def variables_used(config_file, pipelines):
    """${VAR} names in the strings of a config file: its top-level settings and the
    pipelines that run (all when `pipelines` is empty)."""
    with open(config_file, "rb") as f:
        doc = tomllib.load(f)
    names = set()

    def walk(value):
        if isinstance(value, str):
            # PIPEHOST_CONFIG_DIR is pipehost's own: the folder of the file itself.
            names.update(set(VARIABLE.findall(value.replace("$$", ""))) - {"PIPEHOST_CONFIG_DIR"})
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for key, value in doc.items():
        if key == "pipelines":
            for pipeline, definition in value.items():
                if not pipelines or pipeline in pipelines:
                    walk(definition)
        else:
            walk(value)
    return names


def host_port(address):
    """'host:port' or a URL -> (host, port)."""
    if "://" in address:
        url = urllib.parse.urlsplit(address)
        return url.hostname, url.port
    host, _, port = address.rpartition(":")
    return host, int(port)


def advertised_addresses(path, name, service):
    """host:port pairs a Kafka service advertises, or None when it does not say."""
    listeners = environment_of(path, name, service).get("KAFKA_ADVERTISED_LISTENERS")
    if not listeners:
        return None
    return {host_port(listener.strip()) for listener in listeners.split(",")}


# --- the compose files -----------------------------------------------------------------------

def test_the_systems_have_their_compose_files_and_the_readme_describes_each():
    names = [os.path.basename(f) for f in compose_files()]
    for expected in EXPECTED_FILES:
        assert expected in names, f"compose/{expected} is missing"
    with open(os.path.join(COMPOSE_DIR, "README.md")) as f:
        readme = f.read()
    for name in names:
        assert f"`{name}`" in readme, f"compose/README.md does not describe {name}"
        assert f"docker compose -f compose/{name} up" in readme, f"compose/README.md: no up command for {name}"


def test_every_service_has_an_image_or_a_build_whose_context_and_dockerfile_exist():
    for path, _, name, service in each_service():
        assert "image" in service or "build" in service, f"{rel(path)}: {name} has neither image nor build"
        build = build_of(service)
        if build:
            context, dockerfile = build
            assert os.path.isdir(context) and inside_repo(context), \
                f"{rel(path)}: {name}: build context {context} is not a folder of the repository"
            assert os.path.isfile(dockerfile) and inside_repo(dockerfile), \
                f"{rel(path)}: {name}: {dockerfile} does not exist in the repository"


def split_image(image):
    """'name:tag@digest' -> (name without docker.io/library/, tag or None, digest or None)."""
    name, _, digest = image.partition("@")
    tag = None
    if ":" in name.rsplit("/", 1)[-1]:
        name, tag = name.rsplit(":", 1)
    for prefix in ("docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith("library/"):
        name = name[len("library/"):]
    return name, tag, digest or None


def test_every_pulled_image_is_pinned_and_on_the_allowlist():
    for path, _, name, service in each_service():
        if "build" in service or "image" not in service:
            continue  # built here (an image name on it is only the local tag), or reported above
        image, tag, digest = split_image(str(service["image"]))
        assert tag or digest, f"{rel(path)}: {name}: image {service['image']} has no tag"
        assert tag != "latest", f"{rel(path)}: {name}: image {service['image']} is not pinned"
        assert "$" not in str(service["image"]), f"{rel(path)}: {name}: image is interpolated"
        assert image in ALLOWED_IMAGES, \
            f"{rel(path)}: {name}: image {image} is not on the allowlist {sorted(ALLOWED_IMAGES)}"


PORT_SHORT = re.compile(r"^(?:(?P<ip>\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?"
                        r"(?P<host>\d+):(?P<container>\d+)(?:/(?P<proto>tcp|udp))?$")


def test_ports_are_host_container_pairs_in_range_and_no_host_port_is_published_twice():
    for path in compose_files():
        used = {}
        for name, service in load(path)["services"].items():
            replicas = (service.get("deploy") or {}).get("replicas", 1)
            for entry in service.get("ports", []):
                if isinstance(entry, dict):
                    host, container = entry.get("published"), entry.get("target")
                    proto = entry.get("protocol", "tcp")
                else:
                    m = PORT_SHORT.match(str(entry))
                    assert m, f"{rel(path)}: {name}: port {entry!r} is not [ip:]host:container[/proto]"
                    host, container, proto = m["host"], m["container"], m["proto"] or "tcp"
                for what, port in (("host", host), ("container", container)):
                    assert str(port).isdigit() and 1 <= int(port) <= 65535, \
                        f"{rel(path)}: {name}: {what} port {port!r} of {entry!r} is not in 1..65535"
                key = (int(host), proto)
                assert key not in used, \
                    f"{rel(path)}: host port {host}/{proto} published by both {used[key]} and {name}"
                used[key] = name
                assert replicas == 1, \
                    f"{rel(path)}: {name} has {replicas} replicas but publishes the fixed host port {host}"


def test_bind_mounted_host_paths_exist_in_the_repository_and_named_volumes_are_declared():
    for path, doc, name, service in each_service():
        for source, target in bind_mounts(service):
            assert os.path.exists(source) and inside_repo(source), \
                f"{rel(path)}: {name}: bind mount {source} -> {target} is not a path of the repository"
        for volume in service.get("volumes", []):
            if isinstance(volume, str) and ":" in volume and not volume.startswith((".", "/", "~")):
                volume_name = volume.split(":")[0]
                assert volume_name in (doc.get("volumes") or {}), \
                    f"{rel(path)}: {name}: volume {volume_name} is not declared under volumes:"


def test_depends_on_names_services_of_the_same_file_and_healthy_ones_have_healthchecks():
    for path, doc, name, service in each_service():
        depends = service.get("depends_on", [])
        conditions = depends if isinstance(depends, dict) else {d: {} for d in depends}
        for other, how in conditions.items():
            assert other in doc["services"] and other != name, \
                f"{rel(path)}: {name} depends on {other}, which is not another service of the file"
            if (how or {}).get("condition") == "service_healthy":
                # The images' own HEALTHCHECKs cannot be inspected here: require one in the file.
                assert "healthcheck" in doc["services"][other], \
                    f"{rel(path)}: {name} waits for {other} to be healthy, but {other} has no healthcheck"


def test_every_compose_file_runs_pipehost():
    for path in compose_files():
        services = load(path)["services"]
        assert any(is_pipehost(s) for s in services.values()), f"{rel(path)}: no service builds pipehost"


def test_pipehost_commands_name_configs_that_exist_and_validate_with_the_service_environment():
    for path, _, name, service in each_service():
        if not is_pipehost(service):
            continue
        files, options = parse_run_command(path, name, service)
        for container_path in files:
            assert container_path.startswith("/etc/pipehost/"), \
                f"{rel(path)}: {name}: {container_path} is not under /etc/pipehost"
            local = host_path(service, container_path)
            assert local and os.path.dirname(local) == os.path.join(SOURCE_DIR, "configs") and os.path.isfile(local), \
                f"{rel(path)}: {name}: {container_path} is not a file of configs/ ({local})"
        loaded_files(path, name, service)  # the --env overlay, if any, is mounted too
        env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
        env.update(environment_of(path, name, service))
        host_files = [host_path(service, f) for f in files]
        r = subprocess.run([PIPEHOST, "validate", *host_files, *options], capture_output=True,
                           text=True, timeout=60, env=env, cwd=SOURCE_DIR)
        assert r.returncode == 0, \
            f"{rel(path)}: {name}: pipehost validate {' '.join(map(rel, host_files))} {' '.join(options)} " \
            f"exited {r.returncode}\n{r.stdout}{r.stderr}"
        assert "valid (" in r.stdout, r.stdout
        for pipeline in option_values(options, "--pipeline"):
            assert pipeline in r.stdout, f"{rel(path)}: {name}: pipeline {pipeline} not validated: {r.stdout}"


def test_the_variables_the_configs_read_are_set_and_name_services_of_the_file():
    for path, doc, name, service in each_service():
        if not is_pipehost(service):
            continue
        loaded, options = loaded_files(path, name, service)
        pipelines = set(option_values(options, "--pipeline"))
        needed = set().union(*(variables_used(f, pipelines) for f in loaded))
        env = environment_of(path, name, service)
        for variable in sorted(needed):
            assert env.get(variable), \
                f"{rel(path)}: {name}: {', '.join(map(rel, loaded))} read ${{{variable}}}, " \
                f"which the service does not set (its default would bypass the containers)"
        services = doc["services"]
        for variable in ("KAFKA_BROKERS", "SCHEMA_REGISTRY_URL", "REDIS_URL", "DATABASE_URL"):
            if not env.get(variable):
                continue
            for address in env[variable].split(","):
                host, port = host_port(address.strip())
                assert host in services, \
                    f"{rel(path)}: {name}: {variable}={env[variable]} names {host}, not a service of the file"
                assert port, f"{rel(path)}: {name}: {variable}={env[variable]} has no port"
                if variable == "KAFKA_BROKERS":
                    advertised = advertised_addresses(path, host, services[host])
                    assert advertised is None or (host, port) in advertised, \
                        f"{rel(path)}: {name}: {address} is not one of the addresses {host} advertises " \
                        f"({sorted(advertised)}): clients would be sent elsewhere"
                if variable == "SCHEMA_REGISTRY_URL":
                    listeners = environment_of(path, host, services[host]).get("SCHEMA_REGISTRY_LISTENERS")
                    if listeners:
                        ports = {host_port(l.strip())[1] for l in listeners.split(",")}
                        assert port in ports, f"{rel(path)}: {name}: {address}: {host} listens on {ports}"


def test_the_schema_registry_reaches_kafka_at_an_advertised_address():
    for path, doc, name, service in each_service():
        bootstrap = environment_of(path, name, service).get("SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS")
        if not bootstrap:
            continue
        for address in bootstrap.split(","):
            address = address.strip().split("://")[-1]
            host, port = host_port(address)
            assert host in doc["services"], f"{rel(path)}: {name}: {address} is not a service of the file"
            advertised = advertised_addresses(path, host, doc["services"][host])
            assert advertised is None or (host, port) in advertised, \
                f"{rel(path)}: {name}: {address} is not advertised by {host} ({sorted(advertised)})"


# --- the Dockerfile --------------------------------------------------------------------------

def dockerfile_instructions():
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    with open(DOCKERFILE) as f:
        lines = [line for line in f.read().splitlines() if not line.lstrip().startswith("#")]
    text = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in text.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def dockerignore_patterns():
    path = os.path.join(SOURCE_DIR, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]


def ignored(relative, patterns):
    """Whether .dockerignore keeps `relative` (or a folder above it) out of the context."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = os.path.normpath(pattern.lstrip("!").strip("/"))
        if p.startswith("**/"):
            matched = any(fnmatch.fnmatch(c.split("/")[-1], p[3:]) or fnmatch.fnmatch(c, p[3:])
                          for c in candidates)
        else:
            matched = any(fnmatch.fnmatch(c, p) for c in candidates)
        if matched:
            result = not negate
    return result


def test_the_dockerfile_starts_from_pinned_images_and_copies_files_that_exist():
    instructions = dockerfile_instructions()
    stages, froms = set(), []
    for instruction, arguments in instructions:
        if instruction == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--")]
            froms.append(words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    assert len(froms) >= 2, f"the Dockerfile is not multi-stage: {froms}"
    for image in froms:
        if image in stages:
            continue
        name, tag, digest = split_image(image)
        assert (tag or digest) and tag != "latest", f"Dockerfile: FROM {image} is not pinned"
        assert name in ALLOWED_BASE_IMAGES, f"Dockerfile: FROM {image}: {name} is not an allowed base image"
    runtime = froms[-1]
    assert runtime not in stages, f"Dockerfile: the runtime stage starts from the stage {runtime}"

    patterns = dockerignore_patterns()
    copied = set()
    for instruction, arguments in instructions:
        if instruction not in ("COPY", "ADD"):
            continue
        words = shlex.split(arguments)
        from_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        words = [w for w in words if not w.startswith("--")]
        sources = words[:-1]
        assert sources, f"Dockerfile: {instruction} {arguments}: no source"
        if from_stage is not None:
            assert from_stage in stages, f"Dockerfile: COPY --from={from_stage}: no such stage"
            continue
        for source in sources:
            local = os.path.join(SOURCE_DIR, source)
            assert glob.glob(local), f"Dockerfile: {instruction} {source}: not in the repository"
            relative = os.path.normpath(source).strip("/")
            assert not ignored(relative, patterns), \
                f"Dockerfile: {instruction} {source}: excluded from the build context by .dockerignore"
            copied.add(relative)

    # Every folder the top-level CMakeLists.txt builds or installs reaches the build stage.
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        cmake = f.read()
    needed = set(re.findall(r"add_subdirectory\(\s*([\w./-]+)", cmake))
    needed |= set(re.findall(r"install\(\s*DIRECTORY\s+([\w.-]+)/", cmake))
    needed |= set(re.findall(r"\$\{PROJECT_SOURCE_DIR\}/([\w.-]+)/", "".join(
        open(p).read() for p in glob.glob(os.path.join(SOURCE_DIR, "*", "CMakeLists.txt")))))
    needed.add("CMakeLists.txt")
    assert needed <= copied, f"Dockerfile: not copied into the build stage: {sorted(needed - copied)}"

    entrypoint = [args for instruction, args in instructions if instruction == "ENTRYPOINT"]
    assert entrypoint and "/opt/pipehost/bin/pipehost" in entrypoint[-1], f"Dockerfile: ENTRYPOINT {entrypoint}"


def test_the_dockerfile_build_packages_are_those_of_install_deps():
    with open(os.path.join(SOURCE_DIR, "scripts/install-deps")) as f:
        m = re.search(r"debian_packages=\((.*?)\)", f.read(), re.S)
    install_deps = set(m.group(1).split())
    froms = [i for i, (instruction, _) in enumerate(dockerfile_instructions()) if instruction == "FROM"]
    instructions = dockerfile_instructions()
    build_stage = instructions[froms[0]:froms[-1]]
    installed = set()
    for instruction, arguments in build_stage:
        if instruction == "RUN" and "apt-get install" in arguments:
            after = arguments.split("apt-get install", 1)[1].split("&&")[0]
            installed |= {w for w in after.split() if not w.startswith("-")}
    assert installed, "Dockerfile: the build stage installs no Debian package"
    assert installed <= install_deps, \
        f"Dockerfile installs packages scripts/install-deps does not: {sorted(installed - install_deps)}"


run_tests(globals())
