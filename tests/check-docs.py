#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks that mace's reStructuredText documents parse without a warning.

Usage: tests/check-docs.py FILE...

Parses each FILE with docutils (Debian's python3-docutils), as a kernel
documentation build would before rendering it, and prints "ok: FILE" or
each of docutils' warnings and errors as "bad: FILE:LINE: message". Exits 1
if any file had one. Sphinx's own directives and roles, which the kernel's
Documentation/ uses but mace's documents do not, are not known here.
"""

import io
import sys

import docutils.core
import docutils.utils


def check(path):
    """Prints the findings for one file; returns whether it had none."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    stream = io.StringIO()
    settings = {
        "report_level": docutils.utils.Reporter.WARNING_LEVEL,
        "halt_level": docutils.utils.Reporter.SEVERE_LEVEL + 1,
        "warning_stream": stream,
    }
    docutils.core.publish_doctree(source, source_path=path, settings_overrides=settings)
    levels = ("(WARNING/", "(ERROR/", "(SEVERE/")
    findings = [
        line for line in stream.getvalue().splitlines() if any(lv in line for lv in levels)
    ]
    for line in findings:
        print("bad: " + line)
    if not findings:
        print("ok: " + path)
    return not findings


def main(paths):
    if not paths:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    results = [check(p) for p in paths]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
