"""Fixtures of the offline deployment tests: the CDK app synthesised once per session, with
cfn-lint and checkov started on it in the background."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.config import topology
from cluster.tests.support import CFN_LINT_ACCEPTED, Synth, tool

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synth]:
    """Synthesise every stack once, with cdk-nag's AwsSolutions pack as a validation plugin:
    synthesis raises if any finding is neither fixed nor acknowledged with a reason."""
    from cluster.aws.app import build

    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build(str(outdir))
    app.app.synth()
    templates = {
        stack.stack_name: json.loads((outdir / f"{stack.artifact_id}.template.json").read_text())
        for stack in app.stacks
    }
    files = [str(outdir / f"{name}.template.json") for name in templates]
    cfn_lint = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--format",
            "json",
            "--regions",
            topology.REGION,
            "--ignore-checks",
            *CFN_LINT_ACCEPTED,
            "--",
            *files,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkov = subprocess.Popen(
        [
            str(tool("checkov/bin/checkov")),
            "-d",
            str(outdir),
            "--framework",
            "cloudformation",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # offline: no guideline download, no telemetry; HOME keeps its cache out of the repo
        env={
            "PATH": "/usr/bin:/bin",
            "BC_SKIP_MAPPING": "TRUE",
            "HOME": str(outdir),
            "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        },
    )
    yield Synth(outdir, templates, cfn_lint, checkov)
    for process in (cfn_lint, checkov):
        if process.poll() is None:
            process.kill()
            process.communicate()
