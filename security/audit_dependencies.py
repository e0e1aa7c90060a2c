"""Audit the pinned dependencies (pyproject.toml: dependencies and every extra) for
known vulnerabilities with pip-audit; run by ``scripts/test``.

    .venv/bin/python security/audit_dependencies.py

Exit 0 when no known vulnerability is found outside ``security/pip-audit-ignore.toml``
(each ignored one with its reason and review date), 1 when one is, 2 for a malformed
ignore file. pip-audit asks PyPI's vulnerability data (``-s pypi``, or ``osv`` with
``AUDIT_SERVICE=osv``); when that service cannot be reached, the dependencies are NOT
audited: the script says so loudly and exits 0, or 3 with ``AUDIT_REQUIRED=1`` (set it
where the network is expected, e.g. CI).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORE_FILE = ROOT / "security" / "pip-audit-ignore.toml"
REQUIRED_KEYS = ("id", "package", "reason", "reviewed_by", "date")


def pins() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        deps += extra
    loose = [d for d in deps if "==" not in d]
    if loose:
        sys.exit(f"audit: unpinned dependencies in pyproject.toml: {loose}")
    return sorted(set(deps))


def ignored() -> list[dict]:
    entries = tomllib.loads(IGNORE_FILE.read_text()).get("ignore", []) if IGNORE_FILE.exists() else []
    today = dt.date.today()
    for entry in entries:
        missing = [k for k in REQUIRED_KEYS if not str(entry.get(k, "")).strip()]
        if missing:
            print(f"audit: {IGNORE_FILE.name}: entry {entry.get('id', '?')} lacks {missing}")
            sys.exit(2)
        until = entry.get("until")
        if isinstance(until, dt.date) and until < today:
            print(f"audit: {IGNORE_FILE.name}: {entry['id']} was accepted until {until}: review it")
            sys.exit(2)
    return entries


def main() -> int:
    accepted = ignored()
    service = os.environ.get("AUDIT_SERVICE", "pypi")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
        fh.write("\n".join(pins()) + "\n")
    command = [sys.executable, "-m", "pip_audit", "--disable-pip", "--no-deps", "-r", fh.name,
               "-s", service, "-f", "json", "--progress-spinner", "off", "--timeout", "20"]
    for entry in accepted:
        command += ["--ignore-vuln", entry["id"]]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    Path(fh.name).unlink(missing_ok=True)
    try:
        report = json.loads(result.stdout)
    except ValueError:
        report = None
    deps = report.get("dependencies", []) if isinstance(report, dict) else []
    audited = [d for d in deps if "skip_reason" not in d]
    found = [(d["name"], d["version"], v["id"], v.get("fix_versions", []))
             for d in audited for v in d.get("vulns", [])]
    if found:
        print(f"audit: {len(found)} known vulnerabilities in the pinned dependencies:")
        for name, version, vid, fixes in found:
            print(f"  {name}=={version}: {vid} (fixed in {', '.join(fixes) or '—'})")
        print(f"Upgrade the pin, or accept it in {IGNORE_FILE.relative_to(ROOT)} with a reason.")
        return 1
    if not audited:
        reason = (deps[0].get("skip_reason") if deps else
                  (re.findall(r"[A-Za-z]+Error[^\n]*", result.stderr) or [result.stderr[-300:]])[-1])
        print("audit: WARNING — the pinned dependencies were NOT audited: the vulnerability "
              f"service ({service}) could not be reached or knows none of them ({reason}).")
        return 3 if os.environ.get("AUDIT_REQUIRED") == "1" else 0
    skipped = [d["name"] for d in deps if "skip_reason" in d]
    print(f"audit: {len(audited)} pinned dependencies audited ({service}), no known vulnerability"
          + (f" outside {len(accepted)} accepted" if accepted else "")
          + (f"; not audited: {', '.join(skipped)}" if skipped else "") + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
