"""Helpers of the offline deployment tests: the synthesised assembly and the validator
binaries installed by cluster/scripts/install-tools.sh into cluster/.tools."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

CLUSTER = Path(__file__).resolve().parents[1]
TOOLS = CLUSTER / ".tools"


#: cfn-lint warnings we accept, with the reason.
CFN_LINT_ACCEPTED = {
    "W3010": "the three availability zones are explicit by design (cluster/config/topology.py)",
}


@dataclass
class Synth:
    """The synthesised cloud assembly: one CloudFormation template per stack, and the
    cfn-lint and checkov runs over it (started in the background right after synthesis)."""

    outdir: Path
    templates: dict[str, dict[str, Any]]
    cfn_lint: subprocess.Popen[str]
    checkov: subprocess.Popen[str]

    @staticmethod
    def output(process: subprocess.Popen[str], timeout: float = 200) -> tuple[int, str, str]:
        stdout, stderr = process.communicate(timeout=timeout)
        return process.returncode, stdout, stderr

    def resources(self, type_: str, stack: str | None = None) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for name, template in self.templates.items():
            if stack is not None and name != stack:
                continue
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == type_:
                    found[f"{name}/{logical_id}"] = resource
        return found

    def one(self, type_: str) -> dict[str, Any]:
        found = self.resources(type_)
        assert len(found) == 1, f"expected one {type_}, found {sorted(found)}"
        return next(iter(found.values()))["Properties"]


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run `make cluster-tools` (cluster/scripts/install-tools.sh)"
        )
    return path
