"""End-to-end: figures without savefig (README "Figures"), behind nginx,
on both sandbox layers. When matplotlib is importable, plt.show() saves
each open figure as figure-N.png in the work directory and closes it: the
reply returns them as generated files, typed image/png. A script that
calls savefig itself gets only its own file; a run whose python has no
matplotlib is as it would be without pyexec's backend."""

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
from harness import script  # noqa: E402

PYTHON = os.environ.get("TEST_PYTHON", "/usr/bin/python3")
MATPLOTLIB = subprocess.run([PYTHON, "-c", "import matplotlib.pyplot"],
                            capture_output=True).returncode == 0
NO_MATPLOTLIB = "the system's python has no matplotlib (python3-matplotlib)"


def png_size(data):
    """(width, height) of a PNG, from its IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return struct.unpack(">II", data[16:24])


class Figures(harness.E2ETestCase):
    """plt.show() on the namespace layer."""

    LAYER = "namespaces"

    def setUp(self):
        super().setUp()
        self.s = self.server("figures-" + self.LAYER, workers=1, **self.layer())
        health = self.s.request("GET", "/healthz").json()
        if health.get("sandbox") != self.LAYER:
            self.skipTest("these tests are of the %s layer; this server runs %s"
                          % (self.LAYER, health.get("sandbox")))

    def layer(self):
        """The server's layer: on rlimits, RLIMIT_NPROC counts every process
        of pyexec's uid (other suites' servers run as nobody too), and
        matplotlib starts a thread: room for them."""
        if self.LAYER == "namespaces":
            return {}
        return {"sandbox": "rlimits", "options": ["max_processes=4096"]}

    def run_script(self, src, **kw):
        r = self.s.post_execute({"main.py": script(src)}, query="timeout=60", timeout=120, **kw)
        self.assertRan(r)
        return r

    @unittest.skipUnless(MATPLOTLIB, NO_MATPLOTLIB)
    def test_show_returns_each_figure(self):
        r = self.run_script('''
            import os
            import matplotlib.pyplot as plt
            plt.figure(figsize=(4, 3), dpi=100)
            plt.plot([1, 3, 2])
            plt.figure(figsize=(2, 2), dpi=100)
            plt.bar([1, 2], [3, 4])
            plt.show()
            print("open after show:", plt.get_fignums())
            # a second show: numbering goes on, past a name already taken
            open("figure-4.png", "w").write("mine")
            plt.figure(figsize=(3, 1), dpi=100)
            plt.figure(figsize=(1, 1), dpi=100)
            plt.show()
            plt.show()          # nothing open: nothing saved
            print(sorted(n for n in os.listdir(".") if n.startswith("figure")))
            ''')
        self.assertEqual(r.stdout, b"open after show: []\n['figure-1.png', 'figure-2.png', "
                                   b"'figure-3.png', 'figure-4.png', 'figure-5.png']\n")
        self.assertEqual(r.stderr, b"")
        self.assertEqual(sorted(r.files), ["figure-1.png", "figure-2.png", "figure-3.png",
                                           "figure-4.png", "figure-5.png"])
        for name, size in (("figure-1.png", (400, 300)), ("figure-2.png", (200, 200)),
                           ("figure-3.png", (300, 100)), ("figure-5.png", (100, 100))):
            f = r.files[name]
            self.assertEqual(f.content_type, "image/png", name)
            self.assertEqual(png_size(f.data), size, name)
        self.assertEqual(r.files["figure-4.png"].data, b"mine")

    @unittest.skipUnless(MATPLOTLIB, NO_MATPLOTLIB)
    def test_savefig_alone_is_unchanged(self):
        r = self.run_script('''
            import os
            import matplotlib.pyplot as plt
            plt.plot([1, 2])
            plt.savefig(os.path.join(os.environ["OUTPUT_DIR"], "chart.png"))
            print(plt.get_fignums())
            ''')
        self.assertEqual((r.stdout, r.stderr), (b"[1]\n", b""))
        self.assertEqual(list(r.files), ["chart.png"])
        self.assertEqual(r.files["chart.png"].content_type, "image/png")

    @unittest.skipUnless(MATPLOTLIB, NO_MATPLOTLIB)
    def test_show_in_another_directory_saves_in_output_dir(self):
        r = self.run_script('''
            import os
            import matplotlib.pyplot as plt
            os.mkdir("sub")
            os.chdir("sub")
            plt.plot([1, 2])
            plt.show()
            ''')
        self.assertEqual(list(r.files), ["figure-1.png"])

    def test_without_matplotlib_runs_are_unchanged(self):
        """With a python that has no matplotlib (a venv without the
        system's packages), importing it fails as it would anywhere, and a
        run that does not import it is untouched."""
        d = tempfile.mkdtemp(prefix="pyexec-e2e-venv-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)      # reachable once pyexec has dropped to nobody
        venv = os.path.join(d, "venv")
        made = subprocess.run([PYTHON, "-m", "venv", "--without-pip", venv],
                              capture_output=True, text=True)
        if made.returncode != 0:
            self.skipTest("no venv: " + made.stderr.strip()[-200:])
        kw = self.layer()
        s = self.private_server(name="nompl", workers=1, sandbox=kw.get("sandbox"),
                                options=kw.get("options", []) + [
                                    "python=" + os.path.join(venv, "bin", "python3")])
        r = s.post_execute({"main.py": script('''
            import sys
            try:
                import matplotlib
            except ImportError as e:
                print(type(e).__name__, e)
            print("hello")
            ''')})
        self.assertRan(r)
        self.assertEqual(r.stdout, b"ModuleNotFoundError No module named 'matplotlib'\nhello\n")
        self.assertEqual((r.stderr, r.files), (b"", {}))


class PlainFigures(Figures):
    """The same on the rlimits layer."""

    LAYER = "rlimits"


if __name__ == "__main__":
    harness.main()
