"""`make image` (scripts/build-image.sh) and the workflow that publishes the image.

No container engine or GitHub runner is used here: the script runs against stub `docker` /
`podman` executables that record their arguments, and the workflow is checked as data.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-image.sh"
WORKFLOW = ROOT / ".github" / "workflows" / "image.yml"
CHART = ROOT / "deploy" / "helm" / "chat"

STUB = """#!{bash}
echo "${{0##*/}} $*" >> "{log}"
"""


def stub_path(tmp_path: Path, engines: tuple[str, ...]) -> tuple[Path, Path]:
    """A PATH directory with bash and the given stub engines only, and their call log."""
    bash = shutil.which("bash")
    assert bash
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(bash)
    log = tmp_path / "calls.log"
    for engine in engines:
        (bin_dir / engine).write_text(STUB.format(bash=bash, log=log), encoding="utf-8")
        (bin_dir / engine).chmod(0o755)
    return bin_dir, log


def build(tmp_path: Path, engines: tuple[str, ...], **env: str) -> tuple[int, str, str]:
    bin_dir, log = stub_path(tmp_path, engines)
    base = {k: v for k, v in os.environ.items() if k not in {"IMAGE", "CONTAINER_ENGINE"}}
    result = subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True, timeout=60,
        env={**base, **env, "PATH": str(bin_dir)}, check=False,
    )
    calls = log.read_text(encoding="utf-8") if log.exists() else ""
    return result.returncode, result.stderr, calls


@pytest.mark.parametrize(
    ("engines", "used"),
    [(("docker",), "docker"), (("podman",), "podman"), (("docker", "podman"), "docker")],
)
def test_builds_the_dockerfile_with_the_engine_that_exists(
    tmp_path: Path, engines: tuple[str, ...], used: str
) -> None:
    code, stderr, calls = build(tmp_path, engines)
    assert code == 0, stderr
    assert calls == f"{used} build -t chat-service:dev -f {ROOT}/Dockerfile {ROOT}\n"


def test_image_name_engine_and_extra_arguments_can_be_chosen(tmp_path: Path) -> None:
    code, stderr, calls = build(
        tmp_path, ("docker", "podman"), IMAGE="ghcr.io/me/chat-service:1.2.3",
        CONTAINER_ENGINE="podman", IMAGE_BUILD_ARGS="--network host",
    )
    assert code == 0, stderr
    image = "ghcr.io/me/chat-service:1.2.3"
    assert calls == f"podman build --network host -t {image} -f {ROOT}/Dockerfile {ROOT}\n"
    assert "podman push ghcr.io/me/chat-service:1.2.3" in stderr


def test_without_docker_or_podman_it_says_what_to_install(tmp_path: Path) -> None:
    code, stderr, calls = build(tmp_path, ())
    assert code == 1
    assert "needs docker or podman, and neither is on PATH" in stderr
    assert "apt-get install podman" in stderr and "docs.docker.com" in stderr
    assert calls == ""


def test_make_image_runs_the_script(tmp_path: Path) -> None:
    make = shutil.which("make")
    assert make, "make is not installed"
    bin_dir, log = stub_path(tmp_path, ("podman",))
    result = subprocess.run(
        [make, "-s", "image", "IMAGE=chat-service:test"], cwd=ROOT, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PATH": str(bin_dir)}, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert log.read_text(encoding="utf-8") == (
        f"podman build -t chat-service:test -f {ROOT}/Dockerfile {ROOT}\n"
    )


# ---------------------------------------------------------------------------------------------
# .github/workflows/image.yml
# ---------------------------------------------------------------------------------------------


def workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def steps() -> list[dict[str, Any]]:
    (job,) = workflow()["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    result: list[dict[str, Any]] = job["steps"]
    return result


def step(action: str) -> dict[str, Any]:
    matches = [s for s in steps() if s.get("uses", "").split("@")[0] == action]
    assert len(matches) == 1, f"{action} is used {len(matches)} times"
    assert re.fullmatch(r"v\d+", matches[0]["uses"].split("@")[1]), "pin a major version"
    return matches[0]


def test_workflow_runs_on_version_tags_only() -> None:
    # PyYAML reads the key `on` as the boolean True (YAML 1.1).
    triggers = workflow()[True]
    assert triggers == {"push": {"tags": ["v*"]}}


def test_workflow_may_publish_packages_and_nothing_more() -> None:
    assert workflow()["permissions"] == {"contents": "read", "packages": "write"}


def test_workflow_builds_the_repositorys_dockerfile_for_two_architectures() -> None:
    names = [s.get("uses", "").split("@")[0] for s in steps()]
    order = [
        "actions/checkout",
        "docker/setup-qemu-action",
        "docker/setup-buildx-action",
        "docker/login-action",
        "docker/metadata-action",
        "docker/build-push-action",
    ]
    assert [n for n in names if n in order] == order
    login = step("docker/login-action")["with"]
    assert login["registry"] == "ghcr.io"
    assert login["password"] == "${{ secrets.GITHUB_TOKEN }}"
    meta = step("docker/metadata-action")
    build = step("docker/build-push-action")["with"]
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["context"] == "."
    assert (ROOT / build["file"]).resolve() == ROOT / "Dockerfile"
    assert build["push"] is True
    assert build["tags"] == "${{ steps.ID.outputs.tags }}".replace("ID", meta["id"])
    assert build["labels"] == "${{ steps.ID.outputs.labels }}".replace("ID", meta["id"])


def test_workflow_publishes_what_the_chart_pulls_by_default() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    meta = step("docker/metadata-action")["with"]
    assert meta["images"] == "ghcr.io/${{ github.repository_owner }}/chat-service"
    repository = values["image"]["repository"]
    assert re.fullmatch(r"ghcr\.io/[a-z0-9-]+/chat-service", repository), repository
    # Tag v0.1.0 -> image tag 0.1.0 = the chart's appVersion (image.tag defaults to it).
    assert "type=semver,pattern={{version}}" in meta["tags"].splitlines()
    assert values["image"]["tag"] == ""
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["appVersion"])


def test_readme_documents_build_push_and_install_with_the_image() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    deploy = readme[readme.index("## Deploy to Kubernetes") : readme.index("## Configuration")]
    assert "make image IMAGE=ghcr.io/you/chat-service:0.1.0" in deploy
    assert "docker push ghcr.io/you/chat-service:0.1.0" in deploy
    assert "--set image.repository=ghcr.io/you/chat-service,image.tag=0.1.0" in deploy
    assert ".github/workflows/image.yml" in deploy
