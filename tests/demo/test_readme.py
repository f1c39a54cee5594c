"""The README's commands exist as written.

Each ``sh`` block's commands are checked: ``python -m ...`` commands answer ``--help`` and
know every flag the README gives them; ``make`` targets exist; scripts and files named under
``deploy/`` and ``bench/`` exist (their behaviour is tested in test_deploy.py and by the
benchmark itself). Operating-system commands (install, systemctl, useradd,
mosquitto_passwd) are not run here; the files they install are tested. A command of any
other kind fails the test, so the README cannot grow an unchecked one.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
OS_COMMANDS = {"install", "systemctl", "useradd", "mosquitto_passwd"}


def _commands() -> list:
    text = README.read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def _words(line: str) -> list:
    words = shlex.split(line)
    while words and re.match(r"^[A-Z_]+=", words[0]):  # VAR=value prefixes
        words.pop(0)
    return words


def test_readme_has_commands():
    cmds = _commands()
    assert any("make demo" in c for c in cmds) and any("python -m edge simulate" in c for c in cmds)


def _python_commands() -> list:
    out = []
    for line in _commands():
        words = _words(line)
        if words and words[0] in ("python", ".venv/bin/python") and words[1:2] == ["-m"]:
            out.append(words)
    return out


@pytest.mark.parametrize("words", _python_commands(), ids=lambda w: " ".join(w[:4]))
def test_python_commands_and_their_flags_exist(words):
    module = words[2]
    sub = [words[3]] if len(words) > 3 and not words[3].startswith("-") else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    res = subprocess.run([sys.executable, "-m", module, *sub, "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    for word in words:
        if word.startswith("--"):
            flag = word.split("=")[0]
            assert re.search(r"(^|[\s,\[])%s\b" % re.escape(flag), res.stdout), "%s: no %s" % (" ".join(words[:4]), flag)


def test_make_targets_scripts_and_files_exist():
    makefile = (ROOT / "Makefile").read_text()
    for line in _commands():
        words = _words(line)
        head = words[0]
        if head in ("python", ".venv/bin/python"):
            if words[1] != "-m":
                assert (ROOT / words[1]).is_file(), line
            continue
        if head == "make":
            for target in words[1:]:
                if "=" not in target:
                    assert re.search(r"^%s:" % re.escape(target), makefile, flags=re.M), line
            continue
        if head.startswith("deploy/"):
            assert os.access(ROOT / head, os.X_OK), line
            continue
        assert head in OS_COMMANDS, "README command of an unchecked kind: %s" % line
        for word in words[1:]:
            if word.startswith(("deploy/", "bench/")):
                assert (ROOT / word).exists(), line


def test_metric_names_in_the_readme_exist():
    names = set(re.findall(r"`(heatmap_[a-z_]+)`", README.read_text()))
    source = (ROOT / "central" / "metrics.py").read_text()
    assert len(names) > 5
    assert sorted(n for n in names if '"%s"' % n not in source) == []


def test_local_links_resolve():
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README.read_text()):
        assert (ROOT / target).exists(), target
