"""The man pages (issue: operations, item 7): truefrom(8) from the binary's help texts and
truefrom.toml(5) from the sample config, written by the build (contrib/man/make-man). They
must name every subcommand the binary knows and every key the config parser accepts, and
render without warnings; `cmake --install` puts them in share/man."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from harness import REPO, truefrom_bin

# Keys the parser knows only to refuse them with what to write instead.
RETIRED = {("relay", "timeout")}


def known_keys():
    """{section: {key}} from the parser's table (submission/app/config.cpp kKnownKeys)."""
    text = (REPO / "submission/app/config.cpp").read_text()
    table = text.split("kKnownKeys{", 1)[1].split("};", 1)[0]
    keys = {}
    for section, body in re.findall(r'\{"([a-z_]+)",\s*\{([^}]*)\}\}', table):
        keys[section] = set(re.findall(r'"([a-z0-9_]+)"', body))
    return keys


class ManPageTests(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.man = Path(truefrom_bin()).parent / "man"
        cls.page8 = (cls.man / "truefrom.8").read_text()
        cls.page5 = (cls.man / "truefrom.toml.5").read_text()

    def test_every_config_key_is_in_truefrom_toml_5(self):
        keys = known_keys()
        self.assertGreater(sum(len(v) for v in keys.values()), 80, keys)
        sections = {}
        for block in re.split(r"^\.SS ", self.page5, flags=re.M)[1:]:
            name = re.match(r"\[([a-z_]+)\]", block).group(1)
            sections[name] = set(re.findall(r"^\\fB([a-z0-9_]+)\\fR", block, flags=re.M))
        missing = sorted("[%s] %s" % (s, k) for s, ks in keys.items() for k in ks
                         if (s, k) not in RETIRED and k not in sections.get(s, set()))
        self.assertEqual(missing, [], "keys the parser accepts that truefrom.toml(5) "
                         "(contrib/truefrom.toml.sample) does not document")
        unknown = sorted("[%s] %s" % (s, k) for s, ks in sections.items() for k in ks
                         if k not in keys.get(s, set()))
        self.assertEqual(unknown, [], "keys in the page the parser does not accept")

    def test_every_subcommand_is_in_truefrom_8(self):
        usage = subprocess.run([truefrom_bin(), "--help"], capture_output=True,
                               text=True).stdout
        commands = re.findall(r"^  ([a-z]+)\b", usage.split("commands:")[1].split("options:")[0],
                              flags=re.M)
        self.assertIn("serve", commands)
        self.assertIn("config", commands)
        for command in set(commands):
            self.assertRegex(self.page8, r"(?m)^\.SS %s$" % command)
            first = subprocess.run([truefrom_bin(), command, "--help"], capture_output=True,
                                   text=True).stdout.splitlines()[0]
            self.assertIn(first.replace("-", "\\-"), self.page8, command)

    @unittest.skipUnless(shutil.which("man"), "man is not installed")
    def test_the_pages_render_without_warnings(self):
        for page in ("truefrom.8", "truefrom.toml.5"):
            p = subprocess.run(["man", "--warnings", "-l", str(self.man / page)],
                               capture_output=True, text=True,
                               env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr.strip(), "", page)
            self.assertIn("truefrom", p.stdout)

    def test_install_puts_them_in_share_man(self):
        root = Path(tempfile.mkdtemp(prefix="truefrom-man-"))
        self.addCleanup(shutil.rmtree, root)
        subprocess.run(["cmake", "--install", str(Path(truefrom_bin()).parent), "--prefix",
                        "/usr"], env=dict(os.environ, DESTDIR=str(root)), check=True,
                       capture_output=True)
        self.assertTrue((root / "usr/share/man/man8/truefrom.8").is_file())
        self.assertTrue((root / "usr/share/man/man5/truefrom.toml.5").is_file())


if __name__ == "__main__":
    unittest.main()
