"""scripts/check-self-contained.sh, which .ci/run calls first: a tracked file that names a place
outside the repository fails CI, with the file and line; this repository passes."""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECK = REPO / "scripts" / "check-self-contained.sh"


def check(repo):
    return subprocess.run(["bash", str(CHECK), str(repo)], capture_output=True, text=True,
                          timeout=60)


class SelfContained(unittest.TestCase):
    def repo_with(self, files):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        root = Path(tmp.name) / "clone"
        root.mkdir()
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        subprocess.run(["git", "-C", str(root), "add", "."], check=True)
        return root

    def test_this_repository_refers_to_nothing_outside_it(self):
        r = check(REPO)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_a_tracked_file_naming_the_shared_folder_fails_with_its_file_and_line(self):
        root = self.repo_with({
            "README.md": "fine\n",
            "tests/unit/test_x.cpp": "// ok\nconst char* k = \"" + "../" + "shared/testdata/v.txt\";\n",
        })
        r = check(root)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("tests/unit/test_x.cpp:2:", r.stderr)
        self.assertNotIn("README.md", r.stderr)

    def test_a_step_out_of_the_source_root_and_the_parent_path_fail(self):
        root = self.repo_with({
            "CMakeLists.txt": 'set(D "${CMAKE_SOURCE_DIR}/' + '../data")\n',
            "scripts/x.sh": "placeholder\n",
        })
        # The second file names the folder that holds the clone, by its absolute path.
        (root / "scripts/x.sh").write_text("cat " + os.path.join(str(root.parent), "notes") + "\n")
        r = check(root)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("CMakeLists.txt:1:", r.stderr)
        self.assertIn("scripts/x.sh:1:", r.stderr)

    def test_an_untracked_file_is_not_the_repository(self):
        root = self.repo_with({"README.md": "fine\n"})
        (root / "notes.txt").write_text("../" + "shared/DESIGN.md\n")
        r = check(root)
        self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
