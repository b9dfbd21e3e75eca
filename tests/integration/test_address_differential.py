"""Differential test of truefrom's RFC 5322 address parser against Python's
email.headerregistry, on the From:/Sender:/Resent-* fields of the sender-binding corpus
(tests/golden/header_binding.txt).

The two parsers must agree on every field: both accept it and find the same mailboxes
(local part, domain, and display name where no encoded-word is involved), or both find it
broken (truefrom refuses; Python raises or reports a defect). Where truefrom is stricter or
reads differently on purpose, the corpus case says so with "% differential: WHY"; such a
case must really differ, so stale annotations fail too.

TRUEFROM_ADDRESS_PROBE names the probe binary (default <repo>/build/debug/address_probe).
"""
import json
import os
import subprocess
import unittest
from email.policy import default as default_policy
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "tests" / "golden" / "header_binding.txt"


def probe_path():
    path = Path(os.environ.get("TRUEFROM_ADDRESS_PROBE", REPO / "build" / "debug" / "address_probe"))
    if not path.is_file():
        raise unittest.SkipTest("address_probe not built: %s (set TRUEFROM_ADDRESS_PROBE)" % path)
    return path


def annotations():
    """case name -> the reason given by its "% differential:" line."""
    out = {}
    name = None
    for raw in CORPUS.read_bytes().decode("utf-8", "replace").splitlines():
        if raw.startswith("### "):
            name = raw[4:]
        elif raw.startswith("% differential: ") and name is not None:
            out[name] = raw[len("% differential: "):]
    return out


# Defects that mark a form as obsolete or internationalized, not broken: Python still reads
# the addresses, and so does truefrom (RFC 5322 4.4 obsolete syntax, RFC 6532 UTF-8).
INFORMATIONAL = {"ObsoleteHeaderDefect", "NonASCIILocalPartDefect"}


def python_reading(field, value):
    """(ok, [(local, domain, display)]) as email.headerregistry reads the field."""
    try:
        header = default_policy.header_factory(field, value)
        mailboxes = [(a.username, a.domain, a.display_name) for a in header.addresses]
        defects = list(header.defects)
        for group in header.groups:
            defects += list(getattr(group, "defects", []))
    except Exception as e:  # noqa: BLE001 - any failure is "Python finds it broken"
        return False, "raised %s: %s" % (type(e).__name__, e)
    fatal = [type(d).__name__ for d in defects if type(d).__name__ not in INFORMATIONAL]
    if fatal:
        return False, "defects: %s" % ", ".join(fatal)
    return True, mailboxes


def same(ours, theirs, raw):
    """Same mailboxes. Display names are compared unless encoded-words are involved:
    truefrom decodes them for inspection only (legacy charsets become U+FFFD) and follows
    RFC 2047 6.2 on whitespace between adjacent encoded-words, where Python keeps it."""
    if len(ours) != len(theirs):
        return False
    for (ol, od, on), (pl, pd, pn) in zip(ours, theirs):
        if ol != pl or od != pd:
            return False
        if "=?" not in raw and on != pn:
            return False
    return True


class AddressDifferentialTest(unittest.TestCase):
    def test_parsers_agree_on_the_corpus(self):
        out = subprocess.run([str(probe_path()), str(CORPUS)], capture_output=True, check=True)
        rows = [json.loads(line) for line in out.stdout.decode("utf-8").splitlines()]
        self.assertGreater(len(rows), 150)
        notes = annotations()
        differing = set()
        disagreements = []
        for row in rows:
            if "skip" in row:
                continue
            py_ok, py = python_reading(row["field"], row["value"])
            ours_ok = row["ok"]
            ours = [tuple(m) for m in row.get("mailboxes", [])]
            agree = (ours_ok == py_ok) and (not ours_ok or same(ours, py, row["value"]))
            if agree:
                continue
            differing.add(row["case"])
            if row["case"] not in notes:
                disagreements.append("%s / %s:%s\n    truefrom: %s\n    python:   %s" % (
                    row["case"], row["field"], row["value"],
                    ours if ours_ok else "refused: " + row["error"], py))
        self.assertEqual(disagreements, [], "parsers disagree (fix one, or annotate the case "
                         "with '%% differential: WHY'):\n" + "\n".join(disagreements))
        stale = sorted(set(notes) - differing)
        self.assertEqual(stale, [], "annotated as differing but the parsers agree")


if __name__ == "__main__":
    unittest.main()
