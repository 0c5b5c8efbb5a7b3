"""Static analysis of the synthesised templates: cdk-nag (AwsSolutions), cfn-lint and checkov
report no error; every exception is justified next to its resource.

This module sorts last on purpose: cfn-lint and checkov start in the background as soon as the
templates are synthesised (see conftest.py) and finish while the other modules run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.tests.support import Synth


def test_cdk_nag_aws_solutions_has_no_unacknowledged_finding(synth: Synth) -> None:
    # The `synth` fixture ran with AwsSolutionsChecks as a validation plugin; a finding that is
    # neither fixed nor acknowledged makes synthesis raise. Acknowledgements are written to the
    # templates' metadata: each names its rule and gives a reason.
    acknowledged = [
        rule
        for template in synth.templates.values()
        for resource in template["Resources"].values()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    nag = [rule for rule in acknowledged if rule["id"].startswith("AwsSolutions-")]
    assert len(nag) >= 10, "cdk-nag did not run"
    for rule in acknowledged:
        assert len(rule["reason"]) >= 40, rule


def test_cdk_nag_fails_synthesis_on_a_finding(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bad")
    s3.Bucket(stack, "Plain")  # no TLS-only policy, no access logs
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="AwsSolutions-S10"):
        app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert "AwsSolutions-S10" in rules


def test_cfn_lint_reports_no_error_or_warning(synth: Synth) -> None:
    returncode, stdout, stderr = synth.output(synth.cfn_lint)
    matches = json.loads(stdout or "[]")
    # E = error, W = warning (minus CFN_LINT_ACCEPTED); I (informational) rules are hints.
    problems = [
        f"{m['Filename']}: {m['Rule']['Id']} {m['Message']}"
        for m in matches
        if m["Level"] in ("Error", "Warning")
    ]
    assert problems == [], stderr
    assert returncode in (0, 8), stderr  # 8: informational matches only


@pytest.mark.timeout(240)
def test_checkov_reports_no_failed_check(synth: Synth) -> None:
    _, stdout, stderr = synth.output(synth.checkov)
    assert stdout.strip().startswith(("[", "{")), stderr[-2000:]
    reports = json.loads(stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for r in reports
        for c in r["results"]["failed_checks"]
    ]
    assert failed == []
    assert sum(r["summary"]["passed"] for r in reports) > 100
    # every skip (CloudFormation metadata, see cluster/aws/suppress.py) carries a reason
    skipped = [c for r in reports for c in r["results"].get("skipped_checks", [])]
    assert skipped
    for c in skipped:
        assert len(c["check_result"].get("suppress_comment") or "") > 20, c["check_id"]
