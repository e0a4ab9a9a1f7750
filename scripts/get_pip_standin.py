# Stand-in for ansible-test's pip bootstrap script (get-pip-X.Y.py from ci-files.testing.ansible.com,
# which this network cannot reach). ansible-test runs it with runpy in a fresh venv, with pip's own
# arguments in sys.argv: bootstrap pip with ensurepip, then install the pinned packages from PyPI.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
subprocess.check_call([sys.executable, "-m", "pip", "install", *args])
